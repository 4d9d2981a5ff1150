"""The hypervisor provider's runs feed the VM state machine as ``hypervisor`` events.

A provider marked ``feeds: vm`` runs under the provider manager (scripted runs, test clock); its
output is the real hypervisor provider's LDIF (``hypervisor_entries``) for domains the test
chooses.  The event sink is real, on a real SQLite journal.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet import defer, task

from gridinfo.config import GRISConfig, ProviderConfig, VMConfig
from gridinfo.errors import ConfigError, InsufficientAccessRights
from gridinfo.gris.providers import ProviderManager
from gridinfo.gris.softstate import ProviderDefinition, RunOutput
from gridinfo.providers_lib.hypervisor import Domain, Hypervisor, hypervisor_entries
from gridinfo.providers_lib.output import format_entries
from gridinfo.service import make_gris_service, make_gris_tree
from gridinfo.vm.acl import AccessPolicy
from gridinfo.vm.backend import EventSink
from gridinfo.vm.events import Event
from gridinfo.vm.feed import HypervisorFeed
from gridinfo.vm.journal import Journal
from tests.vm.support import CLOUD, OWNERS, SOURCES, SUFFIX, T0, log, make_sink, search, vm_event

HOST = "node7"
U1, U2, U3 = "6695eb01-0000-0000-0000-000000000001", "6695eb01-0000-0000-0000-000000000002", "6695eb01-0000-0000-0000-000000000003"
NAMES = {U1: "web01", U2: "batch02", U3: "spare03"}
STATES = {"Running": "Running", "Paused": "Waiting", "ShutDown": "Done", "Crashed": "Aborted"}


def snapshot(**states: str) -> bytes:
    """The hypervisor provider's LDIF for domains in the given states (``u1="Running"``...)."""
    domains = [
        Domain(name=NAMES[uuid], uuid=uuid, vm_state=state, generic_state=STATES[state], native_state="1",
               vcpus=2, memory_mb=1024, domid=1 if state == "Running" else None)
        for uuid, state in ((globals()[k.upper()], v) for k, v in states.items())
    ]
    hv = Hypervisor(hostname=HOST, type="TEST", version="9.0.0", uri="test:///default", cpus=8,
                    memory_total_mb=16384, memory_free_mb=8192, domains=domains)
    return format_entries(hypervisor_entries(hv, SUFFIX)).encode()


class Runner:
    """Stands in for the process runner: the test ends each run with what the provider printed."""

    def __init__(self, clock: task.Clock):
        self.clock = clock
        self.runs: list[defer.Deferred[RunOutput]] = []

    def run(self, definition: ProviderDefinition) -> defer.Deferred[RunOutput]:
        d: defer.Deferred[RunOutput] = defer.Deferred()
        self.runs.append(d)
        return d

    def finish(self, stdout: bytes) -> None:
        now = self.clock.seconds()
        self.runs[-1].callback(RunOutput(stdout=stdout, exit_code=0, started=now, ended=now))


class Site:
    """A GRIS tree with an event sink (journal in ``folder``) and a ``feeds: vm`` hypervisor provider."""

    def __init__(self, folder: Path, clock: task.Clock):
        self.clock = clock
        providers = folder / "providers"
        providers.mkdir(exist_ok=True)
        script = providers / "hypervisor"
        script.write_text("#!/bin/sh\n")
        script.chmod(0o755)
        self.config = GRISConfig(
            providers=(str(providers),),
            provider={"hypervisor": ProviderConfig(ttl=60.0, feeds="vm")},
            sweep_interval=0,
            rescan_interval=0,
            vm=VMConfig(enabled=True, journal=str(folder / "journal.sqlite")),
        )
        self.tree = make_gris_tree(self.config)
        self.sink = EventSink(self.tree, SUFFIX, Journal(self.config.vm.journal), AccessPolicy(SOURCES, OWNERS),
                              clock=clock.seconds)
        self.sink.load()
        self.runner = Runner(clock)
        self.manager = ProviderManager(self.tree, self.config, clock, runner=self.runner,
                                       vm_feed=HypervisorFeed(self.sink))
        self.manager.startService()

    def provider_sees(self, stdout: bytes) -> None:
        assert self.manager.refresh("hypervisor")
        self.runner.finish(stdout)

    def vm(self, uuid: str) -> dict[str, list[str]]:
        [row] = search(self.sink, f"(&(objectClass=GridinfoVM)(GridinfoVMID={uuid}))")
        return row

    def close(self) -> None:
        self.manager.stopService()
        self.sink.journal.close()


