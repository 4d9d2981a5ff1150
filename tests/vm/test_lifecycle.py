"""The VM and job state machines: tables, lost and late events, order independence, relations."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridinfo.vm.events import Event
from gridinfo.vm.lifecycle import (
    GENERIC_STATES,
    JOB_STATES,
    VM_STATES,
    Lifecycle,
    LifecycleStore,
    intervals,
)

T0 = 1714564800.0


def vm_event(kind: str, source: str, seq: int, t: float, **attrs: str) -> Event:
    return Event.make(kind, source, seq, T0 + t, vm_id="vm1", attributes=attrs)


def fold(events: list[Event]) -> Lifecycle:
    life = Lifecycle("vm", "vm1")
    for i, e in enumerate(events):
        life.apply(e, accepted=float(i))
    return life


@pytest.mark.parametrize(
    ("kind", "source", "state", "generic"),
    [
        ("Register", "cloud", "Registered", "Submitted"),
        ("Create", "cloud", "Created", "Scheduled"),
        ("Running", "cloud", "Running", "Running"),
        ("Running", "hypervisor", "Running", "Running"),
        ("ReallyRunning", "vm", "ReallyRunning", "Running"),
        ("Shutdown", "cloud", "ShuttingDown", "Running"),
        ("Shutdown", "vm", "ShuttingDown", "Running"),
        ("Shutdown", "hypervisor", "ShutDown", "Done"),
        ("Done", "cloud", "Done", "Done"),
        ("Failed", "cloud", "Failed", "Aborted"),
        ("Failed", "hypervisor", "Failed", "Aborted"),
        ("HostDetail", "cloud", "Unknown", "Submitted"),
    ],
)
def test_each_event_takes_a_new_vm_to_the_documented_state(kind: str, source: str, state: str, generic: str) -> None:
    """Each event takes a new VM to the state (and generic job state) the table documents."""
    life = fold([vm_event(kind, source, 1, 0)])
    assert (life.state, life.generic_state) == (state, generic)


def test_every_state_maps_to_a_generic_job_state() -> None:
    """One query over GridinfoJobGenericState finds VMs and jobs alike."""
    assert {g for _, g in VM_STATES.values()} <= set(GENERIC_STATES)
    assert {g for _, g in JOB_STATES.values()} <= set(GENERIC_STATES)


def test_a_full_life_cycle_records_when_each_state_was_entered() -> None:
    """The VM entry shows the time of every transition, from three sources."""
    events = [
        vm_event("Register", "cloud", 1, 0, owner="alice"),
        vm_event("Create", "cloud", 2, 1, physical_host="n1"),
        vm_event("Running", "hypervisor", 1, 2),
        vm_event("ReallyRunning", "vm", 1, 3, hostname="vm1.example.org"),
        vm_event("Shutdown", "vm", 2, 4),
        vm_event("Shutdown", "hypervisor", 2, 5),
        vm_event("Done", "cloud", 3, 6),
    ]
    life = fold(events)
    assert life.state == "Done"
    assert life.state_times == {s: T0 + i for i, s in enumerate(
        ["Registered", "Created", "Running", "ReallyRunning", "ShuttingDown", "ShutDown", "Done"])}
    assert life.facts() == {"hostname": "vm1.example.org", "owner": "alice", "physical_host": "n1"}
    assert life.sources == {"cloud", "hypervisor", "vm"}
    assert life.last_event == events[-1]
    assert life.owner == "alice"


def test_a_late_running_never_revives_a_finished_vm() -> None:
    """A Running that arrives after Done (or was sent late) leaves the VM Done."""
    life = fold([vm_event("Done", "cloud", 5, 10), vm_event("Running", "hypervisor", 1, 2)])
    assert life.state == "Done"
    life = fold([vm_event("Shutdown", "hypervisor", 2, 10), vm_event("Running", "hypervisor", 1, 2)])
    assert life.state == "ShutDown"


def test_a_vm_whose_create_was_lost_shows_running() -> None:
    """The hypervisor's word is enough: Register then Running, with no Create, is Running."""
    life = fold([vm_event("Register", "cloud", 1, 0), vm_event("Running", "hypervisor", 1, 5)])
    assert life.state == "Running"
    assert "Created" not in life.state_times


