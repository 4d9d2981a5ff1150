"""The ``batch`` provider: a batch system's queues as GLUE CEs and its jobs as GridinfoJob entries.

Why one module: it is one provider's Slurm reader and the GLUE 1.3 and GLUE 2 entry builders that
the Grid Engine reader (:mod:`.gridengine`) also feeds; the readers are already split by batch
system.

Slurm is read with three commands whose output formats Slurm documents and keeps stable:

- ``scontrol show partition -o``: one line per partition, ``Key=Value`` tokens (state, CPUs,
  limits, priority tier, preemption);
- ``sinfo -h -o '%R|%C'``: per partition allocated/idle/other/total CPUs;
- ``squeue -h -a -r -o '%i|%P|%u|%T|%V|%S|%C|%r|%N'`` with ``SLURM_TIME_FORMAT=%s`` (times as Unix
  seconds, so no local-time parsing): one line per job (array tasks expanded), the nodes it runs
  on last (a Slurm host list, e.g. ``node[01-03],gpu7``; empty while it waits).

Entries::

    GlueCEUniqueID=<host>/slurm-<partition>,<suffix>                   GlueCE (+ Info, State, Policy)
    GridinfoJobID=<job id>,GlueCEUniqueID=<host>/slurm-<partition>,... GridinfoJob, one per job
                                                   (+ GridinfoLifecycle with GridinfoJobExecHost: its nodes)

and, below the GLUE 2 suffix (none when it is empty), built from the :class:`Queues` model
alone (so every batch system read into it publishes the same way; layout in
:mod:`gridinfo.providers_lib.glue2`)::

    GLUE2ServiceID=<host>_ComputingElement,<g2>          GLUE2ComputingService
      GLUE2EndpointID=<service>_<lrms>,...              GLUE2ComputingEndpoint (+ GLUE2AccessPolicy)
      GLUE2ManagerID=<service>_Manager,...              GLUE2ComputingManager
      GLUE2ShareID=<partition>_<service>,...            GLUE2ComputingShare, one per partition
        GLUE2PolicyID=<share>_mapping,...               GLUE2MappingPolicy (rules: vos / partition_vos)


Grid Engine is read by :mod:`gridinfo.providers_lib.gridengine` into the same model; the config
key ``system`` chooses (``auto``: Slurm when it is configured here, else Grid Engine when it has a
cell here).  Its CEs are ``GlueCEUniqueID=<host>/sge-<queue>``.

Missing source (no ``squeue`` on PATH, or no slurm.conf where Slurm looks; for Grid Engine no
``qstat`` or no cell): logged once, nothing published, exit 0.  Configured but failing
(controller or qmaster unreachable, command timed out): exit 1, so that the GRIS keeps the last
good data and shows the error in the provider's status.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from gridinfo.providers_lib.glue2 import access_policy, computing_service_id, extended_boolean, mapping_policy

from gridinfo.directory.gtime import format_generalized_time
from gridinfo.providers_lib.host import fqdn
from gridinfo.providers_lib.output import LDIFEntry, child_dn, format_entries
from gridinfo.providers_lib.runtime import (
    CommandFailed,
    CommandMissing,
    SourceFailed,
    find_command,
    run_command,
    run_provider,
)

# Theory of operation: Slurm's job states (squeue %T) map to gridinfo's generic job states
# (GridinfoJobGenericState), shared with VMs: Submitted, Waiting, Scheduled, Running, Done,
# Aborted, Cleared.  The native state is published as it is in GridinfoJobState.
#
#   Slurm state                                       generic    counted by the CE as
#   PENDING, REQUEUED, REQUEUE_HOLD, REQUEUE_FED,     Waiting    waiting
#     RESV_DEL_HOLD, SUSPENDED, STOPPED
#   CONFIGURING (nodes allocated, booting)            Scheduled  running
#   RUNNING, COMPLETING, RESIZING, SIGNALING,         Running    running
#     STAGE_OUT
#   COMPLETED                                         Done       -
#   CANCELLED, FAILED, TIMEOUT, NODE_FAIL, PREEMPTED, Aborted    -
#     BOOT_FAIL, DEADLINE, OUT_OF_MEMORY, SPECIAL_EXIT
#   REVOKED (started on another cluster)              Cleared    -
#   anything else                                     Submitted  waiting

SLURM_GENERIC: dict[str, str] = {
    **dict.fromkeys(
        ["PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SUSPENDED", "STOPPED"], "Waiting"
    ),
    "CONFIGURING": "Scheduled",
    **dict.fromkeys(["RUNNING", "COMPLETING", "RESIZING", "SIGNALING", "STAGE_OUT"], "Running"),
    "COMPLETED": "Done",
    **dict.fromkeys(
        ["CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY", "SPECIAL_EXIT"],
        "Aborted",
    ),
    "REVOKED": "Cleared",
}

#: Slurm partition State -> GlueCEStateStatus (GLUE 1.3: Queueing, Production, Closed, Draining).
#: A DOWN partition still queues jobs but starts none; DRAIN takes no new jobs; INACTIVE neither.
SLURM_STATUS: dict[str, str] = {"UP": "Production", "DOWN": "Queueing", "DRAIN": "Draining", "INACTIVE": "Closed"}

#: GlueCEInfoLRMSType -> GlueCEImplementationName (Grid Engine names itself SGE in qstat -help).
LRMS_NAMES: dict[str, str] = {"slurm": "Slurm", "sge": "SGE"}

SQUEUE_FORMAT = "%i|%P|%u|%T|%V|%S|%C|%r|%N"
SINFO_FORMAT = "%R|%C"


@dataclass(frozen=True)
class BatchConfig:
    """Config keys of the batch provider (all optional)."""

    system: Literal["auto", "slurm", "gridengine"] = "auto"
    ce_host: str | None = None  # host part of GlueCEUniqueID (default: this host's FQDN)
    ce_id_format: str = "{host}/{lrms}-{partition}"  # GlueCEUniqueID; {host}, {lrms}, {partition}
    cluster_id: str | None = None  # GlueCEHostingCluster (default: this host's FQDN)
    slurm_conf: str | None = None  # passed as SLURM_CONF to the commands (default: Slurm's own)
    sge_root: str | None = None  # SGE_ROOT (default: $SGE_ROOT, else /var/lib/gridengine)
    sge_cell: str | None = None  # SGE_CELL (default: $SGE_CELL, else default)
    sge_qmaster_port: int | None = None  # SGE_QMASTER_PORT (default: $SGE_QMASTER_PORT, else sge_qmaster in /etc/services)
    publish_jobs: bool = True
    max_jobs: int = 20000  # jobs published at most (the CE counts include all)
    timeout: float = 10.0  # seconds each command may take
    # GLUE 2.0 (GLUE2ComputingService and what hangs below it)
    site_id: str | None = None  # GLUE2ServiceAdminDomainForeignKey: the site's GLUE2DomainID (default: ce_host)
    service_id: str | None = None  # GLUE2ServiceID (default: <ce_host>_ComputingElement)
    service_type: str = "CE"  # GLUE2ServiceType
    quality_level: Literal["development", "pre-production", "production", "testing"] = "production"
    endpoint_url: str = "ssh://{host}:22/"  # GLUE2EndpointURL of the submission endpoint; {host}
    endpoint_interface: str = "OpenSSH"  # GLUE2EndpointInterfaceName (jobs are submitted on the host)
    vos: tuple[str, ...] = ()  # GLUE2PolicyRule of every share and of the endpoint, e.g. ["VO:ops"]
    partition_vos: dict[str, tuple[str, ...]] = field(default_factory=dict)  # per partition, replaces vos
    source: str = "<defaults>"


@dataclass
class Partition:
    """One queue (a Slurm partition, a Grid Engine cluster queue)."""

    name: str
    state: str  # UP, DOWN, DRAIN or INACTIVE (Slurm's words; SLURM_STATUS maps them to GLUE)
    total_cpus: int | None = None
    idle_cpus: int | None = None
    max_time_minutes: int | None = None
    priority_tier: int | None = None
    preempt: bool | None = None
    max_nodes: int | None = None
    running: int = 0
    waiting: int = 0


@dataclass
class Job:
    id: str
    partitions: list[str]
    owner: str
    state: str
    generic: str
    submit: int | None
    start: int | None
    cpus: int | None
    reason: str
    nodes: list[str] = field(default_factory=list)  # where it runs (Slurm: squeue %N, expanded)


@dataclass
class Queues:
    lrms_version: str | None
    partitions: dict[str, Partition] = field(default_factory=dict)
    jobs: list[Job] = field(default_factory=list)
    system: str = "slurm"  # GlueCEInfoLRMSType: slurm or sge (LRMS_NAMES)


def parse_slurm_duration(text: str) -> int | None:
    """Slurm's ``[days-]hours:minutes:seconds`` (or ``minutes:seconds``, ``minutes``) in minutes.

    ``UNLIMITED``, ``INFINITE``, ``NONE`` and unparsable text give None.
    """
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not m:
        return None
    days = int(m.group(1) or 0)
    parts = [int(p) for p in m.group(2, 3, 4) if p is not None]
    if m.group(1) is not None:  # days-hours[:minutes[:seconds]]
        parts += [0] * (3 - len(parts))
        hours, minutes, seconds = parts
    elif len(parts) == 3:
        hours, minutes, seconds = parts
    elif len(parts) == 2:
        hours, (minutes, seconds) = 0, parts
    else:
        hours, minutes, seconds = 0, parts[0], 0
    return (days * 24 + hours) * 60 + minutes + (1 if seconds else 0)


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def parse_partitions(text: str) -> dict[str, Partition]:
    """``scontrol show partition -o``: one partition per line of ``Key=Value`` tokens."""
    found: dict[str, Partition] = {}
    for line in text.splitlines():
        pairs = dict(token.partition("=")[::2] for token in line.split() if "=" in token)
        name = pairs.get("PartitionName")
        if not name:
            continue
        found[name] = Partition(
            name=name,
            state=pairs.get("State", "UP").upper(),
            total_cpus=_int(pairs.get("TotalCPUs")),
            max_time_minutes=parse_slurm_duration(pairs.get("MaxTime", "UNLIMITED")),
            priority_tier=_int(pairs.get("PriorityTier")),
            preempt=(pairs["PreemptMode"].upper() != "OFF") if "PreemptMode" in pairs else None,
            max_nodes=_int(pairs.get("MaxNodes")),
        )
    return found


def parse_sinfo_cpus(text: str) -> dict[str, tuple[int, int, int, int]]:
    """``sinfo -h -o '%R|%C'``: partition -> (allocated, idle, other, total) CPUs (lines summed)."""
    found: dict[str, tuple[int, int, int, int]] = {}
    for line in text.splitlines():
        name, sep, cpus = line.strip().partition("|")
        numbers = cpus.split("/")
        if not sep or len(numbers) != 4:
            continue
        try:
            counts = tuple(int(n) for n in numbers)
        except ValueError:
            continue
        before = found.get(name, (0, 0, 0, 0))
        found[name] = tuple(a + b for a, b in zip(before, counts))  # type: ignore[assignment]
    return found


def parse_squeue(text: str) -> list[Job]:
    """``squeue -h -o SQUEUE_FORMAT`` with ``SLURM_TIME_FORMAT=%s``: one job per line."""
    jobs = []
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) < 8:
            continue
        job_id, partitions, owner, state, submit, start, cpus = fields[:7]
        # the node list is last (SQUEUE_FORMAT); a line of the older 8-field format has none
        reason = "|".join(fields[7:-1] if len(fields) > 8 else fields[7:])
        nodes = expand_hostlist(fields[-1]) if len(fields) > 8 else []
        state = state.strip().upper()
        generic = SLURM_GENERIC.get(state, "Submitted")
        started = generic in ("Running", "Scheduled") or state in ("SUSPENDED", "STOPPED")
        jobs.append(
            Job(
                id=job_id.strip(),
                partitions=[p for p in partitions.split(",") if p],
                owner=owner.strip(),
                state=state,
                generic=generic,
                submit=_int(submit),
                start=_int(start) if started else None,
                cpus=_int(cpus),
                reason=reason,
                nodes=nodes,
            )
        )
    return jobs


def expand_hostlist(text: str) -> list[str]:
    """A Slurm host list (``n[01-03,7],gpu1``) as host names; ``(null)`` and blanks give none."""
    text = text.strip()
    if not text or text in ("(null)", "None assigned"):
        return []
    hosts: list[str] = []
    for item in re.findall(r"[^,\[]+(?:\[[^\]]*\])?[^,]*", text):
        m = re.fullmatch(r"([^\[]*)\[([^\]]*)\](.*)", item)
        if m is None:
            hosts.append(item)
            continue
        prefix, ranges, suffix = m.groups()
        for part in ranges.split(","):
            lo, _, hi = part.partition("-")
            if hi and lo.isdigit() and hi.isdigit():
                hosts += [f"{prefix}{n:0{len(lo)}d}{suffix}" for n in range(int(lo), int(hi) + 1)]
            else:
                hosts.append(f"{prefix}{part}{suffix}")
    return hosts


def combine(partitions: dict[str, Partition], cpus: dict[str, tuple[int, int, int, int]], jobs: list[Job]) -> None:
    """Fill each partition's free CPUs and job counts (a job pending in several counts in each)."""
    for name, (_alloc, idle, _other, total) in cpus.items():
        if name in partitions:
            partitions[name].idle_cpus = idle
            if partitions[name].total_cpus is None:
                partitions[name].total_cpus = total
    for job in jobs:
        for name in job.partitions:
            part = partitions.get(name)
            if part is None:
                continue
            if job.generic in ("Running", "Scheduled"):
                part.running += 1
            elif job.generic in ("Waiting", "Submitted"):
                part.waiting += 1


