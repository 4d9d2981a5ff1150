"""Grid Engine for the ``batch`` provider: cluster queues and jobs into batch.py's ``Queues`` model.

Read with two commands whose machine-readable output Grid Engine documents and keeps stable
(checked against Debian's gridengine 8.1.9, "Son of Grid Engine"), plus ``qstat -help``, whose
first line gives the version (``SGE 8.1.9``):

- ``qstat -f -xml -u '*' -s a -r`` with ``TZ=UTC``: every queue instance (``queue@host``:
  slots used/reserved/total, state letters) with its running jobs (one ``job_list`` per running
  array task), then the pending jobs with the queues each asked for (``hard_req_queue``); the
  pending tasks of an array job come as one ``job_list`` per state with a task list
  (``3-499:1,501-1000:1``), which is expanded here (``-g d`` would print a million elements for
  a million-task array).  One command, so the counts and the jobs come from the same moment.
  Its times are local time without a zone, hence ``TZ=UTC``.
- ``qconf -sq '*'``: the configuration of every cluster queue (``qname``, ``slots``, ``h_rt``,
  ``subordinate_list``...), blocks of ``name value`` lines.

One cluster queue is one GlueCE (``GlueCEUniqueID=<host>/sge-<queue>``, LRMS type ``sge``, the
``<lrms>-<queue>`` convention of GLUE 1.3 CE identifiers).  A queue's CPUs are the slots of its
instances; free CPUs are the slots neither used nor reserved on instances that take jobs.

Where to find the cell: ``sge_root``/``sge_cell`` in the config, else ``$SGE_ROOT``/``$SGE_CELL``,
else Debian's ``/var/lib/gridengine`` and ``default``.  The cell is configured when
``<root>/<cell>/common/act_qmaster`` exists.  Missing source (no ``qstat`` on PATH, no such cell):
logged once, nothing published.  Configured but failing (qmaster down, command timed out,
unreadable output): :class:`SourceFailed`.
"""

from __future__ import annotations

import calendar
import fnmatch
import logging
import os
import re
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from gridinfo.providers_lib.batch import BatchConfig, Job, Partition, Queues
from gridinfo.providers_lib.runtime import CommandFailed, CommandMissing, SourceFailed, find_command, run_command

# Theory of operation: a Grid Engine job's state is a string of letters (qstat(1)):
#   d deletion   E error   h hold   r running   R restarted   s suspended   S queue suspended
#   t transferring   T threshold suspended   w waiting   q queued   z zombie (finished)
# The letters map to gridinfo's generic job states (GridinfoJobGenericState, shared with Slurm
# jobs and VMs) by the first row that matches, top to bottom.  As for Slurm, a suspended job and
# a job held after an error count as waiting: they will run once resumed or cleared.
#
#   letters present                 example       generic    counted by the CE as
#   d and (r or t)                  dr, dt, dRr   Running    running  (still holds its slots)
#   d                               dqw, dhqw     Aborted    -        (deleted before it ran)
#   z                               z             Done       -
#   E                               Eqw           Waiting    waiting  (qmod -cj clears it)
#   s, S or T                       s, S, T, Rs   Waiting    waiting
#   r or t                          r, t, Rr, Rt  Running    running
#   q, w or h                       qw, hqw, hRwq Waiting    waiting
#   anything else                                 Submitted  waiting
GE_STATE_TABLE: tuple[tuple[frozenset[str], frozenset[str], str], ...] = (
    # (all of these letters, and at least one of these, or none needed when empty) -> generic
    (frozenset("d"), frozenset("rt"), "Running"),
    (frozenset("d"), frozenset(), "Aborted"),
    (frozenset("z"), frozenset(), "Done"),
    (frozenset("E"), frozenset(), "Waiting"),
    (frozenset(), frozenset("sST"), "Waiting"),
    (frozenset(), frozenset("rt"), "Running"),
    (frozenset(), frozenset("qwh"), "Waiting"),
)


def generic_state(letters: str) -> str:
    """gridinfo's generic job state of a Grid Engine state string (the table above)."""
    present = set(letters)
    for required, any_of, generic in GE_STATE_TABLE:
        if required <= present and (not any_of or present & any_of):
            return generic
    return "Submitted"


# A cluster queue's state, in the model's words (batch.py's Partition.state, Slurm's partition
# states, which batch.py maps to GlueCEStateStatus):
#
#   instances of the queue                            state     GlueCEStateStatus
#   at least one open (no letter of the set below)    UP        Production
#   some, none open (all disabled, suspended, ...)    DOWN      Queueing  (qsub still takes jobs)
#   none (hostlist NONE)                              INACTIVE  Closed    (qsub refuses the queue)

