"""The bundled hypervisor provider feeds a real ``gris``'s VM entries (libvirt's test driver).

The provider runs with ``ttl: 0``, so every search runs it and waits for the run: each
``ldapsearch`` below is one observation of the node file the provider's config names at that
moment.  Switching the config to another node file is a state change on the "hypervisor".
"""

from __future__ import annotations

import sys
from pathlib import Path


from gridinfo.vm.events import Event
from tests.integration.test_vm_events import PASSWORDS, SOURCES, SUFFIX, T0, ldapadd, ldapsearch
from tests.support.gris import REPO, GrisProcess


HOST = "node7"
KNOWN = "6695eb01-f6a4-8304-79aa-97f2502e1001"  # the cloud manager registers and creates it
ORPHAN = "6695eb01-f6a4-8304-79aa-97f2502e1002"  # the cloud manager's events about it were lost
IDLE = "6695eb01-f6a4-8304-79aa-97f2502e1003"  # paused, nobody logs it

_DOMAIN = """  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>{name}</name><uuid>{uuid}</uuid><memory>524288</memory><currentMemory>524288</currentMemory>
    <vcpu>1</vcpu><os><type>hvm</type></os><test:runstate>{state}</test:runstate>
  </domain>
"""


def node_file(path: Path, domains: list[tuple[str, str, int]]) -> Path:
    """A libvirt test-driver node with the given (name, uuid, virDomainState) domains."""
    body = "".join(_DOMAIN.format(name=n, uuid=u, state=s) for n, u, s in domains)
    path.write_text(f"<?xml version='1.0'?>\n<node>\n  <cpu><mhz>2400</mhz><model>i686</model><active>4</active>"
                    f"<nodes>1</nodes><sockets>1</sockets><cores>2</cores><threads>2</threads></cpu>\n"
                    f"  <memory>8388608</memory>\n{body}</node>\n")
    return path


def point_provider_at(config: Path, node: Path) -> None:
    config.write_text(f"backend: libvirt\nuri: 'test://{node}'\nhypervisor_id: {HOST}\n")


def write_gris_config(folder: Path, provider_config: Path) -> Path:
    providers = folder / "providers"
    providers.mkdir()
    wrapper = providers / "hypervisor"  # the bundled script, under this interpreter (it has libvirt)
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{REPO / "providers" / "hypervisor"}" "$@"\n')
    wrapper.chmod(0o755)
    lines = ["credentials:"] + [f'  "{dn}": {pw}' for dn, pw in PASSWORDS.items()]
    lines += [f"providers: [{providers}]", "rescan_interval: 0", "provider:", "  hypervisor:",
              "    feeds: vm", "    ttl: 0", "    timelimit: 30", f'    args: ["--config", "{provider_config}"]',
              "vm:", "  enabled: true", "  journal: journal.sqlite", "  sources:"]
    lines += [f'    "{dn}": {source}' for dn, source in SOURCES.items()]
    path = folder / "gris.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def vms(url: str) -> dict[str, dict[str, list[str]]]:
    return {r["gridinfovmid"][0]: r for r in ldapsearch(url, SUFFIX, "(objectClass=GridinfoVM)")}


def test_the_hypervisor_provider_feeds_the_vm_entries(tmp_path: Path) -> None:
    """A VM the cloud manager created shows Running with both sources once the hypervisor sees it;
    a domain the cloud never mentioned shows Running from the hypervisor alone; when the domains
    stop and crash the entries follow; a paused domain nobody logged stays the provider's entry."""
    __import__("libvirt")
    hv_config = tmp_path / "hypervisor.yaml"
    point_provider_at(hv_config, node_file(tmp_path / "node1.xml",
                                           [("web", KNOWN, 1), ("orphan", ORPHAN, 1), ("idle", IDLE, 3)]))
    config = write_gris_config(tmp_path, hv_config)
    with GrisProcess(["--config", str(config)]) as gris:
        cloud = "cn=cloud,o=grid"
        for event in (Event.make("Register", "cloud", 1, T0, vm_id=KNOWN, attributes={"owner": "alice"}),
                      Event.make("Create", "cloud", 2, T0 + 1, vm_id=KNOWN, attributes={"physical_host": HOST})):
            added = ldapadd(gris.url, cloud, event)
            assert added.returncode == 0, added.stderr
        seen = vms(gris.url)  # this search runs the provider: its first observation
        known = seen[KNOWN]
        assert known["dn"] == [f"GridinfoVMID={KNOWN},GridinfoHypervisorID={HOST},{SUFFIX}"]
        assert known["gridinfovmstate"] == ["Running"] and known["gridinfovmsources"] == ["cloud", "hypervisor"]
        assert known["gridinfovmowner"] == ["alice"] and known["gridinfovmname"] == ["web"]
        assert [t.split("=")[0] for t in known["gridinfovmstatetime"]] == ["Registered", "Created", "Running"]
        orphan = seen[ORPHAN]
        assert orphan["gridinfovmstate"] == ["Running"] and orphan["gridinfovmsources"] == ["hypervisor"]
        assert orphan["dn"] == [f"GridinfoVMID={ORPHAN},GridinfoHypervisorID={HOST},{SUFFIX}"]
        idle = seen[IDLE]
        assert idle["gridinfovmstate"] == ["Paused"] and idle["gridinfoprovidername"] == ["hypervisor"]
        assert len(ldapsearch(gris.url, SUFFIX, "(objectClass=GridinfoVM)")) == 3  # one entry per VM
        [hv] = ldapsearch(gris.url, SUFFIX, "(objectClass=GridinfoHypervisor)")
        assert hv["gridinfoprovidername"] == ["hypervisor"] and hv["gridinfohypervisortype"] == ["TEST"]
        history = ldapsearch(gris.url, f"ou=events,{SUFFIX}", f"(GridinfoVMID={KNOWN})", "GridinfoEventSource")
        assert sorted(r["gridinfoeventsource"][0] for r in history) == ["cloud", "cloud", "hypervisor"]

        # the hypervisor's state changes: web shut off, orphan crashed, idle undefined
        point_provider_at(hv_config, node_file(tmp_path / "node2.xml", [("web", KNOWN, 5), ("orphan", ORPHAN, 6)]))
        seen = vms(gris.url)
        assert seen[KNOWN]["gridinfovmstate"] == ["ShutDown"] and seen[KNOWN]["gridinfojobgenericstate"] == ["Done"]
        assert seen[ORPHAN]["gridinfovmstate"] == ["Failed"] and seen[ORPHAN]["gridinfojobgenericstate"] == ["Aborted"]
        assert IDLE not in seen  # the provider no longer lists it, and the sink never knew it
        seen_again = vms(gris.url)  # a steady hypervisor logs nothing more
        assert seen_again[KNOWN]["gridinfolifecycleevents"] == ["4"]
        assert seen_again[ORPHAN]["gridinfolifecycleevents"] == ["2"]
    # after a restart the journal has it all, and a steady hypervisor still logs nothing new
    with GrisProcess(["--config", str(config)]) as gris:
        seen = vms(gris.url)
        assert seen[KNOWN]["gridinfovmstate"] == ["ShutDown"] and seen[KNOWN]["gridinfolifecycleevents"] == ["4"]
        assert seen[ORPHAN]["gridinfovmstate"] == ["Failed"] and seen[ORPHAN]["gridinfolifecycleevents"] == ["2"]