def test_the_earliest_final_event_decides() -> None:
    """A VM that failed and was then cleaned up stays Failed, in any arrival order."""
    failed, done = vm_event("Failed", "hypervisor", 3, 5), vm_event("Done", "cloud", 4, 9)
    assert fold([failed, done]).state == "Failed"
    assert fold([done, failed]).state == "Failed"


def test_a_resent_duplicate_event_changes_nothing() -> None:
    """A client that re-sends an event (after a lost answer) does not change anything."""
    e = vm_event("Running", "cloud", 1, 0)
    life = fold([e])
    assert life.apply(e, accepted=9.0) is False
    assert life.events == 1


def test_facts_follow_seq_within_a_source_and_time_across_sources() -> None:
    """A source's numbering orders its own reports; the newest report across sources wins."""
    life = fold([
        vm_event("HostDetail", "cloud", 2, 0, physical_host="n2"),  # newer by seq, older clock
        vm_event("HostDetail", "cloud", 1, 5, physical_host="n1"),
    ])
    assert life.fact("physical_host") == "n2"
    life.apply(vm_event("Running", "hypervisor", 1, 9, physical_host="n3"), accepted=3.0)
    assert life.fact("physical_host") == "n3"


# -- property: order does not matter ---------------------------------------------------------------

LIFE_CYCLE = [
    ("Register", "cloud", {"owner": "alice"}),
    ("Create", "cloud", {"physical_host": "n1"}),
    ("Running", "cloud", {}),
    ("Running", "hypervisor", {"physical_host": "n1"}),
    ("ReallyRunning", "vm", {"hostname": "vm1.example.org"}),
    ("HostDetail", "cloud", {"physical_host": "n2", "tag.project": "x"}),
    ("Shutdown", "vm", {}),
    ("Shutdown", "cloud", {}),
    ("Shutdown", "hypervisor", {}),
    ("Failed", "hypervisor", {"reason": "crash"}),
    ("Done", "cloud", {}),
]


@st.composite
def life_cycles(draw: st.DrawFn) -> list[Event]:
    """A random subset of a life cycle (events lost), with plausible times and per-source seqs."""
    chosen = draw(st.lists(st.sampled_from(range(len(LIFE_CYCLE))), unique=True, min_size=1))
    chosen.sort()
    seqs: dict[str, int] = {}
    events = []
    t = 0.0
    for i in chosen:
        kind, source, attrs = LIFE_CYCLE[i]
        t += draw(st.sampled_from([0.0, 0.5, 1.0, 7.0]))  # ties happen
        seqs[source] = seqs.get(source, 0) + draw(st.integers(1, 3))
        events.append(Event.make(kind, source, seqs[source], T0 + t, vm_id="vm1", attributes=attrs))
    return events


@settings(max_examples=300, deadline=None)
@given(events=life_cycles(), data=st.data())
def test_every_order_of_a_life_cycles_events_ends_in_the_same_state(events: list[Event], data: st.DataObject) -> None:
    """Events arriving in any order (and some twice) give the same published VM, as replay does."""
    reference = fold(events).snapshot()
    shuffled = data.draw(st.permutations(events))
    repeated = shuffled + data.draw(st.lists(st.sampled_from(events), max_size=3))
    assert fold(repeated).snapshot() == reference


@settings(max_examples=200, deadline=None)
@given(events=life_cycles())
def test_a_late_event_never_moves_a_vm_backwards(events: list[Event]) -> None:
    """Applying events one by one, the VM's rank only goes up, and a final state stays."""
    life = Lifecycle("vm", "vm1")
    rank_seen = -1
    final_seen = None
    for i, e in enumerate(events[::-1]):  # worst case: newest first
        life.apply(e, float(i))
        if final_seen is not None:
            assert life.state == final_seen or VM_STATES[life.state][0] is None
        rank = VM_STATES[life.state][0]
        if rank is None:
            final_seen = final_seen or life.state
        else:
            assert rank >= rank_seen
            rank_seen = rank


