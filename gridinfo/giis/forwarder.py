"""Forwarding a search to one child: the Deferreds, the timeouts, the late answers.

The decision what to do is :func:`gridinfo.giis.answers.decide`; this module carries it out.
A FORWARD sends one request (concurrent searches needing the same answer share it) and waits
up to the child's timeout on the injected clock.  Whenever the child answers, even after the
wait is over, the answer is renamed into the GIIS namespace and cached, so a late answer serves
the next search.  A failed or timed-out request falls back to the table with forwarding off:
the last answer marked stale, or nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from gridinfo import ber
from gridinfo.ber import read_header as _read
from gridinfo.directory import filters as F
from gridinfo.directory.query import SearchRequest
from gridinfo.directory.schema import Schema
from gridinfo.giis.answers import CachedAnswer, Decision, decide
from gridinfo.giis.children import Child
from gridinfo.giis.leases import LeaseState, format_generalized_time
from gridinfo.giis.namespace import Route
from gridinfo.ldap.client import ClientResult, decode_entry, entry_dn, rename_entry

#: result codes of a child's answer that still carry usable entries
USABLE_CODES = (0, 3, 4, 32)


@dataclass
class Part:
    """One child's contribution to a search."""

    entries: list[bytes]
    no_such_object: bool
    stale: bool = False
    failed: bool = False  # the child did not answer in time (or at all): this is a stand-in
    truncated: bool = False  # the child (or mirror) stopped at the request's size limit
    child: str = ""  # the child's URL, to name it when it failed
    answer: CachedAnswer | None = None  # the cached answer the entries come from (keeps their DN keys)
    rank: tuple[int, float] | None = None  # a shared child's (policy rule, first registered); None otherwise
    mount_key: str = ""  # where the child is mounted in the GIIS namespace (normalised)


#: The state attributes a stale entry says ``Unknown`` in (as BDII's site level does with the
#: cached data of a source that failed): what was true when the child last answered may no
#: longer be.  Creation times and every other attribute are kept.
UNKNOWN_WHEN_STALE = frozenset(a.lower() for a in (
    "GLUE2EndpointHealthState", "GLUE2EndpointHealthStateInfo", "GLUE2EndpointServingState",
    "GLUE2ComputingShareServingState", "GLUE2StorageShareServingState", "GLUE2ComputingActivityState",
    "GLUE2ComputingActivityRestartState", "GLUE2ApplicationEnvironmentState",
    "GlueCEStateStatus", "GlueServiceStatus", "GlueServiceStatusInfo", "GlueSEStatus",
))
UNKNOWN = b"Unknown"


def mark_stale(op: bytes, expired_at: float) -> bytes:
    """The entry with ``Mds-validto`` set to ``expired_at`` (in the past) and its state attributes
    (:data:`UNKNOWN_WHEN_STALE`) ``Unknown``: stale data, marked."""
    dn, attrs = decode_entry(op)
    value = format_generalized_time(expired_at).encode()
    out = [
        (name, [value] if (low := name.lower()) == "mds-validto" else [UNKNOWN] if low in UNKNOWN_WHEN_STALE else vals)
        for name, vals in attrs
    ]
    if not any(name.lower() == "mds-validto" for name, _ in attrs):
        out.append(("Mds-validto", [value]))
    return ber.search_result_entry(dn.encode(), [ber.partial_attribute(n.encode(), v) for n, v in out])


def fallback(child: Child, cached: CachedAnswer | None, now: float) -> Part:
    """Rows 3 and 4 of the answer table: the last answer marked stale, or nothing."""
    if decide(child, cached, now, may_forward=False) is Decision.GONE or cached is None:
        return Part([], True, failed=True, child=child.url)
    if cached.stale_entries is None:
        expired_at = min(cached.fetched_at + child.cachettl, now - 1)
        cached.stale_entries = [mark_stale(e, expired_at) for e in cached.entries]
    return Part(cached.stale_entries, cached.no_such_object, True, failed=True, truncated=cached.truncated,
                child=child.url, answer=cached)


