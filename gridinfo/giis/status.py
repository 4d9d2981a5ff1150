"""What a GIIS says about itself and its children: MDS2's registration status and ``o=infosys``.

``-s base giisregistrationstatus`` on the GIIS suffix lists the registrants (MDS2), one entry
per child with ``Mds-Reg-status``; ``o=infosys`` holds ``cn=giis`` (totals) and one
``GridinfoChildStatus`` entry per child (health, latency, entries, cache hits), rebuilt when
searched.  A registrant chooses where the GIIS connects, so what anonymous readers see is
coarse (``unreachable``, never "connection refused" vs "closed cleanly"): the status entries
under ``o=infosys`` always, ``giisregistrationstatus`` unless the reader bound.  The detailed
error is in the log, and in ``giisregistrationstatus`` for bound readers.  Pure: ``now`` is
passed in.

``Hostname=<host>,o=infosys`` is BDII's UpdateStats entry (:class:`gridinfo.infosys.UpdateStats`).
A GIIS's *update cycle* is its refresh of its children: it ends at the first publication after
a child was contacted again (a forwarded search, a mirror pull, a health check) or the GIIS's
own entries changed.  Figures: ``TotalEntries`` the GIIS's own entries (``o=infosys`` aside)
plus the entries its children last answered with; ``ProvidersTime`` (and ``UpdateTime``) the
latencies of the children contacted in the cycle, summed, in whole seconds; ``New``/
``Modified``/``DeletedEntries`` the changes to the GIIS's own tree.  The rest are 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gridinfo.directory.dn import escape_value
from gridinfo.directory.query import SearchResult
from gridinfo.directory.tree import DirectoryTree
from gridinfo.giis.children import Child
from gridinfo.giis.leases import format_generalized_time
from gridinfo.infosys import INFOSYS_DN, InfosysPublisher, ServerStats, UpdateStats

Attributes = list[tuple[str, list[bytes]]]


#: what an anonymous reader sees of a child's state: no port scanner's detail (refused vs silent)
COARSE_STATES = {"new": "new", "ok": "ok", "invalid": "invalid", "slow": "unreachable", "unreachable": "unreachable"}


def child_attributes(child: Child, now: float, *, detailed: bool = True) -> Attributes:
    """The status of one child, in MDS2's registration terms plus gridinfo's health.

    Not ``detailed`` (anonymous readers): the state is coarse (``unreachable`` whatever the
    failure) and the last error is left out; the log keeps the detail.
    """
    stats = child.stats
    state = stats.state if detailed else COARSE_STATES.get(stats.state, "unreachable")
    attrs: Attributes = [
        ("objectClass", [b"GridinfoChildStatus", b"MdsService", b"MdsServiceLdap"]),
        ("GridinfoChildURL", [child.url.encode()]),
        ("GridinfoChildSuffix", [child.suffix.encode()]),
        ("GridinfoChildMode", [child.effective_mode.encode()]),
        ("GridinfoChildState", [state.encode()]),
        ("GridinfoChildEntries", [str(stats.entries).encode()]),
        ("GridinfoChildCacheHits", [str(stats.cache_hits).encode()]),
        ("GridinfoChildCacheMisses", [str(stats.cache_misses).encode()]),
        ("Mds-Service-type", [b"ldap"]),
        ("Mds-Service-hn", [child.host.encode()]),
        ("Mds-Service-port", [str(child.port).encode()]),
        ("Mds-Service-Ldap-suffix", [child.suffix.encode()]),
        ("Mds-Service-Ldap-timeout", [str(int(child.timeout)).encode()]),
        ("Mds-Service-Ldap-cachettl", [str(int(child.cachettl)).encode()]),
        ("Mds-Reg-status", [child.lease_state(now).value.encode() if child.lease is not None else b"STATIC"]),
    ]
    if stats.latency is not None:
        attrs.append(("GridinfoChildLatency", [str(int(stats.latency * 1000)).encode()]))
    if stats.last_contact is not None:
        attrs.append(("GridinfoChildLastContact", [format_generalized_time(stats.last_contact).encode()]))
    if stats.last_error and detailed:
        attrs.append(("GridinfoChildLastError", [stats.last_error.encode()]))
    if child.lease is not None:
        reg = child.lease.registration
        attrs += [
            ("Mds-Bind-Method-servers", [reg.bind_methods.encode()]),
            ("Mds-Service-Ldap-sizelimit", [str(reg.size_limit).encode()]),
            ("Mds-validfrom", [format_generalized_time(reg.valid_from).encode()]),
            ("Mds-validto", [format_generalized_time(reg.valid_to).encode()]),
            ("Mds-keepto", [format_generalized_time(reg.keep_to).encode()]),
        ]
    return attrs


def registration_status(
    tree: DirectoryTree, suffix: str, children: Sequence[Child], now: float, *, detailed: bool = True
) -> SearchResult:
    """MDS2's ``-s base giisregistrationstatus``: one entry per registrant (coarse unless ``detailed``)."""
    out = []
    for child in children:
        made_from = status_inputs(child, now, suffix)
        kept = child.status_entries.get(detailed)
        if kept is not None and kept[0] == made_from:
            out.append(kept[1])
            continue
        dn = (
            f"Mds-Service-Ldap-suffix={escape_value(child.suffix)},Mds-Service-port={child.port},"
            f"Mds-Service-hn={escape_value(child.host)},{suffix}"
        )
        encoded = tree.builder.build(dn, child_attributes(child, now, detailed=detailed)).encoded
        child.status_entries[detailed] = (made_from, encoded)
        out.append(encoded)
    return SearchResult(entries=out)


