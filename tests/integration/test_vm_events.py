"""VM and job events through a real ``gris`` process: ldapadd, the API, the spool, kill -9, libvirt."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gridinfo.directory.ldif import parse_ldif
from gridinfo.vm.client import Spool, deliver, log_event
from gridinfo.vm.events import Event
from tests.support.gris import GrisProcess
from tests.support.ports import LOOPBACK, free_port

SUFFIX = "mds-vo-name=local,o=grid"
EVENTS = f"ou=events,{SUFFIX}"
T0 = 1714564800.0
PASSWORDS = {"cn=cloud,o=grid": "cloudpw", "cn=hv,o=grid": "hvpw", "cn=vm,o=grid": "vmpw",
             "cn=batch,o=grid": "batchpw", "cn=alice,o=grid": "alicepw"}
SOURCES = {"cn=cloud,o=grid": "cloud", "cn=hv,o=grid": "hypervisor", "cn=vm,o=grid": "vm", "cn=batch,o=grid": "batch"}
DN_OF = {v: k for k, v in SOURCES.items()}



def write_config(folder: Path, *, retention: int = 3600) -> Path:
    lines = ["credentials:"]
    lines += [f'  "{dn}": {pw}' for dn, pw in PASSWORDS.items()]
    lines += ["limits:", "  max_outstanding_ops: 1024", "vm:", "  enabled: true", "  journal: journal.sqlite",
              f"  retention: {retention}", "  sources:"]
    lines += [f'    "{dn}": {source}' for dn, source in SOURCES.items()]
    lines += ["  owners:", '    "cn=alice,o=grid": alice']
    path = folder / "gris.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def ldapsearch(url: str, base: str, filter_text: str, *attrs: str) -> list[dict[str, list[str]]]:
    out = subprocess.run(["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", url, "-b", base, filter_text, *attrs],
                         capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    rows = []
    for rec in parse_ldif(out.stdout):
        row = {name.lower(): [v.decode() for v in values] for name, values in rec.attributes}
        row["dn"] = [rec.dn]
        rows.append(row)
    return rows


def ldapadd(url: str, bind_dn: str, event: Event) -> subprocess.CompletedProcess[str]:
    lines = [f"dn: {event.dn(EVENTS)}"]
    for name, values in event.to_attributes():
        lines += [f"{name}: {v.decode()}" for v in values]
    return subprocess.run(["ldapadd", "-x", "-H", url, "-D", bind_dn, "-w", PASSWORDS[bind_dn]],
                          input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=30)


def api(url: str, spool: Path, kind: str, source: str, seq: int, t: float, **kw: object) -> object:
    bind_dn = kw.pop("bind_dn", DN_OF[source])
    return log_event(kind, source=source, seq=seq, time=T0 + t, server=url, bind_dn=bind_dn,
                     password=PASSWORDS[bind_dn], spool=spool, timeout=5, **kw)


@pytest.fixture
def gris(tmp_path: Path):
    with GrisProcess(["--config", str(write_config(tmp_path))]) as g:
        yield g


def test_a_life_cycle_logged_out_of_order_by_three_sources(gris: GrisProcess, tmp_path: Path) -> None:
    """ldapsearch shows the VM's right state and history, whatever order the sources' events came in."""
    spool = tmp_path / "spool.sqlite"
    assert ldapadd(gris.url, "cn=hv,o=grid", Event.make("Running", "hypervisor", 1, T0 + 20, vm_id="vm-42",
                                                         attributes={"physical_host": "node7"})).returncode == 0
    api(gris.url, spool, "ReallyRunning", "vm", 1, 30, vm_id="vm-42", attributes={"hostname": "vm42.example.org"})
    api(gris.url, spool, "Register", "cloud", 1, 0, vm_id="vm-42", attributes={"owner": "alice"})
    api(gris.url, spool, "Done", "cloud", 3, 60, vm_id="vm-42")
    report = api(gris.url, spool, "Running", "cloud", 2, 21, vm_id="vm-42")  # late, Create lost
    assert report.complete and report.delivered == 1
    [vm] = ldapsearch(gris.url, SUFFIX, "(&(objectClass=GridinfoVM)(GridinfoVMID=vm-42))")
    assert vm["dn"] == [f"GridinfoVMID=vm-42,GridinfoHypervisorID=node7,{SUFFIX}"]
    assert vm["gridinfovmstate"] == ["Done"] and vm["gridinfovmowner"] == ["alice"]
    assert vm["gridinfovmhostname"] == ["vm42.example.org"]
    assert vm["gridinfovmstatetime"] == ["Registered=20240501120000Z", "Running=20240501120020Z",
                                         "ReallyRunning=20240501120030Z", "Done=20240501120100Z"]
    assert sorted(vm["gridinfovmsources"]) == ["cloud", "hypervisor", "vm"]
    history = ldapsearch(gris.url, EVENTS, "(GridinfoVMID=vm-42)", "GridinfoEventType")
    assert len(history) == 5


def test_ldapadd_as_the_wrong_source_or_owner_is_refused_with_the_reason(gris: GrisProcess) -> None:
    """ldapadd as the wrong source or owner gets insufficientAccessRights with the reason."""
    assert ldapadd(gris.url, "cn=cloud,o=grid", Event.make("Register", "cloud", 1, T0, vm_id="vm-1",
                                                            attributes={"owner": "bob"})).returncode == 0
    wrong_source = ldapadd(gris.url, "cn=hv,o=grid", Event.make("Running", "cloud", 2, T0, vm_id="vm-1"))
    assert wrong_source.returncode == 50 and "not as source 'cloud'" in wrong_source.stderr
    not_owner = ldapadd(gris.url, "cn=alice,o=grid", Event.make("ReallyRunning", "vm", 1, T0, vm_id="vm-1"))
    assert not_owner.returncode == 50 and "belongs to 'bob', not 'alice'" in not_owner.stderr
    bad = ldapadd(gris.url, "cn=cloud,o=grid", Event.make("Running", "cloud", 3, T0, vm_id="vm-1"))
    assert bad.returncode == 0
    [vm] = ldapsearch(gris.url, SUFFIX, "(objectClass=GridinfoVM)")
    assert vm["gridinfolifecycleevents"] == ["2"]


def test_an_event_that_contradicts_the_table_is_refused_with_the_reason_and_changes_nothing(gris: GrisProcess) -> None:
    """Resume of a Done VM: constraintViolation (19) with the reason; the VM and the journal stay as they were.

    A Migrate that does not say where to is refused the same way, for its content."""
    cloud = "cn=cloud,o=grid"
    assert ldapadd(gris.url, cloud, Event.make("Running", "cloud", 1, T0, vm_id="vm-d")).returncode == 0
    assert ldapadd(gris.url, cloud, Event.make("Done", "cloud", 2, T0 + 10, vm_id="vm-d")).returncode == 0
    [before] = ldapsearch(gris.url, SUFFIX, "(&(objectClass=GridinfoVM)(GridinfoVMID=vm-d))")
    resume = ldapadd(gris.url, cloud, Event.make("Resume", "cloud", 3, T0 + 20, vm_id="vm-d"))
    assert resume.returncode == 19, resume.stderr
    assert "is Done since 20240501120010Z; a Resume at 20240501120020Z cannot follow a final state" in resume.stderr
    [after] = ldapsearch(gris.url, SUFFIX, "(&(objectClass=GridinfoVM)(GridinfoVMID=vm-d))")
    assert after == before
    assert len(ldapsearch(gris.url, EVENTS, "(GridinfoVMID=vm-d)", "GridinfoEventID")) == 2
    lines = [f"dn: GridinfoEventID=cloud:vm-d:-:4,{EVENTS}", "objectClass: GridinfoEvent", "GridinfoEventID: cloud:vm-d:-:4",
             "GridinfoEventType: Migrate", "GridinfoEventSource: cloud", "GridinfoEventSeq: 4",
             "GridinfoEventTime: 20240501120005Z", "GridinfoVMID: vm-d"]
    nowhere = subprocess.run(["ldapadd", "-x", "-H", gris.url, "-D", cloud, "-w", PASSWORDS[cloud]],
                             input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=30)
    assert nowhere.returncode == 19 and "a Migrate names the host the VM moves to" in nowhere.stderr


def test_jobs_and_vms_relate_both_ways(gris: GrisProcess, tmp_path: Path) -> None:
    """'Which jobs ran in VM X' and 'which VM does job Y run in' are plain ldapsearch queries."""
    spool = tmp_path / "spool.sqlite"
    for i, vm in enumerate(["vm-a", "vm-b"]):
        api(gris.url, spool, "Running", "hypervisor", 1, i, vm_id=vm, attributes={"physical_host": "h1"})
    api(gris.url, spool, "Relate", "batch", 1, 10, vm_id="vm-a", job_id="job-1")
    api(gris.url, spool, "Unrelate", "batch", 2, 20, vm_id="vm-a", job_id="job-1")
    api(gris.url, spool, "Relate", "batch", 3, 21, vm_id="vm-b", job_id="job-1")
    api(gris.url, spool, "Relate", "batch", 4, 22, vm_id="vm-a", job_id="job-2")
    api(gris.url, spool, "Running", "batch", 5, 23, job_id="job-2", attributes={"owner": "carol"})
    ran_in_a = ldapsearch(gris.url, SUFFIX, "(&(objectClass=GridinfoJobVMRelation)(GridinfoVMID=vm-a))", "GridinfoJobID")
    assert sorted(r["gridinfojobid"][0] for r in ran_in_a) == ["job-1", "job-2"]
    where = ldapsearch(gris.url, SUFFIX, "(&(objectClass=GridinfoJobVMRelation)(GridinfoJobID=job-1)"
                                         "(GridinfoRelationActive=TRUE))", "GridinfoVMID")
    assert [r["gridinfovmid"] for r in where] == [["vm-b"]]
    [vm_a] = ldapsearch(gris.url, SUFFIX, "(&(objectClass=GridinfoVM)(GridinfoVMID=vm-a))", "GridinfoVMJob")
    assert vm_a["gridinfovmjob"] == ["job-1", "job-2"]
    [job2] = ldapsearch(gris.url, f"ou=jobs,{SUFFIX}", "(GridinfoJobID=job-2)")
    assert job2["gridinfojobvm"] == ["vm-a"] and job2["gridinfojobstate"] == ["Running"]
    running_on_h1 = ldapsearch(gris.url, f"GridinfoHypervisorID=h1,{SUFFIX}",
                               "(&(objectClass=GridinfoVM)(GridinfoJobGenericState=Running))", "GridinfoVMID")
    assert len(running_on_h1) == 2
    both = ldapsearch(gris.url, SUFFIX, "(GridinfoJobGenericState=Running)", "objectClass")
    assert {r["objectclass"][0] for r in both} == {"GridinfoVM", "GridinfoJob"}  # VMs and jobs alike


def test_the_lb_style_queries_of_the_docs_answer_with_ldapsearch_and_ldap3(gris: GrisProcess, tmp_path: Path) -> None:
    """docs/vm.md's questions, as written there: jobs that ran in VM X (active and past), VMs of
    owner Y, VMs on physical host H (now), VMs by generic state; ldapsearch and ldap3 agree."""
    import ldap3

    spool = tmp_path / "spool.sqlite"
    api(gris.url, spool, "Register", "cloud", 1, 0, vm_id="vm-x", attributes={"owner": "alice"})
    api(gris.url, spool, "Running", "cloud", 2, 1, vm_id="vm-x", attributes={"physical_host": "h1"})
    api(gris.url, spool, "Migrate", "cloud", 3, 5, vm_id="vm-x", attributes={"physical_host": "h2"})
    api(gris.url, spool, "Running", "hypervisor", 1, 6, vm_id="vm-x", attributes={"physical_host": "h2"})
    api(gris.url, spool, "Register", "cloud", 1, 0, vm_id="vm-y", attributes={"owner": "alice"})
    api(gris.url, spool, "Running", "cloud", 2, 1, vm_id="vm-y", attributes={"physical_host": "h1"})
    api(gris.url, spool, "Suspend", "cloud", 3, 2, vm_id="vm-y")
    api(gris.url, spool, "Relate", "batch", 1, 2, vm_id="vm-x", job_id="job-1")
    api(gris.url, spool, "Unrelate", "batch", 2, 3, vm_id="vm-x", job_id="job-1")
    api(gris.url, spool, "Relate", "batch", 3, 7, vm_id="vm-x", job_id="job-2")
    questions = {
        "(&(objectClass=GridinfoJobVMRelation)(GridinfoVMID=vm-x))": ("GridinfoJobID", ["job-1", "job-2"]),
        "(&(objectClass=GridinfoVM)(GridinfoVMOwner=alice))": ("GridinfoVMID", ["vm-x", "vm-y"]),
        "(&(objectClass=GridinfoVM)(GridinfoVMPhysicalHost=h1))": ("GridinfoVMID", ["vm-y"]),  # vm-x moved on
        "(&(objectClass=GridinfoVM)(GridinfoJobGenericState=Waiting))": ("GridinfoVMID", ["vm-y"]),
    }
    conn = ldap3.Connection(ldap3.Server(LOOPBACK, port=gris.port, get_info=ldap3.NONE), auto_bind=True)
    for text, (attr, expected) in questions.items():
        by_ldapsearch = sorted(r[attr.lower()][0] for r in ldapsearch(gris.url, SUFFIX, text, attr))
        assert by_ldapsearch == expected, text
        conn.search(SUFFIX, text, attributes=[attr])
        assert sorted(str(e[attr]) for e in conn.entries) == expected, text
    conn.unbind()


def test_the_spool_keeps_events_while_the_gris_is_down_and_delivers_them_in_order(tmp_path: Path) -> None:
    """Events logged while the GRIS is away are kept on disk and reach it, in order, when it is back."""
    spool = tmp_path / "spool.sqlite"
    dead = f"ldap://{LOOPBACK}:{free_port()}"
    for seq, kind in enumerate(["Register", "Create", "Running", "Shutdown", "Done"], start=1):
        report = api(dead, spool, kind, "cloud", seq, seq, vm_id="vm-s")
        assert report.error is not None and report.pending == seq
    with GrisProcess(["--config", str(write_config(tmp_path))]) as gris:
        report = api(gris.url, spool, "HostDetail", "cloud", 6, 0.5, vm_id="vm-s", attributes={"physical_host": "h9"})
        assert report.complete and report.delivered == 6
        [vm] = ldapsearch(gris.url, SUFFIX, "(objectClass=GridinfoVM)")
        assert vm["gridinfovmstate"] == ["Done"] and vm["gridinfolifecycleevents"] == ["6"]
    rows = sqlite3.connect(tmp_path / "journal.sqlite").execute("SELECT seq FROM events ORDER BY id").fetchall()
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5, 6]  # the order they were logged in


def test_the_command_spools_and_flushes(tmp_path: Path) -> None:
    """gridinfo-log-event exits 0 when the event is safe in the spool; --flush delivers it later."""
    import os
    import sys

    from tests.support.gris import REPO

    spool = tmp_path / "spool.sqlite"
    pw = tmp_path / "pw"
    pw.write_text("hvpw\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    base = [sys.executable, "-m", "gridinfo.cli.log_event", "--bind-dn", "cn=hv,o=grid", "--password-file", str(pw),
            "--spool", str(spool)]
    dead = f"ldap://{LOOPBACK}:{free_port()}"
    out = subprocess.run(base + ["Running", "--source", "hypervisor", "--vm", "vm-c", "--server", dead,
                                 "--attr", "physical_host=h3"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0 and "1 event(s) kept in the spool" in out.stderr
    with GrisProcess(["--config", str(write_config(tmp_path))]) as gris:
        out = subprocess.run(base + ["--flush", "--server", gris.url], capture_output=True, text=True, env=env, timeout=60)
        assert out.returncode == 0, out.stderr
        [vm] = ldapsearch(gris.url, SUFFIX, "(objectClass=GridinfoVM)")
        assert vm["gridinfovmstate"] == ["Running"] and vm["gridinfovmphysicalhost"] == ["h3"]
    assert Spool(spool).count() == 0


@contextlib.contextmanager
def killed_mid_stream_then_resent(config: Path, events: list[Event], tmp_path: Path) -> Iterator[tuple[GrisProcess, Any]]:
    """Pipeline every event's add to a gris, kill -9 it after 100 answers, start it again and check
    that every acknowledged event is there; then re-send everything from a spool.  Yields the
    restarted gris and the spool's delivery report."""
    import ldap3

    gris = GrisProcess(["--config", str(config)])
    gris.start()
    try:
        conn = ldap3.Connection(ldap3.Server(LOOPBACK, port=gris.port, get_info=ldap3.NONE),
                                "cn=cloud,o=grid", "cloudpw", client_strategy=ldap3.ASYNC, auto_bind=True)
        ids = [conn.add(e.dn(EVENTS), attributes=dict(e.to_attributes())) for e in events]  # pipelined
        acknowledged = []
        for msg_id, event in zip(ids[:100], events):
            _, result = conn.get_response(msg_id, timeout=30)
            assert result["result"] == 0, result
            acknowledged.append(event)
        gris.proc.send_signal(signal.SIGKILL)  # mid-stream: the other adds are in flight
        gris.proc.wait(30)
    finally:
        gris.stop()
    with GrisProcess(["--config", str(config)]) as again:
        present = {r["gridinfoeventid"][0] for r in ldapsearch(again.url, EVENTS, "(objectClass=GridinfoEvent)",
                                                               "GridinfoEventID")}
        assert {e.event_id for e in acknowledged} <= present
        spool = Spool(tmp_path / "spool.sqlite")
        for e in events:
            spool.put(e)
        yield again, deliver(spool, server=again.url, bind_dn="cn=cloud,o=grid", password="cloudpw", timeout=10)