#: Queue instance state letters under which an instance starts no new job: disabled (d),
#: calendar disabled (D), error (E), suspended (s), subordinate suspended (S), calendar suspended
#: (C), unknown: execd not heard from (u), orphaned (o).  Load alarms (a, A) pass with the load.
INSTANCE_CLOSED_LETTERS = frozenset("dDEsSCuo")

#: Queue limits (queue_conf(5) ``h_rt``/``s_rt``): INFINITY, seconds, or ``[[h:]m:]s``.
_DURATION = re.compile(r"(?:(\d+):)?(?:(\d+):)?(\d+)")


@dataclass
class QueueInstance:
    """One ``queue@host`` of ``qstat -f``."""

    queue: str
    host: str
    used: int
    reserved: int
    total: int
    state: str

    @property
    def open(self) -> bool:
        return not (set(self.state) & INSTANCE_CLOSED_LETTERS)


@dataclass
class QueueConf:
    """What the provider uses of one cluster queue's ``qconf -sq`` block."""

    name: str
    slots: int | None = None
    h_rt_minutes: int | None = None
    s_rt_minutes: int | None = None
    subordinates: list[str] = field(default_factory=list)
    raw: dict[str, str] = field(default_factory=dict)


@dataclass
class GEJob:
    """One ``job_list`` of ``qstat -xml``: a job, a running array task, or pending array tasks."""

    id: str  # the job number
    owner: str
    state: str
    queue: str | None  # the cluster queue it runs in, for a started job
    requested: list[str]  # hard_req_queue patterns (may name queue@host or use wildcards)
    submit: int | None
    start: int | None
    slots: int | None
    tasks: str = ""  # array task ids: a running task's number, or a pending list such as 1-9:2,15
    host: str | None = None  # the execution host of the queue instance it runs in (queue@host)


def parse_ge_duration(text: str) -> int | None:
    """A queue_conf(5) time limit in minutes (seconds rounded up); INFINITY and junk give None."""
    value = text.strip().split(",")[0]  # the cluster-wide value; [host=...] overrides follow
    m = _DURATION.fullmatch(value)
    if not m:
        return None
    hours = int(m.group(1) or 0) if m.group(2) is not None else 0
    minutes = int(m.group(2) if m.group(2) is not None else (m.group(1) or 0))
    seconds = int(m.group(3))
    total = hours * 3600 + minutes * 60 + seconds
    return total // 60 + (1 if total % 60 else 0)


