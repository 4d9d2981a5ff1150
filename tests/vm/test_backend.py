"""The event sink: adds below ou=events become journalled events and published VM/job entries."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from gridinfo.directory.schema import default_schema
from gridinfo.errors import ConstraintViolation, InsufficientAccessRights, ResultCode
from gridinfo.vm.events import Event, EventError
from gridinfo.vm.journal import Journal
from tests.vm.support import (
    ALICE,
    BATCH,
    BOB,
    CLOUD,
    EVENTS,
    HYPERVISOR,
    SUFFIX,
    T0,
    VM,
    Now,
    log,
    make_sink,
    search,
    vm_event,
)


def life_cycle_out_of_order() -> list[tuple[Event, str]]:
    """A VM's life from three sources, in a scrambled arrival order, Create lost."""
    return [
        (vm_event("Running", "hypervisor", 1, 20, physical_host="node7"), HYPERVISOR),
        (vm_event("ReallyRunning", "vm", 1, 30, hostname="vm1.example.org"), VM),
        (vm_event("Register", "cloud", 1, 0, owner="alice", **{"tag.project": "atlas"}), CLOUD),
        (vm_event("Done", "cloud", 4, 60), CLOUD),
        (vm_event("Shutdown", "hypervisor", 2, 50), HYPERVISOR),
        (vm_event("Running", "cloud", 3, 21), CLOUD),  # late: never moves the VM back
    ]


def test_a_life_cycle_from_three_sources_out_of_order(tmp_path: Path) -> None:
    """The VM entry under its physical host shows the right state, times, owner and sources."""
    sink = make_sink(tmp_path / "j.sqlite")
    for event, dn in life_cycle_out_of_order():
        assert log(sink, event, dn) is None
    [vm] = search(sink, "(objectClass=GridinfoVM)")
    assert vm["dn"] == [f"GridinfoVMID=vm1,GridinfoHypervisorID=node7,{SUFFIX}"]
    assert vm["gridinfovmstate"] == ["Done"] and vm["gridinfojobgenericstate"] == ["Done"]
    assert vm["gridinfovmowner"] == ["alice"] and vm["gridinfovmhostname"] == ["vm1.example.org"]
    assert vm["gridinfovmphysicalhost"] == ["node7"]
    assert sorted(vm["gridinfovmsources"]) == ["cloud", "hypervisor", "vm"]
    assert vm["gridinfovmstatetime"] == [
        "Registered=20240501120000Z", "Running=20240501120020Z", "ReallyRunning=20240501120030Z",
        "ShutDown=20240501120050Z", "Done=20240501120100Z",
    ]
    assert vm["gridinfolifecycledetail"] == ["tag.project=atlas"]
    assert vm["gridinfolifecycleevents"] == ["6"]
    assert vm["gridinfovmlastevent"][0].startswith("Done from cloud #4")
    assert len(search(sink, "(objectClass=GridinfoEvent)", EVENTS)) == 6


def test_published_entries_obey_the_schema(tmp_path: Path) -> None:
    """Every entry gridinfo publishes for VMs, jobs, relations and events passes schema checks."""
    sink = make_sink(tmp_path / "j.sqlite")
    for event, dn in life_cycle_out_of_order():
        log(sink, event, dn)
    log(sink, Event.make("Relate", "batch", 1, T0 + 25, vm_id="vm1", job_id="j1"), BATCH)
    log(sink, Event.make("Register", "batch", 2, T0 + 1, job_id="j1", attributes={"queue": "long"}), BATCH)
    schema = default_schema()
    for entry in sink.tree.subtree(sink.tree.key(SUFFIX)):
        attrs = {entry.names[k]: list(entry.attributes[k]) for k in entry.attributes}
        assert schema.check_entry(attrs) == [], entry.dn


