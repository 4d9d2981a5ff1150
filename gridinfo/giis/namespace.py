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

BDII's layout (``layout: bdii``)
--------------------------------
A BDII is not one suffix but a fixed resource -> site -> top layout in two trees, GLUE 1.3 under
``o=grid`` and GLUE 2 under ``o=glue``.  A GIIS in this layout has, per tree, a *root* where its
children land, and a *guard* RDN: a child's entry with that RDN anywhere above its own name
(any RDN but the last) is this GIIS's own data come back round and is skipped, as BDII's ldap
provider skips "recursive entries"::

    level  tree    root                                guard
    -----  ------  ----------------------------------  ----------------------
    site   o=grid  mds-vo-name=<SITE>,o=grid           mds-vo-name=<SITE>
    site   o=glue  GLUE2DomainID=<SITE>,o=glue         GLUE2DomainID=<SITE>
    top    o=grid  mds-vo-name=local,o=grid            mds-vo-name=local
    top    o=glue  GLUE2GroupID=grid,o=glue            GLUE2DomainID=grid

A child's base under ``o=grid`` or ``o=glue`` has its last RDN (``o=grid``/``o=glue``) replaced by
the tree's root, except that ``mds-vo-name=local`` and ``mds-vo-name=resource`` directly under
``o=grid`` are dropped first (their entries land *on* the root, which is the GIIS's own entry and
wins).  Each row below is a unit test (tests/giis/test_namespace.py)::

    level  child base (what it serves)          a child DN X,<base> appears as
    -----  -----------------------------------  --------------------------------------------------
    site   mds-vo-name=local,o=grid (GRIS)      X,mds-vo-name=<SITE>,o=grid
    site   mds-vo-name=resource,o=grid (BDII)   X,mds-vo-name=<SITE>,o=grid
    site   GLUE2GroupID=resource,o=glue         X,GLUE2GroupID=resource,GLUE2DomainID=<SITE>,o=glue
    site   mds-vo-name=<S2>,o=grid (a site)     X,mds-vo-name=<S2>,mds-vo-name=<SITE>,o=grid
    site   GLUE2DomainID=<S2>,o=glue (a site)   X,GLUE2DomainID=<S2>,GLUE2DomainID=<SITE>,o=glue
    top    mds-vo-name=<SITE>,o=grid (a site)   X,mds-vo-name=<SITE>,mds-vo-name=local,o=grid
    top    GLUE2DomainID=<SITE>,o=glue (site)   X,GLUE2DomainID=<SITE>,GLUE2GroupID=grid,o=glue
    top    mds-vo-name=resource,o=grid          X,mds-vo-name=local,o=grid
    top    GLUE2GroupID=resource,o=glue         X,GLUE2GroupID=resource,GLUE2GroupID=grid,o=glue
    any    a base under neither tree            refused (BDII has no database for it)

A top level's guard ``mds-vo-name=local`` means a GRIS child (``mds-vo-name=local,o=grid``)
contributes nothing there, as with BDII: a top level's children are sites.

