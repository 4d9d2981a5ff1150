"""The ``hypervisor`` provider: a hypervisor and its domains, through libvirt or Xen's ``xl``.

Entries::

    GridinfoHypervisorID=<host>,<suffix>                      GridinfoHypervisor
    GridinfoVMID=<uuid>,GridinfoHypervisorID=<host>,<suffix>  GridinfoVM, one per domain

Sources, in the order ``backend: auto`` tries them:

1. libvirt (Python bindings ``libvirt``), any URI: ``qemu:///system``, ``xen:///system``,
   ``test:///default`` or ``test:///abs/path/node.xml`` (the test driver with a node file).
   Without ``uri`` libvirt chooses (``$LIBVIRT_DEFAULT_URI``, then its built-in order).
2. ``xl info``, ``xl list``, ``xl list -l`` and ``xl uptime`` (Xen's toolstack, run as root).

When neither is usable the provider says so once on stderr and publishes nothing (exit 0).

Domain states are mapped to gridinfo's VM states and to the generic job states that gridinfo
uses for every kind of job (see :data:`LIBVIRT_STATES` and :data:`XL_STATES`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from gridinfo.providers_lib.output import LDIFEntry, child_dn, format_entries
from gridinfo.providers_lib.runtime import CommandFailed, CommandMissing, run_command, run_provider

MB = 1 << 20

# Theory of operation: a hypervisor reports each domain's state in its own vocabulary; gridinfo
# publishes one VM vocabulary (GridinfoVMState) and the generic job vocabulary shared with batch
# jobs (GridinfoJobGenericState: Submitted, Waiting, Scheduled, Running, Done, Aborted, Cleared).
#
#   libvirt state (virDomainState)   xl flag   VM state       generic state
#   0 NOSTATE                        -         Unknown        Submitted
#   (no flag: idle)                  ------    Blocked        Running
#   1 RUNNING                        r         Running        Running
#   2 BLOCKED (idle, waiting on I/O) b         Blocked        Running
#   3 PAUSED (by the admin)          p         Paused         Waiting
#   4 SHUTDOWN (being shut down)     d (dying) ShuttingDown   Running
#   5 SHUTOFF                        s         ShutDown       Done
#   6 CRASHED                        c         Crashed        Aborted
#   7 PMSUSPENDED (guest suspended)  -         Suspended      Waiting
#
# A paused or suspended domain keeps its resources and resumes where it stopped, so for a job
# view it is Waiting; a domain that is shutting down still runs.  The names shared with the VM
# lifecycle (gridinfo.vm.lifecycle.VM_STATES: Unknown, Running, ShuttingDown, ShutDown) have the
# same generic state there; Blocked, Paused, Suspended and Crashed are what only a hypervisor
# sees (the lifecycle calls a crashed VM Failed, generic Aborted as here).

LIBVIRT_STATES: dict[int, tuple[str, str]] = {
    0: ("Unknown", "Submitted"),
    1: ("Running", "Running"),
    2: ("Blocked", "Running"),
    3: ("Paused", "Waiting"),
    4: ("ShuttingDown", "Running"),
    5: ("ShutDown", "Done"),
    6: ("Crashed", "Aborted"),
    7: ("Suspended", "Waiting"),
}

#: xl's state column is six flag positions "rbpscd"; the first set flag decides, in this order
#: (a crashed or dying domain may show other flags too).
XL_STATES: list[tuple[str, tuple[str, str]]] = [
    ("c", ("Crashed", "Aborted")),
    ("d", ("ShuttingDown", "Running")),
    ("s", ("ShutDown", "Done")),
    ("p", ("Paused", "Waiting")),
    ("r", ("Running", "Running")),
    ("b", ("Blocked", "Running")),
]


@dataclass(frozen=True)
class HypervisorConfig:
    """Config keys of the hypervisor provider (all optional)."""

    backend: Literal["auto", "libvirt", "xl"] = "auto"
    uri: str | None = None  # libvirt URI (default: libvirt's choice, e.g. $LIBVIRT_DEFAULT_URI)
    hypervisor_id: str | None = None  # GridinfoHypervisorID (default: the hypervisor's host name)
    xl: str = "xl"  # the xl command (a path or a name on PATH)
    timeout: float = 10.0  # seconds each xl command may take
    source: str = "<defaults>"


@dataclass
class Domain:
    """One domain as the provider publishes it."""

    name: str
    uuid: str
    vm_state: str
    generic_state: str
    native_state: str
    vcpus: int | None = None
    memory_mb: int | None = None
    max_memory_mb: int | None = None
    cpu_time: float | None = None  # seconds
    uptime: int | None = None  # seconds
    domid: int | None = None


@dataclass
class Hypervisor:
    """The hypervisor and its domains."""

    hostname: str
    type: str
    version: str | None
    uri: str | None
    cpus: int | None
    memory_total_mb: int | None
    memory_free_mb: int | None
    domains: list[Domain] = field(default_factory=list)


class SourceMissing(Exception):
    """The source is not installed or not reachable; the message says what is missing."""


# ---------------------------------------------------------------------------------------------
# libvirt


def libvirt_version(number: int) -> str:
    """libvirt's packed version (major * 1e6 + minor * 1e3 + release) as ``major.minor.release``."""
    return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"


