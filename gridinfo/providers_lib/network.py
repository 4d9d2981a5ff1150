"""The ``network`` provider: round-trip times, loss, hops and throughput to configured targets.

One entry per (target, method)::

    GridinfoPathID=<method>:<target name>,<suffix>     GridinfoNetworkPath

Methods:

- ``tcp``: ``count`` TCP connects to ``host:port``; RTT is the connect (SYN -> SYN/ACK) time.
  A refused or timed-out connect is a lost probe.
- ``icmp``: the system ``ping`` (``-c count -i 0.2 -W timeout``), its summary lines parsed
  (iputils' ``rtt min/avg/max/mdev`` and BusyBox's ``round-trip min/avg/max``).
- ``traceroute``: the system ``traceroute -n -q 1``; hops = the hop number at which the target
  answered (an error when it never did within ``max_hops``).
- ``iperf3``: ``iperf3 -c host -p port -t seconds -J`` against a server the target runs;
  throughput is what the receiver got, in kbit/s.

Probes run concurrently (``parallel`` at a time), each bounded by its own timeout, so a run takes
about as long as its slowest probe.  A probe that fails publishes ``GridinfoPathLoss: 100`` and
``GridinfoPathError``; a missing tool (no ``ping``) is logged once and its entries carry the
error, with no figures.  Nothing a target does makes the provider fail.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import logging
import math
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from gridinfo.directory.gtime import format_generalized_time
from gridinfo.providers_lib.host import fqdn
from gridinfo.providers_lib.output import LDIFEntry, child_dn, format_entries
from gridinfo.providers_lib.runtime import (
    CommandFailed,
    CommandMissing,
    run_command,
    run_provider,
)

Method = Literal["tcp", "icmp", "traceroute", "iperf3"]
TOOLS: dict[str, str] = {"icmp": "ping", "traceroute": "traceroute", "iperf3": "iperf3"}


@dataclass(frozen=True)
class TargetConfig:
    """One target: a host and what to measure towards it."""

    host: str = ""
    name: str | None = None  # used in GridinfoPathID (default: host, or host:port with a port)
    port: int | None = None  # TCP port for method tcp (required for it)
    iperf3_port: int = 5201  # port of the target's iperf3 server
    methods: tuple[Method, ...] = ("tcp",)
    count: int | None = None  # probes per method (default: the provider's count)
    timeout: float | None = None  # seconds per probe (default: the provider's timeout)


@dataclass(frozen=True)
class NetworkConfig:
    """Config keys of the network provider."""

    targets: tuple[TargetConfig, ...] = ()
    source_name: str | None = None  # GridinfoPathSource (default: this host's FQDN)
    count: int = 5  # probes per target and method
    timeout: float = 2.0  # seconds each probe may take
    max_hops: int = 20  # traceroute's limit
    iperf3_seconds: int = 1  # length of an iperf3 test
    parallel: int = 8  # probes running at once
    source: str = "<defaults>"


@dataclass
class Measurement:
    """The figures of one probe; None where the method does not give a figure."""

    method: str
    destination: str
    measured: float
    probes: int = 0
    loss: int | None = None  # percent
    rtt_us: tuple[int, int, int] | None = None  # min, avg, max
    hops: int | None = None
    throughput_kbit: int | None = None
    error: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _failed(m: Measurement, error: str) -> Measurement:
    m.loss = 100
    m.error = error
    return m


def probe_tcp(host: str, port: int, count: int, timeout: float) -> Measurement:
    """``count`` TCP connects; RTT of each successful connect, loss of the others."""
    m = Measurement("tcp", _hostport(host, port), time.time(), probes=count)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        return _failed(m, f"cannot resolve {host}: {e.strerror or e}")
    family, socktype, proto, _, address = infos[0]
    rtts: list[float] = []
    last_error = ""
    for _ in range(count):
        sock = socket.socket(family, socktype, proto)
        sock.settimeout(timeout)
        started = time.perf_counter()
        try:
            sock.connect(address)
            rtts.append(time.perf_counter() - started)
        except TimeoutError:
            last_error = f"connect timed out after {timeout:g} s"
        except OSError as e:
            last_error = f"connect failed: {e.strerror or e}"
        finally:
            sock.close()
    m.loss = round(100 * (count - len(rtts)) / count) if count else 100
    if rtts:
        m.rtt_us = (round(min(rtts) * 1e6), round(sum(rtts) / len(rtts) * 1e6), round(max(rtts) * 1e6))
    if not rtts:
        m.error = last_error or "no probe succeeded"
    return m


_PING_COUNTS = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")
_PING_LOSS = re.compile(r"([\d.]+)% packet loss")
_PING_RTT = re.compile(r"(?:rtt|round-trip) min/avg/max(?:/mdev)? = ([\d.]+)/([\d.]+)/([\d.]+)")


def parse_ping(text: str) -> tuple[int, int, tuple[int, int, int] | None]:
    """(transmitted, loss %, (min, avg, max) in µs or None) from ping's summary lines."""
    counts = _PING_COUNTS.search(text)
    if not counts:
        raise ValueError("no ping summary found")
    sent, received = int(counts.group(1)), int(counts.group(2))
    loss_match = _PING_LOSS.search(text)
    loss = round(float(loss_match.group(1))) if loss_match else (round(100 * (sent - received) / sent) if sent else 100)
    rtt_match = _PING_RTT.search(text)
    rtt = tuple(round(float(g) * 1000) for g in rtt_match.groups()) if rtt_match else None
    return sent, loss, rtt  # type: ignore[return-value]