def test_kill_9_during_a_stream_of_events_loses_nothing(tmp_path: Path) -> None:
    """Every acknowledged event survives kill -9; with the spool re-sending, every event arrives once."""
    config = write_config(tmp_path)
    total = 400
    events = [Event.make("HostDetail", "cloud", seq, T0 + seq, vm_id=f"vm-{seq % 7}",
                         attributes={"tag.n": str(seq)}) for seq in range(1, total + 1)]
    with killed_mid_stream_then_resent(config, events, tmp_path) as (again, report):
        assert report.complete and report.delivered == total
        present = ldapsearch(again.url, EVENTS, "(objectClass=GridinfoEvent)", "GridinfoEventID")
        assert len(present) == total
        counts = ldapsearch(again.url, SUFFIX, "(objectClass=GridinfoVM)", "GridinfoLifecycleEvents")
        assert sum(int(r["gridinfolifecycleevents"][0]) for r in counts) == total
    assert sqlite3.connect(tmp_path / "journal.sqlite").execute("SELECT COUNT(*) FROM events").fetchone()[0] == total


def test_kill_9_during_a_stream_of_cycle_events_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """Suspend/Resume/PowerOff/PowerOn/Reboot/Migrate streams for 8 VMs, pipelined; kill -9 after
    100 answers: every acknowledged event is there after the restart, and once the spool re-sends
    everything each VM shows the state, runs and host its events give in order."""
    from gridinfo.vm.lifecycle import Lifecycle

    config = write_config(tmp_path)
    cycle = [("Suspend", {}), ("Resume", {}), ("PowerOff", {}), ("PowerOn", {}), ("Reboot", {}),
             ("Migrate", {"physical_host": "h{n}"}), ("Running", {"physical_host": "h{n}"})]
    events = []
    for step in range(50):
        for vm in range(8):
            seq = step + 1
            kind, attrs = ("Running", {"physical_host": "h0"}) if step == 0 else cycle[(step - 1 + vm) % len(cycle)]
            events.append(Event.make(kind, "cloud", seq, T0 + seq, vm_id=f"vm-{vm}",
                                     attributes={k: v.format(n=step) for k, v in attrs.items()}))
    with killed_mid_stream_then_resent(config, events, tmp_path) as (again, report):
        assert report.complete and report.delivered == len(events) and not report.rejected
        published = {r["gridinfovmid"][0]: r for r in ldapsearch(again.url, SUFFIX, "(objectClass=GridinfoVM)")}
        for vm in range(8):
            life = Lifecycle("vm", f"vm-{vm}")
            for i, e in enumerate(e for e in events if e.vm_id == f"vm-{vm}"):
                life.apply(e, float(i))
            row = published[f"vm-{vm}"]
            assert (row["gridinfovmstate"], row["gridinfovmruncount"], row["gridinfovmphysicalhost"],
                    row["gridinfolifecycleevents"]) == ([life.state], [str(len(life.runs))],
                                                        [life.fact("physical_host")], ["50"]), vm