def read_libvirt(uri: str | None) -> Hypervisor:
    """Read the hypervisor behind ``uri`` through libvirt's Python bindings, read-only."""
    try:
        import libvirt  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        raise SourceMissing("libvirt's Python bindings (libvirt-python) are not installed") from None
    # libvirt prints errors on stderr by default; we report them ourselves, once.
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    try:
        conn = libvirt.openReadOnly(uri)
    except libvirt.libvirtError as e:
        raise SourceMissing(f"cannot connect to libvirt at {uri or 'the default URI'}: {e}") from None
    try:
        model, memory_mb, cpus, _mhz, *_ = conn.getInfo()
        try:
            free_mb: int | None = conn.getFreeMemory() // MB
        except libvirt.libvirtError:
            free_mb = None
        hv = Hypervisor(
            hostname=conn.getHostname(),
            type=conn.getType(),
            version=libvirt_version(conn.getVersion()),
            uri=conn.getURI(),
            cpus=cpus,
            memory_total_mb=memory_mb,
            memory_free_mb=free_mb,
        )
        for dom in conn.listAllDomains():
            state, max_kib, kib, vcpus, cpu_ns = dom.info()
            vm_state, generic = LIBVIRT_STATES.get(state, LIBVIRT_STATES[0])
            active = bool(dom.isActive())
            hv.domains.append(
                Domain(
                    name=dom.name(),
                    uuid=dom.UUIDString(),
                    vm_state=vm_state,
                    generic_state=generic,
                    native_state=str(state),
                    vcpus=vcpus,
                    memory_mb=kib // 1024 if active else 0,
                    max_memory_mb=max_kib // 1024,
                    cpu_time=cpu_ns / 1e9 if active else None,
                    uptime=_qemu_uptime(hv.type, dom.name()) if active else None,
                    domid=dom.ID() if active else None,
                )
            )
        return hv
    finally:
        conn.close()


def _qemu_uptime(hv_type: str, name: str) -> int | None:
    """Seconds since a QEMU domain's process started (from libvirt's pid file), if readable."""
    if hv_type != "QEMU":
        return None
    try:
        import psutil

        with open(f"/run/libvirt/qemu/{name}.pid", encoding="ascii") as f:
            started = psutil.Process(int(f.read().strip())).create_time()
    except (OSError, ValueError, ImportError, Exception):  # noqa: BLE001 - best effort only
        return None
    import time

    return max(0, int(time.time() - started))


# ---------------------------------------------------------------------------------------------
# xl


def parse_xl_info(text: str) -> dict[str, str]:
    """``xl info``'s ``key : value`` lines as a dict."""
    info: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            info.setdefault(key.strip(), value.strip())
    return info


@dataclass(frozen=True)
class XlListRow:
    name: str
    domid: int
    memory_mb: int
    vcpus: int
    state: str
    cpu_time: float


