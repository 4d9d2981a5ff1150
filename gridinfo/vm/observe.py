"""Hypervisor and batch observations as ``hypervisor`` and ``batch`` events, for the same state machine.

Why one module: the two observers are the same idea (successive snapshots of a provider in, one
event per change out, numbered by observation time, resumed from the journal) for two sources.

The ``hypervisor`` provider (gridinfo.providers_lib.hypervisor) reads a hypervisor's domains
with their state in gridinfo's VM vocabulary (Running, Blocked, Paused, ShuttingDown, ShutDown,
Crashed, Suspended, Unknown).  :class:`HypervisorObserver` reduces each to a phase, compares
successive snapshots and turns each *change* of phase into an event (a steady domain logs
nothing)::

    domain state                  phase
    Running, Blocked              run
    Paused, Suspended             pause
    ShutDown                      off      (also: gone from the list after run or pause)
    Crashed                       crash
    ShuttingDown, Unknown         -        (no change: proves neither)

    phase before -> now           event (source hypervisor; attributes physical_host, name, uuid)
    (first seen) -> run           Running
    pause        -> run           Resume    (a new run of the VM: gridinfo.vm.lifecycle rule 1)
    off          -> run           PowerOn   (restarted after ShutDown: a new run)
    run          -> pause         Suspend   (first seen paused: nothing, its earlier life is unknown)
    any          -> off           Shutdown  (the domain is off)
    any          -> crash         Failed    (reason=crashed; final)
    crash        -> any           nothing   (Failed is final; a Resume or PowerOn would be refused)

A snapshot can come from the provider's Python objects (``Hypervisor.domains``) or from the
LDIF entries it prints (:func:`domains_from_entries`).  Sequence numbers are the observation
time in milliseconds, and always above the VM's last ``hypervisor`` number, so they increase
per VM even when the clock steps back.  After a restart :meth:`HypervisorObserver.resume` takes
up where the journal left off: what each domain was last reported as, and its last number, so a
domain still running logs nothing new and one that vanished meanwhile logs its ``Shutdown``.
Pure: time is passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gridinfo.vm.events import Event

#: Domain state (the provider's VM vocabulary) -> phase (None: tells nothing).
DOMAIN_PHASES: dict[str, str | None] = {
    "Running": "run",
    "Blocked": "run",
    "Paused": "pause",
    "Suspended": "pause",
    "ShutDown": "off",
    "Crashed": "crash",
    "ShuttingDown": None,
    "Unknown": None,
}

#: Event kind -> the phase it reports (to resume from the journal).
_PHASE_OF_KIND = {"Running": "run", "Resume": "run", "PowerOn": "run", "Reboot": "run", "Suspend": "pause",
                  "Shutdown": "off", "PowerOff": "off", "Failed": "crash"}


def transition(before: str | None, now: str) -> str | None:
    """The event kind for a domain going from phase ``before`` (None: first seen) to ``now``."""
    if before == now or before == "crash" or (before is None and now == "pause"):
        return None
    if now == "run":
        return {"pause": "Resume", "off": "PowerOn"}.get(before or "", "Running")
    return {"pause": "Suspend", "off": "Shutdown", "crash": "Failed"}[now]


@dataclass(frozen=True)
class DomainSeen:
    """One domain in one snapshot."""

    uuid: str
    name: str
    vm_state: str


def _first(values: dict[str, list[str]], name: str) -> str | None:
    found = values.get(name)
    return found[0] if found else None


def domains_from_entries(entries: Iterable[tuple[str, Sequence[tuple[str, Sequence[bytes]]]]]) -> tuple[str | None, list[DomainSeen]]:
    """(physical host, domains) from the provider's entries (``GridinfoVM`` below ``GridinfoHypervisor``)."""
    host = None
    domains = []
    for _dn, attrs in entries:
        values = {name.lower(): [v.decode("utf-8", "replace") for v in vals] for name, vals in attrs}
        classes = {c.lower() for c in values.get("objectclass", [])}
        if "gridinfohypervisor" in classes:
            host = _first(values, "gridinfohypervisorid")
        elif "gridinfovm" in classes:
            uuid = (values.get("gridinfovmuuid") or values.get("gridinfovmid") or [""])[0]
            domains.append(DomainSeen(uuid, (values.get("gridinfovmname") or [uuid])[0],
                                      (values.get("gridinfovmstate") or ["Unknown"])[0]))
            host = host or _first(values, "gridinfovmphysicalhost")
    return host, domains


