"""The GRIS describes itself in GLUE 2.0: one GLUE2Service with a GLUE2Endpoint per LDAP listener.

Below the GLUE 2 suffix (``GLUE2GroupID=resource,o=glue`` by default), beside what the
providers publish::

    GLUE2ServiceID=<host>_gridinfo,<g2>                       GLUE2Service (type BDII)
      GLUE2EndpointID=<host>_gridinfo_ldap_<port>,...        GLUE2Endpoint, one per bound port
        GLUE2PolicyID=<endpoint>_access,...                   GLUE2AccessPolicy (rule ALL: anonymous reads)

An endpoint's ``GLUE2EndpointURL`` is ``ldap://<host>:<port>/`` (``ldaps://`` for an ``ssl:``
listener), its interface ``ldap`` version 3, its implementation ``gridinfo`` and the running
version.  ``GLUE2EndpointHealthState`` follows the providers: ``ok`` while every provider's last
run succeeded, ``warning`` (the failing ones named in ``GLUE2EndpointHealthStateInfo``) when
some failed, ``unknown`` before any ran.  The entries are rebuilt whenever the ``o=infosys``
status is (:meth:`GLUE2SelfPublisher.publish` is called next to it), so they are as fresh as the
status entries.  They are the GRIS's own entries: no provider owns them and soft state does not
expire them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import gridinfo
from gridinfo.directory.dn import escape_value as _escape
from gridinfo.directory.gtime import format_glue2_datetime
from gridinfo.directory.tree import DirectoryTree
from gridinfo.gris.softstate import SoftStateTable

SOURCE = "gridinfo:glue2"


@dataclass(frozen=True)
class ListenerAddress:
    """One bound listener: the URL scheme, the host clients use and the port."""

    scheme: str  # ldap or ldaps
    host: str
    port: int



def health(table: SoftStateTable) -> tuple[str, str]:
    """(GLUE2EndpointHealthState, HealthStateInfo) from the providers' last runs."""
    ran = [r for r in table.records.values() if r.last_ok is not None]
    failing = sorted(r.name for r in ran if r.last_ok is False)
    if not ran:
        return "unknown", "no provider has run yet"
    if failing:
        return "warning", "providers failing: " + ", ".join(failing)
    return "ok", f"{len(ran)} providers publishing"


class GLUE2SelfPublisher:
    """Keeps the GRIS's own GLUE2Service / GLUE2Endpoint entries in its tree."""

    def __init__(
        self,
        tree: DirectoryTree,
        table: SoftStateTable,
        glue2_suffix: str,
        *,
        host: str,
        start_time: float,
        site_id: str = "",
        listeners: Callable[[], Iterable[ListenerAddress]] = list,
    ):
        self.tree = tree
        self.table = table
        self.glue2_suffix = glue2_suffix
        self.host = host
        self.start_time = start_time
        self.site_id = site_id
        self.listeners = listeners
        self.service_id = f"{host}_gridinfo"
        self._published: set[str] = set()

    def entries(self, now: float) -> list[tuple[str, list[tuple[str, list[bytes]]]]]:
        """The entries as (dn, attributes); none when GLUE 2 is off."""
        if not self.glue2_suffix:
            return []

        def v(*values: object) -> list[bytes]:
            return [str(x).encode("utf-8") for x in values]

        service_dn = f"GLUE2ServiceID={_escape(self.service_id)},{self.glue2_suffix}"
        service = [
            ("objectClass", v("GLUE2Service")),
            ("GLUE2ServiceID", v(self.service_id)),
            ("GLUE2EntityName", v(f"gridinfo GRIS on {self.host}")),
            ("GLUE2ServiceType", v("BDII")),
            ("GLUE2ServiceQualityLevel", v("production")),
            ("GLUE2ServiceCapability", v("information.discovery.resource")),
        ]
        # the schema requires the foreign key: without a configured site, the host stands in
        service.append(("GLUE2ServiceAdminDomainForeignKey", v(self.site_id or self.host)))
        out = [(service_dn, service)]
        state, info = health(self.table)
        addresses = sorted(set(self.listeners()), key=lambda a: (a.port, a.scheme))
        service.append(("GLUE2ServiceComplexity", v("endpointType=1, share=0, resource=0")))
        for address in addresses:
            endpoint_id = f"{self.service_id}_{address.scheme}_{address.port}"
            endpoint_dn = f"GLUE2EndpointID={_escape(endpoint_id)},{service_dn}"
            out.append(
                (
                    endpoint_dn,
                    [
                        ("objectClass", v("GLUE2Endpoint")),
                        ("GLUE2EndpointID", v(endpoint_id)),
                        ("GLUE2EndpointURL", v(f"{address.scheme}://{address.host}:{address.port}/")),
                        ("GLUE2EndpointCapability", v("information.discovery.resource")),
                        ("GLUE2EndpointInterfaceName", v("ldap")),
                        ("GLUE2EndpointInterfaceVersion", v("3")),
                        ("GLUE2EndpointImplementor", v("gridinfo")),
                        ("GLUE2EndpointImplementationName", v("gridinfo")),
                        ("GLUE2EndpointImplementationVersion", v(gridinfo.__version__)),
                        ("GLUE2EndpointQualityLevel", v("production")),
                        ("GLUE2EndpointHealthState", v(state)),
                        ("GLUE2EndpointHealthStateInfo", v(info)),
                        ("GLUE2EndpointServingState", v("production")),
                        ("GLUE2EndpointStartTime", v(format_glue2_datetime(self.start_time))),
                        ("GLUE2EndpointServiceForeignKey", v(self.service_id)),
                    ],
                )
            )
            policy_id = f"{endpoint_id}_access"
            out.append(
                (
                    f"GLUE2PolicyID={_escape(policy_id)},{endpoint_dn}",
                    [
                        ("objectClass", v("GLUE2Policy", "GLUE2AccessPolicy")),
                        ("GLUE2PolicyID", v(policy_id)),
                        ("GLUE2PolicyScheme", v("org.glite.standard")),
                        ("GLUE2PolicyRule", v("ALL")),
                        ("GLUE2AccessPolicyEndpointForeignKey", v(endpoint_id)),
                    ],
                )
            )
        return out

    def publish(self, now: float) -> None:
        """(Re)build the entries; an endpoint whose listener went away is removed."""
        keys: set[str] = set()
        for dn, attrs in self.entries(now):
            entry = self.tree.build(dn, attrs, source=SOURCE)
            self.tree.add(entry)
            keys.add(entry.key)
        for gone in self._published - keys:
            self.tree.remove(gone)
        self._published = keys