#: Where Slurm's clients look for their config when $SLURM_CONF is not set: the packaged
#: location, the pre-2020 Debian one, and the copy slurmd keeps in "configless" mode.
SLURM_CONF_PATHS = ("/etc/slurm/slurm.conf", "/etc/slurm-llnl/slurm.conf", "/run/slurm/conf/slurm.conf")


def slurm_config_file(config: BatchConfig) -> str | None:
    """The slurm.conf the commands will use, or None when Slurm is not configured on this host.

    Checked first because Slurm's clients without a config retry for many seconds.
    """
    if config.slurm_conf:
        return config.slurm_conf if os.path.exists(config.slurm_conf) else None
    candidates = [os.environ.get("SLURM_CONF", ""), *SLURM_CONF_PATHS]
    return next((c for c in candidates if c and os.path.exists(c)), None)


def read_slurm(config: BatchConfig, log: logging.Logger) -> Queues | None:
    """Slurm's partitions and jobs; None when Slurm is not here; SourceFailed when it fails."""
    if find_command("squeue") is None:
        log.warning("Slurm's squeue is not installed: no batch system to publish")
        return None
    conf = slurm_config_file(config)
    if conf is None:
        log.warning("Slurm is installed but not configured here (no slurm.conf): nothing to publish")
        return None
    env = {"SLURM_TIME_FORMAT": "%s", "LC_ALL": "C", "SLURM_CONF": conf}
    try:
        parts_text = run_command(["scontrol", "show", "partition", "-o"], config.timeout, env=env).stdout
        sinfo_text = run_command(["sinfo", "-h", "-o", SINFO_FORMAT], config.timeout, env=env).stdout
        squeue_text = run_command(["squeue", "-h", "-a", "-r", "-o", SQUEUE_FORMAT], config.timeout, env=env).stdout
    except CommandMissing as e:
        log.warning("Slurm's %s is not installed: no batch system to publish", e)
        return None
    except CommandFailed as e:
        raise SourceFailed(f"Slurm did not answer: {e}") from None
    version = None
    try:
        out = run_command(["sinfo", "--version"], config.timeout, env=env).stdout.split()
        version = out[-1] if out else None
    except (CommandMissing, CommandFailed):
        pass
    partitions = parse_partitions(parts_text)
    jobs = parse_squeue(squeue_text)
    combine(partitions, parse_sinfo_cpus(sinfo_text), jobs)
    return Queues(version, partitions, jobs)