def test_a_domain_suspended_resumed_destroyed_and_started_again_is_followed_run_by_run(tmp_path: Path) -> None:
    """libvirt's test driver suspends, resumes, destroys and starts a domain; after each step the
    provider (a separate process) reads the domain's state and the VM entry follows it, the restart
    after ShutDown included: one VM, one entry, a new run at each resume or start."""
    libvirt = __import__("libvirt")
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    conn = libvirt.open("test:///default")
    dom = conn.defineXML("<domain type='test'><name>cycler</name>"
                         f"<uuid>{KNOWN}</uuid><memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>")
    hv_config = tmp_path / "hypervisor.yaml"
    steps = iter(range(100))

    def seen_after_step() -> dict[str, list[str]]:
        """Hand the driver's state of the domain to the provider (its own process), and search."""
        node = node_file(tmp_path / f"node{next(steps)}.xml", [("cycler", KNOWN, dom.state()[0])])
        point_provider_at(hv_config, node)
        return vms(gris.url)[KNOWN]

    try:
        dom.create()
        point_provider_at(hv_config, node_file(tmp_path / "start.xml", [("cycler", KNOWN, dom.state()[0])]))
        config = write_gris_config(tmp_path, hv_config)
        with GrisProcess(["--config", str(config)]) as gris:
            vm = vms(gris.url)[KNOWN]
            assert (vm["gridinfovmstate"], vm["gridinfovmruncount"]) == (["Running"], ["1"])
            dom.suspend()
            vm = seen_after_step()
            assert (vm["gridinfovmstate"], vm["gridinfojobgenericstate"]) == (["Suspended"], ["Waiting"])
            dom.resume()
            vm = seen_after_step()
            assert (vm["gridinfovmstate"], vm["gridinfovmruncount"]) == (["Running"], ["2"])
            dom.destroy()
            vm = seen_after_step()
            assert (vm["gridinfovmstate"], vm["gridinfojobgenericstate"]) == (["ShutDown"], ["Done"])
            dom.create()  # started again after ShutDown: the same VM, a new run
            vm = seen_after_step()
            assert (vm["gridinfovmstate"], vm["gridinfovmruncount"]) == (["Running"], ["3"])
            assert vm["dn"] == [f"GridinfoVMID={KNOWN},GridinfoHypervisorID={HOST},{SUFFIX}"]
            assert [r.split()[:2] for r in vm["gridinfovmrun"]] == [["0", "Suspended"], ["1", "ShutDown"],
                                                                      ["2", "Running"]]
            kinds = ldapsearch(gris.url, f"ou=events,{SUFFIX}", f"(GridinfoVMID={KNOWN})", "GridinfoEventType")
            assert sorted(r["gridinfoeventtype"][0] for r in kinds) == ["PowerOn", "Resume", "Running", "Shutdown",
                                                                          "Suspend"]
            assert len(ldapsearch(gris.url, SUFFIX, "(objectClass=GridinfoVM)")) == 1
        with GrisProcess(["--config", str(config)]) as gris:  # the journal rebuilds the same runs
            vm = vms(gris.url)[KNOWN]
            assert (vm["gridinfovmstate"], vm["gridinfovmruncount"], vm["gridinfolifecycleevents"]) == (
                ["Running"], ["3"], ["5"])
    finally:
        if dom.isActive():
            dom.destroy()
        dom.undefine()