@pytest.fixture
def clock() -> task.Clock:
    c = task.Clock()
    c.advance(T0 + 100)
    return c


def test_accept_journals_observed_events_without_a_bind(tmp_path: Path) -> None:
    """The GRIS's own observations need no bind DN, are on disk at once, and count once."""
    sink = make_sink(tmp_path / "j.sqlite")
    running = Event.make("Running", "hypervisor", 5, T0, vm_id="vm1", attributes={"physical_host": HOST})
    assert sink.accept([running]) == [None]
    assert sink.accept([running]) == [None]  # the same observation again: a no-op
    assert sink.journal.count() == 1 and sink.duplicates == 1
    assert search(sink, "(&(objectClass=GridinfoVM)(GridinfoVMID=vm1))")[0]["gridinfovmstate"] == ["Running"]
    sink.journal.close()
    again = make_sink(tmp_path / "j.sqlite")
    assert again.store.vms["vm1"].state == "Running"


def test_accept_still_honours_the_sources_a_registration_named(tmp_path: Path) -> None:
    """A VM registered to hear the cloud only does not take the hypervisor's observations either."""
    sink = make_sink(tmp_path / "j.sqlite")
    log(sink, vm_event("Register", "cloud", 1, sources="cloud", owner="alice"), CLOUD)
    [refusal] = sink.accept([vm_event("Running", "hypervisor", 1, physical_host=HOST)])
    assert isinstance(refusal, InsufficientAccessRights) and "accepts events from cloud only" in refusal.message
    assert sink.journal.count() == 1 and sink.store.vms["vm1"].state == "Registered"


def test_a_running_domain_joins_what_the_cloud_said(tmp_path: Path, clock: task.Clock) -> None:
    """The VM entry at the provider's DN carries the cloud's and the hypervisor's view in one entry;
    the hypervisor entry and a domain nobody logged stay the provider's own entries."""
    site = Site(tmp_path, clock)
    log(site.sink, vm_event("Register", "cloud", 1, vm=U1, owner="alice"), CLOUD)
    log(site.sink, vm_event("Create", "cloud", 2, 1, vm=U1, physical_host=HOST), CLOUD)
    site.provider_sees(snapshot(u1="Running", u2="Paused"))
    vm = site.vm(U1)
    assert vm["dn"] == [f"GridinfoVMID={U1},GridinfoHypervisorID={HOST},{SUFFIX}"]
    assert vm["gridinfovmstate"] == ["Running"] and vm["gridinfovmsources"] == ["cloud", "hypervisor"]
    assert vm["gridinfovmowner"] == ["alice"] and vm["gridinfovmname"] == ["web01"]
    assert vm["gridinfovmvcpus"] == ["2"] and vm["gridinfovmmemory"] == ["1024"]  # the provider's measurements
    assert "gridinfoprovidername" not in vm  # the sink's entry, not soft state
    [hv] = search(site.sink, "(objectClass=GridinfoHypervisor)")
    assert hv["gridinfoprovidername"] == ["hypervisor"] and hv["gridinfohypervisortype"] == ["TEST"]
    paused = site.vm(U2)  # no event (paused proves nothing) and unknown to the sink: the provider's entry
    assert paused["gridinfovmstate"] == ["Paused"] and paused["gridinfoprovidername"] == ["hypervisor"]
    assert U2 not in site.sink.store.vms
    site.close()


def test_a_vm_whose_create_was_lost_shows_running_from_the_hypervisor_alone(tmp_path: Path, clock: task.Clock) -> None:
    """A domain the cloud manager never mentioned is Running, then ShutDown when it vanishes."""
    site = Site(tmp_path, clock)
    site.provider_sees(snapshot(u1="Running"))
    vm = site.vm(U1)
    assert vm["gridinfovmstate"] == ["Running"] and vm["gridinfovmsources"] == ["hypervisor"]
    assert vm["gridinfovmphysicalhost"] == [HOST]
    clock.advance(30)
    site.provider_sees(snapshot(u2="Paused"))  # u1 is gone from the hypervisor's list
    vm = site.vm(U1)
    assert vm["gridinfovmstate"] == ["ShutDown"] and vm["gridinfojobgenericstate"] == ["Done"]
    assert "gridinfovmvcpus" not in vm  # no measurements of a domain that is not there
    assert [e.kind for e in sorted(site.sink.store.events.values(), key=lambda e: e.seq)] == ["Running", "Shutdown"]
    site.close()


