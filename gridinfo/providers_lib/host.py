"""The ``host`` provider: what this machine is and how busy it is, read through psutil.

Why one module: it is one provider, from the sampled figures to the entries it prints; each part
(sampling, /proc readers, entry builders) exists only for this output.

Entries (``<suffix>`` is ``mds-vo-name=local,o=grid`` unless ``$GRIDINFO_SUFFIX`` says otherwise;
``<fqdn>`` is the host's fully qualified name unless the config names the cluster)::

    GlueClusterUniqueID=<fqdn>,<suffix>                      GlueCluster
    GlueSubClusterUniqueID=<fqdn>,GlueClusterUniqueID=...    GlueSubCluster + GlueHost* aux
                                                             + GridinfoHostDynamics
    GridinfoFSMount=<mount>,GlueSubClusterUniqueID=...       one per file system
    GridinfoIfName=<nic>,GlueSubClusterUniqueID=...          one per network interface

and, below the GLUE 2 suffix (``GLUE2GroupID=resource,o=glue`` unless ``$GRIDINFO_GLUE2_SUFFIX``
says otherwise; none when it is empty), the same facts in GLUE 2.0 (see
:mod:`gridinfo.providers_lib.glue2`)::

    GLUE2ResourceID=<fqdn>,<g2>                              GLUE2ExecutionEnvironment
    GLUE2BenchmarkID=<fqdn>_<type>,GLUE2ResourceID=...       GLUE2Benchmark, one per configured benchmark

Rates (CPU utilisation, interface bytes/errors/drops per second, host throughput) need two
samples.  Each run saves its counters in ``<state dir>/host-<cluster>.json`` and computes rates
against the previous run's sample, so a run costs a few milliseconds and each rate is the
average since the previous run (the GRIS runs the provider once per ttl).  When there is no
usable previous sample (first run, state older than ``max_sample_age``, the host rebooted, a
counter went backwards), the run takes a second sample after ``first_window`` seconds (0.2 s by
default; 0 publishes no rates on such runs).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import logging
import os
import platform
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil

from gridinfo.providers_lib.glue2 import BENCHMARK_TYPES, OS_NAMES, PLATFORMS, computing_manager_id, extended_boolean
from gridinfo.providers_lib.output import LDIFEntry, child_dn, format_entries
from gridinfo.providers_lib.runtime import run_provider, state_dir

MB = 1 << 20


@dataclass(frozen=True)
class HostConfig:
    """Config keys of the host provider (all optional)."""

    cluster_id: str | None = None  # GlueClusterUniqueID (default: the host's FQDN)
    subcluster_id: str | None = None  # GlueSubClusterUniqueID (default: the host's FQDN)
    site_id: str | None = None  # published as GlueForeignKey: GlueSiteUniqueID=<site_id>
    exclude_interfaces: tuple[str, ...] = ("lo",)  # interface name patterns not published
    include_down_interfaces: bool = False  # publish interfaces that are administratively down
    exclude_fstypes: tuple[str, ...] = ("squashfs", "tmpfs", "devtmpfs", "overlay")
    net_parameters: tuple[str, ...] = ("net/ipv4/tcp_*", "net/core/*mem*")  # under /proc/sys
    first_window: float = 0.2  # seconds between two samples when no previous one is usable
    max_sample_age: float = 3600.0  # older previous samples are not used for rates
    # GLUE 2.0 (GLUE2ExecutionEnvironment)
    resource_id: str | None = None  # GLUE2ResourceID (default: the host's FQDN)
    computing_manager_id: str | None = None  # the batch system's GLUE2ManagerID (default: <fqdn>_ComputingElement_Manager)
    connectivity_in: bool = False  # GLUE2ExecutionEnvironmentConnectivityIn: jobs may be reached from outside
    connectivity_out: bool = True  # GLUE2ExecutionEnvironmentConnectivityOut: jobs may open outbound connections
    cpu_scaling_factor: float = 1.0  # GLUE2ExecutionEnvironmentCPUTimeScalingFactor
    wall_scaling_factor: float = 1.0  # GLUE2ExecutionEnvironmentWallTimeScalingFactor
    benchmarks: dict[str, float] = field(default_factory=dict)  # GLUE2BenchmarkType -> value, e.g. hep-spec06: 10.5
    source: str = "<defaults>"


# ---------------------------------------------------------------------------------------------
# Samples: the counters rates are computed from.


@dataclass(frozen=True)
class Sample:
    """Counters at one instant: wall time, boot time, CPU times, per-NIC counters."""

    time: float
    boot_time: float
    cpu_busy: float
    cpu_total: float
    nics: dict[str, tuple[int, int, int, int, int, int]]  # sent, recv, errin, errout, dropin, dropout

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "boot_time": self.boot_time,
            "cpu_busy": self.cpu_busy,
            "cpu_total": self.cpu_total,
            "nics": {k: list(v) for k, v in self.nics.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Sample:
        return cls(
            float(data["time"]),
            float(data["boot_time"]),
            float(data["cpu_busy"]),
            float(data["cpu_total"]),
            {str(k): tuple(int(x) for x in v) for k, v in data["nics"].items()},  # type: ignore[misc]
        )


def take_sample() -> Sample:
    """Read the counters now."""
    times = psutil.cpu_times()
    total = sum(times)
    idle = times.idle + getattr(times, "iowait", 0.0)
    nics = {
        name: (c.bytes_sent, c.bytes_recv, c.errin, c.errout, c.dropin, c.dropout)
        for name, c in psutil.net_io_counters(pernic=True).items()
    }
    return Sample(time.time(), psutil.boot_time(), total - idle, total, nics)


@dataclass(frozen=True)
class Rates:
    """Per-second rates between two samples."""

    window: float
    cpu_utilisation: float  # percent of all CPUs, 0..100
    nics: dict[str, tuple[float, float, float, float]]  # rx B/s, tx B/s, errors/s, drops/s


def compute_rates(old: Sample, new: Sample, max_age: float) -> Rates | None:
    """Rates from ``old`` to ``new``, or None when ``old`` cannot serve (too old, reboot, ...)."""
    window = new.time - old.time
    if window <= 0 or window > max_age or abs(new.boot_time - old.boot_time) > 2:
        return None
    total = new.cpu_total - old.cpu_total
    busy = new.cpu_busy - old.cpu_busy
    if total < 0 or busy < 0:
        return None
    cpu = min(100.0, max(0.0, 100.0 * busy / total)) if total > 0 else 0.0
    nics: dict[str, tuple[float, float, float, float]] = {}
    for name, now in new.nics.items():
        before = old.nics.get(name)
        if before is None:
            continue
        delta = [n - b for n, b in zip(now, before)]
        if any(d < 0 for d in delta):  # counter reset or wrapped: no rate for this NIC
            continue
        sent, recv, errin, errout, dropin, dropout = delta
        nics[name] = (recv / window, sent / window, (errin + errout) / window, (dropin + dropout) / window)
    return Rates(window, cpu, nics)


def load_sample(path: Path) -> Sample | None:
    try:
        return Sample.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_sample(path: Path, sample: Sample) -> None:
    """Write atomically: a concurrent reader sees the old or the new sample, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(sample.to_json()), encoding="utf-8")
    os.replace(tmp, path)