def parse_xl_list(text: str) -> list[XlListRow]:
    """``xl list``'s table: Name, ID, Mem, VCPUs, State, Time(s) (names may hold spaces)."""
    rows: list[XlListRow] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[0] == "Name":
            continue
        try:
            rows.append(
                XlListRow(
                    name=" ".join(fields[:-5]),
                    domid=int(fields[-5]),
                    memory_mb=int(fields[-4]),
                    vcpus=int(fields[-3]),
                    state=fields[-2],
                    cpu_time=float(fields[-1]),
                )
            )
        except ValueError:
            continue
    return rows


def parse_xl_list_long(text: str) -> dict[int, dict[str, Any]]:
    """``xl list -l`` (a JSON array, one object per domain) by domain id."""
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    found: dict[int, dict[str, Any]] = {}
    if isinstance(data, list):
        for item in data:
            if isinstance(item, dict) and isinstance(item.get("domid"), int):
                found[item["domid"]] = item
    return found


_UPTIME = re.compile(r"^(?:(\d+)\s+days?,\s*)?(\d+):(\d{2}):(\d{2})$")


def parse_uptime(text: str) -> int | None:
    """``xl uptime``'s uptime column: ``[N day[s], ]H:MM:SS`` in seconds."""
    m = _UPTIME.match(text.strip())
    if not m:
        return None
    days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def parse_xl_uptime(text: str) -> dict[int, int]:
    """``xl uptime``'s table (Name, ID, Uptime) as domain id -> seconds."""
    found: dict[int, int] = {}
    for line in text.splitlines():
        m = re.match(r"^(.*?)\s+(\d+)\s+((?:\d+\s+days?,\s*)?\d+:\d{2}:\d{2})\s*$", line)
        if m:
            seconds = parse_uptime(m.group(3))
            if seconds is not None:
                found[int(m.group(2))] = seconds
    return found


def xl_state(flags: str) -> tuple[str, str]:
    """(VM state, generic state) for xl's ``rbpscd`` flag column."""
    for flag, states in XL_STATES:
        if flag in flags:
            return states
    return ("Blocked", "Running")  # no flag: idle, neither running nor blocked on an event


def build_xl(info_text: str, list_text: str, long_text: str, uptime_text: str) -> Hypervisor:
    """The hypervisor from the four ``xl`` outputs (``long_text``/``uptime_text`` may be '')."""
    info = parse_xl_info(info_text)
    long = parse_xl_list_long(long_text)
    uptimes = parse_xl_uptime(uptime_text)

    def number(key: str) -> int | None:
        try:
            return int(float(info[key]))
        except (KeyError, ValueError):
            return None

    version = info.get("xen_version") or (
        f"{info['xen_major']}.{info['xen_minor']}{info.get('xen_extra', '')}" if "xen_major" in info else None
    )
    hv = Hypervisor(
        hostname=info.get("host", ""),
        type="Xen",
        version=version,
        uri=None,
        cpus=number("nr_cpus"),
        memory_total_mb=number("total_memory"),
        memory_free_mb=number("free_memory"),
    )
    for row in parse_xl_list(list_text):
        config = long.get(row.domid, {}).get("config", {})
        c_info = config.get("c_info", {}) if isinstance(config, dict) else {}
        b_info = config.get("b_info", {}) if isinstance(config, dict) else {}
        max_kb = b_info.get("max_memkb") if isinstance(b_info, dict) else None
        vm_state, generic = xl_state(row.state)
        hv.domains.append(
            Domain(
                name=row.name,
                uuid=str(c_info.get("uuid") or f"domid-{row.domid}") if isinstance(c_info, dict) else f"domid-{row.domid}",
                vm_state=vm_state,
                generic_state=generic,
                native_state=row.state,
                vcpus=row.vcpus,
                memory_mb=row.memory_mb,
                max_memory_mb=max_kb // 1024 if isinstance(max_kb, int) and max_kb > 0 else None,
                cpu_time=row.cpu_time,
                uptime=uptimes.get(row.domid),
                domid=row.domid,
            )
        )
    return hv