class HypervisorObserver:
    """Turns successive snapshots of one hypervisor into events about what changed.

    ``vm_id(domain)`` names the VM an event is about (default: the domain's UUID, which is
    also the RDN the provider uses); a cloud manager that names VMs otherwise passes its own.
    """

    def __init__(self, physical_host: str, *, vm_id: Callable[[DomainSeen], str] | None = None):
        self.physical_host = physical_host
        self.vm_id = vm_id or (lambda d: d.uuid)
        self._last_phase: dict[str, str] = {}
        self._last_seq: dict[str, int] = {}
        self._names: dict[str, DomainSeen] = {}

    def _event(self, kind: str, ident: str, domain: DomainSeen, now: float) -> Event:
        seq = max(int(now * 1000), self._last_seq.get(ident, -1) + 1)
        self._last_seq[ident] = seq
        attrs = {"physical_host": self.physical_host, "name": domain.name, "uuid": domain.uuid}
        if kind == "Failed":
            attrs["reason"] = "crashed"
        return Event.make(kind, "hypervisor", seq, now, vm_id=ident, attributes=attrs)

    def resume(self, events: Iterable[Event]) -> None:
        """Take up from earlier ``hypervisor`` events (the journal's): last numbers and last states.

        Every ``hypervisor`` event of a VM raises the floor of its next number; the newest
        state-changing one about a VM on this physical host says what the VM was last seen as.
        """
        newest: dict[str, Event] = {}
        for e in events:
            if e.source != "hypervisor" or e.vm_id is None or e.job_id is not None:
                continue
            self._last_seq[e.vm_id] = max(self._last_seq.get(e.vm_id, -1), e.seq)
            if e.kind in _PHASE_OF_KIND and e.attribute("physical_host") == self.physical_host:
                held = newest.get(e.vm_id)
                if held is None or e.seq > held.seq:
                    newest[e.vm_id] = e
        for ident, e in newest.items():
            self._last_phase[ident] = _PHASE_OF_KIND[e.kind]
            self._names[ident] = DomainSeen(e.attribute("uuid") or ident, e.attribute("name") or ident, "Unknown")

    def observe(self, domains: Iterable[Any], now: float) -> list[Event]:
        """Events for the changes since the last snapshot (``domains``: objects with uuid, name, vm_state)."""
        events = []
        present = set()
        for d in domains:
            domain = DomainSeen(d.uuid, d.name, d.vm_state)
            ident = self.vm_id(domain)
            present.add(ident)
            self._names[ident] = domain
            phase = DOMAIN_PHASES.get(domain.vm_state)
            if phase is None:
                continue
            kind = transition(self._last_phase.get(ident), phase)
            if kind is not None:
                self._last_phase[ident] = phase
            if kind is not None:
                events.append(self._event(kind, ident, domain, now))
        for ident in sorted(set(self._names) - present):
            domain = self._names.pop(ident)
            if self._last_phase.get(ident) in ("run", "pause"):
                events.append(self._event("Shutdown", ident, domain, now))
                self._last_phase[ident] = "off"  # if it comes back, that is a PowerOn
        return events


# -- the batch system --------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobSeen:
    """One job in one snapshot of the batch provider (its ``GridinfoJob`` entry)."""

    job_id: str
    native_state: str
    generic: str
    owner: str | None = None
    queue: str | None = None
    submit: float | None = None
    start: float | None = None
    nodes: tuple[str, ...] = ()


#: The batch provider's generic job state -> phase of the job.
JOB_PHASES: dict[str, str] = {"Submitted": "queued", "Waiting": "queued", "Scheduled": "running",
                              "Running": "running", "Done": "done", "Aborted": "failed", "Cleared": "done"}
_JOB_PHASE_OF_KIND = {"Register": "seen", "Create": "queued", "Running": "running", "Done": "done", "Failed": "failed"}
_PHASE_ORDER = {"seen": 0, "queued": 1, "running": 2, "done": 3, "failed": 3}


def jobs_from_entries(entries: Iterable[tuple[str, Sequence[tuple[str, Sequence[bytes]]]]]) -> list[JobSeen]:
    """The batch provider's ``GridinfoJob`` entries as jobs."""
    from gridinfo.vm.events import parse_time

    jobs = []
    for _dn, attrs in entries:
        values = {name.lower(): [v.decode("utf-8", "replace") for v in vals] for name, vals in attrs}
        if "gridinfojob" not in {c.lower() for c in values.get("objectclass", [])}:
            continue
        ident = _first(values, "gridinfojobid")
        if not ident:
            continue
        times = {}
        for key in ("gridinfojobsubmittime", "gridinfojobstarttime"):
            text = _first(values, key)
            try:
                times[key] = parse_time(text) if text else None
            except ValueError:
                times[key] = None
        jobs.append(JobSeen(ident, _first(values, "gridinfojobstate") or "", _first(values, "gridinfojobgenericstate")
                            or "Submitted", _first(values, "gridinfojobowner"), _first(values, "gridinfojobqueue"),
                            times["gridinfojobsubmittime"], times["gridinfojobstarttime"],
                            tuple(values.get("gridinfojobexechost", ()))))
    return jobs


