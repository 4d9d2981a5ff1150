"""Trigger evaluation: which rule fires, for which entry, when.  Pure: ``now`` is passed in.

A rule watches the entries in its base and scope that match its filter: the condition *holds*
for an entry while the entry is there and matches.  The engine hears every change of the tree
(:meth:`TriggerEngine.on_change`, from the change log) and the passing of time
(:meth:`TriggerEngine.due`, called when :meth:`TriggerEngine.next_deadline` comes), and answers
with :class:`Firing` records; running their actions is someone else's business
(:mod:`gridinfo.triggers.service`).

Theory of operation
-------------------
Per rule and entry the engine keeps a *track* only while there is something to remember (the
condition holds, or stopped holding less than ``for`` ago).  ``for`` is hysteresis both ways:
the condition must hold that long before ``enter`` fires and stop that long before ``leave``
fires, so a value flapping around a threshold faster than ``for`` fires nothing::

    phase          | what happens                        | next phase     | fires
    ---------------+-------------------------------------+----------------+---------------------
    (no track)     | the entry starts to match           | PENDING_ENTER  | -  (for 0: as below)
    PENDING_ENTER  | it stops matching (or goes)         | (no track)     | -
    PENDING_ENTER  | it held ``for`` seconds             | ACTIVE         | enter
    ACTIVE         | listed attributes change, matching  | ACTIVE         | change
    ACTIVE         | ``repeat`` seconds since the last   | ACTIVE         | enter (repeat n)
    ACTIVE         | it stops matching (or goes)         | PENDING_LEAVE  | -  (for 0: as below)
    PENDING_LEAVE  | it matches again                    | ACTIVE         | -
    PENDING_LEAVE  | it stopped ``for`` seconds ago      | (no track)     | leave

An event the rule's ``on`` does not list moves the phase all the same and fires nothing.  A
firing beyond the rule's ``rate_limit`` (more than ``firings`` in the last ``per`` seconds) is
returned with ``suppressed`` set, for the caller to count and log, and runs no action.

A rule added while entries already match starts them in PENDING_ENTER (they fire ``enter``
after ``for``, as if they had just started to match); a rule removed forgets its tracks
without firing.

Indexing
--------
Evaluating every rule on every change would cost rules x changes.  Each rule is indexed three
ways: by its base (so a change is offered only to the rules based at the entry or one of its
ancestors: a handful of dictionary lookups, however many rules watch other CEs or sites), by
the attributes its filter reads (and, for ``change``, the attributes it lists), and by the
object classes its filter requires (an ``objectClass=X`` at its top level, in a top-level AND,
or in every branch of a top-level OR).  A modification is offered to the rules based above the
entry that read an attribute whose values changed; an added entry to the rules based above it
whose required class it has (or that require none); a removed entry to the rules tracking it.  A filter reading an operational attribute
(``modifyTimestamp``...) or matching on DN components is offered every modification.  Only the
rules offered a change evaluate their filter, once, on the new entry; whether the entry matched
before is the track's phase.
"""

from __future__ import annotations

import enum
import heapq
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gridinfo.directory import filters as F
from gridinfo.directory.changes import Change, ChangeKind, Notice, Subscription
from gridinfo.directory.dn import parent_key

if TYPE_CHECKING:
    from gridinfo.directory.entry import Entry

ENTER = "enter"
LEAVE = "leave"
CHANGE = "change"


class Phase(enum.Enum):
    PENDING_ENTER = "pending-enter"
    ACTIVE = "active"
    PENDING_LEAVE = "pending-leave"


@dataclass(frozen=True)
class Rule:
    """A rule as the engine evaluates it (built from a ``TriggerConfig`` by the caller)."""

    name: str
    visible: Callable[[Entry], bool]  # in the rule's base and scope, and matching its filter
    in_scope: Callable[[str], bool]  # the DN key lies in the rule's base and scope
    base_key: str = ""  # the canonical key of the rule's base ("": the root, every entry)
    events: frozenset[str] = frozenset({ENTER})
    hold: float = 0.0  # ``for``
    repeat: float = 0.0
    rate_limit: tuple[int, float] | None = None  # (firings, per seconds)
    reads: frozenset[str] | None = frozenset()  # attribute keys the filter reads (None: any change)
    requires: frozenset[str] | None = None  # object class keys, one of which an entry must have (None: any)
    watched: frozenset[str] = frozenset()  # on change: attribute keys whose change fires (empty: any)


