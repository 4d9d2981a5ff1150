"""BDII's renaming rules, written out independently of gridinfo's code, as the tests' oracle.

A BDII at site level runs its LDAP provider with the site's name for both trees; a top-level
BDII with ``local`` for o=grid and ``grid`` for o=glue.  This is that provider's rewriting, by
text substitution on the DN as BDII does it (not by DN arithmetic as gridinfo does).
"""

from __future__ import annotations

import re


def bdii_rename(dn: str, level: str, site: str = "") -> str | None:
    """The DN a BDII at ``level`` gives a child's entry ``dn``; None when it skips it as recursive."""
    dn = re.sub(r",\s+", ",", dn)
    low = dn.lower()
    if re.search(r"o=grid\s*$", low):
        name = site if level == "site" else "local"
        if f"mds-vo-name={name.lower()}," in low:
            return None
        dn = re.sub(r"mds-vo-name=(local|resource),o=grid\s*$", "o=grid", dn, flags=re.I)
        return re.sub(r"o=grid\s*$", f"mds-vo-name={name},o=grid", dn, flags=re.I)
    if re.search(r"o=glue\s*$", low):
        name = site if level == "site" else "grid"
        if f"glue2domainid={name.lower()}," in low:
            return None
        if name == "grid":
            return re.sub("o=glue", "GLUE2GroupID=grid,o=glue", dn, count=1, flags=re.I)
        return re.sub("o=glue", f"GLUE2DomainID={name},o=glue", dn, count=1, flags=re.I)
    raise ValueError(dn)


def bdii_glue_base(base: str) -> str:
    """The o=glue base BDII's provider asks for, given a url line's (o=grid) base."""
    if "o=glue" in base:
        return base
    site = re.sub(r",o=grid.*$", "", base)
    site = re.sub(r"^.*=", "", site)
    return "GLUE2GroupID=resource,o=glue" if site == "resource" else f"GLUE2DomainId={site},o=glue"
