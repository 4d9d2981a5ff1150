"""Searches in slices: the cursor stops when its slice is spent and resumes where it stopped.

The clock is injected (each read advances it by one tick), so slices and time limits are
exact here, with no sleeping and no wall clock.
"""

from __future__ import annotations

from gridinfo.directory.filters import parse_filter
from gridinfo.directory.query import Scope, SearchRequest
from gridinfo.errors import ResultCode
from tests.directory.test_tree import SUFFIX, dns, make_tree


def ticking(step: float = 1.0):
    now = [0.0]

    def clock() -> float:
        now[0] += step
        return now[0]

    return clock


def request(flt="(objectClass=GlueCE)", **kw):
    return SearchRequest(SUFFIX, Scope.SUB, parse_filter(flt), **kw)


def test_sliced_search_resumes_and_ends_with_the_same_entries():
    """A search cut into many slices returns exactly what the one-go search returns."""
    tree = make_tree(600)
    whole = tree.search(request())
    assert whole.cursor is None
    tree.clock = ticking()
    tree.slice_seconds = 2.0  # two clock reads per slice: 32 candidates or so
    result = tree.search(request(), sliced=True)
    cursor = result.cursor
    assert cursor is not None
    while not cursor.run():
        pass
    assert cursor.slices >= 9  # 600 candidates, about 64 per slice
    assert result.code == ResultCode.SUCCESS
    assert result.entries == whole.entries


def test_unsliced_search_is_answered_in_one_call():
    """Callers that merge results (a GIIS's own tree) get a complete answer, never a cursor."""
    tree = make_tree(600)
    tree.clock = ticking()
    tree.slice_seconds = 2.0
    result = tree.search(request())
    assert result.cursor is None and len(result.entries) == 600


def test_time_limit_counts_from_the_start_across_slices():
    """timeLimit is enforced during evaluation and between slices: code 3 with the entries so far."""
    tree = make_tree(600)
    tree.clock = ticking()
    tree.slice_seconds = 3.0
    result = tree.search(request(time_limit=10), sliced=True)
    cursor = result.cursor
    assert cursor is not None
    while not cursor.run():
        pass
    assert result.code == ResultCode.TIME_LIMIT_EXCEEDED
    assert result.message == "time limit of 10 s exceeded"
    assert 0 < len(result.entries) < 600
    assert dns(result) <= dns(tree.search(request()))


def test_size_limit_in_a_sliced_search():
    """sizeLimit holds across slices: exactly that many entries, then code 4."""
    tree = make_tree(600)
    tree.clock = ticking()
    tree.slice_seconds = 2.0
    result = tree.search(request(size_limit=100), sliced=True)
    assert result.cursor is not None
    while not result.cursor.run():
        pass
    assert result.code == ResultCode.SIZE_LIMIT_EXCEEDED and len(result.entries) == 100


def test_cancelled_cursor_does_no_more_work():
    """An abandoned search stops: run() reports it over and adds nothing."""
    tree = make_tree(600)
    tree.clock = ticking()
    tree.slice_seconds = 2.0
    result = tree.search(request(), sliced=True)
    assert result.cursor is not None
    so_far = len(result.entries)
    result.cursor.cancel()
    assert result.cursor.run() is True
    assert len(result.entries) == so_far < 600


def test_taking_the_entries_of_each_slice_gives_the_whole_answer_in_order():
    """A streaming driver takes what each slice found: the pieces, joined, are the one-go answer,
    and the result never holds more than one slice of them."""
    tree = make_tree(600)
    whole = tree.search(request())
    tree.clock = ticking()
    tree.slice_seconds = 2.0
    result = tree.search(request(), sliced=True)
    cursor = result.cursor
    assert cursor is not None
    pieces = [cursor.take()]
    while not cursor.run():
        assert len(result.entries) <= 64
        pieces.append(cursor.take())
    pieces.append(result.entries)
    assert len(pieces) >= 9
    assert [e for piece in pieces for e in piece] == whole.entries
    assert result.code == ResultCode.SUCCESS


def test_the_size_limit_counts_the_entries_already_taken():
    """sizeLimit 100 over slices whose entries were taken: 100 entries in all, then code 4."""
    tree = make_tree(600)
    tree.clock = ticking()
    tree.slice_seconds = 2.0
    result = tree.search(request(size_limit=100), sliced=True)
    cursor = result.cursor
    assert cursor is not None
    taken = cursor.take()
    while not cursor.run():
        taken += cursor.take()
    assert len(taken) > 0
    assert len(taken) + len(result.entries) == 100
    assert result.code == ResultCode.SIZE_LIMIT_EXCEEDED
    assert result.message == "size limit of 100 entries exceeded"
