"""Who may log what: refusals carry insufficientAccessRights, a reason, and change nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridinfo.errors import InsufficientAccessRights, ResultCode
from gridinfo.vm.acl import AccessPolicy
from gridinfo.vm.events import Event
from tests.vm.support import ALICE, BATCH, CLOUD, HYPERVISOR, T0, VM, log, make_sink, search, vm_event


@pytest.mark.parametrize(
    ("event", "bind_dn", "message"),
    [
        (vm_event("Running", "cloud", 1), "", "anonymous clients may not log events"),
        (vm_event("Running", "cloud", 1), "cn=stranger,o=grid", "is not configured as an event source or owner"),
        (vm_event("Running", "cloud", 1), HYPERVISOR, "logs events as source 'hypervisor', not as source 'cloud'"),
        (vm_event("Running", "hypervisor", 1), ALICE, r"as owner 'alice' \(source 'vm' only\)"),
        (vm_event("ReallyRunning", "vm", 1), ALICE, "VM 'vm1' is not registered, so its owner is not known yet"),
    ],
)
def test_a_refused_client_learns_why_and_nothing_is_kept(tmp_path: Path, event: Event, bind_dn: str, message: str) -> None:
    """A client refused learns the reason; nothing is journalled or published."""
    sink = make_sink(tmp_path / "j.sqlite")
    with pytest.raises(InsufficientAccessRights, match=message) as info:
        log(sink, event, bind_dn)
    assert info.value.code == ResultCode.INSUFFICIENT_ACCESS_RIGHTS
    assert sink.journal.count() == 0 and search(sink, "(objectClass=GridinfoVM)") == []


def test_bind_dns_compare_without_case_or_spaces(tmp_path: Path) -> None:
    """The bind DN is matched the way LDAP compares DNs, not byte by byte."""
    sink = make_sink(tmp_path / "j.sqlite")
    log(sink, vm_event("Running", "cloud", 1), "CN=Cloud, O=Grid")


def test_the_registration_names_who_may_log(tmp_path: Path) -> None:
    """Register's owner and sources bind the VM: a later Register may not take it over."""
    sink = make_sink(tmp_path / "j.sqlite")
    log(sink, vm_event("Register", "cloud", 1, owner="alice", sources="cloud,hypervisor,vm"), CLOUD)
    with pytest.raises(InsufficientAccessRights, match="a new Register may not change its owner"):
        log(sink, vm_event("Register", "cloud", 2, owner="bob"), CLOUD)
    log(sink, vm_event("Register", "cloud", 3, owner="alice", sources="cloud,hypervisor,vm"), CLOUD)  # same: fine
    with pytest.raises(InsufficientAccessRights, match="not 'batch'"):
        log(sink, Event.make("Relate", "batch", 1, T0, vm_id="vm1", job_id="j1"), BATCH)
    log(sink, vm_event("ReallyRunning", "vm", 1), VM)  # the shared VM-image credential
    log(sink, vm_event("Shutdown", "vm", 2), ALICE)  # the owner