def measure_rates(path: Path, config: HostConfig, log: logging.Logger) -> Rates | None:
    """Rates since the previous run (or over ``first_window``); saves the new sample."""
    previous = load_sample(path)
    current = take_sample()
    rates = compute_rates(previous, current, config.max_sample_age) if previous else None
    if rates is None and config.first_window > 0:
        log.info("no usable previous sample in %s; measuring rates over %g s", path, config.first_window)
        time.sleep(config.first_window)
        previous, current = current, take_sample()
        rates = compute_rates(previous, current, config.max_sample_age)
    try:
        save_sample(path, current)
    except OSError as e:
        log.warning("cannot save sample to %s: %s", path, e)
    return rates


# ---------------------------------------------------------------------------------------------
# Static facts.


def read_key_values(path: str, separator: str) -> dict[str, str]:
    """``key<sep>value`` lines of a text file (first occurrence wins); {} if unreadable."""
    found: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(separator)
                if sep and key.strip() and key.strip() not in found:
                    found[key.strip()] = value.strip().strip('"')
    except OSError:
        pass
    return found


@dataclass(frozen=True)
class Processor:
    vendor: str | None
    model: str | None
    clock_mhz: int | None
    sockets: int
    cores: int
    logical: int


def processor() -> Processor:
    """CPU vendor, model, clock and counts (sockets from /proc/cpuinfo's physical ids)."""
    info = read_key_values("/proc/cpuinfo", ":")
    sockets: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            sockets = {line.split(":", 1)[1].strip() for line in f if line.startswith("physical id")}
    except OSError:
        pass
    logical = psutil.cpu_count() or 1
    cores = psutil.cpu_count(logical=False) or logical
    freq = None
    try:
        current = psutil.cpu_freq()
        if current is not None:
            freq = current.max or current.current
    except (OSError, NotImplementedError):
        pass
    if not freq and info.get("cpu MHz"):
        try:
            freq = float(info["cpu MHz"])
        except ValueError:
            pass
    return Processor(
        vendor=info.get("vendor_id") or None,
        model=info.get("model name") or platform.processor() or None,
        clock_mhz=round(freq) if freq else None,
        sockets=max(1, len(sockets)),
        cores=cores,
        logical=logical,
    )


