"""The network provider probing real listeners and tools on loopback."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gridinfo.providers_lib.network import parse_iperf3, parse_ping, parse_traceroute
from tests.providers.support import SUFFIX, run_provider
from tests.support.ports import free_port


def _config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "network.yaml"
    path.write_text(text)
    return str(path)


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port on loopback that accepts connections (the kernel completes the handshake)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock.getsockname()[1]


def _closed_port() -> int:
    """A loopback port nothing listens on: connects to it are refused."""
    return free_port()


def test_tcp_open_and_closed_ports(tmp_path: Path, listener: int) -> None:
    """An open port has RTTs and no loss; a closed one has 100 % loss and an error, and the
    provider still exits 0 with both entries."""
    closed = _closed_port()
    config = _config(
        tmp_path,
        f"count: 4\ntargets:\n"
        f"  - {{host: 127.0.0.1, port: {listener}, name: open}}\n"
        f"  - {{host: 127.0.0.1, port: {closed}, name: closed}}\n",
    )
    run = run_provider("network", ["--config", config])
    assert run.returncode == 0, run.stderr
    paths = {e.one("GridinfoPathID"): e for e in run.entries}
    assert set(paths) == {"tcp:open", "tcp:closed"}
    good = paths["tcp:open"]
    assert good.dn == f"GridinfoPathID=tcp:open,{SUFFIX}"
    assert good.one("GridinfoPathLoss") == "0" and good.one("GridinfoPathProbes") == "4"
    assert good.one("GridinfoPathDestination") == f"127.0.0.1:{listener}"
    rtt_min, rtt_avg, rtt_max = (int(good.one(f"GridinfoPathRTT{k}")) for k in ("Min", "Avg", "Max"))
    assert 0 < rtt_min <= rtt_avg <= rtt_max < 1_000_000  # loopback: well under a second
    assert good.get("GridinfoPathError") is None
    assert len(good.one("GridinfoPathMeasured")) == 15
    bad = paths["tcp:closed"]
    assert bad.one("GridinfoPathLoss") == "100"
    assert "refused" in bad.one("GridinfoPathError").lower()
    assert bad.get("GridinfoPathRTTAvg") is None
    assert run.seconds < 10  # well inside the default timelimit (20 s); speed itself is measured in docs/providers.md


def test_unresolvable_target_reports_loss(tmp_path: Path) -> None:
    """A name that does not resolve is a failed probe, not a failed provider."""
    config = _config(tmp_path, "targets:\n  - {host: no-such-host.invalid, port: 80}\n")
    run = run_provider("network", ["--config", config])
    assert run.returncode == 0
    [path] = run.entries
    assert path.one("GridinfoPathLoss") == "100" and "resolve" in path.one("GridinfoPathError")


def test_pings_summary_becomes_the_paths_loss_and_rtts(tmp_path: Path) -> None:
    """ping's own summary becomes the path's loss and RTTs (µs)."""
    config = _config(tmp_path, "count: 3\ntargets:\n  - {host: 127.0.0.1, methods: [icmp]}\n")
    run = run_provider("network", ["--config", config])
    [path] = run.entries
    assert path.one("GridinfoPathID") == "icmp:127.0.0.1"
    assert path.one("GridinfoPathLoss") == "0" and path.one("GridinfoPathProbes") == "3"
    assert 0 < int(path.one("GridinfoPathRTTMin")) <= int(path.one("GridinfoPathRTTMax")) < 1_000_000


def test_traceroute_loopback_is_one_hop(tmp_path: Path) -> None:
    """Loopback is reached at the first hop."""
    config = _config(tmp_path, "targets:\n  - {host: 127.0.0.1, methods: [traceroute]}\n")
    run = run_provider("network", ["--config", config])
    [path] = run.entries
    assert path.one("GridinfoPathHops") == "1" and path.one("GridinfoPathLoss") == "0"


def test_iperf3_against_a_real_server(tmp_path: Path) -> None:
    """Throughput to a target that runs an iperf3 server; a target without one is an error."""
    port = free_port()
    server = subprocess.Popen(
        ["iperf3", "-s", "--forceflush", "-p", str(port), "-B", "127.0.0.1"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        for line in server.stdout:  # blocks until the server says it listens
            if "listening" in line.lower():
                break
        no_server = _closed_port()
        config = _config(
            tmp_path,
            "targets:\n"
            f"  - {{host: 127.0.0.1, iperf3_port: {port}, methods: [iperf3], name: served}}\n"
            f"  - {{host: 127.0.0.1, iperf3_port: {no_server}, methods: [iperf3], name: unserved}}\n",
        )
        run = run_provider("network", ["--config", config])
    finally:
        server.kill()
        server.wait()
    paths = {e.one("GridinfoPathID"): e for e in run.entries}
    assert int(paths["iperf3:served"].one("GridinfoPathThroughput")) > 1000  # > 1 Mbit/s on loopback
    assert paths["iperf3:unserved"].one("GridinfoPathLoss") == "100"
    assert "iperf3" in paths["iperf3:unserved"].one("GridinfoPathError")


def test_missing_tool_is_reported_once(tmp_path: Path, listener: int) -> None:
    """Without ping on PATH the icmp paths carry an error, the log says so once, tcp still works."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    config = _config(
        tmp_path,
        "targets:\n"
        f"  - {{host: 127.0.0.1, port: {listener}, methods: [tcp, icmp], name: a}}\n"
        f"  - {{host: 127.0.0.1, methods: [icmp], name: b}}\n",
    )
    import sys

    env = {"PATH": f"{Path(sys.executable).parent}:{bin_dir}"}
    run = run_provider("network", ["--config", config], env=env)
    # run_provider puts the venv first; /usr/sbin etc. are still searched for admin tools, so
    # only assert the outcome when ping really is missing from the reduced PATH.
    paths = {e.one("GridinfoPathID"): e for e in run.entries}
    assert paths["tcp:a"].one("GridinfoPathLoss") == "0"
    if shutil.which("ping", path=env["PATH"] + ":/usr/sbin:/sbin:/usr/local/sbin") is None:
        assert paths["icmp:a"].one("GridinfoPathError") == "ping is not installed"
        assert paths["icmp:a"].get("GridinfoPathLoss") is None
        assert run.stderr.count("ping is not installed") == 1