@dataclass(frozen=True)
class Firing:
    """One firing of one rule for one entry."""

    rule: str
    event: str  # enter | leave | change
    key: str
    dn: str
    entry: Entry  # the entry as it is (leave: as it last matched)
    at: float
    changed: tuple[str, ...] = ()  # change: the attribute keys whose values changed
    repeat: int = 0  # enter: 0 for the first firing, n for the n-th re-firing
    suppressed: bool = False  # over the rule's rate_limit: no action runs


@dataclass
class _Track:
    phase: Phase
    entry: Entry
    deadline: float | None = None
    repeats: int = 0
    generation: int = 0


@dataclass
class _RuleState:
    rule: Rule
    tracks: dict[str, _Track] = field(default_factory=dict)
    recent: deque[float] = field(default_factory=deque)  # times of recent firings (rate_limit)


def filter_reads(f: F.Filter, canonical: Callable[[str], str]) -> frozenset[str] | None:
    """The attribute keys a filter reads; None when it may depend on anything (DN matching)."""
    out: set[str] = set()
    stack = [f]
    while stack:
        node = stack.pop()
        if isinstance(node, (F.And, F.Or)):
            stack.extend(node.filters)
        elif isinstance(node, F.Not):
            stack.append(node.filter)
        elif isinstance(node, F.Extensible):
            if node.attribute is None or node.dn_attributes:
                return None
            out.add(canonical(node.attribute))
        else:
            out.add(canonical(node.attribute))
    return frozenset(out)


def filter_requires(f: F.Filter, classes: Callable[[bytes], frozenset[str]]) -> frozenset[str] | None:
    """Object class keys one of which every matching entry has; None when the filter does not say.

    ``classes(value)`` gives the class keys an ``objectClass=value`` assertion is satisfied by
    (the class itself; an entry's class set includes superclasses, so that is enough).
    """
    if isinstance(f, F.Equality) and f.attribute.lower() in ("objectclass", "2.5.4.0"):
        return classes(f.value)
    if isinstance(f, F.And):
        for sub in f.filters:
            found = filter_requires(sub, classes)
            if found is not None:
                return found
        return None
    if isinstance(f, F.Or) and f.filters:
        parts = [filter_requires(sub, classes) for sub in f.filters]
        if any(p is None for p in parts):
            return None
        return frozenset().union(*(p for p in parts if p is not None))
    return None