# -- jobs and relations ----------------------------------------------------------------------------


def job_event(kind: str, seq: int, t: float, vm: str | None = None) -> Event:
    if vm is not None:
        return Event.make(kind, "batch", seq, T0 + t, vm_id=vm, job_id="j1")
    return Event.make(kind, "batch", seq, T0 + t, job_id="j1")


def test_job_table_and_relate_means_scheduled() -> None:
    """A job goes Submitted, Waiting, Scheduled (put into a VM), Running, Done."""
    store = LifecycleStore()
    expected = [("Register", "Submitted"), ("Create", "Waiting"), ("Relate", "Scheduled"), ("Running", "Running"),
                ("Done", "Done")]
    for i, (kind, state) in enumerate(expected):
        store.apply(job_event(kind, i + 1, i, vm="vm1" if kind == "Relate" else None), float(i))
        assert store.jobs["j1"].state == state
    other = LifecycleStore()
    other.apply(job_event("Failed", 1, 0), 0.0)
    assert other.jobs["j1"].generic_state == "Aborted"


def test_relation_intervals_from_events_in_any_order() -> None:
    """Relate/Unrelate pairs become since/until intervals; a lost Relate leaves since unknown."""
    events = [job_event("Unrelate", 4, 30, "vm1"), job_event("Relate", 1, 10, "vm1"),
              job_event("Relate", 3, 25, "vm1"), job_event("Unrelate", 2, 20, "vm1")]
    got = [(i.since, i.until) for i in intervals("j1", "vm1", events)]
    assert got == [(T0 + 10, T0 + 20), (T0 + 25, T0 + 30)]
    got = [(i.since, i.until) for i in intervals("j1", "vm1", [job_event("Unrelate", 2, 20, "vm1")])]
    assert got == [(None, T0 + 20)]
    open_ = intervals("j1", "vm1", [job_event("Relate", 1, 10, "vm1")])
    assert open_[0].active and open_[0].relation_id == "j1@vm1#0"


def test_a_relation_closes_when_its_vm_shuts_down() -> None:
    """A job cannot still run in a VM that is off: the relation ends then, without an Unrelate."""
    store = LifecycleStore()
    store.apply(job_event("Relate", 1, 10, "vm1"), 0.0)
    assert [i.active for i in store.relations_of_job("j1")] == [True]
    touched = store.apply(vm_event("Shutdown", "hypervisor", 1, 50), 1.0)
    assert touched is not None and ("rel", "j1\0vm1") in touched
    assert [(i.since, i.until) for i in store.relations_of_vm("vm1")] == [(T0 + 10, T0 + 50)]


def test_retention_keeps_jobs_while_their_vms_are_kept() -> None:
    """Finished VMs go after the retention; a job goes with or after the VMs it ran in."""
    store = LifecycleStore()
    store.apply(job_event("Relate", 1, 0, "vm1"), 0.0)
    store.apply(job_event("Done", 2, 5), 5.0)
    store.apply(vm_event("Running", "cloud", 1, 0), 0.0)
    assert store.expired(now=100.0, retention=50.0) == []  # the VM is still running
    store.apply(vm_event("Done", "cloud", 2, 60), 60.0)
    assert store.expired(now=100.0, retention=50.0) == []
    assert store.expired(now=110.0, retention=50.0) == [("vm", "vm1"), ("job", "j1")]
    dropped = store.forget("vm", "vm1")
    assert len(dropped) == 2  # the VM's own events; the relation stays with the job
    assert list(store.relations_of_job("j1"))
    dropped = store.forget("job", "j1")
    assert len(dropped) == 2 and not store.events and not store.relation_events
