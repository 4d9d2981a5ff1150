"""The GIIS answer table, row by row: hit, forward, stale, gone (pure, no clock, no sockets)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from gridinfo.giis.answers import CachedAnswer, Decision, decide, expired
from gridinfo.giis.leases import LeaseState

T0 = 1_000_000.0


@dataclass
class Terms:
    """A child as the table sees it: a lease state, a cachettl, and a keepto."""

    state: LeaseState = LeaseState.VALID
    cachettl: float = 30.0
    keep_to: float = T0 + 3600

    def lease_state(self, now: float) -> LeaseState:
        return self.state

    def keeps_until(self, answer_time: float) -> float:
        return self.keep_to


def answer(at: float) -> CachedAnswer:
    return CachedAnswer([b"entry"], 0, at)


def test_row1_a_fresh_answer_is_a_hit_whatever_the_lease() -> None:
    """An answer younger than the child's cachettl is served without asking the child, even
    after validto (row 1)."""
    for state in (LeaseState.VALID, LeaseState.INVALID):
        assert decide(Terms(state), answer(T0), T0 + 29.9) is Decision.HIT
        assert decide(Terms(state), answer(T0), T0 + 29.9, may_forward=False) is Decision.HIT


def test_row2_a_valid_child_without_a_fresh_answer_is_asked() -> None:
    """No cached answer, or one past cachettl, on a VALID lease: the search goes to the child (row 2)."""
    assert decide(Terms(), None, T0) is Decision.FORWARD
    assert decide(Terms(), answer(T0), T0 + 30) is Decision.FORWARD


def test_row3_an_invalid_lease_serves_its_last_answer_stale_until_keepto() -> None:
    """Past validto the child is not asked; its last answer is served (marked stale) until keepto (row 3)."""
    assert decide(Terms(LeaseState.INVALID), answer(T0), T0 + 31) is Decision.STALE
    assert decide(Terms(LeaseState.INVALID), answer(T0), T0 + 3599) is Decision.STALE


def test_row3_no_forwarding_serves_the_last_answer_stale() -> None:
    """Past max_depth, or after the child failed, a VALID child's old answer is served stale (row 3)."""
    assert decide(Terms(), answer(T0), T0 + 31, may_forward=False) is Decision.STALE


@pytest.mark.parametrize(
    "state, cached, now, may_forward",
    [
        (LeaseState.INVALID, None, T0 + 1, True),  # nothing cached
        (LeaseState.INVALID, answer(T0), T0 + 3600, True),  # past keepto
        (LeaseState.VALID, None, T0, False),  # failed, nothing cached
        (LeaseState.VALID, answer(T0), T0 + 3600, False),  # failed, past keepto
    ],
)
def test_row4_nothing_cached_or_past_keepto_is_gone(state: LeaseState, cached: CachedAnswer | None, now: float, may_forward: bool) -> None:
    """A child that cannot be asked and has nothing kept contributes nothing (row 4)."""
    assert decide(Terms(state), cached, now, may_forward=may_forward) is Decision.GONE


def test_a_sweep_removes_answers_only_past_keepto_and_cachettl() -> None:
    """Cached answers stay while they can still be served (fresh, or stale before keepto)."""
    child = Terms(keep_to=T0 + 10)
    assert not expired(child, answer(T0), T0 + 29)  # past keepto but still fresh
    assert expired(child, answer(T0), T0 + 30)
    assert not expired(Terms(), answer(T0), T0 + 31)  # stale, before keepto
