"""The ``o=infosys`` status subtree, shared by the GRIS and the GIIS (BDII's ``UpdateStats`` place).

Pure: the caller builds the status entries (what they say is each daemon's business:
:mod:`gridinfo.gris.status`, :mod:`gridinfo.giis.status`); :class:`InfosysPublisher` keeps
``o=infosys`` itself in the tree and replaces the published set wholesale, removing entries
that are no longer published (a provider gone, a child dropped).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from gridinfo.directory.dn import is_descendant_key
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
    """What a server's LDAP listener has seen: open connections, failed binds, refusals, aborts."""
    return [
        ("GridinfoConnections", [str(connections).encode()]),
        ("GridinfoFailedBinds", [str(stats.get("failed_binds", 0)).encode()]),
        ("GridinfoRefusedConnections", [str(stats.get("refused_connections", 0)).encode()]),
        ("GridinfoAbortedConnections", [str(stats.get("aborted_connections", 0)).encode()]),
    ]


class InfosysPublisher:
    """Owns the status entries below ``o=infosys`` in one tree."""

    def __init__(self, tree: DirectoryTree, *, source: str = "gridinfo:status"):
        self.tree = tree
        self.source = source
        self.infosys_key = tree.key(INFOSYS_DN)
        self._published: set[str] = set()

    def is_status_key(self, key: str) -> bool:
        return is_descendant_key(key, self.infosys_key)

    def ensure_base(self) -> None:
        """``o=infosys`` exists (it is listed in namingContexts)."""
        tree = self.tree
        if tree.get(self.infosys_key) is None:
            tree.add(tree.build(INFOSYS_DN, INFOSYS_ATTRIBUTES, source=self.source))

    def replace(self, entries: Iterable[tuple[str, Attributes]]) -> None:
        """Publish exactly ``entries`` (dn, attributes); earlier ones not among them are removed."""
        self.ensure_base()
        tree = self.tree
        keys: set[str] = set()
        for dn, attrs in entries:
            entry = tree.build(dn, attrs, source=self.source)
            tree.add(entry)
            keys.add(entry.key)
        for key in self._published - keys:
            tree.remove(key)
        self._published = keys