def status_inputs(child: Child, now: float, suffix: str) -> tuple[Any, ...]:
    """Everything :func:`child_attributes` reads of ``child`` at ``now`` (and the suffix its
    status entry is named under): while it is unchanged, so is the encoded entry."""
    s = child.stats
    lease = child.lease
    return (
        suffix, child.url, child.suffix, child.host, child.port, child.effective_mode, child.timeout, child.cachettl,
        s.state, s.entries, s.cache_hits, s.cache_misses, s.latency, s.last_contact, s.last_error,
        None if lease is None else (lease.state(now), lease.registration),
    )


class GIISStatus:
    """The ``o=infosys`` entries of one GIIS: ``cn=giis`` and one per child."""

    def __init__(self, tree: DirectoryTree, *, hostname: str | None = None):
        self.tree = tree
        self.infosys = InfosysPublisher(tree, source="giis")
        self.server_stats: ServerStats = list
        self.cycles = 0  # registration cycles seen (A under B under A), not update cycles
        self.last_cycle = ""
        self.update_stats = UpdateStats(self.infosys, hostname)
        self._contacts: dict[str, float] | None = None  # child URL -> last contact at the last cycle

    def publish(self, children: Sequence[Child], now: float) -> None:
        totals: Attributes = [
            ("objectClass", [b"top", b"GridinfoServerStatus"]),
            ("cn", [b"giis"]),
            ("GridinfoChildCount", [str(len(children)).encode()]),
            ("GridinfoCycles", [str(self.cycles).encode()]),
            *self.server_stats(),
        ]
        if self.last_cycle:
            totals.append(("GridinfoLastCycle", [self.last_cycle.encode("utf-8")]))
        entries: list[tuple[str, Attributes]] = [(f"cn=giis,{INFOSYS_DN}", totals)]
        for child in children:
            entries.append((f"GridinfoChildURL={escape_value(child.url)},{INFOSYS_DN}",
                            child_attributes(child, now, detailed=False)))
        self._cycle(children)
        entries.append(self.update_stats.entry())
        self.infosys.replace(entries, touch=self.update_stats.pending_touch())

    def _cycle(self, children: Sequence[Child]) -> None:
        last = self._contacts
        contacted = [
            c for c in children
            if c.stats.last_contact is not None and (last is None or c.stats.last_contact > last.get(c.url, -1.0))
        ]
        stats = self.update_stats
        if last is not None and not contacted and stats.changes() == (0, 0, 0):
            return
        tree = self.tree
        own = len(tree) - tree.subtree_sizes.get(self.infosys.infosys_key, 0)
        latency = sum(c.stats.latency or 0.0 for c in contacted)
        stats.cycle(
            {
                # a held child's entries are in our tree already (counted in ``own``)
                "TotalEntries": own + sum(c.stats.entries for c in children if not c.held),
                "ProvidersTime": int(latency),
                "UpdateTime": int(latency),
            }
        )
        self._contacts = {c.url: c.stats.last_contact for c in children if c.stats.last_contact is not None}
