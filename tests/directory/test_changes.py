"""The change stream's pure core: who hears what, coalesced per DN, bounded, resumable by CSN.

Every row of the two tables in :mod:`gridinfo.directory.changes` has a test here; entries are
real entries built by the schema, and visibility is the real filter engine's verdict.
"""

from __future__ import annotations

import pytest

from gridinfo.directory.changes import Change, ChangeKind, ChangeLog, Subscription, merge
from gridinfo.directory.entry import EntryBuilder
from gridinfo.directory.evaluate import FilterCompiler
from gridinfo.directory.filters import parse_filter
from gridinfo.directory.schema import load_schema

SCHEMA = load_schema(())
BUILD = EntryBuilder(SCHEMA)
COMPILER = FilterCompiler(SCHEMA)
BASE = "mds-vo-name=local,o=grid"
A, M, D = ChangeKind.ADD, ChangeKind.MODIFY, ChangeKind.DELETE


def ce(name: str, free: int):
    return BUILD.build(
        f"GlueCEUniqueID={name},{BASE}",
        [("objectClass", [b"GlueCETop", b"GlueCE", b"GlueCEState"]), ("GlueCEUniqueID", [name.encode()]),
         ("GlueCEStateFreeCPUs", [str(free).encode()])],
    )


def csn(n: int) -> int:
    return 1_000_000 + n


def change(n: int, old, new) -> Change:
    entry = new if new is not None else old
    return Change(entry.key, old, new, csn(n))


def busy() -> Subscription:
    """Subscribed to CEs with fewer than 10 free CPUs."""
    predicate = COMPILER.compile(parse_filter("(&(objectClass=GlueCE)(!(GlueCEStateFreeCPUs>=10)))"))
    return Subscription(lambda e: predicate(e) is True)


@pytest.mark.parametrize(
    ("old_free", "new_free", "heard"),
    [
        (None, 50, None),  # not seen before, not seen after: nothing
        (None, 3, A),  # appears matching: ADD
        (50, 3, A),  # starts matching: ADD
        (3, 4, M),  # still matching, changed: MODIFY
        (3, 50, D),  # stops matching: DELETE
        (3, None, D),  # removed: DELETE
        (50, None, None),  # removed, never seen: nothing
    ],
)
def test_a_subscriber_hears_what_its_scope_and_filter_let_it_see(old_free, new_free, heard) -> None:
    """The first table: seen before / seen after decides ADD, MODIFY, DELETE or nothing."""
    sub = busy()
    old = ce("ce1", old_free) if old_free is not None else None
    new = ce("ce1", new_free) if new_free is not None else None
    sub.offer(change(1, old, new))
    notices = sub.drain(10)
    assert [n.kind for n in notices] == ([heard] if heard else [])
    if heard is D:
        assert notices[0].entry is old and notices[0].dn.startswith("GlueCEUniqueID=ce1,")
        assert notices[0].gone is (new is None)  # removed, or only out of the filter
    elif heard:
        assert notices[0].entry is new


@pytest.mark.parametrize(
    ("pending", "new", "after"),
    [(A, M, A), (A, D, None), (M, M, M), (M, D, D), (D, A, M), (D, D, D), (A, A, A), (D, M, M), (M, A, M)],
)
def test_coalescing_a_pending_change_with_a_new_one_follows_the_table(pending, new, after) -> None:
    """The second table, as a function."""
    assert merge(pending, new) is after


def test_a_flapping_value_costs_a_slow_subscriber_one_notice() -> None:
    """Values that change a thousand times while the client reads nothing: one MODIFY, the newest entry."""
    sub = busy()
    sub.offer(change(1, None, ce("ce1", 1)))
    assert [n.kind for n in sub.drain(10)] == [A]
    last = None
    for i in range(1000):
        old, last = ce("ce1", 1 + i % 5), ce("ce1", 1 + (i + 1) % 5)
        sub.offer(change(2 + i, old, last))
    notices = sub.drain(10)
    assert [n.kind for n in notices] == [M] and notices[0].entry is last


def test_added_then_removed_before_delivery_is_never_heard() -> None:
    """ADD then DELETE while pending: the client never had the entry, so it hears nothing."""
    sub = busy()
    sub.offer(change(1, None, ce("ce1", 1)))
    sub.offer(change(2, ce("ce1", 1), None))
    assert sub.drain(10) == []


def test_removed_then_added_back_is_one_modify() -> None:
    """DELETE then ADD while pending: the client still holds the old entry; it is told of the new one."""
    sub = busy()
    sub.offer(change(1, None, ce("ce1", 1)))
    sub.drain(10)
    sub.offer(change(2, ce("ce1", 1), None))
    sub.offer(change(3, None, ce("ce1", 2)))
    [notice] = sub.drain(10)
    assert notice.kind is M and notice.csn == csn(3)


def test_notices_come_oldest_dn_first_in_bounded_batches() -> None:
    sub = busy()
    for i in range(5):
        sub.offer(change(i + 1, None, ce(f"ce{i}", 1)))
    first = sub.drain(2)
    rest = sub.drain(10)
    assert [n.dn.split(",")[0] for n in first + rest] == [f"GlueCEUniqueID=ce{i}" for i in range(5)]
    assert len(first) == 2