class BatchObserver:
    """Turns successive snapshots of a batch system's jobs into ``batch`` events.

    ::

        job seen first                 Register (owner, queue), at its submit time
        queued (pending, held ...)     Create, at its submit time
        running                        Running, at its start time; Relate to each VM whose host
                                       name (or name) is one of the job's nodes
        done / failed                  Done / Failed, now; Unrelate from its VMs
        gone from the list             Done, now (the batch system forgot a finished job)

    A later phase implies the earlier ones (a job first seen running logs Register, Running).
    Each event carries ``info.batch_state``, the batch system's own word.  Numbers are the
    observation time in milliseconds, above the last one per (job, VM), as for the hypervisor.
    ``vm_of_host(node)`` names the VM a node is, if any.
    """

    def __init__(self) -> None:
        self._phase: dict[str, str] = {}
        self._last_seq: dict[tuple[str, str], int] = {}
        self._related: dict[str, set[str]] = {}
        self._state: dict[str, str] = {}

    def _event(self, kind: str, job: str, t: float | None, now: float, vm: str | None = None,
               attrs: dict[str, str] | None = None) -> Event:
        key = (job, vm or "")
        seq = max(int(now * 1000), self._last_seq.get(key, -1) + 1)
        self._last_seq[key] = seq
        return Event.make(kind, "batch", seq, t if t is not None else now, job_id=job, vm_id=vm,
                          attributes=attrs or {})

    def resume(self, events: Iterable[Event]) -> None:
        """Take up from earlier ``batch`` events (the journal's): numbers, phases, open relations."""
        newest: dict[str, tuple[int, str]] = {}
        relations: dict[tuple[str, str], Event] = {}
        for e in events:
            if e.source != "batch" or e.job_id is None:
                continue
            key = (e.job_id, e.vm_id or "")
            self._last_seq[key] = max(self._last_seq.get(key, -1), e.seq)
            if e.kind in ("Relate", "Unrelate") and e.vm_id is not None:
                held = relations.get((e.job_id, e.vm_id))
                if held is None or e.seq > held.seq:
                    relations[(e.job_id, e.vm_id)] = e
            elif e.kind in _JOB_PHASE_OF_KIND:
                phase = _JOB_PHASE_OF_KIND[e.kind]
                if _PHASE_ORDER[phase] >= _PHASE_ORDER[newest.get(e.job_id, (0, "seen"))[1]]:
                    newest[e.job_id] = (e.seq, phase)
        self._phase.update({job: phase for job, (_, phase) in newest.items()})
        for (job, vm), e in relations.items():
            if e.kind == "Relate":
                self._related.setdefault(job, set()).add(vm)

    def observe(self, jobs: Iterable[JobSeen], now: float, vm_of_host: Callable[[str], str | None]) -> list[Event]:
        events: list[Event] = []
        present = set()
        for job in jobs:
            present.add(job.job_id)
            phase = JOB_PHASES.get(job.generic, "queued")
            before = self._phase.get(job.job_id)
            info = {"info.batch_state": job.native_state} if job.native_state else {}
            if before is None:
                attrs = dict(info)
                if job.owner:
                    attrs["owner"] = job.owner
                if job.queue:
                    attrs["queue"] = job.queue
                events.append(self._event("Register", job.job_id, job.submit, now, attrs=attrs))
                before = "seen"
            if _PHASE_ORDER[phase] > _PHASE_ORDER[before]:
                if phase in ("queued", "running") and before == "seen":
                    events.append(self._event("Create", job.job_id, job.submit, now, attrs=info))
                if phase == "running":
                    events.append(self._event("Running", job.job_id, job.start, now,
                                              attrs={**info, **({"info.exec_hosts": ",".join(job.nodes)}
                                                                if job.nodes else {})}))
                elif phase in ("done", "failed"):
                    events.append(self._event("Done" if phase == "done" else "Failed", job.job_id, None, now,
                                              attrs=info))
                self._phase[job.job_id] = phase
            if phase == "running":
                for node in job.nodes:
                    vm = vm_of_host(node)
                    if vm is not None and vm not in self._related.get(job.job_id, set()):
                        self._related.setdefault(job.job_id, set()).add(vm)
                        events.append(self._event("Relate", job.job_id, job.start, now, vm=vm))
            elif phase in ("done", "failed"):
                events += self._unrelate(job.job_id, now)
        for job_id in sorted(set(self._phase) - present):
            if self._phase[job_id] not in ("done", "failed"):
                events.append(self._event("Done", job_id, None, now, attrs={"reason": "no longer listed"}))
                self._phase[job_id] = "done"
            events += self._unrelate(job_id, now)
            del self._phase[job_id]  # finished and forgotten by the batch system: forget it too
        return events

    def _unrelate(self, job_id: str, now: float) -> list[Event]:
        return [self._event("Unrelate", job_id, None, now, vm=vm) for vm in sorted(self._related.pop(job_id, ()))]
