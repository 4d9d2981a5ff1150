"""Changes to a tree as a stream: a bounded change log, and subscriptions that coalesce per DN.

Pure: no ``twisted.internet``, no sockets.  The tree reports each change it makes (an entry
added, replaced with different content, or removed) to a :class:`ChangeLog`; the LDAP server
keeps one :class:`Subscription` per persistent search or RFC 4533 ``refreshAndPersist``
search and sends what :meth:`Subscription.drain` hands it whenever the client's connection can
take more.  Everything that depends on the entry's place and content (scope, filter) is decided
here, once per change and subscription.

Theory of operation
-------------------
A change is ``(old, new)``: the entry before and after (``None`` when it did not exist / no
longer exists), with the change's CSN (the entry's UUID follows from its DN key).  What a subscriber must hear
depends on whether it could see the entry before and after, i.e. whether the entry lay in the
subscription's scope and matched its filter::

    seen before | seen after | the subscriber hears
    ------------+------------+---------------------
    no          | no         | nothing
    no          | yes        | ADD     (the new entry)
    yes         | yes        | MODIFY  (the new entry)
    yes         | no         | DELETE  (the old DN and UUID: it left the result set)

Coalescing: a subscriber that has not yet been sent a change for a DN gets only the newest one,
merged with what is pending for that DN (so a value that flaps while the client is slow costs
one entry, not one per flap)::

    pending | new change | pending after
    --------+------------+------------------------------------------------
    -       | X          | X
    ADD     | MODIFY     | ADD (newest entry)      the client never had it
    ADD     | DELETE     | -   (dropped)           ... and never will
    MODIFY  | MODIFY     | MODIFY (newest entry)
    MODIFY  | DELETE     | DELETE
    DELETE  | ADD        | MODIFY (newest entry)   the client still has the old one
    DELETE  | DELETE     | DELETE                  (cannot happen; kept for safety)

A subscription holds at most ``max_pending`` DNs with undelivered changes.  One more and it
*overflows*: its pending changes are dropped and it asks to be ended with
``e-syncRefreshRequired`` (RFC 4533 section 3.4: the client refreshes and resumes), so a slow
or stuck client costs bounded memory, never the server's.

The change log keeps the last ``capacity`` changes in CSN order, so a client that comes back
with a cookie (the newest CSN it has seen) can be sent what changed since, coalesced per DN
(:meth:`ChangeLog.since`).  A cookie older than the oldest change kept, or from another
server, cannot be answered that way: ``since`` returns None and the caller refreshes the
client in full (a present phase) or answers ``e-syncRefreshRequired``.
"""

from __future__ import annotations

import enum
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gridinfo.directory.entry import Entry

#: Default bound of undelivered DNs per subscription, and of changes kept for resuming clients.
MAX_PENDING = 10_000
LOG_CAPACITY = 100_000


class ChangeKind(enum.IntEnum):
    """What a subscriber is told; the values are RFC 4533's syncStateValue states."""

    ADD = 1
    MODIFY = 2
    DELETE = 3


@dataclass(frozen=True, slots=True)
class Change:
    """One change to one entry, as the tree made it."""

    key: str  # canonical DN key
    old: Entry | None
    new: Entry | None
    csn: int  # the tree's CSN of the change (an integer that orders changes; see tree.py)

    @property
    def dn(self) -> str:
        entry = self.new if self.new is not None else self.old
        assert entry is not None
        return entry.dn


@dataclass(frozen=True, slots=True)
class Notice:
    """What one subscriber is sent for one DN: the kind, the entry, and its CSN.

    ``entry`` is the new entry for ADD and MODIFY, and for DELETE the entry as it last was
    (RFC 4533 sends only its DN and UUID; a persistent search sends the entry); ``gone`` is
    True when a DELETE is a removal rather than the entry leaving the subscriber's filter or
    scope (a persistent search reports only removals).
    """

    kind: ChangeKind
    key: str
    dn: str
    entry: Entry
    csn: int
    gone: bool = False
    #: what writers derived from this notice (an encoded entry per attribute selection): one
    #: notice is shared by every subscription of the same search that was sent this change
    cache: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)


_MERGE: dict[tuple[ChangeKind, ChangeKind], ChangeKind | None] = {
    (ChangeKind.ADD, ChangeKind.ADD): ChangeKind.ADD,
    (ChangeKind.ADD, ChangeKind.MODIFY): ChangeKind.ADD,
    (ChangeKind.ADD, ChangeKind.DELETE): None,
    (ChangeKind.MODIFY, ChangeKind.ADD): ChangeKind.MODIFY,
    (ChangeKind.MODIFY, ChangeKind.MODIFY): ChangeKind.MODIFY,
    (ChangeKind.MODIFY, ChangeKind.DELETE): ChangeKind.DELETE,
    (ChangeKind.DELETE, ChangeKind.ADD): ChangeKind.MODIFY,
    (ChangeKind.DELETE, ChangeKind.MODIFY): ChangeKind.MODIFY,
    (ChangeKind.DELETE, ChangeKind.DELETE): ChangeKind.DELETE,
}


def merge(pending: ChangeKind, new: ChangeKind) -> ChangeKind | None:
    """The coalescing table of the module docstring: what stays pending (None: nothing)."""
    return _MERGE[(pending, new)]


#: ``visible(entry) -> bool``: the entry lies in the subscription's scope and matches its filter.
Visible = Callable[["Entry"], bool]


