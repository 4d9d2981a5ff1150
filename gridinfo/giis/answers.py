"""The GIIS answer table: how one child contributes to one search, decided without I/O.

Pure: no reactor, no Deferreds; ``now`` is passed in.  The forwarder (:mod:`gridinfo.giis.forwarder`)
acts on the decision; this module only decides.

Theory of operation
-------------------
Per child and per normalised request (base and scope in the child's namespace, filter,
attributes, typesOnly, sizeLimit) the child's last answer is cached with the time it arrived.
A child in ``mirror`` mode is answered from its mirror tree (:mod:`gridinfo.giis.mirror`) and
never reaches this table.  For every other relevant child a search takes the first row that
holds::

    row  cached answer                 lease                 decision  the search gets
    ---  ----------------------------  --------------------  --------  ----------------------------
    1    younger than cachettl         any (not purged)      HIT       the cached answer
    2    none, or older than cachettl  VALID (or static),    FORWARD   a request to the child,
                                       forwarding allowed              waited for up to its timeout
    3    kept (now < keepto)           INVALID, or no                  the cached answer, marked
                                       forwarding            STALE     stale (Mds-validto in the past)
    4    none, or past keepto          INVALID, or no        GONE      nothing from this child
                                       forwarding

"Forwarding allowed" is false when the request has passed ``max_depth`` GIISes already, and
after a FORWARD that failed or timed out: the forwarder then asks the table again with
``may_forward=False`` and gets row 3 or 4 (the last answer, stale, or nothing).  A PURGED lease
never gets here: the child registry (:mod:`gridinfo.giis.children`) drops it first.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from gridinfo.giis.leases import LeaseState


class Decision(enum.Enum):
    HIT = "hit"
    FORWARD = "forward"
    STALE = "stale"
    GONE = "gone"


@dataclass
class CachedAnswer:
    """A child's answer to one request, renamed into the GIIS namespace."""

    entries: list[bytes]
    code: int
    fetched_at: float
    no_such_object: bool = False
    stale_entries: list[bytes] | None = None  # the entries marked stale, made once when first needed
    keys: list[str] | None = None  # the entries' normalised DNs, made once when a merge needs them

    @property
    def truncated(self) -> bool:
        """The child stopped at a size limit (sizeLimitExceeded)."""
        return self.code == 4


class ChildTerms(Protocol):
    """What the table reads of a child: its lease state and how long its answers live."""

    cachettl: float

    def lease_state(self, now: float) -> LeaseState: ...

    def keeps_until(self, answer_time: float) -> float: ...


def decide(child: ChildTerms, cached: CachedAnswer | None, now: float, *, may_forward: bool = True) -> Decision:
    """The row of the table above that holds for ``child`` with ``cached`` at ``now``."""
    if cached is not None and now - cached.fetched_at < child.cachettl:
        return Decision.HIT
    if may_forward and child.lease_state(now) is LeaseState.VALID:
        return Decision.FORWARD
    if cached is not None and now < child.keeps_until(cached.fetched_at):
        return Decision.STALE
    return Decision.GONE


def expired(child: ChildTerms, cached: CachedAnswer, now: float) -> bool:
    """The cached answer may go: past its keepto and past its cachettl (what a sweep removes)."""
    return now >= child.keeps_until(cached.fetched_at) and now - cached.fetched_at >= child.cachettl