def probe_icmp(host: str, count: int, timeout: float) -> Measurement:
    m = Measurement("icmp", host, time.time(), probes=count)
    deadline = math.ceil(count * 0.2 + timeout)  # ping's -w takes whole seconds
    try:
        result = run_command(
            ["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", f"{timeout:g}", "-w", str(deadline), host],
            deadline + 2,
            check=False,
            env={"LC_ALL": "C"},
        )
    except CommandFailed as e:
        return _failed(m, str(e))
    try:
        m.probes, m.loss, m.rtt_us = parse_ping(result.stdout)
    except ValueError:
        message = (result.stderr.strip() or result.stdout.strip() or f"ping exited with {result.returncode}")
        return _failed(m, message.splitlines()[-1][:200])
    if m.loss == 100:
        m.error = "no reply"
    return m


_HOP = re.compile(r"^\s*(\d+)\s+(.*)$")


def parse_traceroute(text: str, destination_ip: str) -> tuple[int | None, int | None, int]:
    """(hop at which ``destination_ip`` answered or None, its RTT in µs, last hop number)."""
    last = 0
    for line in text.splitlines():
        m = _HOP.match(line)
        if not m:
            continue
        hop = int(m.group(1))
        last = hop
        fields = m.group(2).split()
        if fields and fields[0] == destination_ip:
            rtt = None
            if len(fields) >= 3 and fields[2] == "ms":
                try:
                    rtt = round(float(fields[1]) * 1000)
                except ValueError:
                    rtt = None
            return hop, rtt, last
    return None, None, last


def probe_traceroute(host: str, max_hops: int, timeout: float) -> Measurement:
    m = Measurement("traceroute", host, time.time(), probes=1)
    try:
        ip = str(socket.getaddrinfo(host, None)[0][4][0])
    except OSError as e:
        return _failed(m, f"cannot resolve {host}: {e.strerror or e}")
    budget = max_hops * timeout + 2
    try:
        result = run_command(
            ["traceroute", "-n", "-q", "1", "-w", f"{timeout:g}", "-m", str(max_hops), ip], budget, check=False
        )
    except CommandFailed as e:
        return _failed(m, str(e))
    hop, rtt, last = parse_traceroute(result.stdout, ip)
    if hop is None:
        detail = result.stderr.strip().splitlines()[-1:] or [f"not reached within {last or max_hops} hops"]
        return _failed(m, detail[0][:200])
    m.loss = 0
    m.hops = hop
    if rtt is not None:
        m.rtt_us = (rtt, rtt, rtt)
    return m


def parse_iperf3(text: str) -> int:
    """Throughput in kbit/s from ``iperf3 -J``'s report (the receiver's side); raises ValueError."""
    data = json.loads(text)
    if data.get("error"):
        raise ValueError(str(data["error"]))
    end = data.get("end", {})
    summary = end.get("sum_received") or end.get("sum")
    if not summary or "bits_per_second" not in summary:
        raise ValueError("no throughput in iperf3's report")
    return round(float(summary["bits_per_second"]) / 1000)


