"""Status entries under ``o=infosys``: what each provider did and what the GRIS holds.

In the spirit of BDII's ``UpdateStats`` entries: ``ldapsearch -b o=infosys`` shows, per
provider (``GridinfoProviderName=<name>,o=infosys``, class GridinfoProviderStatus) its last
run, duration, exit status, entries, bytes, last error and whether its data is fresh, stale,
gone or never produced; and per GRIS (``cn=<server>,o=infosys``, class GridinfoServerStatus)
the totals.  Pure: the caller passes ``now``; entries are rebuilt whenever the caller asks.

And BDII's ``Hostname=<host>,o=infosys`` (class UpdateStats, :class:`gridinfo.infosys.UpdateStats`).
A GRIS's *update cycle* ends at the first publication after provider runs ended or the served
entries changed (an install, an expiry); publications with nothing new (a search of
``o=infosys``) leave that entry and its modifyTimestamp alone.  Its figures: ``TotalEntries``
the entries served (``o=infosys`` aside); ``ProvidersTime``/``PluginsTime`` the durations of
the last run of each provider/plugin that ran in the cycle, summed, in whole seconds;
``UpdateTime`` their sum; ``New``/``Modified``/``DeletedEntries`` the entries soft state
added, changed in content and removed; ``FailedAdds`` the entries runs printed that could not
be placed (another provider's, no parent...), ``FailedModifies`` plugin modifications of
entries nobody publishes.  ``ReadTime``, ``QueryTime``, ``DBUpdateTime`` and ``FailedDeletes``
are 0: a GRIS has no database to read back, query or write (runs install into the tree as
they end) and a removal cannot fail.
"""

from __future__ import annotations

from collections.abc import Callable

from gridinfo.directory.dn import escape_value
from gridinfo.directory.tree import DirectoryTree
from gridinfo.directory.gtime import format_generalized_time
from gridinfo.gris.softstate import ProviderRecord, SoftStateTable
from gridinfo.infosys import INFOSYS_DN, InfosysPublisher, ServerStats, UpdateStats


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
        hostname: str | None = None,
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
        self.update_stats = UpdateStats(self.infosys, hostname)
        self._runs: dict[str, int] | None = None  # runs of each provider at the last cycle
        self._failed = (0, 0)

    def is_status_key(self, key: str) -> bool:
        return self.infosys.is_status_key(key)

    def publish(self, now: float) -> None:
        """(Re)build every status entry; entries of providers that are gone are removed."""
        tree = self.tree
        self.infosys.ensure_base()
        total = len(tree) - tree.subtree_sizes.get(self.infosys_key, 0)
        entries = [(provider_status_dn(r.name), provider_status_attributes(r)) for r in self.table.records.values()]
        self._cycle()
        entries.append(self.update_stats.entry())
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
        self.infosys.replace(entries, touch=self.update_stats.pending_touch())

    def _cycle(self) -> None:
        """End an update cycle if provider runs ended or served entries changed since the last."""
        records = self.table.records
        last = self._runs
        ran = [r for name, r in records.items() if last is None or r.runs > last.get(name, 0)]
        stats = self.update_stats
        if last is not None and not ran and stats.changes() == (0, 0, 0):
            return
        providers = sum(r.last_duration for r in ran if r.runs and r.definition.kind != "plugin")
        plugins = sum(r.last_duration for r in ran if r.runs and r.definition.kind == "plugin")
        failed = (self.table.failed_adds, self.table.failed_modifies)
        tree = self.tree
        stats.cycle(
            {
                "TotalEntries": len(tree) - tree.subtree_sizes.get(self.infosys_key, 0),
                "ProvidersTime": int(providers),
                "PluginsTime": int(plugins),
                "UpdateTime": int(providers + plugins),
                "FailedAdds": failed[0] - self._failed[0],
                "FailedModifies": failed[1] - self._failed[1],
            }
        )
        self._failed = failed
        self._runs = {name: r.runs for name, r in records.items()}