def read_xl(config: HypervisorConfig) -> Hypervisor:
    """Run ``xl info``, ``xl list``, ``xl list -l`` and ``xl uptime`` and combine them."""
    try:
        info = run_command([config.xl, "info"], config.timeout).stdout
        listing = run_command([config.xl, "list"], config.timeout).stdout
    except CommandMissing:
        raise SourceMissing(f"Xen's {config.xl!r} command is not installed") from None
    except CommandFailed as e:
        raise SourceMissing(str(e)) from None
    extras = []
    for argv in ([config.xl, "list", "-l"], [config.xl, "uptime"]):
        try:
            extras.append(run_command(argv, config.timeout).stdout)
        except (CommandMissing, CommandFailed):
            extras.append("")
    return build_xl(info, listing, extras[0], extras[1])


# ---------------------------------------------------------------------------------------------
# Entries


def hypervisor_entries(hv: Hypervisor, suffix: str, hypervisor_id: str | None = None) -> list[LDIFEntry]:
    """One entry for the hypervisor, one per domain below it."""
    ident = hypervisor_id or hv.hostname or "hypervisor"
    hv_dn = child_dn("GridinfoHypervisorID", ident, suffix)
    top = LDIFEntry(hv_dn)
    top.add("objectClass", ["GridinfoHypervisor"])
    top.add("GridinfoHypervisorID", ident)
    top.add("GridinfoHypervisorType", hv.type)
    top.add("GridinfoHypervisorVersion", hv.version)
    top.add("GridinfoHypervisorURI", hv.uri)
    top.add("GridinfoHypervisorCPUs", hv.cpus)
    top.add("GridinfoHypervisorMemoryTotal", hv.memory_total_mb)
    top.add("GridinfoHypervisorMemoryFree", hv.memory_free_mb)
    # GridinfoHypervisorDomains counts running domains (the schema's meaning): those with a domid.
    top.add("GridinfoHypervisorDomains", sum(1 for d in hv.domains if d.domid is not None))
    entries = [top]
    for dom in sorted(hv.domains, key=lambda d: d.name):
        vm = LDIFEntry(child_dn("GridinfoVMID", dom.uuid, hv_dn))
        vm.add("objectClass", ["GridinfoVM"])
        vm.add("GridinfoVMID", dom.uuid)
        vm.add("GridinfoVMName", dom.name)
        vm.add("GridinfoVMUUID", dom.uuid)
        vm.add("GridinfoVMState", dom.vm_state)
        vm.add("GridinfoJobGenericState", dom.generic_state)
        vm.add("GridinfoVMVCPUs", dom.vcpus)
        vm.add("GridinfoVMMemory", dom.memory_mb)
        vm.add("GridinfoVMCPUTime", round(dom.cpu_time) if dom.cpu_time is not None else None)
        vm.add("GridinfoVMUptime", dom.uptime)
        vm.add("GridinfoVMPhysicalHost", hv.hostname or ident)
        vm.add("GridinfoHypervisorID", ident)
        entries.append(vm)
    return entries


def read_hypervisor(config: HypervisorConfig, log: logging.Logger) -> Hypervisor | None:
    """The hypervisor from the configured backend; None (logged once) when no source works."""
    uri = config.uri or os.environ.get("LIBVIRT_DEFAULT_URI") or None
    reasons = []
    if config.backend in ("auto", "libvirt"):
        try:
            return read_libvirt(uri)
        except SourceMissing as e:
            reasons.append(str(e))
    if config.backend in ("auto", "xl"):
        try:
            return read_xl(config)
        except SourceMissing as e:
            reasons.append(str(e))
    log.warning("no hypervisor source usable, publishing nothing: %s", "; ".join(reasons))
    return None


def produce(config: HypervisorConfig, args: argparse.Namespace, log: logging.Logger) -> str:
    hv = read_hypervisor(config, log)
    if hv is None:
        return ""
    return format_entries(hypervisor_entries(hv, args.suffix, config.hypervisor_id))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``providers/hypervisor``."""
    return run_provider("hypervisor", "Publish a hypervisor and its domains (libvirt or xl) as LDIF.", HypervisorConfig, produce, argv)
