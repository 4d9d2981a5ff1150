"""Events: validation with precise errors, and the round trips through LDAP entries and JSON."""

from __future__ import annotations

import pytest

from gridinfo.directory.schema import default_schema
from gridinfo.errors import ResultCode
from gridinfo.vm.events import Event, EventError, event_from_entry, format_time, parse_time

BASE = "ou=events,mds-vo-name=local,o=grid"
T0 = 1714564800.0  # 2024-05-01 12:00:00 UTC


def test_round_trip_through_an_ldap_entry_and_json() -> None:
    """An event logged with ldapadd means the same as one logged with the API or replayed from disk."""
    e = Event.make("running", "Hypervisor", 12, T0 + 0.25, vm_id="vm,42", attributes={"physical_host": "n1", "tag.x": "a=b"})
    assert e.kind == "Running" and e.source == "hypervisor"
    assert event_from_entry(e.dn(BASE), e.to_attributes(), BASE) == e
    assert Event.from_json(e.to_json()) == e
    assert e.dn(BASE).startswith("GridinfoEventID=hypervisor:vm\\,42:-:12,")


def test_event_entries_obey_the_schema() -> None:
    """What gridinfo publishes about events passes its own schema check."""
    e = Event.make("Relate", "batch", 1, T0, vm_id="vm1", job_id="job1")
    assert default_schema().check_entry(dict(e.to_attributes())) == []


def test_times_are_utc_generalized_times() -> None:
    """Event times read and write as LDAP generalized times, to the millisecond."""
    assert format_time(T0) == "20240501120000Z"
    assert format_time(T0 + 0.5) == "20240501120000.500Z"
    assert parse_time("20240501140000+0200") == T0
    with pytest.raises(EventError, match="GridinfoEventTime"):
        parse_time("yesterday")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "Explode"}, "GridinfoEventType: 'Explode' is not one of"),
        ({"source": "cron"}, "GridinfoEventSource: 'cron' is not one of"),
        ({"seq": -1}, "GridinfoEventSeq"),
        ({"kind": "ReallyRunning", "source": "cloud"}, "source 'cloud' does not send 'ReallyRunning'"),
        ({"vm_id": None}, "needs a GridinfoVMID or a GridinfoJobID"),
        ({"job_id": "j1"}, "names a VM or a job, not both"),
        ({"kind": "Relate", "source": "batch"}, "Relate names both"),
        ({"attributes": {"colour": "red"}}, "unknown key 'colour'"),
        ({"attributes": {"tag.x": "a\nb"}}, "newline"),
        ({"attributes": {"sources": "cloud"}}, "only allowed on Register"),
        ({"kind": "Register", "attributes": {"sources": "cloud,cron"}}, "'cron' is not one of"),
        ({"vm_id": " vm"}, "leading/trailing spaces"),
        ({"kind": "Migrate"}, "a Migrate names the host the VM moves to"),  # where to is the point of it
        ({"kind": "Stop", "source": "hypervisor"}, "source 'hypervisor' does not send 'Stop'"),  # the cloud's word
        ({"kind": "Suspend", "source": "vm"}, "source 'vm' does not send 'Suspend'"),
    ],
)
def test_bad_events_are_refused_with_a_precise_message(kwargs: dict, message: str) -> None:
    """A client learns exactly which field of its event is wrong."""
    args = {"kind": "Running", "source": "cloud", "seq": 1, "time": T0, "vm_id": "vm1", "job_id": None,
            "attributes": {}}
    args.update(kwargs)
    with pytest.raises(EventError, match=message) as info:
        Event.make(args.pop("kind"), args.pop("source"), args.pop("seq"), args.pop("time"), **args)
    assert info.value.code == ResultCode.CONSTRAINT_VIOLATION


def test_job_events_come_from_the_batch_system() -> None:
    """Jobs have their own life cycle, logged by the batch system."""
    assert Event.make("Register", "batch", 1, T0, job_id="j1").job_id == "j1"
    with pytest.raises(EventError, match="job events come from source 'batch'"):
        Event.make("Register", "cloud", 1, T0, job_id="j1")
    with pytest.raises(EventError, match="source 'batch' logs job events"):
        Event.make("Running", "batch", 1, T0, vm_id="vm1")


def test_entries_that_are_not_events_are_refused() -> None:
    """ldapadd of a wrong entry below the events subtree says what is wrong and where."""
    good = Event.make("Running", "cloud", 1, T0, vm_id="vm1").to_attributes()
    with pytest.raises(EventError, match="starts with GridinfoEventID") as info:
        event_from_entry("cn=x," + BASE, good)
    assert info.value.code == ResultCode.NAMING_VIOLATION
    with pytest.raises(EventError, match="not part of an event") as info:
        event_from_entry("GridinfoEventID=x," + BASE, good + [("cn", [b"x"])])
    assert info.value.code == ResultCode.OBJECT_CLASS_VIOLATION
    without_seq = [a for a in good if a[0] != "GridinfoEventSeq"]
    with pytest.raises(EventError, match="GridinfoEventSeq: required"):
        event_from_entry("GridinfoEventID=x," + BASE, without_seq)
    twice = good + [("GridinfoEventType", [b"Done"])]
    with pytest.raises(EventError, match="GridinfoEventType: single-valued"):
        event_from_entry("GridinfoEventID=x," + BASE, twice)
    bad_pair = good + [("GridinfoEventAttribute", [b"novalue"])]
    with pytest.raises(EventError, match="is not key=value"):
        event_from_entry("GridinfoEventID=x," + BASE, bad_pair)
