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
        vm_event("HostDetail", "cloud", 2, 0, hostname="b.example.org"),  # newer by seq, older clock
        vm_event("HostDetail", "cloud", 1, 5, hostname="a.example.org"),
    ])
    assert life.fact("hostname") == "b.example.org"
    life.apply(vm_event("HostDetail", "vm", 1, 9, hostname="c.example.org"), accepted=3.0)
    assert life.fact("hostname") == "c.example.org"


def test_the_physical_host_follows_the_newest_authoritative_report() -> None:
    """The host is the newest placement by an authoritative source (by time); the VM's own word is not one."""
    life = fold([
        vm_event("HostDetail", "cloud", 2, 0, physical_host="n2"),
        vm_event("HostDetail", "cloud", 1, 5, physical_host="n1"),
    ])
    assert life.fact("physical_host") == "n1"
    life.apply(vm_event("Running", "hypervisor", 1, 9, physical_host="n3"), accepted=3.0)
    life.apply(vm_event("HostDetail", "vm", 1, 20, physical_host="elsewhere"), accepted=4.0)
    assert life.fact("physical_host") == "n3"
    assert [h.host for h in life.hosts] == ["n2", "n1", "n3"]


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


def test_retention_lets_a_finished_job_go_while_its_vm_lives_on() -> None:
    """A finished job and its (past) relations go after the retention, however long the VM lives."""
    store = LifecycleStore()
    store.apply(job_event("Relate", 1, 0, "vm1"), 0.0)
    store.apply(job_event("Done", 2, 5), 5.0)
    store.apply(vm_event("Running", "cloud", 1, 0), 0.0)
    assert store.expired(now=50.0, retention=50.0) == []  # the job's retention runs to 55
    assert [i.active for i in store.relations_of_vm("vm1")] == [False]  # a past relation, searchable
    assert store.expired(now=55.0, retention=50.0) == [("job", "j1")]
    dropped = store.forget("job", "j1")
    assert len(dropped) == 2 and not store.relation_events and "vm1" in store.vms
    store.apply(vm_event("Done", "cloud", 2, 60), 60.0)
    assert store.expired(now=110.0, retention=50.0) == [("vm", "vm1")]
    assert len(store.forget("vm", "vm1")) == 2 and not store.events


# -- cycles: suspend, resume, power off and on, reboot, migrate ------------------------------------


@pytest.mark.parametrize(
    ("kind", "source", "state", "generic"),
    [
        ("Suspend", "cloud", "Suspended", "Waiting"),
        ("Suspend", "hypervisor", "Suspended", "Waiting"),
        ("Stop", "cloud", "Stopped", "Waiting"),
        ("PowerOff", "cloud", "PoweredOff", "Waiting"),
        ("PowerOff", "hypervisor", "PoweredOff", "Waiting"),
        ("Resume", "cloud", "Running", "Running"),
        ("PowerOn", "hypervisor", "Running", "Running"),
        ("Reboot", "cloud", "Running", "Running"),
    ],
)
def test_each_cycle_event_takes_a_new_vm_to_the_documented_state(kind: str, source: str, state: str,
                                                                  generic: str) -> None:
    """The cycle events of the table, each alone."""
    life = fold([vm_event(kind, source, 1, 0)])
    assert (life.state, life.generic_state) == (state, generic)


def test_a_restarted_vm_keeps_its_id_and_its_history_shows_each_run() -> None:
    """ShutDown, then the hypervisor sees the domain start again: a new run of the same VM."""
    life = fold([
        vm_event("Running", "hypervisor", 1, 0, physical_host="n1"),
        vm_event("Shutdown", "hypervisor", 2, 10, physical_host="n1"),
        vm_event("PowerOn", "hypervisor", 3, 20, physical_host="n1"),
        vm_event("ReallyRunning", "vm", 1, 25),
    ])
    assert (life.state, life.epoch) == ("ReallyRunning", 1)
    assert [(r.index, r.state, r.began) for r in life.runs] == [(0, "ShutDown", T0), (1, "ReallyRunning", T0 + 20)]
    assert life.run_ends() == (T0 + 10,)


def test_suspend_and_resume_from_two_sources_make_one_new_run() -> None:
    """The cloud and the hypervisor both report the cycle; the second Resume opens nothing more."""
    life = fold([
        vm_event("Running", "cloud", 1, 0), vm_event("Running", "hypervisor", 1, 0),
        vm_event("Suspend", "cloud", 2, 10), vm_event("Suspend", "hypervisor", 2, 11),
        vm_event("Resume", "cloud", 3, 20), vm_event("Resume", "hypervisor", 3, 21),
    ])
    assert (life.state, life.epoch, [r.state for r in life.runs]) == ("Running", 1, ["Suspended", "Running"])
    assert life.run_ends() == ()  # a suspension does not end the jobs in the VM