def test_a_steady_domain_logs_nothing_and_a_change_logs_one_event(tmp_path: Path, clock: task.Clock) -> None:
    """Runs that see the same states add nothing to the journal; a domain that starts is taken over
    from the provider by the sink at the same DN."""
    site = Site(tmp_path, clock)
    site.provider_sees(snapshot(u1="Running", u2="Paused"))
    for _ in range(3):
        clock.advance(60)
        site.provider_sees(snapshot(u1="Running", u2="Paused"))
    assert site.sink.journal.count() == 1
    clock.advance(60)
    site.provider_sees(snapshot(u1="Running", u2="Running"))
    assert site.sink.journal.count() == 2
    vm2 = site.vm(U2)
    assert vm2["gridinfovmstate"] == ["Running"] and "gridinfoprovidername" not in vm2
    assert vm2["dn"] == [f"GridinfoVMID={U2},GridinfoHypervisorID={HOST},{SUFFIX}"]
    site.close()


def test_after_a_restart_the_observer_takes_up_from_the_journal(tmp_path: Path, clock: task.Clock) -> None:
    """A restart neither re-logs a domain still running nor reuses a number, even if the clock
    stepped back; a domain that vanished while the GRIS was down logs its Shutdown."""
    site = Site(tmp_path, clock)
    site.provider_sees(snapshot(u1="Running", u2="Running"))
    [first_u1] = [e for e in site.sink.store.events.values() if e.vm_id == U1]
    site.close()
    clock.advance(-3600)  # the clock stepped back across the restart
    site = Site(tmp_path, clock)
    site.provider_sees(snapshot(u1="Running"))  # u1 steady, u2 gone meanwhile
    assert site.sink.journal.count() == 3
    assert site.vm(U1)["gridinfolifecycleevents"] == ["1"]
    assert site.vm(U2)["gridinfovmstate"] == ["ShutDown"]
    site.provider_sees(snapshot(u1="Crashed"))
    [failed] = [e for e in site.sink.store.events.values() if e.vm_id == U1 and e.kind == "Failed"]
    assert failed.seq > first_u1.seq  # numbers increase per VM across restarts
    assert site.vm(U1)["gridinfovmstate"] == ["Failed"]
    site.close()


def test_a_run_that_publishes_nothing_is_not_every_domain_vanishing(tmp_path: Path, clock: task.Clock) -> None:
    """When the provider finds no hypervisor (empty output) the VMs it saw keep their state."""
    site = Site(tmp_path, clock)
    site.provider_sees(snapshot(u1="Running"))
    site.provider_sees(b"")
    assert site.vm(U1)["gridinfovmstate"] == ["Running"] and site.sink.journal.count() == 1
    site.close()


def test_feeds_vm_needs_the_vm_section(tmp_path: Path, clock: task.Clock) -> None:
    """A provider set to feed VM events while the events are off is a config error at start."""
    config = GRISConfig(provider={"hypervisor": ProviderConfig(feeds="vm")})
    with pytest.raises(ConfigError, match="vm.enabled: true"):
        make_gris_service(config, clock)  # validate() refuses it before anything is built


def test_feeds_in_gris_yaml(tmp_path: Path) -> None:
    """`feeds: vm` is read from gris.yaml; any other value is refused with its line."""
    from gridinfo.config import load_config

    path = tmp_path / "gris.yaml"
    path.write_text("provider:\n  hypervisor:\n    feeds: vm\n")
    assert load_config(path, GRISConfig).provider["hypervisor"].feeds == "vm"
    path.write_text("provider:\n  hypervisor:\n    feeds: jobs\n")
    with pytest.raises(ConfigError, match="one of 'vm'"):
        load_config(path, GRISConfig)




# -- the batch provider ------------------------------------------------------------------------------


def batch_run(*jobs: tuple[str, str, list[str]]) -> list[tuple[str, list[tuple[str, list[bytes]]]]]:
    """The batch provider's entries (its real builder) for jobs (id, Slurm state, nodes) in partition debug."""
    from gridinfo.providers_lib.batch import SLURM_GENERIC, BatchConfig, Job, Partition, Queues, batch_entries
    from gridinfo.providers_lib.output import format_entries as fmt
    from gridinfo.directory.ldif import parse_ldif

    queues = Queues("23.02", {"debug": Partition("debug", "UP", 2)}, [
        Job(ident, ["debug"], "alice", state, SLURM_GENERIC[state], int(T0), int(T0) + 5 if nodes else None, 1, "None",
            nodes) for ident, state, nodes in jobs])
    ldif = fmt(batch_entries(queues, BatchConfig(ce_host="ce.example.org", cluster_id="c"), SUFFIX))
    return [(rec.dn, list(rec.attributes)) for rec in parse_ldif(ldif.encode())]


