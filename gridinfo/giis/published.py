"""What a GIIS holds, in one tree: its own entries and those of every child whose data it keeps.

Theory of operation
-------------------
A child the GIIS *holds* (a pushed child, whose changes arrive over an RFC 4533 stream, or a
mirrored one, pulled every period) keeps what it sent in a :class:`ChildStore`: its entries in
the GIIS namespace, exactly as renamed and filtered, stale-marked when the child is lost.  Every
store publishes into the GIIS's own :class:`~gridinfo.directory.tree.DirectoryTree` through one
:class:`Publisher`, so the GIIS's tree is the whole of what it holds:

* searches read it once (one indexed search, not one per child);
* its change log is the GIIS's change stream: a GIIS is an RFC 4533 provider of everything it
  holds, and a parent GIIS or a stock slapd replica subscribes to it;
* compare, the web view and triggers see held children's entries as the GIIS's own.

Two sources for one DN: the GIIS's own entry wins, then the child first in rank order (static
children in config order, then leases by policy rule and age, as
:mod:`gridinfo.giis.duplicates` ranks forwarded answers).  The losers are remembered per DN
(``shadows``, only for DNs held more than once), so when the winner lets go of the DN the next
one's entry is published in its place::

    event                                  published tree
    -------------------------------------  ------------------------------------------------
    a store puts DN, nobody has it         its entry
    the holder puts DN again               its new entry (no change recorded when equal)
    another store puts DN, ranks lower     unchanged; the store is a shadow of DN
    another store puts DN, ranks higher    its entry; the former holder becomes a shadow
    an own entry (not a child's) has DN    unchanged, always; the store is a shadow
    the holder drops DN                    the best shadow's entry, or DN removed
    a shadow drops DN                      unchanged; it is no longer a shadow

An entry's ``source`` says whose it is (``child:<url>`` for a child's); anything else is the
GIIS's own.
"""

from __future__ import annotations

from gridinfo.directory.entry import Entry, EntryBuilder
from gridinfo.directory.tree import DirectoryTree

CHILD_SOURCE = "child:"

#: How stores are ordered when two hold one DN: smaller first.
Rank = tuple[int, float, int]


class Publisher:
    """Publishes every store's entries into one tree, one holder per DN (see the table above)."""

    def __init__(self, tree: DirectoryTree):
        self.tree = tree
        self.stores: dict[str, ChildStore] = {}  # source -> store
        self.shadows: dict[str, list[ChildStore]] = {}  # DN key -> stores holding it too, unpublished
        self._made = 0

    def store(self, url: str, rank: tuple[int, float]) -> ChildStore:
        """A new store for the child at ``url`` (rank: the child's place in rank order)."""
        self._made += 1
        store = ChildStore(self, CHILD_SOURCE + url, (rank[0], rank[1], self._made))
        self.stores[store.source] = store
        return store

    def _holder(self, entry: Entry) -> ChildStore | None:
        """The store that published ``entry``; None for the GIIS's own."""
        return self.stores.get(entry.source) if entry.source.startswith(CHILD_SOURCE) else None

    def put(self, store: ChildStore, entry: Entry) -> None:
        tree = self.tree
        current = tree.entries.get(entry.key)
        if current is None or current.source == store.source:
            tree.add(entry)
            return
        holder = self._holder(current)
        shadows = self.shadows.setdefault(entry.key, [])
        if holder is not None and store.rank < holder.rank:
            shadows.append(holder)
            if store in shadows:
                shadows.remove(store)
            tree.add(entry)
        elif store not in shadows:
            shadows.append(store)

    def drop(self, store: ChildStore, key: str) -> None:
        shadows = self.shadows.get(key)
        if shadows is not None and store in shadows:
            shadows.remove(store)
            if not shadows:
                del self.shadows[key]
            return
        current = self.tree.entries.get(key)
        if current is None or current.source != store.source:
            return
        if shadows:
            shadows.sort(key=lambda s: s.rank)
            best = shadows.pop(0)
            if not shadows:
                del self.shadows[key]
            self.tree.add(best.entries[key])
        else:
            self.tree.remove(key)

    def forget(self, store: ChildStore) -> None:
        """The store's child is gone: drop all its entries and the store."""
        store.clear()
        self.stores.pop(store.source, None)


class ChildStore:
    """One held child's entries (GIIS namespace), published through the :class:`Publisher`."""

    def __init__(self, publisher: Publisher, source: str, rank: Rank):
        self.publisher = publisher
        self.source = source
        self.rank = rank
        self.entries: dict[str, Entry] = {}
        #: the unmarked version of each entry marked stale (:meth:`mark`), restored by :meth:`unmark`
        self.fresh: dict[str, Entry] = {}
        self.builder: EntryBuilder = publisher.tree.builder
        #: entries are kept but not published yet (a pushed child's first refresh, during which
        #: the child is still asked as its mode says): :meth:`publish` puts them all in the tree
        self.withheld = False

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"<ChildStore {self.source} {len(self.entries)} entries>"

    def get(self, key: str) -> Entry | None:
        return self.entries.get(key)

    def add(self, entry: Entry) -> None:
        """Keep (and publish) ``entry``, replacing this child's entry of the same DN."""
        self.fresh.pop(entry.key, None)
        self.entries[entry.key] = entry
        if not self.withheld:
            self.publisher.put(self, entry)

    def mark(self, stale: Entry) -> None:
        """Replace an entry by its stale-marked version, remembering the unmarked one."""
        old = self.entries.get(stale.key)
        if old is not None:
            self.fresh.setdefault(stale.key, old)
        self.entries[stale.key] = stale
        if not self.withheld:
            self.publisher.put(self, stale)

    def unmark(self) -> int:
        """The child is back and current: entries still marked stale get their fresh version
        (a resumed stream sends only what changed).  Returns how many."""
        fresh, self.fresh = self.fresh, {}
        for entry in fresh.values():
            if entry.key in self.entries:
                self.entries[entry.key] = entry
                if not self.withheld:
                    self.publisher.put(self, entry)
        return len(fresh)

    def publish(self) -> None:
        """Publish every withheld entry (the first refresh is in: the child is held from now)."""
        if self.withheld:
            self.withheld = False
            for entry in self.entries.values():
                self.publisher.put(self, entry)

    def remove(self, key: str) -> None:
        self.fresh.pop(key, None)
        if self.entries.pop(key, None) is not None and not self.withheld:
            self.publisher.drop(self, key)

    def clear(self) -> None:
        for key in list(self.entries):
            self.remove(key)