def test_a_libvirt_test_domain_changing_state_is_followed(gris: GrisProcess, tmp_path: Path) -> None:
    """A domain on libvirt's test:/// driver starts and stops; the VM entry follows it."""
    libvirt = __import__("libvirt")
    from gridinfo.providers_lib.hypervisor import read_libvirt
    from gridinfo.vm.observe import HypervisorObserver

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    conn = libvirt.open("test:///default")
    xml = ("<domain type='test'><name>gridinfo-e2e</name><memory>65536</memory><vcpu>1</vcpu>"
           "<os><type>hvm</type></os></domain>")
    dom = conn.defineXML(xml)
    spool = tmp_path / "spool.sqlite"
    try:
        hv = read_libvirt("test:///default")
        observer = HypervisorObserver(hv.hostname)

        def observe(now: float) -> None:
            for event in observer.observe(read_libvirt("test:///default").domains, now):
                report = log_event(event.kind, source="hypervisor", vm_id=event.vm_id, seq=event.seq, time=event.time,
                                   attributes=dict(event.attributes), server=gris.url, bind_dn="cn=hv,o=grid",
                                   password="hvpw", spool=spool, timeout=5)
                assert report.complete, report.error

        dom.create()
        observe(T0)
        uuid = dom.UUIDString()
        [vm] = ldapsearch(gris.url, SUFFIX, f"(&(objectClass=GridinfoVM)(GridinfoVMID={uuid}))")
        assert vm["gridinfovmstate"] == ["Running"] and vm["gridinfovmname"] == ["gridinfo-e2e"]
        assert vm["dn"][0].endswith(f"GridinfoHypervisorID={hv.hostname},{SUFFIX}")
        dom.destroy()
        observe(T0 + 10)
        [vm] = ldapsearch(gris.url, SUFFIX, f"(&(objectClass=GridinfoVM)(GridinfoVMID={uuid}))")
        assert vm["gridinfovmstate"] == ["ShutDown"] and vm["gridinfojobgenericstate"] == ["Done"]
        assert vm["gridinfovmstatetime"] == ["Running=20240501120000Z", "ShutDown=20240501120010Z"]
    finally:
        if dom.isActive():
            dom.destroy()
        dom.undefine()


