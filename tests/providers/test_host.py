"""The host provider: its figures are this machine's, as psutil sees them, and schema-valid."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import psutil

from gridinfo.providers_lib.host import Sample, compute_rates, net_parameters
from tests.providers.support import SUFFIX, run_provider

MB = 1 << 20


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "host.yaml"
    path.write_text(text)
    return path


def test_static_facts_match_psutil(tmp_path: Path) -> None:
    """Cluster and subcluster entries name this host and carry its CPUs, memory and OS."""
    run = run_provider("host", ["--state-dir", str(tmp_path)])
    assert run.returncode == 0, run.stderr
    [cluster] = run.by_class("GlueCluster")
    [sub] = run.by_class("GlueSubCluster")
    fqdn = socket.getfqdn() if socket.getfqdn() != "localhost" else socket.gethostname()
    assert cluster.dn == f"GlueClusterUniqueID={fqdn},{SUFFIX}"
    assert sub.dn == f"GlueSubClusterUniqueID={fqdn},GlueClusterUniqueID={fqdn},{SUFFIX}"
    assert int(sub.one("GlueSubClusterLogicalCPUs")) == psutil.cpu_count()
    assert 1 <= int(sub.one("GlueSubClusterPhysicalCPUs")) <= (psutil.cpu_count(logical=False) or 1)
    assert int(sub.one("GlueHostMainMemoryRAMSize")) == psutil.virtual_memory().total // MB
    swap = psutil.swap_memory().total
    assert int(sub.one("GlueHostMainMemoryVirtualSize")) == (psutil.virtual_memory().total + swap) // MB
    assert abs(int(sub.one("GridinfoHostMemoryFree")) - psutil.virtual_memory().available // MB) < 256
    assert abs(int(sub.one("GridinfoHostUptime")) - (time.time() - psutil.boot_time())) < 30
    load1 = os.getloadavg()[0]
    assert abs(float(sub.one("GridinfoHostLoad1")) - load1) < 2.0
    assert abs(int(sub.one("GlueHostProcessorLoadLast1Min")) - load1 * 100) < 200
    assert sub.one("GlueHostArchitecturePlatformType") == os.uname().machine
    assert sub.get("GlueHostOperatingSystemName")
    assert run.seconds < 10  # well inside the default timelimit (20 s); speed itself is measured in docs/providers.md


def test_tcp_parameters_are_the_kernel_values_without_secrets(tmp_path: Path) -> None:
    """Every published TCP parameter is what /proc/sys says; keys such as tcp_fastopen_key never leak."""
    run = run_provider("host", ["--state-dir", str(tmp_path)])
    [sub] = run.by_class("GlueSubCluster")
    params = dict(v.split("=", 1) for v in sub.attrs["gridinfohosttcpparam"])
    assert params, "no TCP parameters published"
    for key, value in params.items():
        on_disk = Path("/proc/sys", *key.split(".")).read_text()
        assert value == " ".join(on_disk.split())
        assert "key" not in key
    if Path("/proc/sys/net/ipv4/tcp_rmem").exists():
        assert "net.ipv4.tcp_rmem" in params
    assert net_parameters(["net/ipv4/no_such_*"]) == []


def test_file_systems_match_disk_usage(tmp_path: Path) -> None:
    """One entry per local file system with psutil's size and (nearly) its free space."""
    run = run_provider("host", ["--state-dir", str(tmp_path)])
    filesystems = run.by_class("GridinfoFileSystem")
    assert filesystems
    [sub] = run.by_class("GlueSubCluster")
    disk_free = dict(v.split("=", 1) for v in sub.attrs["gridinfohostdiskfree"])
    for fs in filesystems:
        usage = psutil.disk_usage(fs.one("GridinfoFSMount"))
        assert int(fs.one("GridinfoFSSize")) == usage.total // MB
        assert abs(int(fs.one("GridinfoFSFree")) - usage.free // MB) < 512
        assert int(disk_free[fs.one("GridinfoFSMount")]) == int(fs.one("GridinfoFSFree"))
        assert fs.dn.endswith(f",{run.by_class('GlueSubCluster')[0].dn}")


def test_interfaces_and_loopback_throughput(tmp_path: Path) -> None:
    """Interface speed/MTU/addresses come from psutil; bytes sent over loopback between two runs
    show up in its receive rate (rates are measured between runs, via the state folder)."""
    config = _config(tmp_path, "exclude_interfaces: []\n")
    state = tmp_path / "state"
    args = ["--config", str(config), "--state-dir", str(state)]
    first = run_provider("host", args)
    assert first.returncode == 0, first.stderr
    assert "measuring rates over 0.2 s" in first.stderr  # no previous sample yet
    first_done = time.time()

    payload = 8 * MB
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        received = []

        def drain() -> None:
            conn, _ = server.accept()
            with conn:
                total = 0
                while chunk := conn.recv(1 << 16):
                    total += len(chunk)
                received.append(total)

        reader = threading.Thread(target=drain)
        reader.start()
        with socket.create_connection(server.getsockname()) as client:
            client.sendall(b"x" * payload)
        reader.join(10)
    assert received == [payload]

    second_started = time.time()
    second = run_provider("host", args)
    assert second.returncode == 0, second.stderr
    assert "measuring rates" not in second.stderr  # the first run's sample was used
    window = time.time() - (first_done - first.seconds)  # an upper bound of the measured window
    [lo] = [e for e in second.by_class("GridinfoNetworkInterface") if e.one("GridinfoIfName") == "lo"]
    stats = psutil.net_if_stats()["lo"]
    assert int(lo.one("GridinfoIfMTU")) == stats.mtu
    assert "127.0.0.1" in lo.attrs["gridinfoifaddress"]
    assert int(lo.one("GridinfoIfRxBytesRate")) * window >= payload
    assert int(lo.one("GridinfoIfErrorsRate")) == 0
    [sub] = second.by_class("GlueSubCluster")
    assert 0 <= int(sub.one("GridinfoHostCPUUtilisation")) <= 100
    assert any(v.startswith("lo rx=") for v in sub.attrs["gridinfohostnetthroughput"])
    assert second_started - first_done < window


def test_rates_refuse_unusable_samples() -> None:
    """A sample from before a reboot, a too old one, or a counter that went backwards gives no rate."""
    old = Sample(1000.0, 50.0, 10.0, 100.0, {"eth0": (1000, 2000, 0, 0, 0, 0)})
    new = Sample(1010.0, 50.0, 15.0, 110.0, {"eth0": (2000, 4000, 1, 0, 0, 3)})
    rates = compute_rates(old, new, max_age=3600)
    assert rates is not None and rates.cpu_utilisation == 50.0
    assert rates.nics["eth0"] == (200.0, 100.0, 0.1, 0.3)
    assert compute_rates(old, Sample(1010.0, 900.0, 15.0, 110.0, new.nics), 3600) is None  # rebooted
    assert compute_rates(old, Sample(9000.0, 50.0, 15.0, 110.0, new.nics), 3600) is None  # too old
    wrapped = compute_rates(old, Sample(1010.0, 50.0, 15.0, 110.0, {"eth0": (0, 0, 0, 0, 0, 0)}), 3600)
    assert wrapped is not None and "eth0" not in wrapped.nics


def test_suffix_environment_variables_move_every_dn_under_another_context(tmp_path: Path) -> None:
    """$GRIDINFO_SUFFIX moves every GLUE 1.3 DN under another naming context, $GRIDINFO_GLUE2_SUFFIX
    every GLUE 2 DN; an empty $GRIDINFO_GLUE2_SUFFIX means no GLUE 2 at all."""
    env = {"GRIDINFO_SUFFIX": "mds-vo-name=site1,o=grid", "GRIDINFO_GLUE2_SUFFIX": "GLUE2GroupID=site1,o=glue"}
    run = run_provider("host", ["--state-dir", str(tmp_path)], env=env)
    glue2 = [e for e in run.entries if e.dn.endswith(",GLUE2GroupID=site1,o=glue")]
    assert [e.dn for e in glue2] == [f"GLUE2ResourceID={run.by_class('GLUE2ExecutionEnvironment')[0].one('GLUE2ResourceID')},GLUE2GroupID=site1,o=glue"]
    assert all(e.dn.endswith(",mds-vo-name=site1,o=grid") for e in run.entries if e not in glue2)
    off = run_provider("host", ["--state-dir", str(tmp_path), "--glue2-suffix", ""])
    assert off.entries and not off.by_class("GLUE2Entity") and not off.by_class("GLUE2ExecutionEnvironment")


def test_bad_config_names_file_and_line(tmp_path: Path) -> None:
    """A typo in the config is an error naming the file and line, and exit status 2."""
    config = _config(tmp_path, "first_window: 0.1\nexclude_interface: [lo]\n")
    run = run_provider("host", ["--config", str(config), "--state-dir", str(tmp_path)])
    assert run.returncode == 2
    assert "exclude_interface" in run.stderr and "host.yaml" in run.stderr and "2" in run.stderr