def test_the_vm_entry_moves_with_its_physical_host(tmp_path: Path) -> None:
    """A VM without a known host is under ou=vms; when the host is told, it moves under the host."""
    sink = make_sink(tmp_path / "j.sqlite")
    log(sink, vm_event("Register", "cloud", 1, 0), CLOUD)
    assert [r["dn"] for r in search(sink, "(&(objectClass=GridinfoVM)(GridinfoVMID=vm1))")] == [[f"GridinfoVMID=vm1,ou=vms,{SUFFIX}"]]
    log(sink, vm_event("HostDetail", "cloud", 2, 1, physical_host="node2"), CLOUD)
    assert [r["dn"] for r in search(sink, "(objectClass=GridinfoVM)")] == [
        [f"GridinfoVMID=vm1,GridinfoHypervisorID=node2,{SUFFIX}"]]
    [host] = search(sink, "(objectClass=GridinfoHypervisor)")
    assert host["gridinfohypervisorid"] == ["node2"]


def test_a_migrated_vm_moves_to_its_new_host_and_keeps_every_host_in_its_history(tmp_path: Path) -> None:
    """The DN and GridinfoVMPhysicalHost follow the newest authoritative placement; a search by host
    finds only the VMs there now; the history lists every host with times; the job in it runs on."""
    sink = make_sink(tmp_path / "j.sqlite")
    log(sink, vm_event("Running", "hypervisor", 1, 0, physical_host="n1"), HYPERVISOR)
    log(sink, Event.make("Relate", "batch", 1, T0 + 5, vm_id="vm1", job_id="j1"), BATCH)
    log(sink, vm_event("Migrate", "cloud", 1, 10, physical_host="n2"), CLOUD)
    [vm] = search(sink, "(objectClass=GridinfoVM)")
    assert vm["gridinfovmstate"] == ["Migrating"] and vm["gridinfovmphysicalhost"] == ["n2"]
    log(sink, vm_event("Shutdown", "hypervisor", 3, 13, physical_host="n1"), HYPERVISOR)  # left the old host
    log(sink, vm_event("Running", "hypervisor", 2, 12, physical_host="n2"), HYPERVISOR)  # arrived (late report)
    [vm] = search(sink, "(objectClass=GridinfoVM)")
    assert vm["dn"] == [f"GridinfoVMID=vm1,GridinfoHypervisorID=n2,{SUFFIX}"]
    assert (vm["gridinfovmstate"], vm["gridinfovmruncount"]) == (["Running"], ["1"])
    assert vm["gridinfovmhosthistory"] == ["n1 20240501120000Z 20240501120010Z", "n2 20240501120010Z -"]
    assert search(sink, "(&(objectClass=GridinfoVM)(GridinfoVMPhysicalHost=n1))") == []
    assert len(search(sink, "(&(objectClass=GridinfoVM)(GridinfoVMPhysicalHost=n2))")) == 1
    assert len(search(sink, "(&(objectClass=GridinfoVM)(GridinfoVMHostHistory=n1 *))")) == 1  # ran there once
    assert search(sink, "(objectClass=GridinfoVM)", f"GridinfoHypervisorID=n1,{SUFFIX}") == []
    [rel] = search(sink, "(objectClass=GridinfoJobVMRelation)")
    assert rel["gridinforelationactive"] == ["TRUE"]  # a migration does not end the job


