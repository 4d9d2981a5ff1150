"""A tree search in progress: candidates filtered and encoded in slices of bounded CPU time.

Theory of operation
-------------------
The tree works out what depends on the request alone (base, scope, the compiled filter, the
candidate entries from its indexes, the attribute encoder) and hands it to a
:class:`SearchCursor`.  ``run()`` filters and encodes candidates until its slice of time is
spent, then returns ``False``; whoever drives the search (the LDAP server, one slice per
reactor turn) calls ``run()`` again later, so one long search never holds the reactor for more
than a slice and other clients' searches are answered in between.  The clock is injected;
it is read every ``_CHECK_EVERY`` candidates, so a cheap filter costs no clock reads worth
counting and an expensive one overruns its slice by at most that many evaluations.

==========================  ===============================================  ==============
state at a check            run() does                                       returns
==========================  ===============================================  ==============
candidates left, slice on   filter and encode the next candidates            (continues)
slice spent                 stop here, keep the position                     False
size limit reached          sizeLimitExceeded (4), the entries so far        True
time limit passed           timeLimitExceeded (3), the entries so far        True
no candidates left          success (the code already set stays)             True
cancelled                   nothing (the result is left as it is)            True
==========================  ===============================================  ==============

A driver that streams (the LDAP server, for a search that is not paged) calls :meth:`take`
after each unfinished slice: it hands over the entries found so far and ``result.entries``
starts again empty, so a 100,000-entry answer is written as it is found and never held whole.
The size limit counts every entry found, taken or not.

The time limit is the request's, counted from the start of the search as slapd counts it,
and it is checked at the start of every slice too: a search resumed after its deadline ends
at once.  A slice length of 0 means "no slicing": ``run()`` finishes the search in one call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from gridinfo.directory.query import SearchResult
from gridinfo.errors import ResultCode

if TYPE_CHECKING:
    from gridinfo.directory.entry import Entry

#: Candidates between two clock reads (time limit and slice end).
_CHECK_EVERY = 32

#: Default CPU budget of one slice, seconds: long enough that a typical search is one slice,
#: short enough that a client waiting behind a long search does not notice it.
SLICE_SECONDS = 0.02


class SearchCursor:
    """Filters ``candidates`` with ``predicate`` into ``result``, a slice per :meth:`run`."""

    __slots__ = (
        "result",
        "_candidates",
        "_predicate",
        "_encode",
        "_limit",
        "_deadline",
        "_time_limit",
        "_clock",
        "_slice_seconds",
        "finished",
        "slices",
        "_taken",
    )

    def __init__(
        self,
        candidates: Iterable[Entry],
        predicate: Callable[[Entry], bool | None],
        encode: Callable[[Entry], bytes],
        result: SearchResult,
        *,
        size_limit: int,
        time_limit: float,
        clock: Callable[[], float],
        slice_seconds: float,
    ):
        self.result = result
        self._candidates = iter(candidates)
        self._predicate = predicate
        self._encode = encode
        self._limit = size_limit
        self._time_limit = time_limit
        self._clock = clock
        self._deadline = clock() + time_limit if time_limit else None
        self._slice_seconds = slice_seconds
        self.finished = False
        self.slices = 0
        self._taken = 0  # entries handed over by take(), which the size limit still counts

    def cancel(self) -> None:
        """Stop for good (the client abandoned the search or went away)."""
        self.finished = True
        self._candidates = iter(())

    def take(self) -> list[bytes]:
        """The entries found so far, handed over for writing; the result keeps none of them."""
        out = self.result.entries
        self.result.entries = []
        self._taken += len(out)
        return out

    def run(self) -> bool:
        """Work for one slice; True when the search is over and ``result`` is complete."""
        if self.finished:
            return True
        self.slices += 1
        clock = self._clock
        deadline = self._deadline
        if deadline is not None and self.slices > 1 and clock() > deadline:
            return self._time_up()
        slice_end = clock() + self._slice_seconds if self._slice_seconds > 0 else None
        predicate = self._predicate
        encode = self._encode
        limited = self._limit > 0
        room = self._limit - self._taken  # what this slice may still add
        out = self.result.entries
        append = out.append
        n = 0
        for entry in self._candidates:
            if predicate(entry) is True:
                if limited and len(out) >= room:
                    self.result.code = ResultCode.SIZE_LIMIT_EXCEEDED
                    self.result.message = f"size limit of {self._limit} entries exceeded"
                    return self._finish()
                append(encode(entry))
            n += 1
            if n % _CHECK_EVERY == 0 and (deadline is not None or slice_end is not None):
                now = clock()
                if deadline is not None and now > deadline:
                    return self._time_up()
                if slice_end is not None and now >= slice_end:
                    return False
        return self._finish()

    def _time_up(self) -> bool:
        self.result.code = ResultCode.TIME_LIMIT_EXCEEDED
        self.result.message = f"time limit of {self._time_limit:g} s exceeded"
        return self._finish()

    def _finish(self) -> bool:
        self.finished = True
        self._candidates = iter(())
        return True
