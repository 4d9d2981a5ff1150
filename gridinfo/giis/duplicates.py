"""One DN, one source: how a GIIS serves a DN that two children (or a child and itself) publish.

Pure bookkeeping over normalised DN keys; time and the set of live children are passed in.

Theory of operation
-------------------
Within one merged result the first source in rank order keeps a DN and later copies are left
out: the GIIS's own entries, then the children as :meth:`ChildRegistry.current` orders them
(static, then by the accepting policy rule, then by age).  Children accepted by a ``shared``
rule (GRIS children of ``mds-vo-name=local,o=grid``) publish into one namespace, so a forger
could also add its copy to a search the owner's copy does not match
(``(GlueCEStateFreeCPUs>=1000)``); for them a DN, once seen from a child, stays that child's
while it lives and a lower-ranked child's copy is never served::

    DN seen before from    this part's child is          the DN is served from
    ---------------------  ----------------------------  ---------------------------
    nobody (or a gone      any                           this child (it now holds it)
      child)
    a live child ranked    ranked after it               the holder; this copy is dropped
      at least as well
    a child ranked after   ranked before it              this child (it takes the DN over)

A child's subtree is its own: an entry a child serves below another child's mount point
(a GRIS of ``mds-vo-name=local,o=grid``, mounted on the GIIS suffix, publishing
``X,mds-vo-name=child,mds-vo-name=local,o=grid``, which would appear inside the child GIIS
``mds-vo-name=child``) is left out.  Each pair (winner, loser) is logged once (bounded).
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet import defer
from twisted.logger import Logger

from gridinfo.directory.dn import DNNormaliser, parent_key
from gridinfo.errors import InvalidDNSyntax
from gridinfo.giis.answers import CachedAnswer
from gridinfo.giis.children import Child
from gridinfo.giis.forwarder import Part
from gridinfo.ldap.client import entry_dn

log = Logger(namespace=__name__)  # named here: a compiled module has no frame to name it from

MAX_DN_OWNERS = 1_000_000  # DNs remembered for children sharing a suffix
MAX_LOGGED_PAIRS = 10_000
OWN = "this GIIS"


def ranked(part: Part | defer.Deferred[Part], child: Child) -> Part | defer.Deferred[Part]:
    """Mark a part with its child's mount point and, for a shared child, its rank (rule, then age)."""
    rank = (child.lease.rank, child.lease.first_registered) if child.lease is not None and child.lease.shared else None
    mount = child.namespace.mount_key

    def mark(p: Part) -> Part:
        p.rank = rank
        p.mount_key = mount
        return p

    if isinstance(part, defer.Deferred):
        return part.addCallback(mark)
    return mark(part)


class DuplicateFilter:
    """Decides, entry by entry, whether a merged result takes a copy of a DN."""

    def __init__(self, normaliser: DNNormaliser, live_urls: Callable[[], set[str]]):
        self.normaliser = normaliser
        self.live_urls = live_urls
        self.holders: dict[str, tuple[tuple[int, float], str]] = {}  # shared: DN key -> (rank, child URL)
        self.logged: set[tuple[str, str]] = set()
        self.mounts: dict[str, str] = {}  # mount point key -> child URL, of the current merge
        self.covering: set[str] = set()
        #: bumped whenever a DN changes hands (or the holders are forgotten): a merged answer
        #: remembered before (gridinfo.giis.merged) may then no longer be what a merge gives
        self.version = 0

    def keys(self, entries: list[bytes], answer: CachedAnswer | None) -> list[str]:
        """The normalised DNs of entries (worked out once per cached answer)."""
        if answer is not None and answer.keys is not None and len(answer.keys) == len(entries):
            return answer.keys
        keys = []
        for op in entries:
            dn = entry_dn(op)
            try:
                keys.append(self.normaliser.key(dn))
            except InvalidDNSyntax:
                keys.append(dn)
        if answer is not None:
            answer.keys = keys
        return keys

    def start(self, own: list[bytes], parts: list[Part]) -> dict[str, str] | None:
        """The DNs taken so far in one merge (None when only one source contributes)."""
        self.mounts = {p.mount_key: p.child for p in parts if p.mount_key}
        self.covering = set()  # mount points with another child's mount below them
        for key in self.mounts:
            up = parent_key(key)
            while up:
                self.covering.add(up)
                up = parent_key(up)
        if (1 if own else 0) + sum(1 for p in parts if p.entries) > 1:
            return {key: OWN for key in self.keys(own, None)}
        return None

    def part_keys(self, taken: dict[str, str] | None, part: Part) -> list[str] | None:
        if taken is None and part.rank is None and not self._others_below(part):
            return None
        return self.keys(part.entries, part.answer)

    def _others_below(self, part: Part) -> bool:
        """Another child in this merge is mounted below this part's mount point."""
        return part.mount_key in self.covering

    def _inside_another(self, key: str, part: Part) -> str | None:
        """The child mounted at or above ``key`` but below this part's mount point, if any."""
        k: str | None = key
        while k and k != part.mount_key:
            holder = self.mounts.get(k)
            if holder is not None and holder != part.child:
                return holder
            k = parent_key(k)
        return None

    def admit(self, taken: dict[str, str] | None, key: str, part: Part) -> bool:
        """True when this part's copy of ``key`` is the one served."""
        if part.mount_key in self.covering:
            inside = self._inside_another(key, part)
            if inside is not None:  # a GRIS writing into a child GIIS's subtree: the subtree is the child's
                self._log(key, inside, part.child)
                return False
        if taken is not None:
            winner = taken.setdefault(key, part.child)
            if winner != part.child:
                self._log(key, winner, part.child)
                return False
        if part.rank is not None:
            held = self.holders.get(key)
            if held is not None and held[1] != part.child and held[0] <= part.rank:
                if held[1] in self.live_urls():
                    self._log(key, held[1], part.child)
                    return False
            if len(self.holders) >= MAX_DN_OWNERS:
                self.holders.clear()
                self.version += 1
            if held is None or held[1] != part.child or held[0] != part.rank:
                self.version += 1
            self.holders[key] = (part.rank, part.child)
        return True

    def _log(self, key: str, winner: str, loser: str) -> None:
        pair = (winner, loser)
        if pair in self.logged or len(self.logged) >= MAX_LOGGED_PAIRS:
            return
        self.logged.add(pair)
        log.warn("duplicate DN {dn}: served from {winner} (ranked first), not from {loser}",
                 dn=key, winner=winner, loser=loser)