def test_relations_answer_both_ways(tmp_path: Path) -> None:
    """Which jobs ran in VM X, which VM job Y runs in: from relation records and the entries."""
    sink = make_sink(tmp_path / "j.sqlite")
    log(sink, vm_event("Running", "cloud", 1, 0, physical_host="n1"), CLOUD)
    log(sink, vm_event("Running", "cloud", 1, 0, vm="vm2", physical_host="n1"), CLOUD)
    log(sink, Event.make("Relate", "batch", 1, T0 + 1, vm_id="vm1", job_id="j1"), BATCH)
    log(sink, Event.make("Unrelate", "batch", 2, T0 + 5, vm_id="vm1", job_id="j1"), BATCH)
    log(sink, Event.make("Relate", "batch", 3, T0 + 6, vm_id="vm2", job_id="j1"), BATCH)
    log(sink, Event.make("Relate", "batch", 4, T0 + 7, vm_id="vm1", job_id="j2"), BATCH)
    ran_in_vm1 = {r["gridinfojobid"][0] for r in search(sink, "(&(objectClass=GridinfoJobVMRelation)(GridinfoVMID=vm1))")}
    assert ran_in_vm1 == {"j1", "j2"}
    now = search(sink, "(&(objectClass=GridinfoJobVMRelation)(GridinfoJobID=j1)(GridinfoRelationActive=TRUE))")
    assert [r["gridinfovmid"] for r in now] == [["vm2"]]
    past = search(sink, "(&(objectClass=GridinfoJobVMRelation)(GridinfoJobID=j1)(GridinfoVMID=vm1))")
    assert past[0]["gridinforelationsince"] == ["20240501120001Z"] and past[0]["gridinforelationuntil"] == ["20240501120005Z"]
    [vm1] = search(sink, "(&(objectClass=GridinfoVM)(GridinfoVMID=vm1))")
    assert vm1["gridinfovmjob"] == ["j1", "j2"]
    [j1] = search(sink, "(&(objectClass=GridinfoJob)(GridinfoJobID=j1))")
    assert j1["gridinfojobvm"] == ["vm1", "vm2"] and j1["gridinfojobstate"] == ["Scheduled"]


def test_running_vms_on_a_host(tmp_path: Path) -> None:
    """'All running VMs on host H' is one search below the host's entry."""
    sink = make_sink(tmp_path / "j.sqlite")
    log(sink, vm_event("Running", "hypervisor", 1, 0, physical_host="h1"), HYPERVISOR)
    log(sink, vm_event("Running", "hypervisor", 1, 0, vm="vm2", physical_host="h1"), HYPERVISOR)
    log(sink, vm_event("Shutdown", "hypervisor", 2, 5, vm="vm2"), HYPERVISOR)
    log(sink, vm_event("Running", "hypervisor", 1, 0, vm="vm3", physical_host="h2"), HYPERVISOR)
    running = search(sink, "(&(objectClass=GridinfoVM)(GridinfoJobGenericState=Running))", f"GridinfoHypervisorID=h1,{SUFFIX}")
    assert [r["gridinfovmid"] for r in running] == [["vm1"]]


def test_duplicates_are_accepted_once_and_conflicts_refused(tmp_path: Path) -> None:
    """Re-sending an event is harmless; reusing its number for other content is refused."""
    sink = make_sink(tmp_path / "j.sqlite")
    e = vm_event("Running", "cloud", 1, 0)
    log(sink, e, CLOUD)
    log(sink, e, CLOUD)
    assert sink.journal.count() == 1 and sink.duplicates == 1
    with pytest.raises(ConstraintViolation, match="already logged with different content"):
        log(sink, vm_event("Done", "cloud", 1, 0), CLOUD)


def test_adds_outside_the_events_subtree_level_are_refused(tmp_path: Path) -> None:
    """Only entries directly below ou=events are events."""
    sink = make_sink(tmp_path / "j.sqlite")
    e = vm_event("Running", "cloud", 1, 0)
    with pytest.raises(EventError) as info:
        sink.add(f"GridinfoEventID=x,GridinfoEventID=y,{EVENTS}", e.to_attributes(), CLOUD)
    assert info.value.code == ResultCode.NAMING_VIOLATION
    assert sink.handles(EVENTS) and not sink.handles(SUFFIX)


def test_restart_rebuilds_the_same_state_from_the_journal(tmp_path: Path) -> None:
    """After a restart the published VM is what it was: the journal is the truth."""
    path = tmp_path / "j.sqlite"
    sink = make_sink(path)
    for event, dn in life_cycle_out_of_order():
        log(sink, event, dn)
    before = search(sink, "(objectClass=*)")
    sink.journal.close()
    again = make_sink(path)
    assert search(again, "(objectClass=*)") == before