def changed_attributes(old: Entry, new: Entry) -> frozenset[str]:
    """The attribute keys whose values differ between two versions of an entry."""
    if old.shape is new.shape or list(old.shape.names) == list(new.shape.names):
        # the same attributes in the same order (a provider's next run): compare value by value
        return frozenset(k for k, a, b in zip(old.shape.names, old.values, new.values) if a != b)
    a = dict(zip(old.shape.names, old.values))
    b = dict(zip(new.shape.names, new.values))
    return frozenset(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


class TriggerEngine:
    """The rules over one change stream, their tracks, and the deadlines they wait for."""

    def __init__(self, *, ignore: frozenset[str] = frozenset()) -> None:
        """``ignore``: attribute keys whose changes alone are not changes (freshness stamps)."""
        self.ignore = ignore
        self.rules: dict[str, _RuleState] = {}
        self._by_attribute: dict[str, set[str]] = {}
        self._any_change: set[str] = set()
        self._by_class: dict[str, set[str]] = {}
        self._any_class: set[str] = set()
        self._by_base: dict[str, set[str]] = {}
        self._tracking: dict[str, set[str]] = {}  # entry key -> rules with a track for it
        self._deadlines: list[tuple[float, int, str, str, int]] = []  # (when, seq, rule, key, generation)
        self._seq = 0
        #: rule evaluations done (a filter tested on an entry): what the index saves
        self.evaluations = 0

    # -- rules ------------------------------------------------------------------------------

    def add_rule(self, rule: Rule, matching: Iterable[Entry], now: float) -> list[Firing]:
        """Start evaluating ``rule``; ``matching``: the entries it matches now."""
        if rule.name in self.rules:
            self.remove_rule(rule.name)
        state = _RuleState(rule)
        self.rules[rule.name] = state
        if rule.reads is None or (CHANGE in rule.events and not rule.watched):  # any change may matter
            self._any_change.add(rule.name)
        else:
            for attribute in rule.reads | rule.watched:
                self._by_attribute.setdefault(attribute, set()).add(rule.name)
        self._by_base.setdefault(rule.base_key, set()).add(rule.name)
        if rule.requires is None:
            self._any_class.add(rule.name)
        else:
            for oc in rule.requires:
                self._by_class.setdefault(oc, set()).add(rule.name)
        out: list[Firing] = []
        for entry in matching:
            self._start(state, entry, now, out)
        return out

    def remove_rule(self, name: str) -> None:
        """Stop evaluating a rule; its tracks are forgotten (nothing fires)."""
        state = self.rules.pop(name, None)
        if state is None:
            return
        for index in (self._by_attribute, self._by_class, self._by_base):
            for names in index.values():
                names.discard(name)
        self._any_change.discard(name)
        self._any_class.discard(name)
        for key in state.tracks:
            self._untrack(key, name)

    def tracks(self, name: str) -> dict[str, Phase]:
        """Entry key -> phase, for one rule (status pages, tests)."""
        return {k: t.phase for k, t in self.rules[name].tracks.items()}

    # -- changes ----------------------------------------------------------------------------

    def on_change(self, change: Change, now: float) -> list[Firing]:
        """What one change of the tree fires (and starts waiting for)."""
        key, old, new = change.key, change.old, change.new
        changed: frozenset[str] = frozenset()
        if new is None:
            candidates: set[str] = set(self._tracking.get(key, ()))
        elif old is None:
            candidates = set(self._any_class)
            for oc in new.object_classes:
                names = self._by_class.get(oc)
                if names:
                    candidates |= names
        else:
            changed = changed_attributes(old, new) - self.ignore
            if not changed and old.dn == new.dn:
                return []
            candidates = set(self._any_change)
            for attribute in changed:
                names = self._by_attribute.get(attribute)
                if names:
                    candidates |= names
        if new is not None:
            candidates &= self._based_above(key)
        out: list[Firing] = []
        for name in candidates:
            state = self.rules[name]
            rule = state.rule
            if not rule.in_scope(key):
                continue
            track = state.tracks.get(key)
            if new is not None:
                self.evaluations += 1
                matches = rule.visible(new)
            else:
                matches = False
            if matches:
                assert new is not None
                if track is None:
                    self._start(state, new, now, out)
                elif track.phase is Phase.PENDING_LEAVE:
                    track.entry = new
                    track.phase = Phase.ACTIVE
                    self._schedule(state, key, track, now + rule.repeat if rule.repeat else None)
                else:
                    track.entry = new
                    if track.phase is Phase.ACTIVE and old is not None and CHANGE in rule.events:
                        fired = changed if not rule.watched else changed & rule.watched
                        if fired or (not rule.watched and old.dn != new.dn):
                            self._fire(state, CHANGE, new, now, out, changed=tuple(sorted(fired)))
            elif track is not None:
                if track.phase is Phase.PENDING_ENTER:
                    self._drop(state, key)
                elif track.phase is Phase.ACTIVE:
                    if rule.hold > 0:
                        track.phase = Phase.PENDING_LEAVE
                        self._schedule(state, key, track, now + rule.hold)
                    else:
                        self._drop(state, key)
                        self._fire(state, LEAVE, track.entry, now, out)
        return out

    def _based_above(self, key: str) -> set[str]:
        """The rules whose base is ``key`` or one of its ancestors (the root included)."""
        out: set[str] = set()
        by_base = self._by_base
        k: str | None = key
        while k is not None:
            names = by_base.get(k)
            if names:
                out |= names
            k = parent_key(k)
        return out

    # -- time -------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`due` next has something to do (None: nothing is waiting)."""
        heap = self._deadlines
        while heap:
            when, _, name, key, generation = heap[0]
            state = self.rules.get(name)
            track = state.tracks.get(key) if state is not None else None
            if track is not None and track.generation == generation:
                return when
            heapq.heappop(heap)
        return None

    def due(self, now: float) -> list[Firing]:
        """What fires because time passed: ``for`` elapsed, ``repeat`` came round."""
        out: list[Firing] = []
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            when, _, name, key, generation = heapq.heappop(heap)
            state = self.rules.get(name)
            track = state.tracks.get(key) if state is not None else None
            if state is None or track is None or track.generation != generation:
                continue
            rule = state.rule
            if track.phase is Phase.PENDING_ENTER:
                track.phase = Phase.ACTIVE
                self._schedule(state, key, track, when + rule.repeat if rule.repeat else None)
                self._fire(state, ENTER, track.entry, when, out)
            elif track.phase is Phase.ACTIVE:  # repeat
                track.repeats += 1
                self._schedule(state, key, track, when + rule.repeat)
                self._fire(state, ENTER, track.entry, when, out, repeat=track.repeats)
            else:  # PENDING_LEAVE
                self._drop(state, key)
                self._fire(state, LEAVE, track.entry, when, out)
        return out

    # -- helpers ----------------------------------------------------------------------------

    def _start(self, state: _RuleState, entry: Entry, now: float, out: list[Firing]) -> None:
        rule = state.rule
        track = _Track(Phase.PENDING_ENTER, entry)
        state.tracks[entry.key] = track
        self._tracking.setdefault(entry.key, set()).add(rule.name)
        if rule.hold > 0:
            self._schedule(state, entry.key, track, now + rule.hold)
        else:
            track.phase = Phase.ACTIVE
            self._schedule(state, entry.key, track, now + rule.repeat if rule.repeat else None)
            self._fire(state, ENTER, entry, now, out)

    def _schedule(self, state: _RuleState, key: str, track: _Track, when: float | None) -> None:
        track.generation += 1  # any deadline pushed before is stale now
        track.deadline = when
        if when is not None:
            self._seq += 1
            heapq.heappush(self._deadlines, (when, self._seq, state.rule.name, key, track.generation))

    def _drop(self, state: _RuleState, key: str) -> None:
        state.tracks.pop(key, None)
        self._untrack(key, state.rule.name)

    def _untrack(self, key: str, name: str) -> None:
        names = self._tracking.get(key)
        if names is not None:
            names.discard(name)
            if not names:
                del self._tracking[key]

    def _fire(
        self,
        state: _RuleState,
        event: str,
        entry: Entry,
        now: float,
        out: list[Firing],
        *,
        changed: tuple[str, ...] = (),
        repeat: int = 0,
    ) -> None:
        rule = state.rule
        if event not in rule.events:
            return
        suppressed = False
        if rule.rate_limit is not None:
            limit, per = rule.rate_limit
            recent = state.recent
            while recent and recent[0] <= now - per:
                recent.popleft()
            if len(recent) >= limit:
                suppressed = True
            else:
                recent.append(now)
        out.append(Firing(rule.name, event, entry.key, entry.dn, entry, now, changed, repeat, suppressed))


class ChangeListener(Subscription):
    """A change-log subscriber that hands every change to ``hear`` (nothing is kept pending)."""

    def __init__(self, hear: Callable[[Change], None]) -> None:
        super().__init__(lambda e: False, max_pending=0)
        self.hear = hear

    def offer_classified(
        self, change: Change, kind: ChangeKind | None, notices: dict[Any, Notice] | None = None
    ) -> None:
        """The change log offers every change this way (``kind`` is for pending notices; a
        listener keeps none and hears each change whatever its kind)."""
        if change.csn > self.csn:
            self.csn = change.csn
        self.hear(change)
