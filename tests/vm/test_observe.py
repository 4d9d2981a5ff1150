"""Hypervisor snapshots become hypervisor events, one per change, and feed the VM state machine."""

from __future__ import annotations

from gridinfo.vm.lifecycle import Lifecycle
from gridinfo.vm.observe import DomainSeen, HypervisorObserver, domains_from_entries

T0 = 1714564800.0


def test_only_changes_become_events() -> None:
    """A steady domain logs nothing; each change of phase (run, pause, off, crash, gone) logs one event."""
    obs = HypervisorObserver("node7")
    a, b = DomainSeen("uuid-a", "a", "Running"), DomainSeen("uuid-b", "b", "Paused")
    first = obs.observe([a, b], T0)
    assert [(e.kind, e.vm_id) for e in first] == [("Running", "uuid-a")]  # b's life before is unknown
    assert first[0].attribute("physical_host") == "node7" and first[0].source == "hypervisor"
    assert obs.observe([a, b], T0 + 1) == []
    second = obs.observe([DomainSeen("uuid-a", "a", "ShutDown"), DomainSeen("uuid-b", "b", "Running")], T0 + 2)
    assert [(e.kind, e.vm_id) for e in second] == [("Shutdown", "uuid-a"), ("Running", "uuid-b")]
    third = obs.observe([DomainSeen("uuid-a", "a", "Crashed")], T0 + 3)  # b vanished while running
    assert [(e.kind, e.vm_id) for e in third] == [("Failed", "uuid-a"), ("Shutdown", "uuid-b")]
    assert third[0].attribute("reason") == "crashed"


def test_a_domain_paused_resumed_destroyed_and_started_again_makes_three_runs() -> None:
    """Resume and PowerOn start new runs of the same VM; a crashed domain logs nothing more."""
    obs = HypervisorObserver("h")
    life = Lifecycle("vm", "u")
    kinds = []
    for t, state in enumerate(["Running", "Paused", "Running", "ShutDown", "Running", "Crashed", "Running"]):
        for e in obs.observe([DomainSeen("u", "a", state)], T0 + t):
            kinds.append(e.kind)
            life.apply(e, T0 + t)
    assert kinds == ["Running", "Suspend", "Resume", "Shutdown", "PowerOn", "Failed"]
    assert [r.state for r in life.runs] == ["Suspended", "ShutDown", "Failed"] and life.state == "Failed"
    gone = HypervisorObserver("h")
    gone.observe([DomainSeen("u", "a", "Running")], T0)
    assert [e.kind for e in gone.observe([], T0 + 1)] == ["Shutdown"]  # a transient domain went away
    assert [e.kind for e in gone.observe([DomainSeen("u", "a", "Running")], T0 + 2)] == ["PowerOn"]


def test_sequence_numbers_increase_per_vm() -> None:
    """Two changes within one millisecond still get distinct, increasing numbers."""
    obs = HypervisorObserver("h")
    e1 = obs.observe([DomainSeen("u", "a", "Running")], T0)[0]
    e2 = obs.observe([DomainSeen("u", "a", "ShutDown")], T0)[0]
    assert e2.seq == e1.seq + 1


def test_the_providers_entries_are_a_snapshot() -> None:
    """The hypervisor provider's LDIF entries read back as the domains they describe."""
    entries = [
        ("GridinfoHypervisorID=h1,mds-vo-name=local,o=grid",
         [("objectClass", [b"GridinfoHypervisor"]), ("GridinfoHypervisorID", [b"h1"])]),
        ("GridinfoVMID=u1,GridinfoHypervisorID=h1,mds-vo-name=local,o=grid",
         [("objectClass", [b"GridinfoVM"]), ("GridinfoVMID", [b"u1"]), ("GridinfoVMName", [b"web"]),
          ("GridinfoVMUUID", [b"u1"]), ("GridinfoVMState", [b"Running"])]),
    ]
    host, domains = domains_from_entries(entries)
    assert host == "h1" and domains == [DomainSeen("u1", "web", "Running")]


def test_a_vm_whose_create_was_lost_follows_the_hypervisor() -> None:
    """The hypervisor's events alone drive a VM through Running to ShutDown."""
    obs = HypervisorObserver("h")
    life = Lifecycle("vm", "u")
    for t, state in enumerate(["Running", "ShutDown"]):
        for e in obs.observe([DomainSeen("u", "a", state)], T0 + t):
            life.apply(e, T0 + t)
    assert life.state == "ShutDown" and life.fact("physical_host") == "h"


def test_an_observer_resumes_from_earlier_events() -> None:
    """After a restart a domain still running logs nothing, numbers keep increasing, and a domain
    that vanished meanwhile logs its Shutdown."""
    before = HypervisorObserver("h")
    earlier = before.observe([DomainSeen("u", "a", "Running"), DomainSeen("v", "b", "Running")], T0)
    again = HypervisorObserver("h")
    again.resume(earlier)
    [gone] = again.observe([DomainSeen("u", "a", "Running")], T0 - 60)  # the clock stepped back
    assert (gone.kind, gone.vm_id, gone.attribute("name")) == ("Shutdown", "v", "b")
    assert gone.seq > max(e.seq for e in earlier)
    [crash] = again.observe([DomainSeen("u", "a", "Crashed")], T0 - 59)
    assert crash.seq > max(e.seq for e in earlier)