def operating_system() -> tuple[str, str, str]:
    """(name, release, version) in GLUE's sense: distribution name, its release, its codename."""
    release = read_key_values("/etc/os-release", "=")
    name = release.get("NAME") or platform.system()
    version_id = release.get("VERSION_ID") or platform.release()
    codename = release.get("VERSION_CODENAME") or release.get("VERSION") or platform.version()
    return name, version_id, codename


def net_parameters(patterns: Sequence[str], root: str = "/proc/sys") -> list[str]:
    """``net.ipv4.tcp_rmem=4096 131072 6291456`` for every readable file matching ``patterns``."""
    found: list[str] = []
    for pattern in patterns:
        folder, _, glob = pattern.rpartition("/")
        base = Path(root) / folder
        try:
            names = sorted(os.listdir(base))
        except OSError:
            continue
        for name in names:
            if not fnmatch.fnmatchcase(name, glob):
                continue
            try:
                value = (base / name).read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            if "key" in name:  # e.g. tcp_fastopen_key: a secret, never published
                continue
            key = f"{folder}/{name}".replace("/", ".")
            found.append(f"{key}={' '.join(value.split())}")
    return found


def fqdn() -> str:
    """The host's fully qualified name (its plain name if DNS knows no better)."""
    name = socket.getfqdn()
    return name if name and name != "localhost" else socket.gethostname()


