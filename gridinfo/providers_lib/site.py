"""The ``site`` provider: the site's static GLUE 2.0 description (its GLUE2AdminDomain).

A BDII site publishes its GLUE2Domain from static configuration; this provider does the same
from a YAML file (``conf/providers/site.yaml``), below the GLUE 2 suffix::

    GLUE2DomainID=<site_id>,<g2>                                  GLUE2Domain + GLUE2AdminDomain
      GLUE2LocationID=<site_id>-location,GLUE2DomainID=...       GLUE2Location (when a place is given)
      GLUE2ContactID=<site_id>-<type>-<n>,GLUE2DomainID=...      GLUE2Contact, one per contact

Location and contacts are children of the domain, as in BDII, so their DNs name the domain they
belong to (their ``...DomainForeignKey``).  No ``site_id`` configured, or GLUE 2 switched off
(an empty GLUE 2 suffix): nothing is published, exit 0, with a warning on stderr.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from gridinfo.providers_lib.output import LDIFEntry, child_dn, format_entries
from gridinfo.providers_lib.runtime import run_provider


@dataclass(frozen=True)
class ContactConfig:
    """One site contact (GLUE2Contact)."""

    type: Literal["general", "security", "sysadmin", "usersupport"] = "sysadmin"
    detail: str = ""  # a URI: mailto:grid-admin@example.org, https://helpdesk.example.org/
    name: str | None = None


@dataclass(frozen=True)
class SiteConfig:
    """Config keys of the site provider (all optional; without ``site_id`` nothing is published)."""

    site_id: str | None = None  # GLUE2DomainID, the site's name (GOCDB's): EXAMPLE-SITE
    description: str | None = None  # GLUE2DomainDescription
    www: tuple[str, ...] = ()  # GLUE2DomainWWW
    distributed: bool = False  # GLUE2AdminDomainDistributed: the site spans several places
    owner: tuple[str, ...] = ()  # GLUE2AdminDomainOwner
    other_info: tuple[str, ...] = ()  # GLUE2EntityOtherInfo, e.g. "EGI_NGI=NGI_XX", "GRID=EGI"
    place: str | None = None  # GLUE2LocationPlace (town)
    country: str | None = None  # GLUE2LocationCountry
    address: str | None = None  # GLUE2LocationAddress
    postcode: str | None = None  # GLUE2LocationPostCode
    latitude: float | None = None  # GLUE2LocationLatitude (degrees, -90..90)
    longitude: float | None = None  # GLUE2LocationLongitude (degrees, -180..180)
    contacts: tuple[ContactConfig, ...] = field(default_factory=tuple)
    source: str = "<defaults>"



def site_entries(config: SiteConfig, glue2_suffix: str) -> list[LDIFEntry]:
    """The site's GLUE 2 entries (empty without a site_id or a GLUE 2 suffix)."""
    site = config.site_id
    if not site or not glue2_suffix:
        return []
    domain_dn = child_dn("GLUE2DomainID", site, glue2_suffix)
    domain = LDIFEntry(domain_dn)
    domain.add("objectClass", ["GLUE2Domain", "GLUE2AdminDomain"])
    domain.add("GLUE2DomainID", site)
    domain.add("GLUE2EntityName", site)
    domain.add("GLUE2EntityOtherInfo", list(config.other_info))
    domain.add("GLUE2DomainDescription", config.description)
    domain.add("GLUE2DomainWWW", list(config.www))
    domain.add("GLUE2AdminDomainDistributed", "TRUE" if config.distributed else "FALSE")
    domain.add("GLUE2AdminDomainOwner", list(config.owner))
    entries = [domain]
    if any(v is not None for v in (config.place, config.country, config.address, config.latitude, config.longitude)):
        location_id = f"{site}-location"
        location = LDIFEntry(child_dn("GLUE2LocationID", location_id, domain_dn))
        location.add("objectClass", ["GLUE2Location"])
        location.add("GLUE2LocationID", location_id)
        location.add("GLUE2EntityName", site)
        location.add("GLUE2LocationAddress", config.address)
        location.add("GLUE2LocationPlace", config.place)
        location.add("GLUE2LocationCountry", config.country)
        location.add("GLUE2LocationPostCode", config.postcode)
        location.add("GLUE2LocationLatitude", config.latitude)
        location.add("GLUE2LocationLongitude", config.longitude)
        location.add("GLUE2LocationDomainForeignKey", site)
        entries.append(location)
    counts: dict[str, int] = {}
    for contact in config.contacts:
        if not contact.detail:
            continue
        n = counts[contact.type] = counts.get(contact.type, 0) + 1
        contact_id = f"{site}-{contact.type}-{n}"
        entry = LDIFEntry(child_dn("GLUE2ContactID", contact_id, domain_dn))
        entry.add("objectClass", ["GLUE2Contact"])
        entry.add("GLUE2ContactID", contact_id)
        entry.add("GLUE2EntityName", contact.name)
        entry.add("GLUE2ContactDetail", contact.detail)
        entry.add("GLUE2ContactType", contact.type)
        entry.add("GLUE2ContactDomainForeignKey", site)
        entries.append(entry)
    return entries


def produce(config: SiteConfig, args: argparse.Namespace, log: logging.Logger) -> str:
    if not args.glue2_suffix:
        log.warning("GLUE 2 is off (empty GLUE 2 suffix): nothing to publish")
        return ""
    if not config.site_id:
        log.warning("no site_id in %s: nothing to publish (see conf/providers/site.yaml)", config.source)
        return ""
    return format_entries(site_entries(config, args.glue2_suffix))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``providers/site``."""
    return run_provider("site", "Publish the site's GLUE 2.0 AdminDomain, Location and Contacts as LDIF.", SiteConfig, produce, argv)
