"""Where a child's entries appear in a GIIS's namespace, and which children a search touches.

Pure: DN arithmetic only.

MDS2's rules, with ``<giis>`` the GIIS's suffix (``mds-vo-name=site,o=grid``):

* a GRIS child publishes under ``mds-vo-name=local,o=grid``; its entries appear *in place of*
  that suffix: ``X,mds-vo-name=local,o=grid`` -> ``X,mds-vo-name=site,o=grid`` (the child's
  suffix entry coincides with the GIIS's own, which wins);
* any other child under ``o=grid`` (a GIIS ``mds-vo-name=child,o=grid``, a BDII's
  ``mds-vo-name=resource,o=grid``) is *appended*: ``X,mds-vo-name=child,o=grid`` ->
  ``X,mds-vo-name=child,<giis>``;
* a child whose suffix is not under ``o=grid`` (``o=glue``, ``dc=example,dc=org``) is appended
  whole: ``X,o=glue`` -> ``X,o=glue,<giis>``; a child serving ``o=grid`` itself mounts at
  ``<giis>``.

The place where the child's suffix appears is its *mount point*.  A search at the GIIS is
rewritten for the child (:meth:`ChildNamespace.route`): a base at or below the mount point
moves into the child's namespace with the same scope; a subtree search from above the mount
point becomes a subtree search of the child's suffix; a one-level search from the mount
point's parent becomes a base search of the child's suffix; anything else does not reach the
child.
"""

from __future__ import annotations

from dataclasses import dataclass

from gridinfo.directory.dn import DN, RDN, DNNormaliser, is_descendant_key, parse_dn
from gridinfo.directory.query import Scope

LOCAL_NAME = "local"


@dataclass(frozen=True)
class Route:
    """A search rewritten for one child: its base and scope in the child's namespace."""

    base: str
    scope: Scope


class ChildNamespace:
    """The mapping between one child's namespace and its GIIS's, both ways."""

    def __init__(self, child_suffix: str, giis_suffix: str, normaliser: DNNormaliser):
        self.normaliser = normaliser
        self.child_suffix = parse_dn(child_suffix)
        self.giis_suffix = parse_dn(giis_suffix)
        self.child_key = normaliser.key(self.child_suffix)
        self.giis_key = normaliser.key(self.giis_suffix)
        self.mount = mount_point(self.child_suffix, self.giis_suffix, normaliser)
        self.mount_key = normaliser.key(self.mount)
        #: True for a GRIS-style child whose suffix entry *is* the GIIS's own entry
        self.collapsed = self.mount_key == self.giis_key
        self._child_len = len(self.child_suffix)
        self._mount_rdns: tuple[RDN, ...] = tuple(self.mount)
        self._mount_text = str(self.mount)
        self._child_text_cache: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"ChildNamespace({str(self.child_suffix)!r} -> {self._mount_text!r})"

    # -- child -> GIIS ------------------------------------------------------------------------

    def to_giis(self, child_dn: str) -> str | None:
        """The DN a child's entry has at the GIIS; None when it lies outside the child's suffix."""
        n = self._child_len
        dn = parse_dn(child_dn)
        if len(dn) < n:
            return None
        tail = dn[len(dn) - n :] if n else ()
        tail_text = ",".join(f"{t}={v}" for rdn in tail for t, v in rdn)
        hit = self._child_text_cache.get(tail_text)
        if hit is None:
            hit = self.normaliser.key(DN(tail))
            if len(self._child_text_cache) < 64:
                self._child_text_cache[tail_text] = hit
        if hit != self.child_key:
            return None
        prefix = dn[: len(dn) - n]
        if not prefix:
            return self._mount_text
        return str(DN(prefix)) + "," + self._mount_text

    # -- GIIS -> child ------------------------------------------------------------------------

    def to_child(self, giis_dn: str) -> str | None:
        """The child's DN for a DN at or below the mount point; None otherwise."""
        dn = parse_dn(giis_dn)
        key = self.normaliser.key(dn)
        if not is_descendant_key(key, self.mount_key):
            return None
        prefix = dn[: len(dn) - len(self.mount)]
        return str(DN(tuple(prefix) + tuple(self.child_suffix)))

    def route(self, base: str, scope: Scope) -> Route | None:
        """The child's part of a search at the GIIS (base and scope there), or None."""
        dn = parse_dn(base)
        key = self.normaliser.key(dn)
        if is_descendant_key(key, self.mount_key):
            if self.collapsed and key == self.mount_key and scope == Scope.BASE:
                return None  # the GIIS's own entry answers that
            prefix = dn[: len(dn) - len(self.mount)]
            return Route(str(DN(tuple(prefix) + tuple(self.child_suffix))), scope)
        if not is_descendant_key(self.mount_key, key):
            return None  # disjoint
        # the base is above the mount point
        if scope in (Scope.SUB, Scope.CHILDREN):
            if self.collapsed and scope == Scope.CHILDREN and key == self.mount_key:
                return Route(str(self.child_suffix), Scope.CHILDREN)
            return Route(str(self.child_suffix), Scope.SUB)
        if scope == Scope.ONE and len(self.mount) == len(dn) + 1 and not self.collapsed:
            return Route(str(self.child_suffix), Scope.BASE)
        return None


def mount_point(child_suffix: DN, giis_suffix: DN, normaliser: DNNormaliser) -> DN:
    """Where a child's suffix appears under a GIIS (see the module docstring)."""
    grid = normaliser.key("o=grid")
    if child_suffix and normaliser.key(DN(child_suffix[-1:])) == grid:
        inner = tuple(child_suffix[:-1])
        if len(inner) == 1 and normaliser.key(DN(inner)) == normaliser.key(f"mds-vo-name={LOCAL_NAME}"):
            return DN(tuple(giis_suffix))
        return DN(inner + tuple(giis_suffix))
    return DN(tuple(child_suffix) + tuple(giis_suffix))