def _excluded(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


# ---------------------------------------------------------------------------------------------
# Entries.


def host_entries(config: HostConfig, suffix: str, rates: Rates | None) -> list[LDIFEntry]:
    """All entries of this host, from psutil and /proc, with ``rates`` where known."""
    hostname = fqdn()
    cluster_id = config.cluster_id or hostname
    subcluster_id = config.subcluster_id or hostname
    cluster_dn = child_dn("GlueClusterUniqueID", cluster_id, suffix)
    subcluster_dn = child_dn("GlueSubClusterUniqueID", subcluster_id, cluster_dn)

    cluster = LDIFEntry(cluster_dn)
    cluster.add("objectClass", ["GlueClusterTop", "GlueCluster", "GlueKey", "GlueSchemaVersion"])
    cluster.add("GlueClusterUniqueID", cluster_id)
    cluster.add("GlueClusterName", cluster_id)
    cluster.add("GlueForeignKey", f"GlueSiteUniqueID={config.site_id}" if config.site_id else None)
    cluster.add("GlueSchemaVersionMajor", 1).add("GlueSchemaVersionMinor", 3)

    cpu = processor()
    os_name, os_release, os_version = operating_system()
    memory = psutil.virtual_memory()
    swap = psutil.swap_memory()
    load1, load5, load15 = os.getloadavg()
    uptime = max(0, int(time.time() - psutil.boot_time()))
    filesystems = _filesystems(config)
    interfaces = _interfaces(config)

    sub = LDIFEntry(subcluster_dn)
    sub.add(
        "objectClass",
        [
            "GlueClusterTop",
            "GlueSubCluster",
            "GlueHostArchitecture",
            "GlueHostProcessor",
            "GlueHostMainMemory",
            "GlueHostOperatingSystem",
            "GlueHostProcessorLoad",
            "GlueKey",
            "GlueSchemaVersion",
            "GridinfoHostDynamics",
        ],
    )
    sub.add("GlueSubClusterUniqueID", subcluster_id)
    sub.add("GlueSubClusterName", hostname)
    sub.add("GlueSubClusterPhysicalCPUs", cpu.sockets)
    sub.add("GlueSubClusterLogicalCPUs", cpu.logical)
    sub.add("GlueHostArchitecturePlatformType", platform.machine() or None)
    sub.add("GlueHostArchitectureSMPSize", cpu.logical)
    sub.add("GlueHostProcessorVendor", cpu.vendor)
    sub.add("GlueHostProcessorModel", cpu.model)
    sub.add("GlueHostProcessorClockSpeed", cpu.clock_mhz)
    sub.add("GlueHostProcessorOtherDescription", f"Cores={max(1, cpu.cores // cpu.sockets)}")
    sub.add("GlueHostOperatingSystemName", os_name)
    sub.add("GlueHostOperatingSystemRelease", os_release)
    sub.add("GlueHostOperatingSystemVersion", os_version)
    sub.add("GlueHostMainMemoryRAMSize", memory.total // MB)
    sub.add("GlueHostMainMemoryRAMAvailable", memory.available // MB)
    sub.add("GlueHostMainMemoryVirtualSize", (memory.total + swap.total) // MB)
    sub.add("GlueHostMainMemoryVirtualAvailable", (memory.available + swap.free) // MB)
    # GLUE's load attributes are integers: the load average times 100.
    sub.add("GlueHostProcessorLoadLast1Min", round(load1 * 100))
    sub.add("GlueHostProcessorLoadLast5Min", round(load5 * 100))
    sub.add("GlueHostProcessorLoadLast15Min", round(load15 * 100))
    sub.add("GlueChunkKey", f"GlueClusterUniqueID={cluster_id}")
    sub.add("GlueSchemaVersionMajor", 1).add("GlueSchemaVersionMinor", 3)
    sub.add("GridinfoHostTCPParam", net_parameters(config.net_parameters))
    sub.add("GridinfoHostLoad1", f"{load1:.2f}")
    sub.add("GridinfoHostLoad5", f"{load5:.2f}")
    sub.add("GridinfoHostLoad15", f"{load15:.2f}")
    sub.add("GridinfoHostMemoryFree", memory.available // MB)
    sub.add("GridinfoHostSwapFree", swap.free // MB)
    sub.add("GridinfoHostUptime", uptime)
    sub.add("GridinfoHostDiskFree", [f"{mount}={free // MB}" for mount, _, _, free in filesystems])
    if rates is not None:
        sub.add("GridinfoHostCPUUtilisation", round(rates.cpu_utilisation))
        published = sorted(name for name in rates.nics if name in interfaces)
        sub.add(
            "GridinfoHostNetThroughput",
            [f"{n} rx={round(rates.nics[n][0])} tx={round(rates.nics[n][1])}" for n in published],
        )
        sub.add(
            "GridinfoHostNetErrors",
            [f"{n} errors={_per_second(rates.nics[n][2])} drops={_per_second(rates.nics[n][3])}" for n in published],
        )

    entries = [cluster, sub]
    for mount, fstype, size, free in filesystems:
        fs = LDIFEntry(child_dn("GridinfoFSMount", mount, subcluster_dn))
        fs.add("objectClass", ["GridinfoFileSystem"])
        fs.add("GridinfoFSMount", mount)
        fs.add("GridinfoFSType", fstype)
        fs.add("GridinfoFSSize", size // MB)
        fs.add("GridinfoFSFree", free // MB)
        entries.append(fs)
    for name, (speed, mtu, addresses, loopback) in sorted(interfaces.items()):
        nic = LDIFEntry(child_dn("GridinfoIfName", name, subcluster_dn))
        nic.add("objectClass", ["GridinfoNetworkInterface", "GlueHostNetworkAdapter"])
        nic.add("GridinfoIfName", name)
        nic.add("GridinfoIfSpeed", speed or None)
        nic.add("GridinfoIfMTU", mtu)
        nic.add("GridinfoIfAddress", addresses)
        nic.add("GlueHostNetworkAdapterName", name)
        nic.add("GlueHostNetworkAdapterIPAddress", addresses[0] if addresses else None)
        nic.add("GlueHostNetworkAdapterMTU", mtu)
        if rates is not None and name in rates.nics:
            rx, tx, errors, drops = rates.nics[name]
            nic.add("GridinfoIfRxBytesRate", round(rx))
            nic.add("GridinfoIfTxBytesRate", round(tx))
            nic.add("GridinfoIfErrorsRate", round(errors))
            nic.add("GridinfoIfDropsRate", round(drops))
        entries.append(nic)
    return entries


def _per_second(rate: float) -> str:
    """A small rate in short decimal form: ``0``, ``0.25``, ``12``."""
    return f"{rate:.2f}".rstrip("0").rstrip(".") or "0"


def _filesystems(config: HostConfig) -> list[tuple[str, str, int, int]]:
    """(mount point, type, size bytes, free bytes) of the local file systems, one per mount."""
    found: dict[str, tuple[str, str, int, int]] = {}
    for part in psutil.disk_partitions(all=False):
        if part.fstype in config.exclude_fstypes or part.mountpoint in found:
            continue
        try:
            usage = psutil.disk_usage(part.mountpoint)
        except OSError:
            continue
        found[part.mountpoint] = (part.mountpoint, part.fstype, usage.total, usage.free)
    return [found[k] for k in sorted(found)]


def _interfaces(config: HostConfig) -> dict[str, tuple[int, int, list[str], bool]]:
    """name -> (speed Mbit/s, MTU, IP addresses, is loopback), excluded names left out."""
    stats = psutil.net_if_stats()
    addrs = psutil.net_if_addrs()
    found: dict[str, tuple[int, int, list[str], bool]] = {}
    for name, st in stats.items():
        if _excluded(name, config.exclude_interfaces) or not (st.isup or config.include_down_interfaces):
            continue
        ips = [a.address.split("%", 1)[0] for a in addrs.get(name, []) if a.family == socket.AF_INET]
        ips += [a.address.split("%", 1)[0] for a in addrs.get(name, []) if a.family == socket.AF_INET6]
        loopback = "loopback" in (getattr(st, "flags", "") or "") or name == "lo"
        found[name] = (st.speed, st.mtu, ips, loopback)
    return found


def glue2_os() -> tuple[str, str, str]:
    """(OSFamily, OSName, OSVersion) as GLUE 2 wants them: linux, Debian, 12."""
    release = read_key_values("/etc/os-release", "=")
    family = (platform.system() or "linux").lower()
    ident = release.get("ID", "").lower()
    name = OS_NAMES.get(ident) or release.get("NAME") or platform.system() or "unknown"
    version = release.get("VERSION_ID") or platform.release() or "unknown"
    return family, name, version


def cpu_multiplicity(cpu: Processor) -> str:
    """GLUE2ExecutionEnvironmentCPUMultiplicity from the socket and core counts."""
    many_cpus = cpu.sockets > 1
    many_cores = cpu.cores > cpu.sockets
    return f"{'multicpu' if many_cpus else 'singlecpu'}-{'multicore' if many_cores else 'singlecore'}"


def glue2_host_entries(config: HostConfig, glue2_suffix: str) -> list[LDIFEntry]:
    """This host as a GLUE2ExecutionEnvironment (+ GLUE2Benchmark per configured benchmark)."""
    if not glue2_suffix:
        return []
    hostname = fqdn()
    resource_id = config.resource_id or hostname
    manager_id = config.computing_manager_id or computing_manager_id(hostname)
    cpu = processor()
    family, os_name, os_version = glue2_os()
    memory = psutil.virtual_memory()
    swap = psutil.swap_memory()
    machine = platform.machine()
    ee_dn = child_dn("GLUE2ResourceID", resource_id, glue2_suffix)
    ee = LDIFEntry(ee_dn)
    ee.add("objectClass", ["GLUE2Resource", "GLUE2ExecutionEnvironment"])
    ee.add("GLUE2ResourceID", resource_id)
    ee.add("GLUE2EntityName", hostname)
    ee.add("GLUE2ResourceManagerForeignKey", manager_id)
    ee.add("GLUE2ExecutionEnvironmentPlatform", PLATFORMS.get(machine, machine or "unknown"))
    ee.add("GLUE2ExecutionEnvironmentVirtualMachine", extended_boolean(_virtual_machine()))
    ee.add("GLUE2ExecutionEnvironmentTotalInstances", 1)
    ee.add("GLUE2ExecutionEnvironmentPhysicalCPUs", cpu.sockets)
    ee.add("GLUE2ExecutionEnvironmentLogicalCPUs", cpu.logical)
    ee.add("GLUE2ExecutionEnvironmentCPUMultiplicity", cpu_multiplicity(cpu))
    ee.add("GLUE2ExecutionEnvironmentCPUVendor", cpu.vendor)
    ee.add("GLUE2ExecutionEnvironmentCPUModel", cpu.model)
    ee.add("GLUE2ExecutionEnvironmentCPUClockSpeed", cpu.clock_mhz)
    ee.add("GLUE2ExecutionEnvironmentCPUTimeScalingFactor", config.cpu_scaling_factor)
    ee.add("GLUE2ExecutionEnvironmentWallTimeScalingFactor", config.wall_scaling_factor)
    ee.add("GLUE2ExecutionEnvironmentMainMemorySize", memory.total // MB)
    ee.add("GLUE2ExecutionEnvironmentVirtualMemorySize", (memory.total + swap.total) // MB)
    ee.add("GLUE2ExecutionEnvironmentOSFamily", family)
    ee.add("GLUE2ExecutionEnvironmentOSName", os_name)
    ee.add("GLUE2ExecutionEnvironmentOSVersion", os_version)
    ee.add("GLUE2ExecutionEnvironmentConnectivityIn", extended_boolean(config.connectivity_in))
    ee.add("GLUE2ExecutionEnvironmentConnectivityOut", extended_boolean(config.connectivity_out))
    ee.add("GLUE2ExecutionEnvironmentComputingManagerForeignKey", manager_id)
    entries = [ee]
    for kind in sorted(config.benchmarks):
        benchmark_id = f"{resource_id}_{kind}"
        bench = LDIFEntry(child_dn("GLUE2BenchmarkID", benchmark_id, ee_dn))
        bench.add("objectClass", ["GLUE2Benchmark"])
        bench.add("GLUE2BenchmarkID", benchmark_id)
        bench.add("GLUE2BenchmarkType", kind)
        bench.add("GLUE2BenchmarkValue", float(config.benchmarks[kind]))
        bench.add("GLUE2BenchmarkExecutionEnvironmentForeignKey", resource_id)
        bench.add("GLUE2BenchmarkComputingManagerForeignKey", manager_id)
        entries.append(bench)
    return entries


def _virtual_machine() -> bool | None:
    """True on a hypervisor's guest (the CPU flags say so), None when /proc/cpuinfo is unreadable."""
    flags = read_key_values("/proc/cpuinfo", ":").get("flags")
    return None if flags is None else "hypervisor" in flags.split()


def check_benchmarks(config: HostConfig) -> str | None:
    """The problem with the configured benchmark types, or None."""
    unknown = sorted(set(config.benchmarks) - set(BENCHMARK_TYPES))
    if unknown:
        return f"{config.source}: benchmarks: unknown GLUE2BenchmarkType {', '.join(unknown)} (known: {', '.join(BENCHMARK_TYPES)})"
    return None


def produce(config: HostConfig, args: argparse.Namespace, log: logging.Logger) -> str:
    """One run: sample, compare with the previous sample, format the entries."""
    cluster = config.cluster_id or fqdn()
    try:
        folder = state_dir(args.state_dir)
        rates = measure_rates(folder / f"host-{cluster.replace('/', '_')}.json", config, log)
    except OSError as e:
        log.warning("no state folder (%s); rates not published", e)
        rates = None
    problem = check_benchmarks(config)
    if problem:
        log.error("%s; no GLUE2Benchmark published", problem)
        config = replace(config, benchmarks={})
    return format_entries(host_entries(config, args.suffix, rates) + glue2_host_entries(config, args.glue2_suffix))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``providers/host``."""
    return run_provider("host", "Publish this host's static facts and load as GLUE/gridinfo LDIF.", HostConfig, produce, argv)