def test_a_subscriber_that_falls_too_far_behind_overflows_and_holds_nothing() -> None:
    """Past max_pending undelivered DNs, the subscription is marked for e-syncRefreshRequired and freed."""
    predicate = COMPILER.compile(parse_filter("(objectClass=GlueCE)"))
    sub = Subscription(lambda e: predicate(e) is True, max_pending=3)
    woken = []
    sub.on_ready = lambda: woken.append(len(sub.pending))
    for i in range(10):
        sub.offer(change(i + 1, None, ce(f"ce{i}", 1)))
    assert sub.overflowed and sub.pending == {} and sub.drain(10) == []
    assert woken == [1, 0]  # woken when the first arrived, and when it overflowed


def test_persistent_search_change_types_filter_what_is_sent() -> None:
    """A client that asked for deletes only gets no ADD or MODIFY."""
    predicate = COMPILER.compile(parse_filter("(objectClass=GlueCE)"))
    sub = Subscription(lambda e: predicate(e) is True, wanted=frozenset({D}))
    sub.offer(change(1, None, ce("ce1", 1)))
    sub.offer(change(2, None, ce("ce2", 1)))
    sub.offer(change(3, ce("ce2", 1), None))
    assert [n.kind for n in sub.drain(10)] == [D]


def test_the_log_offers_each_change_to_every_subscription_and_keeps_the_context_csn() -> None:
    log = ChangeLog()
    a, b = log.subscribe(busy()), log.subscribe(busy())
    log.record(change(1, None, ce("ce1", 1)))
    assert log.csn == csn(1)
    assert len(a.drain(10)) == len(b.drain(10)) == 1 and a.csn == csn(1)
    log.unsubscribe(b)
    log.record(change(2, ce("ce1", 1), ce("ce1", 2)))
    assert len(a.drain(10)) == 1 and b.drain(10) == []


def test_subscriptions_of_one_group_are_classified_once_per_change_and_share_the_notice() -> None:
    predicate = COMPILER.compile(parse_filter("(&(objectClass=GlueCE)(!(GlueCEStateFreeCPUs>=10)))"))
    tested = []

    def visible(e) -> bool:
        tested.append(e)
        return predicate(e) is True

    log = ChangeLog()
    grouped = [log.subscribe(Subscription(visible, group="busy")) for _ in range(50)]
    alone = log.subscribe(Subscription(visible))
    log.record(change(1, ce("ce1", 1), ce("ce1", 2)))
    assert len(tested) == 2 * 2  # before and after: once for the group, once for the ungrouped one
    notices = [s.drain(10) for s in [*grouped, alone]]
    assert all(len(n) == 1 and n[0].kind is M for n in notices)
    assert len({id(n[0]) for n in notices}) == 1  # one Notice object, encoded once by its writers
    # a subscription with something pending still merges: ADD then MODIFY stays ADD
    log.record(change(2, None, ce("ce2", 3)))
    log.record(change(3, ce("ce2", 3), ce("ce2", 4)))
    assert [(n.kind, n.entry.first("gluecestatefreecpus")) for n in grouped[0].drain(10)] == [(A, b"4")]


def test_a_change_whose_csn_is_not_after_the_last_is_refused() -> None:


    """A change whose CSN is not after the log's last one is refused (ValueError "not after")."""
    log = ChangeLog()
    log.record(change(2, None, ce("ce1", 1)))
    with pytest.raises(ValueError, match="not after"):
        log.record(change(1, None, ce("ce2", 1)))


def test_changes_since_a_cookie_are_one_per_dn_from_its_state_then_to_now() -> None:
    """A client back with a cookie: each DN changed since, from what it was at the cookie to now."""
    log = ChangeLog()
    log.record(change(1, None, ce("ce1", 1)))
    log.record(change(2, None, ce("ce2", 1)))
    cookie = log.csn
    log.record(change(3, ce("ce1", 1), ce("ce1", 50)))  # leaves the client's filter...
    log.record(change(4, ce("ce1", 50), ce("ce1", 60)))  # ... and changes again
    log.record(change(5, None, ce("ce3", 2)))
    since = list(log.since(cookie))
    assert [c.key for c in since] == [ce("ce1", 0).key, ce("ce3", 0).key]
    sub = busy()
    for c in since:
        sub.offer(c)
    assert [(n.kind, n.dn.split(",")[0]) for n in sub.drain(10)] == [(D, "GlueCEUniqueID=ce1"), (A, "GlueCEUniqueID=ce3")]
    assert list(log.since(log.csn)) == []


def test_a_cookie_the_log_cannot_answer_gets_none() -> None:
    """Older than the log's horizon, newer than its newest change, or none at all after changes fell out."""
    log = ChangeLog(capacity=2)
    for i in range(1, 5):
        log.record(change(i, None, ce(f"ce{i}", 1)))
    assert log.horizon == csn(2)
    assert log.since(csn(1)) is None
    assert log.since(csn(9)) is None
    assert log.since(0) is None
    assert [c.csn for c in log.since(csn(2))] == [csn(3), csn(4)]
    assert list(ChangeLog().since(0)) == []


def test_a_cookie_from_before_the_tree_existed_cannot_be_answered_from_its_log() -> None:
    """A new process's tree (its log lost with the old one) refuses a cookie older than itself, so the
    client is refreshed in full and what vanished across the restart is dropped; its own cookies work."""
    from gridinfo.directory.tree import DirectoryTree

    clock = [1_000.0]
    tree = DirectoryTree(load_schema(()), wallclock=lambda: clock[0])
    old_cookie = tree.changelog.horizon - 1  # a CSN the previous process gave
    clock[0] += 1
    tree.add(tree.build("o=grid", [("objectClass", [b"organization"]), ("o", [b"grid"])]))
    assert tree.changelog.since(old_cookie) is None
    assert list(tree.changelog.since(tree.changelog.csn)) == []
