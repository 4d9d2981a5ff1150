"""Merged answers remembered: a search every child answers from its cache is merged once.

Theory of operation
-------------------
Within cachettl a warm search is the same merge each time: the GIIS's own entries, then every
relevant child's cached answer (:mod:`gridinfo.giis.answers`, row 1: HIT), de-duplicated
(:mod:`gridinfo.giis.duplicates`).  With 1,000 children that is 1,000 table look-ups and 5,000
entries through the duplicate filter per search.  So when every part of a merge was a fresh
answer (none failed, stale or cut short by the client's time limit), the result is kept with
what it was made of, and the next search with the same request reuses it while all of these
still hold::

    the children searched are the same objects, in the same order (no lease added, dropped,
      or re-ranked; ChildRegistry.current gives a new order when one is)
    every child's lease carries the same registration (a renewal replaces it: cachettl, rank)
    every child's cache still holds the very answer merged (a late or newer answer replaces it)
    now is before the earliest fetched_at + cachettl of those answers (all are still HITs)
    the GIIS's own part is the same entries
    the duplicate filter gave no DN to another child since (DuplicateFilter.version)

Reusing counts a cache hit for each child and refreshes its place in the child's LRU cache, as
asking it would.  Pure bookkeeping: ``now`` is passed in; at most :data:`MAX_MERGED` requests
are remembered (the oldest go first).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gridinfo.directory.query import SearchResult
from gridinfo.errors import ResultCode
from gridinfo.giis.answers import CachedAnswer
from gridinfo.giis.children import Child
from gridinfo.giis.forwarder import Part

MAX_MERGED = 64

#: one asked child: (the child, its request key, the answer merged, its lease's registration)
Asked = tuple[Child, tuple[Any, ...], CachedAnswer, object]


@dataclass
class Merged:
    children: list[Child]
    asked: list[Asked]
    own: list[bytes] | None
    own_code: int
    valid_until: float
    version: int
    code: ResultCode
    message: str
    entries: list[bytes]


class MergedAnswers:
    """Merged search results by request, reused while what they were merged from is unchanged."""

    def __init__(self) -> None:
        self.table: OrderedDict[tuple[Any, ...], Merged] = OrderedDict()
        self.reused = 0

    def get(
        self, key: tuple[Any, ...], children: list[Child], own: SearchResult | None, version: int, now: float
    ) -> SearchResult | None:
        """The remembered result for ``key`` if it still holds (see the table above), else None."""
        m = self.table.get(key)
        if m is None or (own is not None and own.cursor is not None):
            return None
        if (
            now >= m.valid_until
            or m.version != version
            or m.children != children  # identity first: a list of the same objects compares fast
            or (None if own is None else own.entries) != m.own
            or (0 if own is None else int(own.code)) != m.own_code
        ):
            del self.table[key]
            return None
        for child, ckey, answer, registration in m.asked:
            lease = child.lease
            if child.cache.get(ckey) is not answer or (lease is not None and lease.registration is not registration):
                del self.table[key]
                return None
        for child, ckey, _, _ in m.asked:
            child.stats.cache_hits += 1
            child.cache.move_to_end(ckey)
        self.reused += 1
        self.table.move_to_end(key)
        return SearchResult(entries=list(m.entries), code=m.code, message=m.message)

    def put(
        self,
        key: tuple[Any, ...],
        children: list[Child],
        own: SearchResult | None,
        asked: Sequence[tuple[Child, tuple[Any, ...]]],
        parts: Sequence[Part],
        result: SearchResult,
        version: int,
        now: float,
    ) -> None:
        """Remember ``result`` if every part of it was a child's fresh answer."""
        if len(asked) != len(parts) or (own is not None and (own.cursor is not None or own.references)):
            return
        rows: list[Asked] = []
        valid_until = float("inf")
        for (child, ckey), part in zip(asked, parts):
            answer = part.answer
            if answer is None or part.failed or part.stale or child.cache.get(ckey) is not answer:
                return
            valid_until = min(valid_until, answer.fetched_at + child.cachettl)
            rows.append((child, ckey, answer, child.lease.registration if child.lease is not None else None))
        if valid_until <= now:
            return
        self.table[key] = Merged(
            children=list(children), asked=rows, own=None if own is None else list(own.entries),
            own_code=0 if own is None else int(own.code), valid_until=valid_until, version=version,
            code=result.code, message=result.message, entries=list(result.entries),
        )
        self.table.move_to_end(key)
        while len(self.table) > MAX_MERGED:
            self.table.popitem(last=False)

    def clear(self) -> None:
        self.table.clear()
