"""The ``o=infosys`` status subtree, shared by the GRIS and the GIIS (BDII's ``UpdateStats`` place).

Pure: the caller builds the status entries (what they say is each daemon's business:
:mod:`gridinfo.gris.status`, :mod:`gridinfo.giis.status`); :class:`InfosysPublisher` keeps
``o=infosys`` itself in the tree and replaces the published set wholesale, removing entries
that are no longer published (a provider gone, a child dropped).

:class:`UpdateStats` is the entry an EGI BDII publishes there, ``Hostname=<host>,o=infosys``
of class ``UpdateStats`` (``schemas/bdii-stats.schema``), with the figures of the daemon's last
*update cycle*; its ``modifyTimestamp`` moves at every cycle, even when the figures are the
same, which is what freshness probes read.  What a cycle is, and what each figure counts, is
the daemon's business (docs/operational.md); the new/modified/deleted counts come from the
tree's change counters, less the changes the status entries themselves make.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

from gridinfo.directory.dn import escape_value, is_descendant_key
from gridinfo.directory.tree import DirectoryTree

INFOSYS_DN = "o=infosys"
INFOSYS_ATTRIBUTES: list[tuple[str, list[bytes]]] = [
    ("objectClass", [b"top", b"organization"]),
    ("o", [b"infosys"]),
]

Attributes = Sequence[tuple[str, Sequence[bytes]]]

#: Set by the wiring once the LDAP factory exists: the listener's attributes for the server entry.
ServerStats = Callable[[], list[tuple[str, list[bytes]]]]


def connection_attributes(stats: Mapping[str, int], connections: int) -> list[tuple[str, list[bytes]]]:
    """What a server's LDAP listener has seen: open connections, failed binds, refusals, aborts,
    and the change streams open now."""
    return [
        ("GridinfoConnections", [str(connections).encode()]),
        ("GridinfoFailedBinds", [str(stats.get("failed_binds", 0)).encode()]),
        ("GridinfoRefusedConnections", [str(stats.get("refused_connections", 0)).encode()]),
        ("GridinfoAbortedConnections", [str(stats.get("aborted_connections", 0)).encode()]),
        ("GridinfoChangeStreams", [str(stats.get("change_streams", 0)).encode()]),
    ]


class InfosysPublisher:
    """Owns the status entries below ``o=infosys`` in one tree."""

    def __init__(self, tree: DirectoryTree, *, source: str = "gridinfo:status"):
        self.tree = tree
        self.source = source
        self.infosys_key = tree.key(INFOSYS_DN)
        self._published: set[str] = set()
        self.own = [0, 0, 0]  # the tree's new/modified/deleted counts that are this publisher's

    def content_changes(self) -> tuple[int, int, int]:
        """The tree's new, modified and deleted entry counts, less the status entries' own."""
        c, own = self.tree.changes, self.own
        return c[0] - own[0], c[1] - own[1], c[2] - own[2]

    def is_status_key(self, key: str) -> bool:
        return is_descendant_key(key, self.infosys_key)

    def ensure_base(self) -> None:
        """``o=infosys`` exists (it is listed in namingContexts)."""
        tree = self.tree
        if tree.get(self.infosys_key) is None:
            tree.add(tree.build(INFOSYS_DN, INFOSYS_ATTRIBUTES, source=self.source))

    def replace(self, entries: Iterable[tuple[str, Attributes]], *, touch: Collection[str] = ()) -> None:
        """Publish exactly ``entries`` (dn, attributes); earlier ones not among them are removed.

        The entries whose keys are in ``touch`` get a new modifyTimestamp even if unchanged.
        """
        tree = self.tree
        before = list(tree.changes)
        self.ensure_base()
        keys: set[str] = set()
        for dn, attrs in entries:
            entry = tree.build(dn, attrs, source=self.source)
            tree.add(entry)
            keys.add(entry.key)
        for key in touch:
            tree.touch(key)
        for key in self._published - keys:
            tree.remove(key)
        self._published = keys
        for i in range(3):
            self.own[i] += tree.changes[i] - before[i]


#: UpdateStats' figures, in the order a BDII writes them
UPDATE_STATS_FIGURES = (
    "TotalEntries",
    "UpdateTime",
    "ReadTime",
    "ProvidersTime",
    "PluginsTime",
    "QueryTime",
    "DBUpdateTime",
    "NewEntries",
    "ModifiedEntries",
    "DeletedEntries",
    "FailedAdds",
    "FailedModifies",
    "FailedDeletes",
)


class UpdateStats:
    """BDII's ``UpdateStats`` entry of one daemon: the figures of its last update cycle.

    The daemon calls :meth:`changes` to learn what its tree gained, changed and lost since
    the previous cycle, :meth:`cycle` with the figures when a cycle ended, and publishes
    :meth:`entry` with ``touch=self.pending_touch()`` so that the entry's modifyTimestamp is
    the time of the last cycle.  Figures not given are 0.
    """

    def __init__(self, publisher: InfosysPublisher, hostname: str | None = None):
        self.publisher = publisher
        self.hostname = hostname if hostname is not None else (socket.getfqdn() or "localhost")
        self.dn = f"Hostname={escape_value(self.hostname)},{INFOSYS_DN}"
        self.key = publisher.tree.key(self.dn)
        self.figures: dict[str, int] = dict.fromkeys(UPDATE_STATS_FIGURES, 0)
        self.cycles = 0
        self._seen = publisher.content_changes()
        self._touch = False

    def changes(self) -> tuple[int, int, int]:
        """Entries new, modified (content) and deleted since the previous cycle."""
        now = self.publisher.content_changes()
        seen = self._seen
        return now[0] - seen[0], now[1] - seen[1], now[2] - seen[2]

    def cycle(self, figures: Mapping[str, int]) -> None:
        """A cycle ended: these are its figures (new/modified/deleted are filled in if absent)."""
        new, modified, deleted = self.changes()
        self._seen = self.publisher.content_changes()
        merged = dict.fromkeys(UPDATE_STATS_FIGURES, 0)
        merged.update(NewEntries=new, ModifiedEntries=modified, DeletedEntries=deleted)
        merged.update({k: max(0, int(v)) for k, v in figures.items() if k in merged})
        self.figures = merged
        self.cycles += 1
        self._touch = True

    def pending_touch(self) -> tuple[str, ...]:
        """The key to touch in this publication: this entry's, once after each cycle."""
        if not self._touch:
            return ()
        self._touch = False
        return (self.key,)

    def entry(self) -> tuple[str, list[tuple[str, list[bytes]]]]:
        attrs: list[tuple[str, list[bytes]]] = [
            ("objectClass", [b"UpdateStats"]),
            ("Hostname", [self.hostname.encode("utf-8")]),
        ]
        attrs += [(k, [str(self.figures[k]).encode()]) for k in UPDATE_STATS_FIGURES]
        return self.dn, attrs