def probe_iperf3(host: str, port: int, seconds: int, timeout: float) -> Measurement:
    m = Measurement("iperf3", _hostport(host, port), time.time(), probes=1)
    argv = ["iperf3", "-c", host, "-p", str(port), "-t", str(seconds), "-J", "--connect-timeout", str(round(timeout * 1000))]
    try:
        result = run_command(argv, seconds + timeout + 5, check=False)
    except CommandFailed as e:
        return _failed(m, str(e))
    try:
        m.throughput_kbit = parse_iperf3(result.stdout)
    except ValueError as e:
        return _failed(m, f"iperf3: {e}"[:200])
    m.loss = 0
    return m


# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """One (target, method) to measure."""

    path_id: str
    target: TargetConfig
    method: str


def plan(config: NetworkConfig) -> list[Probe]:
    probes = []
    for target in config.targets:
        for method in dict.fromkeys(target.methods):
            # Without a name: the host, with the port for tcp (several ports of one host differ).
            default = _hostport(target.host, target.port) if method == "tcp" and target.port else target.host
            probes.append(Probe(f"{method}:{target.name or default}", target, method))
    return probes


def run_probe(probe: Probe, config: NetworkConfig) -> Measurement:
    """Measure one path; every failure becomes an error in the measurement, never an exception."""
    t = probe.target
    count = t.count or config.count
    timeout = t.timeout or config.timeout
    try:
        if probe.method == "tcp":
            if t.port is None:
                return Measurement("tcp", t.host, time.time(), error="no port configured for tcp")
            return probe_tcp(t.host, t.port, count, timeout)
        if probe.method == "icmp":
            return probe_icmp(t.host, count, timeout)
        if probe.method == "traceroute":
            return probe_traceroute(t.host, config.max_hops, timeout)
        if probe.method == "iperf3":
            return probe_iperf3(t.host, t.iperf3_port, config.iperf3_seconds, timeout)
    except CommandMissing as e:
        return Measurement(probe.method, t.host, time.time(), error=f"{e} is not installed")
    except Exception as e:  # noqa: BLE001 - a probe must never break the provider
        return _failed(Measurement(probe.method, t.host, time.time()), f"{type(e).__name__}: {e}")
    return Measurement(probe.method, t.host, time.time(), error=f"unknown method {probe.method}")


def path_entry(probe: Probe, m: Measurement, source_name: str, suffix: str) -> LDIFEntry:
    entry = LDIFEntry(child_dn("GridinfoPathID", probe.path_id, suffix))
    entry.add("objectClass", ["GridinfoNetworkPath"])
    entry.add("GridinfoPathID", probe.path_id)
    entry.add("GridinfoPathSource", source_name)
    entry.add("GridinfoPathDestination", m.destination)
    entry.add("GridinfoPathMethod", m.method)
    if m.rtt_us is not None:
        entry.add("GridinfoPathRTTMin", m.rtt_us[0])
        entry.add("GridinfoPathRTTAvg", m.rtt_us[1])
        entry.add("GridinfoPathRTTMax", m.rtt_us[2])
    entry.add("GridinfoPathLoss", m.loss)
    entry.add("GridinfoPathProbes", m.probes)
    entry.add("GridinfoPathHops", m.hops)
    entry.add("GridinfoPathThroughput", m.throughput_kbit)
    entry.add("GridinfoPathMeasured", format_generalized_time(m.measured))
    entry.add("GridinfoPathError", m.error)
    return entry


def measure_all(config: NetworkConfig, log: logging.Logger) -> list[tuple[Probe, Measurement]]:
    probes = plan(config)
    if not probes:
        log.warning("no targets configured (%s): nothing to measure", config.source)
        return []
    missing_logged: set[str] = set()
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, config.parallel)) as pool:
        results = list(pool.map(lambda p: (p, run_probe(p, config)), probes))
    for probe, m in results:
        tool = TOOLS.get(probe.method)
        if m.error and m.error.endswith("is not installed") and tool not in missing_logged:
            missing_logged.add(tool or probe.method)
            log.warning("%s is not installed: %s probes publish an error only", tool, probe.method)
    return results


def produce(config: NetworkConfig, args: argparse.Namespace, log: logging.Logger) -> str:
    source_name = config.source_name or fqdn()
    return format_entries(path_entry(p, m, source_name, args.suffix) for p, m in measure_all(config, log))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``providers/network``."""
    return run_provider("network", "Measure network paths to configured targets and publish them as LDIF.", NetworkConfig, produce, argv)
