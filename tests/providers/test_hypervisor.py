"""The hypervisor provider against libvirt's test driver (our node file) and xl's documented output."""

from __future__ import annotations

import os
import stat
from pathlib import Path


from gridinfo.providers_lib.hypervisor import (
    LIBVIRT_STATES,
    build_xl,
    hypervisor_entries,
    libvirt_version,
    parse_uptime,
    xl_state,
)
from gridinfo.providers_lib.output import format_entries
from tests.providers.support import DATA, SUFFIX, parse_and_check, run_provider

NODE = DATA / "node.xml"


def _config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "hypervisor.yaml"
    path.write_text(text)
    return str(path)


def _libvirt_domains() -> dict[str, tuple[int, int, int, int]]:
    """What libvirt itself says about our node file: name -> (state, KiB, vCPUs, active)."""
    libvirt = __import__("libvirt")
    conn = libvirt.openReadOnly(f"test://{NODE}")
    try:
        return {
            d.name(): (d.info()[0], d.info()[2], d.info()[3], d.isActive())
            for d in conn.listAllDomains()
        }
    finally:
        conn.close()


def test_libvirt_test_driver_domains_in_every_state(tmp_path: Path) -> None:
    """One hypervisor entry and one entry per domain, with states mapped to gridinfo's vocabulary
    and figures equal to what libvirt reports for the same node file."""
    truth = _libvirt_domains()
    run = run_provider("hypervisor", ["--config", _config(tmp_path, f"uri: 'test://{NODE}'\n")])
    assert run.returncode == 0, run.stderr
    [hv] = run.by_class("GridinfoHypervisor")
    assert hv.one("GridinfoHypervisorType") == "TEST"
    assert hv.one("GridinfoHypervisorURI") == f"test://{NODE}"
    assert hv.one("GridinfoHypervisorCPUs") == "8"  # <active>8</active> in node.xml
    assert hv.one("GridinfoHypervisorMemoryTotal") == "16384"  # 16777216 KiB
    assert hv.one("GridinfoHypervisorDomains") == str(sum(1 for t in truth.values() if t[3]))
    vms = {vm.one("GridinfoVMName"): vm for vm in run.by_class("GridinfoVM")}
    assert set(vms) == set(truth) == {"web01", "batch02", "spare03", "broken04"}
    expected = {
        "web01": ("Running", "Running"),
        "batch02": ("Paused", "Waiting"),
        "spare03": ("ShutDown", "Done"),
        "broken04": ("Crashed", "Aborted"),
    }
    for name, (vm_state, generic) in expected.items():
        vm = vms[name]
        state, kib, vcpus, active = truth[name]
        assert LIBVIRT_STATES[state] == (vm_state, generic)
        assert (vm.one("GridinfoVMState"), vm.one("GridinfoJobGenericState")) == (vm_state, generic)
        assert int(vm.one("GridinfoVMVCPUs")) == vcpus
        assert int(vm.one("GridinfoVMMemory")) == (kib // 1024 if active else 0)
        assert vm.dn == f"GridinfoVMID={vm.one('GridinfoVMUUID')},{hv.dn}"
    assert vms["web01"].one("GridinfoVMUUID") == "6695eb01-f6a4-8304-79aa-97f2502e193f"
    assert run.seconds < 10  # well inside the default timelimit (20 s); speed itself is measured in docs/providers.md


def test_no_hypervisor_source_says_so_and_publishes_nothing(tmp_path: Path) -> None:
    """Without libvirt or xl the provider exits 0, prints nothing and says why once."""
    config = _config(tmp_path, "backend: xl\nxl: /nonexistent/xl\n")
    run = run_provider("hypervisor", ["--config", config])
    assert run.returncode == 0 and run.entries == []
    assert run.stderr.count("no hypervisor source usable") == 1
    assert "not installed" in run.stderr


def test_xl_outputs_in_xens_documented_format() -> None:
    """xl info/list/list -l/uptime combine into the hypervisor and its domains."""
    hv = build_xl(
        (DATA / "xl-info.txt").read_text(),
        (DATA / "xl-list.txt").read_text(),
        (DATA / "xl-list-l.json").read_text(),
        (DATA / "xl-uptime.txt").read_text(),
    )
    assert (hv.hostname, hv.type, hv.version) == ("xen07.example.org", "Xen", "4.17.3-pre")
    assert (hv.cpus, hv.memory_total_mb, hv.memory_free_mb) == (16, 65235, 40117)
    doms = {d.name: d for d in hv.domains}
    assert set(doms) == {"Domain-0", "web01", "batch worker 02", "broken04", "leaving05"}
    web = doms["web01"]
    assert (web.vm_state, web.generic_state, web.vcpus, web.memory_mb) == ("Blocked", "Running", 2, 2048)
    assert web.uuid == "b2a3c4d5-0001-4e5f-8a9b-0c1d2e3f4a01"
    assert web.cpu_time == 1201.3 and web.uptime == 86410
    assert doms["Domain-0"].vm_state == "Running" and doms["Domain-0"].uptime == 12 * 86400 + 3 * 3600 + 245
    assert (doms["batch worker 02"].vm_state, doms["batch worker 02"].uptime) == ("Paused", 28704)
    assert doms["broken04"].generic_state == "Aborted"
    assert doms["leaving05"].vm_state == "ShutDown"
    assert doms["leaving05"].uuid == "domid-9"  # not in xl list -l: named by its domain id
    entries = parse_and_check(format_entries(hypervisor_entries(hv, SUFFIX)))
    assert len(entries) == 6
    assert entries[0].one("GridinfoHypervisorDomains") == "5"


def test_xl_provider_end_to_end(tmp_path: Path) -> None:
    """With backend xl the provider runs xl's subcommands; here an xl that prints saved outputs."""
    xl = tmp_path / "xl"
    xl.write_text(
        "#!/bin/sh\n"
        f'case "$*" in\n'
        f'  info) cat {DATA}/xl-info.txt ;;\n'
        f'  "list -l") cat {DATA}/xl-list-l.json ;;\n'
        f'  list) cat {DATA}/xl-list.txt ;;\n'
        f'  uptime) cat {DATA}/xl-uptime.txt ;;\n'
        '  *) exit 1 ;;\nesac\n'
    )
    xl.chmod(xl.stat().st_mode | stat.S_IXUSR)
    run = run_provider("hypervisor", ["--config", _config(tmp_path, f"backend: xl\nxl: {xl}\n")])
    assert run.returncode == 0, run.stderr
    assert len(run.by_class("GridinfoVM")) == 5
    assert run.by_class("GridinfoHypervisor")[0].dn == f"GridinfoHypervisorID=xen07.example.org,{SUFFIX}"


def test_state_tables_and_helpers() -> None:
    """Every libvirt state has a mapping; xl's crash flag wins over others; uptimes and versions parse."""
    assert set(LIBVIRT_STATES) == set(range(8))
    assert xl_state("r---c-") == ("Crashed", "Aborted")
    assert xl_state("------") == ("Blocked", "Running")
    assert parse_uptime("2 days, 1:00:00") == 2 * 86400 + 3600
    assert parse_uptime("garbage") is None
    assert libvirt_version(9_000_000) == "9.0.0" and libvirt_version(8_010_002) == "8.10.2"
    assert os.path.isabs(str(NODE))