def parse_ge_time(text: str | None) -> int | None:
    """qstat's ``2026-12-02T01:43:17`` (printed in UTC because qstat runs with TZ=UTC) as Unix seconds."""
    if not text:
        return None
    try:
        return calendar.timegm(time.strptime(text.strip()[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def parse_subordinates(value: str) -> list[str]:
    """The queues a ``subordinate_list`` suspends: ``q1=2,q2`` or slot-wise ``slots=4(q1:1:sr,q2:2)``.

    Host-specific entries (``[host=...]``) are left out: the first item is the cluster-wide one.
    """
    value = value.split("[")[0].strip().rstrip(",")
    if value.upper() == "NONE" or not value:
        return []
    slotwise = re.fullmatch(r"slots=\d+\((.*)\)", value.replace(" ", ""))
    if slotwise:
        return [item.split(":")[0] for item in slotwise.group(1).split(",") if item]
    return [item.split("=")[0].strip() for item in value.replace(" ", ",").split(",") if item.strip()]


def parse_queue_conf(text: str) -> dict[str, QueueConf]:
    """``qconf -sq '*'``: one block per cluster queue, each starting at its ``qname`` line.

    Long values continue on the next line after a trailing backslash.  A value's first
    comma-separated item is the cluster-wide one (``slots 1,[node1=4]``).
    """
    found: dict[str, QueueConf] = {}
    current: dict[str, str] | None = None
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        logical.append(pending + line)
        pending = ""
    if pending:
        logical.append(pending)
    blocks: list[dict[str, str]] = []
    for line in logical:
        key, _, value = line.strip().partition(" ")
        if not key or key.startswith("#"):
            continue
        if key == "qname":
            current = {}
            blocks.append(current)
        if current is not None:
            current[key] = " ".join(value.split())
    for raw in blocks:
        name = raw.get("qname", "")
        if not name:
            continue
        subordinates = parse_subordinates(raw.get("subordinate_list", "NONE"))
        found[name] = QueueConf(
            name=name,
            slots=_int(raw.get("slots", "").split(",")[0] or None),
            h_rt_minutes=parse_ge_duration(raw.get("h_rt", "INFINITY")),
            s_rt_minutes=parse_ge_duration(raw.get("s_rt", "INFINITY")),
            subordinates=subordinates,
            raw=raw,
        )
    return found


def _job(element: ET.Element, queue: str | None, host: str | None = None) -> GEJob:
    return GEJob(
        id=element.findtext("JB_job_number", "").strip(),
        owner=element.findtext("JB_owner", "").strip(),
        state=element.findtext("state", "").strip(),
        queue=queue,
        requested=[q.text.strip() for q in element.findall("hard_req_queue") if q.text and q.text.strip()],
        submit=parse_ge_time(element.findtext("JB_submission_time")),
        start=parse_ge_time(element.findtext("JAT_start_time")),
        slots=_int(element.findtext("slots")),
        tasks=(element.findtext("tasks") or "").strip(),
        host=host or None,
    )


def parse_qstat_full(text: str) -> tuple[list[QueueInstance], list[GEJob]]:
    """``qstat -f -xml -u '*' -s a -r``: the queue instances and every job.

    Raises ValueError on output that is not qstat's XML.
    """
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise ValueError(f"qstat -xml output is not XML ({e})") from None
    if root.tag != "job_info":
        raise ValueError(f"qstat -xml output starts with <{root.tag}>, not <job_info>")
    instances: list[QueueInstance] = []
    jobs: list[GEJob] = []
    for qi in root.iter("Queue-List"):
        queue, _, host = qi.findtext("name", "").strip().partition("@")
        instances.append(
            QueueInstance(
                queue=queue,
                host=host,
                used=_int(qi.findtext("slots_used")) or 0,
                reserved=_int(qi.findtext("slots_resv")) or 0,
                total=_int(qi.findtext("slots_total")) or 0,
                state=(qi.findtext("state") or "").strip(),
            )
        )
        jobs += [_job(j, queue, host) for j in qi.findall("job_list")]
    for pending in root.findall("job_info"):
        jobs += [_job(j, None) for j in pending.findall("job_list")]
    return instances, jobs


_TASK_RANGE = re.compile(r"(\d+)(?:-(\d+)(?::(\d+))?)?")


def task_ranges(tasks: str) -> list[range]:
    """An array job's task list (``5``, ``3-499:1,501-1000:1``, ``1-9:2``) as ranges.

    Raises ValueError on anything else.
    """
    found = []
    for item in tasks.split(","):
        m = _TASK_RANGE.fullmatch(item.strip())
        if not m:
            raise ValueError(f"task list {tasks!r} is not n, n-m or n-m:step items")
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) else first
        found.append(range(first, last + 1, max(int(m.group(3) or 1), 1)))
    return found


def job_queues(job: GEJob, names: list[str]) -> list[str]:
    """The cluster queues a job runs in, or may run in: its own, else those it asked for, else all."""
    if job.queue:
        return [job.queue]
    if not job.requested:
        return list(names)
    patterns = [p.split("@")[0] for r in job.requested for p in r.split(",") if p]
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def build_queues(
    version: str | None,
    confs: dict[str, QueueConf],
    instances: list[QueueInstance],
    jobs: list[GEJob],
    max_jobs: int | None = None,
) -> Queues:
    """The neutral model from the parsed outputs: one Partition per cluster queue.

    Array tasks become jobs ``<job>.<task>``.  The queues' counts include every task; at most
    ``max_jobs`` jobs are listed in ``Queues.jobs`` (the ones the provider may publish).
    """
    names = sorted(set(confs) | {qi.queue for qi in instances})
    subordinated = {s for conf in confs.values() for s in conf.subordinates}
    queues = Queues(version, system="sge")
    for name in names:
        mine = [qi for qi in instances if qi.queue == name]
        conf = confs.get(name)
        if not mine:
            state = "INACTIVE"  # no host: nothing runs, and qsub refuses the queue
        elif any(qi.open for qi in mine):
            state = "UP"
        else:
            state = "DOWN"  # takes jobs, starts none
        queues.partitions[name] = Partition(
            name=name,
            state=state,
            total_cpus=sum(qi.total for qi in mine),
            idle_cpus=sum(max(qi.total - qi.used - qi.reserved, 0) for qi in mine if qi.open),
            max_time_minutes=conf.h_rt_minutes if conf else None,
            preempt=(name in subordinated) if conf else None,
        )
    for ge_job in jobs:
        generic = generic_state(ge_job.state)
        in_queues = job_queues(ge_job, names)
        ranges = task_ranges(ge_job.tasks) if ge_job.tasks else []
        count = sum(len(r) for r in ranges) if ranges else 1
        for name in in_queues:
            part = queues.partitions[name]
            if generic in ("Running", "Scheduled"):
                part.running += count
            elif generic in ("Waiting", "Submitted"):
                part.waiting += count
        ids = (f"{ge_job.id}.{task}" for r in ranges for task in r) if ranges else iter([ge_job.id])
        for job_id in ids:
            if max_jobs is not None and len(queues.jobs) >= max_jobs:
                break
            queues.jobs.append(
                Job(
                    id=job_id,
                    partitions=in_queues,
                    owner=ge_job.owner,
                    state=ge_job.state,
                    generic=generic,
                    submit=ge_job.submit,
                    start=ge_job.start,
                    cpus=ge_job.slots,
                    reason="",
                    nodes=[ge_job.host] if ge_job.host else [],
                )
            )
    return queues


DEBIAN_SGE_ROOT = "/var/lib/gridengine"


def cell_paths(config: BatchConfig) -> tuple[str, str]:
    """SGE_ROOT and SGE_CELL the commands will use."""
    root = config.sge_root or os.environ.get("SGE_ROOT", "").strip() or DEBIAN_SGE_ROOT
    cell = config.sge_cell or os.environ.get("SGE_CELL", "").strip() or "default"
    return root, cell


def gridengine_configured(config: BatchConfig) -> str | None:
    """Why Grid Engine is not there to read (None when it is installed and has a cell)."""
    if find_command("qstat") is None:
        return "Grid Engine's qstat is not installed"
    root, cell = cell_paths(config)
    if not os.path.exists(os.path.join(root, cell, "common", "act_qmaster")):
        return f"Grid Engine is installed but has no cell {root}/{cell} (no common/act_qmaster)"
    return None


def read_gridengine(config: BatchConfig, log: logging.Logger) -> Queues | None:
    """Grid Engine's queues and jobs; None when it is not here; SourceFailed when it fails."""
    absent = gridengine_configured(config)
    if absent is not None:
        log.warning("%s: nothing to publish", absent)
        return None
    root, cell = cell_paths(config)
    env = {"SGE_ROOT": root, "SGE_CELL": cell, "TZ": "UTC", "LC_ALL": "C"}
    if config.sge_qmaster_port:
        env["SGE_QMASTER_PORT"] = str(config.sge_qmaster_port)
    try:
        full = run_command(["qstat", "-f", "-xml", "-u", "*", "-s", "a", "-r"], config.timeout, env=env).stdout
        conf = run_command(["qconf", "-sq", "*"], config.timeout, env=env, check=False)
    except CommandMissing as e:
        log.warning("Grid Engine's %s is not installed: nothing to publish", e)
        return None
    except CommandFailed as e:
        raise SourceFailed(f"Grid Engine did not answer: {e}") from None
    if conf.returncode != 0 and "No cluster queue" not in conf.stdout + conf.stderr:
        detail = (conf.stderr.strip() or conf.stdout.strip()).splitlines()[-1:] or [""]
        raise SourceFailed(f"Grid Engine did not answer: qconf exited with status {conf.returncode}: {detail[0][:200]}")
    version = None
    try:
        first = run_command(["qstat", "-help"], config.timeout, env=env, check=False).stdout.split()
        version = first[1] if len(first) > 1 and first[0] in ("SGE", "OGS/GE", "GE") else None
    except (CommandMissing, CommandFailed):
        pass
    try:
        instances, jobs = parse_qstat_full(full)
        queues = build_queues(version, parse_queue_conf(conf.stdout if conf.returncode == 0 else ""), instances, jobs,
                              config.max_jobs if config.publish_jobs else 0)
        total = sum(sum(len(r) for r in task_ranges(j.tasks)) if j.tasks else 1 for j in jobs)
    except ValueError as e:
        raise SourceFailed(f"Grid Engine: {e}") from None
    if config.publish_jobs and total > config.max_jobs:
        log.warning("%d jobs, publishing the first %d (max_jobs)", total, config.max_jobs)
    return queues