def batch_entries(queues: Queues, config: BatchConfig, suffix: str) -> list[LDIFEntry]:
    host = config.ce_host or fqdn()
    cluster = config.cluster_id or fqdn()
    entries: list[LDIFEntry] = []
    ce_dns: dict[str, str] = {}
    for name in sorted(queues.partitions):
        part = queues.partitions[name]
        ce_id = config.ce_id_format.format(host=host, lrms=queues.system, partition=name)
        dn = child_dn("GlueCEUniqueID", ce_id, suffix)
        ce_dns[name] = dn
        ce = LDIFEntry(dn)
        ce.add("objectClass", ["GlueCETop", "GlueCE", "GlueCEInfo", "GlueCEState", "GlueCEPolicy", "GlueKey", "GlueSchemaVersion"])
        ce.add("GlueCEUniqueID", ce_id)
        ce.add("GlueCEName", name)
        ce.add("GlueCEHostingCluster", cluster)
        ce.add("GlueCEImplementationName", LRMS_NAMES.get(queues.system, queues.system))
        ce.add("GlueCEImplementationVersion", queues.lrms_version)
        ce.add("GlueCEInfoLRMSType", queues.system)
        ce.add("GlueCEInfoLRMSVersion", queues.lrms_version)
        ce.add("GlueCEInfoHostName", host)
        ce.add("GlueCEInfoTotalCPUs", part.total_cpus)
        ce.add("GlueCEStateStatus", partition_status(part))
        ce.add("GlueCEStateRunningJobs", part.running)
        ce.add("GlueCEStateWaitingJobs", part.waiting)
        ce.add("GlueCEStateTotalJobs", part.running + part.waiting)
        ce.add("GlueCEStateFreeCPUs", part.idle_cpus)
        ce.add("GlueCEStateFreeJobSlots", part.idle_cpus)
        ce.add("GlueCEPolicyMaxWallClockTime", part.max_time_minutes)
        ce.add("GlueCEPolicyMaxObtainableWallClockTime", part.max_time_minutes)
        ce.add("GlueCEPolicyPriority", part.priority_tier)
        ce.add("GlueCEPolicyAssignedJobSlots", part.total_cpus)
        ce.add("GlueCEPolicyPreemption", None if part.preempt is None else int(part.preempt))
        ce.add("GlueForeignKey", f"GlueClusterUniqueID={cluster}")
        ce.add("GlueSchemaVersionMajor", 1).add("GlueSchemaVersionMinor", 3)
        entries.append(ce)
    if config.publish_jobs:
        for job in queues.jobs[: config.max_jobs]:
            parent = next((ce_dns[p] for p in job.partitions if p in ce_dns), None)
            if parent is None:
                continue
            entry = LDIFEntry(child_dn("GridinfoJobID", job.id, parent))
            entry.add("objectClass", ["GridinfoJob"])
            entry.add("GridinfoJobID", job.id)
            entry.add("GridinfoJobOwner", job.owner)
            entry.add("GridinfoJobQueue", ",".join(job.partitions))
            entry.add("GridinfoJobState", job.state)
            entry.add("GridinfoJobGenericState", job.generic)
            entry.add("GridinfoJobSubmitTime", format_generalized_time(job.submit) if job.submit else None)
            entry.add("GridinfoJobStartTime", format_generalized_time(job.start) if job.start else None)
            if job.nodes:  # where it runs: the GRIS relates the job to the VMs of these names (docs/vm.md)
                entry.add("objectClass", ["GridinfoLifecycle"])
                entry.add("GridinfoJobExecHost", job.nodes)
            entries.append(entry)
    return entries