def test_a_refused_event_is_neither_journalled_nor_published(tmp_path: Path) -> None:
    """A refused event is neither journalled nor published."""
    sink = make_sink(tmp_path / "j.sqlite")
    log(sink, vm_event("Register", "cloud", 1, 0, owner="alice", sources="cloud,vm"), CLOUD)
    before = search(sink, "(objectClass=*)")
    with pytest.raises(InsufficientAccessRights, match="accepts events from cloud, vm only, not 'hypervisor'"):
        log(sink, vm_event("Running", "hypervisor", 1, 5), HYPERVISOR)
    with pytest.raises(InsufficientAccessRights, match="belongs to 'alice', not 'bob'"):
        log(sink, vm_event("ReallyRunning", "vm", 1, 5), BOB)
    assert search(sink, "(objectClass=*)") == before
    assert sink.journal.count() == 1
    log(sink, vm_event("ReallyRunning", "vm", 1, 5), ALICE)


def test_retention_removes_finished_vms_entries_and_journal_rows(tmp_path: Path) -> None:
    """A finished VM stays searchable for the retention, then its entries and events go."""
    now = Now()
    sink = make_sink(tmp_path / "j.sqlite", clock=now, retention=100.0)
    log(sink, vm_event("Running", "cloud", 1, 0, physical_host="n1"), CLOUD)
    log(sink, vm_event("Running", "cloud", 1, 0, vm="vm2"), CLOUD)
    now.t += 10
    log(sink, vm_event("Done", "cloud", 2, 10), CLOUD)
    [vm] = search(sink, "(&(objectClass=GridinfoVM)(GridinfoVMID=vm1))")
    assert vm["gridinfolifecycleexpires"] == ["20240501120150Z"]
    now.t += 99
    assert sink.sweep() == 0
    now.t += 1
    assert sink.sweep() == 1
    assert search(sink, "(GridinfoVMID=vm1)") == []
    assert sink.journal.count() == 1  # vm2's event
    sink.journal.close()
    assert search(make_sink(tmp_path / "j.sqlite", clock=now), "(GridinfoVMID=vm1)") == []


def test_retention_retires_a_vm_only_the_hypervisor_saw_and_past_relations(tmp_path: Path) -> None:
    """A domain the hypervisor saw go off (and not come back) goes after the retention, like a
    finished VM; a finished job and its past relations go after theirs while the VM it ran in lives."""
    now = Now()
    sink = make_sink(tmp_path / "j.sqlite", clock=now, retention=100.0)
    assert sink.accept([vm_event("Running", "hypervisor", 1, 0, vm="hv-only", physical_host="n1")]) == [None]
    log(sink, vm_event("Running", "cloud", 1, 0, physical_host="n1"), CLOUD)
    log(sink, Event.make("Relate", "batch", 1, T0 + 1, vm_id="vm1", job_id="j1"), BATCH)
    log(sink, Event.make("Done", "batch", 2, T0 + 5, job_id="j1"), BATCH)
    now.t += 10
    assert sink.accept([vm_event("Shutdown", "hypervisor", 2, 10, vm="hv-only", physical_host="n1")]) == [None]
    [gone] = search(sink, "(&(objectClass=GridinfoVM)(GridinfoVMID=hv-only))")
    assert gone["gridinfovmstate"] == ["ShutDown"] and gone["gridinfolifecycleexpires"] == ["20240501120150Z"]
    [past] = search(sink, "(&(objectClass=GridinfoJobVMRelation)(GridinfoVMID=vm1)(GridinfoRelationActive=FALSE))")
    assert past["gridinforelationuntil"] == ["20240501120005Z"]  # closed when the job ended
    now.t += 89
    assert sink.sweep() == 0
    now.t += 1
    assert sink.sweep() == 1  # the job, Done since T0: with its past relation
    assert search(sink, "(GridinfoJobID=j1)") == []
    now.t += 10
    assert sink.sweep() == 1  # the hypervisor-only VM, off since T0 + 10
    assert search(sink, "(GridinfoVMID=hv-only)") == []
    [vm1] = search(sink, "(&(objectClass=GridinfoVM)(GridinfoVMID=vm1))")
    assert "gridinfovmjob" not in vm1 and vm1["gridinfovmstate"] == ["Running"]
    assert sink.journal.count() == 1  # vm1's Running