def test_the_batch_providers_jobs_become_batch_events_and_relate_to_the_vm_they_run_in(tmp_path: Path) -> None:
    """A job running on a node that is a known VM's host name is related to it, both ways; the
    sink publishes the job's one entry (its events from the provider and from LDAP adds merged),
    and the provider's entry for it is withheld."""
    sink = make_sink(tmp_path / "j.sqlite", allow_anonymous=True)
    log(sink, vm_event("Register", "cloud", 1, 0, vm="vm-x", owner="alice"), CLOUD)
    log(sink, vm_event("Running", "cloud", 2, 1, vm="vm-x", hostname="wn01.example.org"), CLOUD)
    log(sink, Event.make("HostDetail", "batch", 1, T0, job_id="101", attributes={"tag.vo": "atlas"}), "")
    feed = HypervisorFeed(sink)
    entries = batch_run(("101", "RUNNING", ["wn01"]), ("102", "PENDING", []))
    observation = feed.observe("batch", entries, T0 + 10)
    assert [(e.kind, e.job_id, e.vm_id) for e in observation.events] == [
        ("Register", "101", None), ("Create", "101", None), ("Running", "101", None), ("Relate", "101", "vm-x"),
        ("Register", "102", None), ("Create", "102", None)]
    assert {entries[i][0].split(",")[0] for i in observation.withheld} == {"GridinfoJobID=101", "GridinfoJobID=102"}
    assert feed.deliver(observation) == 6
    [job] = search(sink, "(&(objectClass=GridinfoJob)(GridinfoJobID=101))")
    assert job["dn"] == [f"GridinfoJobID=101,ou=jobs,{SUFFIX}"]  # one entry, LDAP-logged and observed alike
    assert job["gridinfojobstate"] == ["Running"] and job["gridinfojobvm"] == ["vm-x"]
    assert "tag.vo=atlas" in job["gridinfolifecycledetail"] and job["gridinfojobqueue"] == ["debug"]
    [vm] = search(sink, "(&(objectClass=GridinfoVM)(GridinfoVMID=vm-x))")
    assert vm["gridinfovmjob"] == ["101"]
    assert feed.observe("batch", entries, T0 + 20).events == []  # steady: nothing
    done = feed.observe("batch", batch_run(("101", "COMPLETED", ["wn01"])), T0 + 30)
    assert [(e.kind, e.job_id, e.vm_id) for e in done.events] == [("Done", "101", None), ("Unrelate", "101", "vm-x"),
                                                                  ("Done", "102", None)]  # 102 gone from the list
    feed.deliver(done)
    [rel] = search(sink, "(objectClass=GridinfoJobVMRelation)")
    assert rel["gridinforelationactive"] == ["FALSE"] and rel["gridinforelationsince"] == ["20240501120005Z"]
    again = HypervisorFeed(sink)  # after a restart: resumed from the journal, nothing new to say
    assert again.observe("batch", batch_run(("101", "COMPLETED", ["wn01"])), T0 + 40).events == []


def test_a_vm_seen_leaving_one_host_then_running_on_another_starts_a_new_run_there(tmp_path: Path) -> None:
    """The old host's observer saw the domain go before the new host's saw it run (no Migrate
    announced): the arrival is a PowerOn, so the VM runs again, on the new host, in a new run."""
    sink = make_sink(tmp_path / "j.sqlite")
    feed = HypervisorFeed(sink)

    def run(host: str, entries_of: list[tuple[str, str]], now: float) -> list[str]:
        domains = [Domain(name=NAMES[u], uuid=u, vm_state=st, generic_state=STATES[st], native_state="1")
                   for u, st in entries_of]
        hv = Hypervisor(hostname=host, type="TEST", version="9", uri="test:///default", cpus=1, memory_total_mb=1,
                        memory_free_mb=1, domains=domains)
        from gridinfo.directory.ldif import parse_ldif

        ldif = format_entries(hypervisor_entries(hv, SUFFIX)).encode()
        observation = feed.observe("hypervisor", [(r.dn, list(r.attributes)) for r in parse_ldif(ldif)], now)
        feed.deliver(observation)
        return [e.kind for e in observation.events]

    assert run("old", [(U1, "Running")], T0) == ["Running"]
    assert run("old", [], T0 + 10) == ["Shutdown"]
    assert sink.store.vms[U1].state == "ShutDown"
    assert run("new", [(U1, "Running")], T0 + 20) == ["PowerOn"]
    life = sink.store.vms[U1]
    assert (life.state, life.epoch, life.fact("physical_host")) == ("Running", 1, "new")
    assert run("new", [(U1, "Running")], T0 + 30) == []  # steady