class Subscription:
    """One client's view of the change stream: what it must hear, coalesced, bounded."""

    def __init__(
        self,
        visible: Visible,
        *,
        max_pending: int = MAX_PENDING,
        wanted: frozenset[ChangeKind] | None = None,
        group: Hashable | None = None,
    ):
        self.visible = visible
        #: subscriptions with the same (non-None) group have the same ``visible``: the change log
        #: classifies a change once per group (a thousand subscribers of one search cost one test)
        self.group = group
        self.max_pending = max_pending
        #: the kinds the client asked for (persistent search's changeTypes); None: all
        self.wanted = wanted
        self.pending: OrderedDict[str, Notice] = OrderedDict()
        self.overflowed = False
        #: newest CSN offered to this subscription (what a cookie sent after draining names)
        self.csn = 0
        self.on_ready: Callable[[], None] | None = None  # called when pending becomes non-empty

    def classify(self, change: Change) -> ChangeKind | None:
        """The first table of the module docstring."""
        before = change.old is not None and self.visible(change.old)
        after = change.new is not None and self.visible(change.new)
        if after:
            return ChangeKind.MODIFY if before else ChangeKind.ADD
        return ChangeKind.DELETE if before else None

    def offer(self, change: Change) -> None:
        """Take one change from the log: ignore it, or merge it into what is pending."""
        self.offer_classified(change, self.classify(change))

    def offer_classified(
        self, change: Change, kind: ChangeKind | None, notices: dict[Any, Notice] | None = None
    ) -> None:
        """:meth:`offer` with :meth:`classify`'s answer ``kind`` already known (one test for a
        group); ``notices`` holds the notices already made of this change, shared by kind."""
        if self.overflowed:
            return
        if change.csn > self.csn:
            self.csn = change.csn
        if kind is None:
            return
        was_empty = not self.pending
        prior = self.pending.pop(change.key, None)
        if prior is not None:
            merged = merge(prior.kind, kind)
            if merged is None:
                return
            kind = merged
        if self.wanted is not None and kind not in self.wanted:
            return
        if len(self.pending) >= self.max_pending:
            self.overflowed = True
            self.pending.clear()
            if self.on_ready is not None:
                self.on_ready()
            return
        notice = notices.get(kind) if notices is not None else None
        if notice is None:
            if kind is ChangeKind.DELETE:
                assert change.old is not None
                notice = Notice(kind, change.key, change.dn, change.old, change.csn, change.new is None)
            else:
                assert change.new is not None
                notice = Notice(kind, change.key, change.dn, change.new, change.csn)
            if notices is not None:
                notices[kind] = notice
        self.pending[change.key] = notice
        if was_empty and self.on_ready is not None:
            self.on_ready()

    def drain(self, limit: int) -> list[Notice]:
        """Up to ``limit`` notices, oldest DN first; each DN's is the coalesced newest."""
        out: list[Notice] = []
        while self.pending and len(out) < limit:
            out.append(self.pending.popitem(last=False)[1])
        return out


class ChangeLog:
    """The tree's recent changes in CSN order, and the subscriptions they are offered to."""

    def __init__(self, capacity: int = LOG_CAPACITY):
        self.capacity = capacity
        self._changes: deque[Change] = deque()
        self.subscriptions: set[Subscription] = set()
        #: CSN of the newest change recorded (0 before the first one): the contextCSN
        self.csn = 0
        #: CSN of the newest change that fell out of the log: a cookie before it cannot be
        #: answered from the log
        self.horizon = 0

    def __len__(self) -> int:
        return len(self._changes)

    def forget(self) -> None:
        """Drop every recorded change: a cookie from before now gets a full refresh.

        For the end of a bulk load before anyone is served (static LDIF at start): no client
        can hold a cookie from inside it, and the log would keep one change per loaded entry.
        """
        if self._changes:
            self.horizon = self.csn
            self._changes.clear()

    def record(self, change: Change) -> None:
        """Keep ``change`` (CSNs strictly increase) and offer it to every subscription."""
        if change.csn <= self.csn:
            raise ValueError(f"change CSN {change.csn!r} is not after the newest recorded, {self.csn!r}")
        self.csn = change.csn
        self._changes.append(change)
        while len(self._changes) > self.capacity:
            self.horizon = self._changes.popleft().csn
        kinds: dict[Hashable, ChangeKind | None] = {}
        notices: dict[Any, Notice] = {}
        for subscription in list(self.subscriptions):
            group = subscription.group
            if group is None:
                kind = subscription.classify(change)
            elif group in kinds:
                kind = kinds[group]
            else:
                kind = kinds[group] = subscription.classify(change)
            subscription.offer_classified(change, kind, notices)

    def subscribe(self, subscription: Subscription) -> Subscription:
        subscription.csn = max(subscription.csn, self.csn)
        self.subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self.subscriptions.discard(subscription)

    def since(self, csn: int) -> Iterator[Change] | None:
        """The changes after ``csn``, one per DN, oldest first; None when ``csn`` is too old.

        A DN changed several times gets one change from its state at ``csn`` (the first
        change's ``old``) to its newest (the last change's ``new``, CSN and UUID), so a client
        that could see the entry at ``csn`` is told it left even if it changed again since.
        A ``csn`` newer than the newest change (a cookie from another server, or from before a
        restart that lost the log) cannot be answered either.
        """
        if csn < self.horizon or csn > self.csn:
            return None
        window: list[Change] = []
        for change in reversed(self._changes):
            if change.csn <= csn:
                break
            window.append(change)
        first_old: dict[str, Entry | None] = {}
        newest: dict[str, Change] = {}
        for change in reversed(window):  # oldest first
            first_old.setdefault(change.key, change.old)
            newest.pop(change.key, None)
            newest[change.key] = change
        return (
            Change(c.key, first_old[c.key], c.new, c.csn)
            for c in newest.values()  # insertion order: by each DN's newest change
        )