#: GLUE 1.3 GlueCEStateStatus -> GLUE 2 ServingState (GLUE2ComputingShareServingState, ...).
SERVING_STATES = {"Production": "production", "Queueing": "queueing", "Draining": "draining", "Closed": "closed"}


def partition_status(part: Partition) -> str:
    """The partition's GLUE 1.3 status (Production, Queueing, Draining, Closed)."""
    return SLURM_STATUS.get(part.state.split("_")[0], "Closed")


def glue2_batch_entries(queues: Queues, config: BatchConfig, glue2_suffix: str) -> list[LDIFEntry]:
    """The batch system in GLUE 2.0: service, endpoint, manager, one share per partition."""
    if not glue2_suffix:
        return []
    host = config.ce_host or fqdn()
    lrms = queues.system
    product = LRMS_NAMES.get(lrms, lrms)
    version = queues.lrms_version or "unknown"
    service_id = config.service_id or computing_service_id(host)
    service_dn = child_dn("GLUE2ServiceID", service_id, glue2_suffix)
    endpoint_id = f"{service_id}_{lrms}"
    endpoint_dn = child_dn("GLUE2EndpointID", endpoint_id, service_dn)
    manager_id = f"{service_id}_Manager"
    partitions = [queues.partitions[n] for n in sorted(queues.partitions)]
    running = sum(1 for j in queues.jobs if j.generic in ("Running", "Scheduled"))
    waiting = sum(1 for j in queues.jobs if j.generic in ("Waiting", "Submitted"))
    states = {SERVING_STATES[partition_status(p)] for p in partitions}
    serving = next((s for s in ("production", "draining", "queueing") if s in states), "closed")
    all_rules = sorted({r for p in partitions for r in config.partition_vos.get(p.name, config.vos)})

    service = LDIFEntry(service_dn)
    service.add("objectClass", ["GLUE2Service", "GLUE2ComputingService"])
    service.add("GLUE2ServiceID", service_id)
    service.add("GLUE2EntityName", f"{product} on {host}")
    service.add("GLUE2ServiceType", config.service_type)
    service.add("GLUE2ServiceQualityLevel", config.quality_level)
    service.add("GLUE2ServiceCapability", ["executionmanagement.jobexecution"])
    service.add("GLUE2ServiceComplexity", f"endpointType=1, share={len(partitions)}, resource=1")
    service.add("GLUE2ServiceAdminDomainForeignKey", config.site_id or host)  # the schema requires one
    service.add("GLUE2ComputingServiceTotalJobs", running + waiting)
    service.add("GLUE2ComputingServiceRunningJobs", running)
    service.add("GLUE2ComputingServiceWaitingJobs", waiting)
    entries = [service]

    endpoint = LDIFEntry(endpoint_dn)
    endpoint.add("objectClass", ["GLUE2Endpoint", "GLUE2ComputingEndpoint"])
    endpoint.add("GLUE2EndpointID", endpoint_id)
    endpoint.add("GLUE2EntityName", f"{product} submission on {host}")
    endpoint.add("GLUE2EndpointURL", config.endpoint_url.format(host=host))
    endpoint.add("GLUE2EndpointCapability", ["executionmanagement.jobexecution"])
    endpoint.add("GLUE2EndpointInterfaceName", config.endpoint_interface)
    endpoint.add("GLUE2EndpointImplementationName", product)
    endpoint.add("GLUE2EndpointImplementationVersion", version)
    endpoint.add("GLUE2EndpointQualityLevel", config.quality_level)
    endpoint.add("GLUE2EndpointHealthState", "ok")  # the batch system answered this run
    endpoint.add("GLUE2EndpointHealthStateInfo", f"{product} answered")
    endpoint.add("GLUE2EndpointServingState", serving)
    endpoint.add("GLUE2EndpointServiceForeignKey", service_id)
    endpoint.add("GLUE2ComputingEndpointComputingServiceForeignKey", service_id)
    endpoint.add("GLUE2ComputingEndpointTotalJobs", running + waiting)
    endpoint.add("GLUE2ComputingEndpointRunningJobs", running)
    endpoint.add("GLUE2ComputingEndpointWaitingJobs", waiting)
    entries += [endpoint, access_policy(endpoint_id, endpoint_dn, all_rules)]

    cpus = max((p.total_cpus or 0 for p in partitions), default=0)
    manager = LDIFEntry(child_dn("GLUE2ManagerID", manager_id, service_dn))
    manager.add("objectClass", ["GLUE2Manager", "GLUE2ComputingManager"])
    manager.add("GLUE2ManagerID", manager_id)
    manager.add("GLUE2EntityName", product)
    manager.add("GLUE2ManagerProductName", lrms)
    manager.add("GLUE2ManagerProductVersion", version)
    manager.add("GLUE2ManagerServiceForeignKey", service_id)
    manager.add("GLUE2ComputingManagerComputingServiceForeignKey", service_id)
    manager.add("GLUE2ComputingManagerTotalLogicalCPUs", cpus)  # the largest partition's CPUs
    manager.add("GLUE2ComputingManagerTotalSlots", cpus)
    used_slots = sum(j.cpus or 0 for j in queues.jobs if j.generic in ("Running", "Scheduled"))
    manager.add("GLUE2ComputingManagerSlotsUsedByLocalJobs", used_slots)
    entries.append(manager)

    for part in partitions:
        share_id = f"{part.name}_{service_id}"
        share_dn = child_dn("GLUE2ShareID", share_id, service_dn)
        share = LDIFEntry(share_dn)
        share.add("objectClass", ["GLUE2Share", "GLUE2ComputingShare"])
        share.add("GLUE2ShareID", share_id)
        share.add("GLUE2EntityName", part.name)
        share.add("GLUE2ShareDescription", f"{product} partition {part.name}")
        share.add("GLUE2ShareServiceForeignKey", service_id)
        share.add("GLUE2ShareEndpointForeignKey", endpoint_id)
        share.add("GLUE2ComputingShareComputingServiceForeignKey", service_id)
        share.add("GLUE2ComputingShareComputingEndpointForeignKey", endpoint_id)
        share.add("GLUE2ComputingShareMappingQueue", part.name)
        share.add("GLUE2ComputingShareServingState", SERVING_STATES[partition_status(part)])
        wall = part.max_time_minutes * 60 if part.max_time_minutes is not None else None
        share.add("GLUE2ComputingShareMaxWallTime", wall)
        share.add("GLUE2ComputingShareMaxMultiSlotWallTime", wall)
        share.add("GLUE2ComputingShareDefaultWallTime", wall)
        share.add("GLUE2ComputingShareMaxSlotsPerJob", part.total_cpus or None)
        share.add("GLUE2ComputingSharePreemption", None if part.preempt is None else extended_boolean(part.preempt))
        share.add("GLUE2ComputingShareTotalJobs", part.running + part.waiting)
        share.add("GLUE2ComputingShareRunningJobs", part.running)
        share.add("GLUE2ComputingShareLocalRunningJobs", part.running)
        share.add("GLUE2ComputingShareWaitingJobs", part.waiting)
        share.add("GLUE2ComputingShareLocalWaitingJobs", part.waiting)
        share.add("GLUE2ComputingShareFreeSlots", part.idle_cpus)
        used = part.total_cpus - part.idle_cpus if part.total_cpus is not None and part.idle_cpus is not None else None
        share.add("GLUE2ComputingShareUsedSlots", used)
        entries += [share, mapping_policy(share_id, share_dn, list(config.partition_vos.get(part.name, config.vos)))]
    return entries