A child contributes up to two subtrees, its ``o=grid`` base and its ``o=glue`` base (one
:class:`ChildNamespace` each).  Registration and a static child's URL name one base; the other
is found by :func:`glue_base_for` (BDII's rule, with one addition for gridinfo's GRIS)::

    base named                        o=glue base asked for
    --------------------------------  ---------------------------------------------
    mds-vo-name=resource,o=grid       GLUE2GroupID=resource,o=glue   (BDII's rule)
    mds-vo-name=local,o=grid          GLUE2GroupID=resource,o=glue   (a gridinfo GRIS)
    mds-vo-name=<S>,...,o=grid        GLUE2DomainID=<S>,o=glue       (BDII's rule)
    anything under o=glue             none: the base is the o=glue subtree itself
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gridinfo.directory.dn import DN, RDN, DNNormaliser, is_descendant_key, parse_dn
from gridinfo.directory.query import Scope

LOCAL_NAME = "local"

#: One RDN whose text is its own serialisation: a type, "=", and a value with no character a
#: DN escapes or quotes (RFC 4514) and no space, "#" or "=" where they would matter.
_PLAIN_RDN = re.compile(r'[A-Za-z][A-Za-z0-9-]*=[^,+"\\<>;=#\s\x00-\x1f](?:[^,+"\\<>;=\x00-\x1f]*[^,+"\\<>;=\s\x00-\x1f])?\Z')


@dataclass(frozen=True)
class Route:
    """A search rewritten for one child: its base and scope in the child's namespace."""

    base: str
    scope: Scope


class ChildNamespace:
    """The mapping between one child's namespace and its GIIS's, both ways."""

    def __init__(
        self, child_suffix: str, giis_suffix: str, normaliser: DNNormaliser, *,
        mount: DN | None = None, guard: str | None = None,
    ):
        """``giis_suffix`` is the GIIS entry a collapsed child lands on; ``mount`` (default: MDS2's
        :func:`mount_point`) where the child's suffix appears; ``guard`` a normalised RDN whose
        presence above an entry's own name skips the entry (BDII's recursion guard)."""
        self.normaliser = normaliser
        self.child_suffix = parse_dn(child_suffix)
        self.giis_suffix = parse_dn(giis_suffix)
        self.child_key = normaliser.key(self.child_suffix)
        self.giis_key = normaliser.key(self.giis_suffix)
        self.mount = mount if mount is not None else mount_point(self.child_suffix, self.giis_suffix, normaliser)
        self.guard = guard
        self._guard_type = guard.split("=", 1)[0] if guard else ""  # only RDNs of this type can match
        #: MDS2's guard: the GIIS's own RDN above the child's suffix is our data come back round
        #: through a registration cycle (pushed and mirrored children never forward our marker)
        self._own_rdn = normaliser.rdn_key(self.giis_suffix[0]) if guard is None and self.giis_suffix else ""
        self._own_type = self._own_rdn.split("=", 1)[0]
        self.mount_key = normaliser.key(self.mount)
        #: True for a GRIS-style child whose suffix entry *is* the GIIS's own entry
        self.collapsed = self.mount_key == self.giis_key
        #: children of this mount share it (GRIS children on the GIIS entry; in BDII's layout, every
        #: resource-level child): no child owns it, so none collides there
        self.shared = self.collapsed
        self._child_len = len(self.child_suffix)
        self._mount_rdns: tuple[RDN, ...] = tuple(self.mount)
        self._mount_text = str(self.mount)
        self._child_text_cache: dict[str, str] = {}
        #: ",<child suffix>" as the child writes it: at first as it was registered (how a GRIS
        #: writes its entries), then as the last DN of one plain RDN placed the full way wrote it.
        #: Not where the guard is in the suffix itself: the full way refuses all of those DNs.
        self._seen_tail: str | None = None
        if self._child_len and not (guard is not None and any(
            rdn[0][0].lower() == self._guard_type and normaliser.rdn_key(rdn) == guard for rdn in self.child_suffix
        )):
            self._seen_tail = "," + child_suffix

    def __repr__(self) -> str:
        return f"ChildNamespace({str(self.child_suffix)!r} -> {self._mount_text!r})"

    # -- child -> GIIS ------------------------------------------------------------------------

    def to_giis(self, child_dn: str) -> str | None:
        """The DN a child's entry has at the GIIS; None when it lies outside the child's suffix."""
        named = self.to_giis_keyed(child_dn)
        return None if named is None else named[0]

    def to_giis_keyed(self, child_dn: str) -> tuple[str, str] | None:
        """:meth:`to_giis`, with the normalised key of the GIIS DN (made from the RDNs parsed
        already, so a merge need not parse the DN again).

        Nearly every entry of a child is one plain RDN (``GlueCEUniqueID=...``) on the child's
        suffix spelled as its other entries spell it: once the full path has placed one such DN,
        the next are placed from their text (:meth:`_placed_plainly`), which was a third of a
        GIIS's CPU in a first search of 1,000 children."""
        seen = self._seen_tail
        if seen is not None and child_dn.endswith(seen):
            placed = self._placed_plainly(child_dn[: len(child_dn) - len(seen)])
            if placed is not None:
                return placed
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
        if self.guard is not None and any(
            rdn[0][0].lower() == self._guard_type and self.normaliser.rdn_key(rdn) == self.guard for rdn in dn[:-1]
        ):
            return None  # our own data come back round (BDII: "skipping recursive entry")
        prefix = dn[: len(dn) - n]
        if self._own_rdn and any(
            rdn[0][0].lower() == self._own_type and self.normaliser.rdn_key(rdn) == self._own_rdn for rdn in prefix
        ):
            return None
        if not prefix:
            return self._mount_text, self.mount_key
        rdn_key = self.normaliser.rdn_key
        key = ",".join([rdn_key(rdn) for rdn in prefix])
        prefix_text = str(DN(prefix))
        if n and len(prefix) == 1 and self._seen_tail != "," + tail_text and child_dn.endswith("," + tail_text):
            if child_dn == prefix_text + "," + tail_text and _PLAIN_RDN.match(prefix_text):
                self._seen_tail = "," + tail_text  # how this child spells its suffix
        return prefix_text + "," + self._mount_text, (key + "," + self.mount_key if self.mount_key else key)

    def _placed_plainly(self, prefix_text: str) -> tuple[str, str] | None:
        """:meth:`to_giis_keyed` of a DN that is ``prefix_text`` on the child's suffix as learnt
        (``_seen_tail``), when ``prefix_text`` is one plain RDN (no escapes, quotes, ``+``,
        leading or trailing spaces: its text is its serialisation); None sends it the full way."""
        if _PLAIN_RDN.match(prefix_text) is None:
            return None
        attr, _, value = prefix_text.partition("=")
        rdn: RDN = ((attr, value),)
        lowered = attr.lower()
        if self.guard is not None and lowered == self._guard_type and self.normaliser.rdn_key(rdn) == self.guard:
            return None  # the full way says why (the recursion guard)
        if self._own_rdn and lowered == self._own_type and self.normaliser.rdn_key(rdn) == self._own_rdn:
            return None
        key = self.normaliser.rdn_key(rdn)
        return prefix_text + "," + self._mount_text, (key + "," + self.mount_key if self.mount_key else key)

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


GRID = "o=grid"
GLUE = "o=glue"
BDII_LEVELS = ("site", "top")
RESOURCE_GROUP = "GLUE2GroupID=resource,o=glue"  # every resource-level child's o=glue base


@dataclass(frozen=True)
class BDIILayout:
    """A GIIS in BDII's layout: its level and (at a site) the site's name; see the module docstring."""

    level: str  # "site" or "top"
    site: str = ""  # the site's name (BDII's SITE_NAME); unused at the top level

    @property
    def grid_root(self) -> str:
        return f"mds-vo-name={self.site},o=grid" if self.level == "site" else f"mds-vo-name={LOCAL_NAME},o=grid"

    @property
    def glue_root(self) -> str:
        return f"GLUE2DomainID={self.site},o=glue" if self.level == "site" else "GLUE2GroupID=grid,o=glue"

    def guard(self, tree: str) -> str:
        """The guard RDN of a tree (``o=grid`` or ``o=glue``), as written."""
        name = self.site if self.level == "site" else ("local" if tree == GRID else "grid")
        return f"mds-vo-name={name}" if tree == GRID else f"GLUE2DomainID={name}"

    def suffixes(self) -> list[str]:
        """The naming contexts a GIIS in this layout serves."""
        return [GRID, GLUE, "o=infosys"]

    def default_entries(self) -> list[str]:
        """The entries the GIIS holds itself: BDII's default LDIF (the same at every level), plus
        at a site the two roots its children land on."""
        dns = [GRID, f"mds-vo-name={LOCAL_NAME},o=grid", "mds-vo-name=resource,o=grid",
               GLUE, "GLUE2GroupID=resource,o=glue", "GLUE2GroupID=grid,o=glue"]
        if self.level == "site":
            dns += [self.grid_root, self.glue_root]
        return dns

    def namespace(self, child_suffix: str, normaliser: DNNormaliser) -> ChildNamespace:
        """The mapping for a child base; ValueError when the base is under neither tree."""
        suffix = parse_dn(child_suffix)
        top = normaliser.key(DN(suffix[-1:])) if suffix else ""
        if top == normaliser.key(GRID):
            tree, root = GRID, self.grid_root
            inner = tuple(suffix[:-1])
            if len(inner) == 1 and normaliser.key(DN(inner)) in (
                normaliser.key(f"mds-vo-name={LOCAL_NAME}"), normaliser.key("mds-vo-name=resource")
            ):
                inner = ()
        elif top == normaliser.key(GLUE):
            tree, root = GLUE, self.glue_root
            inner = tuple(suffix[:-1])
        else:
            raise ValueError(f"{child_suffix!r} is under neither o=grid nor o=glue, the trees of BDII's layout")
        mount = DN(inner + tuple(parse_dn(root)))
        ns = ChildNamespace(child_suffix, root, normaliser, mount=mount, guard=normaliser.key(self.guard(tree)))
        ns.shared = ns.collapsed or normaliser.key(DN(suffix)) == normaliser.key(RESOURCE_GROUP)
        return ns


def glue_base_for(base: str, normaliser: DNNormaliser) -> str | None:
    """The o=glue base to ask of a child named by ``base`` (see the module docstring); None when
    ``base`` is itself under o=glue (or under neither tree)."""
    dn = parse_dn(base)
    if len(dn) < 2 or normaliser.key(DN(dn[-1:])) != normaliser.key(GRID):
        return None
    (attr, value), *_ = dn[-2]
    if attr.lower() != "mds-vo-name":
        return None
    if value.lower() in ("resource", LOCAL_NAME):
        return "GLUE2GroupID=resource,o=glue"
    return f"GLUE2DomainID={value},o=glue"


def bdii_entry_attributes(dn: str) -> list[tuple[str, list[bytes]]]:
    """The attributes of one of :meth:`BDIILayout.default_entries` (BDII's default LDIF; at a site,
    a GLUE2AdminDomain named after the site)."""
    attr, value = parse_dn(dn)[0][0]
    v = [value.encode("utf-8")]
    kind = attr.lower()
    if kind == "o":
        return [("objectClass", [b"top", b"organization"]), ("o", v)]
    if kind == "mds-vo-name":
        return [("objectClass", [b"top", b"MdsVo"]), ("Mds-Vo-name", v)]
    if kind == "glue2groupid":
        return [("objectClass", [b"GLUE2Group"]), ("GLUE2GroupID", v)]
    if kind == "glue2domainid":
        return [("objectClass", [b"GLUE2Domain", b"GLUE2AdminDomain"]), ("GLUE2DomainID", v),
                ("GLUE2EntityName", v)]
    raise ValueError(f"no default attributes for {dn!r}")