def test_an_event_refused_for_good_does_not_block_the_spool(gris: GrisProcess, tmp_path: Path) -> None:
    """A refused event is set aside with its reason; the events behind it are still delivered."""
    spool_path = tmp_path / "spool.sqlite"
    api(gris.url, spool_path, "Register", "cloud", 1, 0, vm_id="vm-r", attributes={"sources": "hypervisor"})
    spool = Spool(spool_path)
    spool.put(Event.make("Running", "cloud", 2, T0 + 1, vm_id="vm-r"))  # vm-r only hears the hypervisor
    spool.put(Event.make("Running", "cloud", 1, T0 + 1, vm_id="vm-ok"))
    report = deliver(spool, server=gris.url, bind_dn="cn=cloud,o=grid", password="cloudpw")
    assert report.complete and report.delivered == 1
    [(event, code, reason)] = report.rejected
    assert event.vm_id == "vm-r" and code == 50 and "accepts events from hypervisor only" in reason
    assert [(e.vm_id, c) for e, c, _ in spool.rejected()] == [("vm-r", 50)]
    [ok] = ldapsearch(gris.url, SUFFIX, "(&(objectClass=GridinfoVM)(GridinfoVMID=vm-ok))")
    assert ok["gridinfovmstate"] == ["Running"]


def test_the_spool_numbers_events_in_increasing_order(tmp_path: Path) -> None:
    """Events logged without a number get increasing ones, per source and VM, even after the spool is lost."""
    spool = Spool(tmp_path / "spool.sqlite")
    a = spool.next_seq("cloud", "vm1", None, T0)
    b = spool.next_seq("cloud", "vm1", None, T0)
    assert b == a + 1 and a == int(T0 * 1000)
    fresh = Spool(tmp_path / "other.sqlite")
    assert fresh.next_seq("cloud", "vm1", None, T0 + 1) > b