def read_queues(config: BatchConfig, log: logging.Logger) -> Queues | None:
    """The configured batch system's queues (``system``; auto: Slurm if configured, else Grid Engine)."""
    from gridinfo.providers_lib import gridengine

    if config.system == "slurm":
        return read_slurm(config, log)
    if config.system == "gridengine":
        return gridengine.read_gridengine(config, log)
    if find_command("squeue") is not None and slurm_config_file(config) is not None:
        return read_slurm(config, log)
    if gridengine.gridengine_configured(config) is None:
        return gridengine.read_gridengine(config, log)
    slurm_why = "squeue is not installed" if find_command("squeue") is None else "no slurm.conf"
    log.warning("no batch system here (Slurm: %s; %s): nothing to publish", slurm_why, gridengine.gridengine_configured(config))
    return None


def produce(config: BatchConfig, args: argparse.Namespace, log: logging.Logger) -> str:
    queues = read_queues(config, log)
    if queues is None:
        return ""
    if len(queues.jobs) > config.max_jobs and config.publish_jobs:
        log.warning("%d jobs, publishing the first %d (max_jobs)", len(queues.jobs), config.max_jobs)
    return format_entries(batch_entries(queues, config, args.suffix) + glue2_batch_entries(queues, config, args.glue2_suffix))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``providers/batch``."""
    return run_provider("batch", "Publish a batch system's queues (GlueCE) and jobs as LDIF.", BatchConfig, produce, argv)