#: The L&B-style questions of docs/vm.md, each one filter.
LB_QUERIES = {
    "jobs that ran in VM vm1": "(&(objectClass=GridinfoJobVMRelation)(GridinfoVMID=vm1))",
    "VMs of owner alice": "(&(objectClass=GridinfoVM)(GridinfoVMOwner=alice))",
    "VMs on physical host n2": "(&(objectClass=GridinfoVM)(GridinfoVMPhysicalHost=n2))",
    "VMs waiting (suspended, powered off, stopped)": "(&(objectClass=GridinfoVM)(GridinfoJobGenericState=Waiting))",
}


def test_the_lb_style_queries_are_each_one_filter_answered_from_an_index(tmp_path: Path) -> None:
    """Each question is one filter; the tree's indexes give exactly the matching entries (no scan)."""
    from gridinfo.directory.filters import parse_filter

    sink = make_sink(tmp_path / "j.sqlite")
    log(sink, vm_event("Register", "cloud", 1, 0, owner="alice"), CLOUD)
    log(sink, vm_event("Running", "cloud", 2, 1, physical_host="n1"), CLOUD)
    log(sink, vm_event("Register", "cloud", 1, 0, vm="vm2", owner="alice"), CLOUD)
    log(sink, vm_event("Running", "cloud", 2, 1, vm="vm2", physical_host="n2"), CLOUD)
    log(sink, vm_event("Suspend", "cloud", 3, 2, vm="vm2"), CLOUD)
    log(sink, vm_event("Running", "hypervisor", 1, 1, vm="vm3", physical_host="n2"), HYPERVISOR)
    log(sink, Event.make("Relate", "batch", 1, T0 + 2, vm_id="vm1", job_id="j1"), BATCH)
    log(sink, Event.make("Unrelate", "batch", 2, T0 + 3, vm_id="vm1", job_id="j1"), BATCH)
    log(sink, Event.make("Relate", "batch", 3, T0 + 4, vm_id="vm1", job_id="j2"), BATCH)
    expected = {
        "jobs that ran in VM vm1": {"j1", "j2"},
        "VMs of owner alice": {"vm1", "vm2"},
        "VMs on physical host n2": {"vm2", "vm3"},
        "VMs waiting (suspended, powered off, stopped)": {"vm2"},
    }
    for question, text in LB_QUERIES.items():
        found = search(sink, text)
        ids = {r.get("gridinfojobid", r.get("gridinfovmid"))[0] for r in found} if "jobs" in question else \
            {r["gridinfovmid"][0] for r in found}
        assert ids == expected[question], question
        candidates = sink.tree._candidates(parse_filter(text))  # what the index hands the filter
        assert candidates is not None and len(candidates) == len(found), question


class GroupCommitTests(SynchronousTestCase):
    def test_events_of_one_reactor_turn_share_one_commit(self) -> None:
        """Concurrent clients' events are answered after one durable commit, each with its own result."""
        folder = tempfile.mkdtemp(prefix="gridinfo-vm-")
        self.addCleanup(shutil.rmtree, folder, True)
        path = Path(folder) / "j.sqlite"
        clock = Clock()
        sink = make_sink(path, reactor=clock)
        results: list[object] = []
        d1 = log(sink, vm_event("Running", "cloud", 1, 0), CLOUD)
        d2 = log(sink, vm_event("Running", "cloud", 2, 0), HYPERVISOR)  # wrong source for this DN
        d3 = log(sink, vm_event("Done", "cloud", 3, 9), CLOUD)
        for d in (d1, d2, d3):
            d.addCallbacks(lambda _: results.append("ok"), lambda f: results.append(f.value.code))
        assert results == [] and Journal(path).count() == 0
        clock.advance(0)
        assert results == ["ok", ResultCode.INSUFFICIENT_ACCESS_RIGHTS, "ok"]
        assert sink.batches == 1 and Journal(path).count() == 2
