"""Status entries under ``o=infosys``: what each provider did and what the GRIS holds.

In the spirit of BDII's ``UpdateStats`` entries: ``ldapsearch -b o=infosys`` shows, per
provider (``GridinfoProviderName=<name>,o=infosys``, class GridinfoProviderStatus) its last
run, duration, exit status, entries, bytes, last error and whether its data is fresh, stale,
gone or never produced; and per GRIS (``cn=<server>,o=infosys``, class GridinfoServerStatus)
the totals.  Pure: the caller passes ``now``; entries are rebuilt whenever the caller asks.
"""

from __future__ import annotations

from collections.abc import Callable

from gridinfo.directory.dn import escape_value
from gridinfo.directory.tree import DirectoryTree
from gridinfo.directory.gtime import format_generalized_time
from gridinfo.gris.softstate import ProviderRecord, SoftStateTable
from gridinfo.infosys import INFOSYS_DN, InfosysPublisher, ServerStats


def provider_status_dn(name: str) -> str:
    return f"GridinfoProviderName={escape_value(name)},{INFOSYS_DN}"


def provider_status_attributes(r: ProviderRecord) -> list[tuple[str, list[bytes]]]:
    """The GridinfoProviderStatus attributes of one provider."""
    d = r.definition

    def num(v: float) -> list[bytes]:
        return [str(int(v)).encode()]

    attrs: list[tuple[str, list[bytes]]] = [
        ("objectClass", [b"top", b"GridinfoProviderStatus"]),
        ("GridinfoProviderName", [d.name.encode("utf-8")]),
        ("GridinfoProviderPath", [d.path.encode("utf-8")]),
        ("GridinfoProviderState", [r.state.value.encode()]),
        ("GridinfoProviderTTL", num(d.ttl)),
        ("GridinfoProviderRuns", num(r.runs)),
        ("GridinfoProviderFailures", num(r.failures)),
        ("GridinfoProviderEntries", num(r.last_entries)),
    ]
    if r.last_run is not None:
        attrs += [
            ("GridinfoProviderLastRun", [format_generalized_time(r.last_run).encode()]),
            ("GridinfoProviderDuration", num(round(r.last_duration * 1000))),
            ("GridinfoProviderBytes", num(r.last_bytes)),
        ]
        if r.last_exit_status is not None:
            attrs.append(("GridinfoProviderExitStatus", num(r.last_exit_status)))
    if r.last_error:
        attrs.append(("GridinfoProviderLastError", [r.last_error[:1000].encode("utf-8")]))
    if r.last_stderr:
        attrs.append(("GridinfoProviderStderr", [r.last_stderr.encode("utf-8")]))
    return attrs


class StatusPublisher:
    """Keeps the ``o=infosys`` status entries of one GRIS in its tree."""

    def __init__(
        self,
        tree: DirectoryTree,
        table: SoftStateTable,
        *,
        start_time: float,
        server_name: str = "gris",
        searches: Callable[[], int] = lambda: 0,
    ):
        self.tree = tree
        self.table = table
        self.start_time = start_time
        self.server_name = server_name
        self.searches = searches
        self.server_dn = f"cn={escape_value(server_name)},{INFOSYS_DN}"
        self.infosys = InfosysPublisher(tree)
        self.server_stats: ServerStats = list
        self.infosys_key = self.infosys.infosys_key

    def is_status_key(self, key: str) -> bool:
        return self.infosys.is_status_key(key)

    def publish(self, now: float) -> None:
        """(Re)build every status entry; entries of providers that are gone are removed."""
        tree = self.tree
        self.infosys.ensure_base()
        total = len(tree) - tree.subtree_sizes.get(self.infosys_key, 0)
        entries = [(provider_status_dn(r.name), provider_status_attributes(r)) for r in self.table.records.values()]
        entries.append(
            (
                self.server_dn,
                [
                    ("objectClass", [b"top", b"GridinfoServerStatus"]),
                    ("cn", [self.server_name.encode("utf-8")]),
                    ("GridinfoTotalEntries", [str(max(0, total)).encode()]),
                    ("GridinfoProviderCount", [str(len(self.table.records)).encode()]),
                    ("GridinfoStartTime", [format_generalized_time(self.start_time).encode()]),
                    ("GridinfoUptime", [str(int(max(0.0, now - self.start_time))).encode()]),
                    ("GridinfoSearches", [str(self.searches()).encode()]),
                    *self.server_stats(),
                ],
            )
        )
        self.infosys.replace(entries)