def test_a_late_event_of_an_earlier_run_does_not_change_the_current_one() -> None:
    """A Suspend of run 0 arriving after the Resume leaves the VM running, in run 1."""
    resume = vm_event("Resume", "cloud", 3, 20)
    life = fold([vm_event("Running", "cloud", 1, 0), resume])
    assert (life.state, life.epoch) == ("Running", 0)  # no pause known yet: nothing to resume from
    life.apply(vm_event("Suspend", "cloud", 2, 10), accepted=5.0)
    assert (life.state, life.epoch, [r.state for r in life.runs]) == ("Running", 1, ["Suspended", "Running"])


def test_a_reboot_the_hypervisor_cannot_see_still_puts_its_later_reports_in_the_new_run() -> None:
    """Rule 2: a source that missed a restart catches up by time."""
    life = fold([
        vm_event("Running", "hypervisor", 1, 0),
        vm_event("Reboot", "cloud", 1, 10),
        vm_event("Suspend", "hypervisor", 2, 20),
    ])
    assert (life.state, life.epoch) == ("Suspended", 1)
    assert life.run_ends() == (T0 + 10,)  # the jobs in the VM died with the reboot


def test_migration_follows_the_newest_placement_and_the_old_hosts_shutdown_is_a_departure() -> None:
    """Migrating until the VM runs on the target; the domain leaving the old host changes no state."""
    events = [
        vm_event("Running", "hypervisor", 1, 0, physical_host="n1"),
        vm_event("Migrate", "cloud", 1, 10, physical_host="n2"),
    ]
    life = fold(events)
    assert (life.state, life.fact("physical_host")) == ("Migrating", "n2")
    life.apply(vm_event("Running", "hypervisor", 2, 12, physical_host="n2"), accepted=3.0)
    life.apply(vm_event("Shutdown", "hypervisor", 3, 13, physical_host="n1"), accepted=4.0)
    assert (life.state, life.epoch, life.fact("physical_host")) == ("Running", 0, "n2")
    assert [(h.host, h.since, h.until) for h in life.hosts] == [("n1", T0, T0 + 10), ("n2", T0 + 10, None)]
    assert life.run_ends() == ()
    assert life.state_times["Migrating"] == T0 + 10  # the history keeps the migration


def test_a_cycle_event_after_the_final_state_is_a_contradiction() -> None:
    """Resume of a Done VM contradicts the table; a Resume before the Done does not."""
    life = fold([vm_event("Running", "cloud", 1, 0), vm_event("Done", "cloud", 3, 10)])
    reason = life.contradiction(vm_event("Resume", "cloud", 4, 20))
    assert reason is not None and "is Done since" in reason and "Resume" in reason
    assert life.contradiction(vm_event("Resume", "cloud", 2, 5)) is None
    assert life.contradiction(vm_event("Running", "hypervisor", 1, 20)) is None  # folded in, changes nothing
    store = LifecycleStore()
    store.apply(vm_event("Failed", "hypervisor", 1, 10), 0.0)
    assert store.contradiction(vm_event("PowerOn", "hypervisor", 2, 11)) is not None


def test_a_vm_only_the_hypervisor_saw_retires_after_it_stays_off_for_the_retention() -> None:
    """No final event will come for it: ShutDown (and no restart) for the retention retires it."""
    store = LifecycleStore()
    store.apply(vm_event("Running", "hypervisor", 1, 0, physical_host="n1"), 0.0)
    store.apply(vm_event("Shutdown", "hypervisor", 2, 10, physical_host="n1"), 10.0)
    assert store.expired(now=59.0, retention=50.0) == []
    store.apply(vm_event("PowerOn", "hypervisor", 3, 20, physical_host="n1"), 20.0)
    assert store.expired(now=100.0, retention=50.0) == []  # it came back
    store.apply(vm_event("Shutdown", "hypervisor", 4, 30, physical_host="n1"), 120.0)
    assert store.expired(now=169.0, retention=50.0) == []
    assert store.expired(now=170.0, retention=50.0) == [("vm", "vm1")]
    registered = LifecycleStore()  # a VM the cloud knows waits for its Done
    registered.apply(vm_event("Register", "cloud", 1, 0), 0.0)
    registered.apply(vm_event("Shutdown", "hypervisor", 1, 10), 10.0)
    assert registered.expired(now=1000.0, retention=50.0) == []


# -- property: order does not matter, with cycles ---------------------------------------------------