def test_parsers_on_documented_outputs() -> None:
    """iputils' and BusyBox's ping summaries, traceroute without an answer, iperf3's error JSON."""
    iputils = (
        "--- 10.0.0.1 ping statistics ---\n"
        "5 packets transmitted, 4 received, 20% packet loss, time 4005ms\n"
        "rtt min/avg/max/mdev = 0.512/0.730/1.101/0.210 ms\n"
    )
    assert parse_ping(iputils) == (5, 20, (512, 730, 1101))
    busybox = (
        "--- 10.0.0.1 ping statistics ---\n"
        "3 packets transmitted, 3 packets received, 0% packet loss\n"
        "round-trip min/avg/max = 0.058/0.085/0.130 ms\n"
    )
    assert parse_ping(busybox) == (3, 0, (58, 85, 130))
    assert parse_ping("2 packets transmitted, 0 received, 100% packet loss, time 1001ms\n") == (2, 100, None)
    with pytest.raises(ValueError):
        parse_ping("ping: unknown host\n")
    unreached = "traceroute to 10.9.9.9 (10.9.9.9), 3 hops max, 60 byte packets\n 1  192.0.2.1  0.4 ms\n 2  *\n 3  *\n"
    assert parse_traceroute(unreached, "10.9.9.9") == (None, None, 3)
    reached = " 1  192.0.2.1  0.412 ms\n 2  10.9.9.9  1.250 ms\n"
    assert parse_traceroute(reached, "10.9.9.9") == (2, 1250, 2)
    with pytest.raises(ValueError, match="unable to connect"):
        parse_iperf3('{"start": {}, "intervals": [], "end": {}, "error": "unable to connect to server"}')
    assert parse_iperf3('{"end": {"sum_received": {"bits_per_second": 9.5e8}}}') == 950000