class Forwarder:
    """Asks children on behalf of searches; every wait is bounded on ``reactor``."""

    def __init__(
        self,
        reactor: IReactorTime,
        *,
        marker: str,
        late_answer_limit: float,
        max_entries_per_child: int,
        schema: Schema | None = None,
    ):
        self.speller = ClassSpeller(schema) if schema is not None else None
        self.reactor = reactor
        self.marker = marker
        self.late_answer_limit = late_answer_limit
        self.max_entries_per_child = max_entries_per_child

    def ask(
        self,
        child: Child,
        route: Route,
        request: SearchRequest,
        chain: tuple[str, ...],
        key: tuple[Any, ...],
        now: float,
        *,
        may_forward: bool,
    ) -> Part | defer.Deferred[Part]:
        """One child's part of a search: an immediate answer, or one to wait for."""
        cached = child.cache.get(key)
        decision = decide(child, cached, now, may_forward=may_forward)
        if decision is Decision.HIT:
            assert cached is not None
            child.stats.cache_hits += 1
            child.cache.move_to_end(key)
            return Part(cached.entries, cached.no_such_object, truncated=cached.truncated, child=child.url,
                        answer=cached)
        if decision is not Decision.FORWARD:
            if child.lease_state(now) is LeaseState.INVALID:
                child.set_state("invalid", "lease passed Mds-validto; not renewed")
            return fallback(child, cached, now)
        child.stats.cache_misses += 1
        fetch = child.inflight.get(key)
        if fetch is None:
            fetch = self.fetch(child, route, request, chain, key)
        waiter: defer.Deferred[Part] = defer.Deferred()

        def answered(answer: Any) -> Any:
            if not waiter.called:
                if isinstance(answer, CachedAnswer):
                    waiter.callback(
                        Part(answer.entries, answer.no_such_object, truncated=answer.truncated, child=child.url,
                             answer=answer)
                    )
                else:
                    waiter.callback(fallback(child, child.cache.get(key), self.reactor.seconds()))
            return None if isinstance(answer, Failure) else answer

        def too_late() -> None:
            if not waiter.called:
                child.set_state("slow", f"no answer within {child.timeout:g} s")
                waiter.callback(fallback(child, child.cache.get(key), self.reactor.seconds()))

        timer = self.reactor.callLater(child.timeout, too_late)
        waiter.addBoth(_cancel_timer(timer))
        fetch.addBoth(answered)
        return waiter

    def fetch(
        self, child: Child, route: Route, request: SearchRequest, chain: tuple[str, ...], key: tuple[Any, ...]
    ) -> defer.Deferred[CachedAnswer | None]:
        """Ask the child; whenever the answer comes (even late) it goes into the cache."""
        attrs = (tuple(request.attributes) or ("*",)) + chain + (self.marker,)
        started = self.reactor.seconds()
        d: defer.Deferred[Any] = child.client.search(
            route.base,
            int(route.scope),
            without_classes(request.filter, child.drop_classes),
            attrs,
            size_limit=request.size_limit,
            time_limit=int(math.ceil(child.timeout)),
            types_only=request.types_only,
            timeout=max(self.late_answer_limit, child.timeout),
            max_entries=self.max_entries_per_child,
        )
        child.inflight[key] = d

        def ok(result: ClientResult) -> CachedAnswer | None:
            now = self.reactor.seconds()
            child.inflight.pop(key, None)
            if result.code not in USABLE_CODES:
                child.set_state("unreachable", f"answered {result.code}: {result.message}")
                return None
            keys: list[str] = []
            entries = rename_into_giis(child, result.entries, self.speller, keys)
            answer = CachedAnswer(entries, result.code, now, no_such_object=result.code == 32, keys=keys)
            child.remember(key, answer)
            child.stats.latency = now - started
            child.stats.last_contact = now
            child.stats.entries = len(entries)
            if now - started > child.timeout:
                child.stats.late_answers += 1
            child.set_state("ok")
            return answer

        def failed(f: Failure) -> None:
            child.inflight.pop(key, None)
            child.set_state("unreachable", f.getErrorMessage())
            return None

        return d.addCallback(ok).addErrback(failed)


