"""The backend serving one in-memory tree, and the entries every gridinfo server has.

Used by both daemons (a GRIS's data, a GIIS's own entries) and by the GIIS wiring, so it lives
in the LDAP edge rather than in ``gris/`` or ``giis/``: neither daemon's package imports the
other's.
"""

from __future__ import annotations

from collections.abc import Iterable

from gridinfo.directory.query import SearchRequest, SearchResult
from gridinfo.directory.schema import Schema
from gridinfo.directory.tree import DirectoryTree, SyncView
from gridinfo.errors import UnwillingToPerform

ROOT_DN = "o=grid"
ROOT_ATTRIBUTES: list[tuple[str, list[bytes]]] = [
    ("objectClass", [b"top", b"organization"]),
    ("o", [b"grid"]),
]


def suffix_attributes(suffix: str) -> list[tuple[str, list[bytes]]]:
    """The entry that names a GRIS or GIIS: ``mds-vo-name=<name>,o=grid``."""
    rdn = suffix.split(",", 1)[0]
    value = rdn.partition("=")[2].strip()
    return [("objectClass", [b"top", b"MdsVo"]), ("Mds-Vo-name", [value.encode("utf-8")])]


class TreeBackend:
    """A backend serving one in-memory tree (GRIS data, or a GIIS's own entries)."""

    write_refusal_message = "gridinfo is read-only: its data comes from information providers"

    def __init__(self, tree: DirectoryTree, *, naming_contexts: Iterable[str] = (ROOT_DN,), size_limit: int = 0):
        self.tree = tree
        self._naming_contexts = list(naming_contexts)
        self.size_limit = size_limit

    @property
    def schema(self) -> Schema:
        return self.tree.schema

    def naming_contexts(self) -> list[str]:
        return list(self._naming_contexts)

    def search(self, request: SearchRequest) -> SearchResult:
        return self.tree.search(request, server_size_limit=self.size_limit, sliced=True)

    def sync_view(self, request: SearchRequest) -> SyncView:
        """A change-stream search over the tree (RFC 4533 sync, persistent search)."""
        return self.tree.sync_view(request)

    def compare(self, dn: str, attribute: str, value: bytes) -> bool:
        return self.tree.compare(dn, attribute, value)

    def add(self, dn: str, attributes: list[tuple[str, list[bytes]]], bind_dn: str, peer: str | None = None) -> None:
        raise UnwillingToPerform(self.write_refusal_message)


def add_base_entries(tree: DirectoryTree, suffix: str) -> None:
    """``o=grid`` and the suffix entry always exist (unless an LDIF gives its own version)."""
    for dn, attrs in ((ROOT_DN, ROOT_ATTRIBUTES), (suffix, suffix_attributes(suffix))):
        if tree.lookup(dn) is None:
            tree.add(tree.build(dn, attrs, source="gridinfo"))