#: One step of a life: the events (kind, source, attributes; "@" is the current host, "@new" the
#: next one), the state the VM is in after all of them in order ("": as before), a new run?
CYCLES: dict[str, tuple[list[tuple[str, str, dict[str, str]]], str, bool]] = {
    "suspend": ([("Suspend", "cloud", {}), ("Suspend", "hypervisor", {"physical_host": "@"}),
                 ("Resume", "cloud", {}), ("Resume", "hypervisor", {"physical_host": "@"}),
                 ("ReallyRunning", "vm", {})], "ReallyRunning", True),
    "poweroff": ([("PowerOff", "cloud", {}), ("Shutdown", "hypervisor", {"physical_host": "@"}),
                  ("PowerOn", "cloud", {}), ("PowerOn", "hypervisor", {"physical_host": "@"})], "Running", True),
    "stop": ([("Stop", "cloud", {}), ("Shutdown", "hypervisor", {"physical_host": "@"}),
              ("Resume", "cloud", {"physical_host": "@"}), ("Running", "hypervisor", {"physical_host": "@"})],
             "Running", True),
    "restart": ([("Shutdown", "hypervisor", {"physical_host": "@"}),
                 ("PowerOn", "hypervisor", {"physical_host": "@"})], "Running", True),
    "reboot": ([("Reboot", "cloud", {}), ("ReallyRunning", "vm", {})], "ReallyRunning", True),
    "migrate": ([("Migrate", "cloud", {"physical_host": "@new"}), ("Running", "hypervisor", {"physical_host": "@new"}),
                 ("Shutdown", "hypervisor", {"physical_host": "@"})], "", False),  # as before it moved
    "facts": ([("HostDetail", "vm", {"tag.project": "x"})], "", False),
}
ENDINGS: dict[str, tuple[list[tuple[str, str, dict[str, str]]], str]] = {
    "none": ([], ""),
    "done": ([("Shutdown", "vm", {}), ("Shutdown", "cloud", {}), ("Shutdown", "hypervisor", {"physical_host": "@"}),
              ("Done", "cloud", {})], "Done"),
    "crash": ([("Failed", "hypervisor", {"physical_host": "@", "reason": "crash"})], "Failed"),
    "off": ([("Shutdown", "hypervisor", {"physical_host": "@"})], "ShutDown"),
}


@st.composite
def lives_with_cycles(draw: st.DrawFn, ties: bool = True) -> tuple[list[Event], str, int, str]:
    """A whole life (start, random cycles, an ending) in order: events, final state, runs, host."""
    steps: list[tuple[str, str, dict[str, str]]] = [
        ("Register", "cloud", {"owner": "alice"}), ("Create", "cloud", {"physical_host": "@"}),
        ("Running", "cloud", {}), ("Running", "hypervisor", {"physical_host": "@"}),
        ("ReallyRunning", "vm", {"hostname": "vm1.example.org"}),
    ]
    state, runs, host = "ReallyRunning", 1, 1
    plan: list[tuple[str, str, dict[str, str], int]] = [(k, s, a, host) for k, s, a in steps]
    for name in draw(st.lists(st.sampled_from(sorted(CYCLES)), max_size=5)):
        cycle, after, new_run = CYCLES[name]
        plan += [(k, s, a, host) for k, s, a in cycle]
        state = after or state
        runs += new_run
        host += name == "migrate"
    ending, final = ENDINGS[draw(st.sampled_from(sorted(ENDINGS)))]
    plan += [(k, s, a, host) for k, s, a in ending]
    state = final or state
    seqs: dict[str, int] = {}
    events, t = [], 0.0
    for kind, source, attrs, at in plan:
        t += draw(st.sampled_from([0.0, 0.5, 1.0, 7.0] if ties else [0.5, 1.0, 7.0]))
        seqs[source] = seqs.get(source, 0) + draw(st.integers(1, 3))
        concrete = {k: (f"n{at + 1}" if v == "@new" else f"n{at}" if v == "@" else v) for k, v in attrs.items()}
        events.append(Event.make(kind, source, seqs[source], T0 + t, vm_id="vm1", attributes=concrete))
    return events, state, runs, f"n{host}"


@settings(max_examples=300, deadline=None)
@given(life=lives_with_cycles(ties=False))
def test_a_whole_life_with_cycles_in_order_ends_where_the_table_says(life: tuple[list[Event], str, int, str]) -> None:
    """Read in order, every cycle opens one run and the VM ends in the step's state, on the last host."""
    events, state, runs, host = life
    folded = fold(events)
    assert (folded.state, len(folded.runs), folded.fact("physical_host")) == (state, runs, host)


@settings(max_examples=400, deadline=None)
@given(life=lives_with_cycles(), data=st.data())
def test_any_order_and_any_losses_of_a_life_with_cycles_give_the_in_order_state(
        life: tuple[list[Event], str, int, str], data: st.DataObject) -> None:
    """Random interleavings, losses and duplicates give the same state and history as in order."""
    events = life[0]
    kept = [e for e in events if data.draw(st.booleans(), label=f"keep {e.event_id}")] if data.draw(
        st.booleans(), label="lose some") else events
    reference = fold(kept).snapshot()
    shuffled = data.draw(st.permutations(kept))
    repeated = shuffled + data.draw(st.lists(st.sampled_from(kept), max_size=3)) if kept else []
    assert fold(repeated).snapshot() == reference