class ClassSpeller:
    """Object class names as the schema spells them (``MDS`` -> ``Mds``), as slapd returns them.

    A child may store a class in any case; a parent that compares values (a BDII) would see a
    change on every pull.  Entries whose class names are already spelled right pass as bytes.
    """

    def __init__(self, schema: Schema):
        self.schema = schema
        self._spelled: dict[bytes, bytes] = {}
        self._attributes: dict[bytes, object] = {}  # an objectClass attribute's bytes -> respelled, or None

    def spell(self, value: bytes) -> bytes:
        hit = self._spelled.get(value)
        if hit is None:
            text = value.decode("utf-8", "replace").strip()
            oc = self.schema.object_class(text)
            names = [n for n in oc.names if n.lower() == text.lower()] if oc is not None else []
            hit = names[0].encode("utf-8") if names else value
            if len(self._spelled) < 10_000:
                self._spelled[value] = hit
        return hit

    def attributes(self, attrs: list[tuple[str, list[bytes]]]) -> list[tuple[str, list[bytes]]] | None:
        """The attributes with class names spelled; None when they were spelled right already."""
        changed = False
        out = []
        for name, vals in attrs:
            if name.lower() == "objectclass":
                spelled = [self.spell(v) for v in vals]
                if spelled != vals:
                    vals, changed = spelled, True
            out.append((name, vals))
        return out if changed else None

    def entry(self, op: bytes) -> bytes:
        """The entry with its objectClass values spelled; the same bytes when they already are.

        Only the attribute headers are walked; entries share a handful of objectClass
        attributes, so the spelling of each distinct one (as bytes) is worked out once.
        """
        _, start, end = _read(op, 0, len(op))
        _, _, dn_end = _read(op, start, end)
        _, first, attrs_end = _read(op, dn_end, end)
        pos = first
        while pos < attrs_end:
            _, a_start, a_end = _read(op, pos, attrs_end)
            _, n_start, n_end = _read(op, a_start, a_end)
            if n_end - n_start == 11 and op[n_start:n_end].lower() == b"objectclass":
                raw = op[pos:a_end]
                fixed = self._attributes.get(raw, _UNSEEN)
                if fixed is _UNSEEN:
                    fixed = self._respell(op, n_start, n_end, a_end)
                    if len(self._attributes) < 10_000:
                        self._attributes[raw] = fixed
                if fixed is None:
                    return op
                assert isinstance(fixed, bytes)
                content = op[first:pos] + fixed + op[a_end:attrs_end]
                return ber.tlv(ber.APP_SEARCH_RESULT_ENTRY, op[start:dn_end] + ber.tlv(ber.SEQUENCE, content))
            pos = a_end
        return op

    def _respell(self, op: bytes, n_start: int, n_end: int, a_end: int) -> bytes | None:
        _, v_pos, v_end = _read(op, n_end, a_end)
        values = []
        while v_pos < v_end:
            _, s, e = _read(op, v_pos, v_end)
            values.append(op[s:e])
            v_pos = e
        spelled = [self.spell(v) for v in values]
        if spelled == values:
            return None
        return ber.partial_attribute(op[n_start:n_end], spelled)


_UNSEEN = object()


def without_classes(f: Any, classes: frozenset[str]) -> Any:
    """``f`` narrowed so the child leaves out entries of ``classes`` (BDII layout's
    drop_objectclasses); the answer is filtered again on arrival (:func:`has_class`)."""
    if not classes:
        return f
    return F.And((f, F.Not(F.Or(tuple(F.Equality("objectClass", c.encode()) for c in sorted(classes))))))


def has_class(op: bytes, classes: frozenset[str]) -> bool:
    """The entry has one of ``classes`` (lowercased) among its objectClass values."""
    _, attrs = decode_entry(op)
    return any(
        name.lower() == "objectclass" and any(v.decode("utf-8", "replace").lower() in classes for v in vals)
        for name, vals in attrs
    )


def rename_into_giis(
    child: Child, ops: list[bytes], speller: ClassSpeller | None = None, keys: list[str] | None = None
) -> list[bytes]:
    """The child's entries under their GIIS names; those outside its suffix, and its suffix
    entry when mounted on the GIIS's own (ours wins), are left out.  ``keys`` gets the
    normalised GIIS DN of each entry kept."""
    ns = child.namespace
    out = []
    drop = child.drop_classes
    for op in ops:
        named = ns.to_giis_keyed(entry_dn(op))
        if named is None or (ns.collapsed and named[0] is ns._mount_text):
            continue
        if drop and has_class(op, drop):
            continue
        renamed = rename_entry(op, named[0])
        out.append(speller.entry(renamed) if speller is not None else renamed)
        if keys is not None:
            keys.append(named[1])
    return out


def _cancel_timer(timer: Any) -> Callable[[Any], Any]:
    def cancel(result: Any) -> Any:
        if timer.active():
            timer.cancel()
        return result

    return cancel
