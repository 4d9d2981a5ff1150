"""The VM and job state machines: a pure fold over the set of events seen.

Theory of operation
-------------------
Several sources report one VM, each over its own path, with its own clock and numbering.  Events
arrive late, twice, out of order, or never.  So the state is not "the last event received" but a
function of the *set* of events received, built from merges that do not care about order
(maximum, minimum, union):

* Each state-changing event names a target state (table below).  Non-final states have a rank;
  the VM is in the highest-ranked state any event has reached.  A late ``Running`` after
  ``ShutDown`` is ignored because its rank is lower: a VM never moves backwards.  A lost
  ``Create`` does not matter: ``Running`` from the hypervisor outranks it.
* ``Done`` and ``Failed`` are final.  Once any final event is known the VM is in the final state
  of the *earliest* final event (by event time, then source, then seq), whatever came later.
* The time a state was entered is the earliest event time that reached it (states never
  reported, e.g. after a lost ``Create``, have no time).
* Facts (host name, physical host, owner, tags ...) come from event attributes.  Within one
  source the event with the highest ``seq`` wins (a source's numbering beats its clock); across
  sources the newest of those wins (by time, then source order cloud, hypervisor, vm, batch).
* The registration (who owns the VM, which sources may report it) is the earliest ``Register``.
* The same event (source, VM, job, seq) applied twice counts once.

Hence replaying the journal, in any order, rebuilds exactly the same state; the property test in
``tests/vm/test_lifecycle.py`` checks this for random orders of random life cycles.

VM states (``GridinfoVMState``) and the generic job states (``GridinfoJobGenericState``) they map
to, so that one query finds VMs and jobs alike::

    state          rank   generic     entered by
    Unknown        0      Submitted   (only HostDetail seen so far)
    Registered     1      Submitted   Register    (cloud)
    Created        2      Scheduled   Create      (cloud: placed on a host, booting)
    Running        3      Running     Running     (cloud, hypervisor)
    ReallyRunning  4      Running     ReallyRunning (vm: the image says its services are up)
    ShuttingDown   5      Running     Shutdown    (cloud asked, or the vm is going down)
    ShutDown       6      Done        Shutdown    (hypervisor: the domain is off)
    Done           final  Done        Done        (cloud: released)
    Failed         final  Aborted     Failed      (cloud, hypervisor: crashed)

Job states (published as both ``GridinfoJobState`` and ``GridinfoJobGenericState``)::

    state      rank   entered by
    Unknown    0      (only HostDetail seen)
    Submitted  1      Register
    Waiting    2      Create     (queued)
    Scheduled  3      Relate     (put into a VM)
    Running    4      Running
    Done       final  Done
    Aborted    final  Failed

``Cleared`` (the generic state of a job whose output is gone) is not reached by any event: a
finished VM or job stays searchable for the configured retention, then its entry goes.

Relations: the ``Relate``/``Unrelate`` events of one (job, VM) pair, sorted by time, make
intervals ``[since, until)``; an ``Unrelate`` whose ``Relate`` was lost gives an interval with no
``since``.  An interval still open when the VM shut down or ended, or the job ended, closes then.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from gridinfo.vm.events import SOURCES, Event, allowed_sources

SubjectKind = Literal["vm", "job"]

# -- tables ------------------------------------------------------------------------------------

#: VM state -> (rank, generic state).  Rank None: final.
VM_STATES: Mapping[str, tuple[int | None, str]] = {
    "Unknown": (0, "Submitted"),
    "Registered": (1, "Submitted"),
    "Created": (2, "Scheduled"),
    "Running": (3, "Running"),
    "ReallyRunning": (4, "Running"),
    "ShuttingDown": (5, "Running"),
    "ShutDown": (6, "Done"),
    "Done": (None, "Done"),
    "Failed": (None, "Aborted"),
}

#: (source, kind) -> VM state it reaches; (None, kind) for every source.
VM_TRANSITIONS: Mapping[tuple[str | None, str], str] = {
    (None, "Register"): "Registered",
    (None, "Create"): "Created",
    (None, "Running"): "Running",
    (None, "ReallyRunning"): "ReallyRunning",
    ("cloud", "Shutdown"): "ShuttingDown",
    ("vm", "Shutdown"): "ShuttingDown",
    ("hypervisor", "Shutdown"): "ShutDown",
    (None, "Done"): "Done",
    (None, "Failed"): "Failed",
}

#: Job state -> (rank, generic state).
JOB_STATES: Mapping[str, tuple[int | None, str]] = {
    "Unknown": (0, "Submitted"),
    "Submitted": (1, "Submitted"),
    "Waiting": (2, "Waiting"),
    "Scheduled": (3, "Scheduled"),
    "Running": (4, "Running"),
    "Done": (None, "Done"),
    "Aborted": (None, "Aborted"),
}

JOB_TRANSITIONS: Mapping[tuple[str | None, str], str] = {
    (None, "Register"): "Submitted",
    (None, "Create"): "Waiting",
    (None, "Relate"): "Scheduled",
    (None, "Running"): "Running",
    (None, "Done"): "Done",
    (None, "Failed"): "Aborted",
}

GENERIC_STATES = ("Submitted", "Waiting", "Scheduled", "Running", "Done", "Aborted", "Cleared")

_SOURCE_RANK = {s: i for i, s in enumerate(SOURCES)}


def target_state(kind: SubjectKind, event: Event) -> str | None:
    """The state an event moves a VM or job towards (None: it changes no state)."""
    table = VM_TRANSITIONS if kind == "vm" else JOB_TRANSITIONS
    return table.get((event.source, event.kind)) or table.get((None, event.kind))


# -- one VM or job -------------------------------------------------------------------------------


@dataclass
class Lifecycle:
    """The folded state of one VM or job.  :meth:`apply` is commutative and idempotent."""

    kind: SubjectKind
    ident: str
    _keys: set[tuple[str, str, str, int]] = field(default_factory=set)
    _best: tuple[int, str] = (0, "Unknown")  # (rank, state) of the highest non-final state
    _final: tuple[tuple[float, int, int, str, str], str] | None = None
    state_times: dict[str, float] = field(default_factory=dict)
    _facts: dict[str, dict[str, tuple[int, float, str]]] = field(default_factory=dict)
    sources: set[str] = field(default_factory=set)
    _last: tuple[tuple[float, int, int, str, str], Event] | None = None
    _registration: tuple[tuple[float, int, int, str, str], Event] | None = None
    events: int = 0
    first_accepted: float | None = None
    finished_accepted: float | None = None  # when gridinfo first learnt it had ended (its clock)

    @property
    def states(self) -> Mapping[str, tuple[int | None, str]]:
        return VM_STATES if self.kind == "vm" else JOB_STATES

    def apply(self, event: Event, accepted: float) -> bool:
        """Fold one event in; False (and nothing changes) when it was already folded in."""
        key = event.key
        if key in self._keys:
            return False
        self._keys.add(key)
        self.events += 1
        self.sources.add(event.source)
        order = event.order
        if self.first_accepted is None or accepted < self.first_accepted:
            self.first_accepted = accepted
        if self._last is None or order > self._last[0]:
            self._last = (order, event)
        if event.kind == "Register" and (self._registration is None or order < self._registration[0]):
            self._registration = (order, event)
        target = target_state(self.kind, event)
        if target is not None:
            rank, _ = self.states[target]
            previous = self.state_times.get(target)
            if previous is None or event.time < previous:
                self.state_times[target] = event.time
            if rank is None:
                if self._final is None or order < self._final[0]:
                    self._final = (order, target)
                if self.finished_accepted is None or accepted < self.finished_accepted:
                    self.finished_accepted = accepted
            elif rank > self._best[0]:
                self._best = (rank, target)
        for name, value in event.attributes:
            per_source = self._facts.setdefault(name, {})
            held = per_source.get(event.source)
            if held is None or event.seq > held[0]:
                per_source[event.source] = (event.seq, event.time, value)
        return True

    # -- reading -----------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._final[1] if self._final is not None else self._best[1]

    @property
    def generic_state(self) -> str:
        return self.states[self.state][1]

    @property
    def finished(self) -> bool:
        return self._final is not None

    @property
    def final_time(self) -> float | None:
        return self.state_times.get(self._final[1]) if self._final is not None else None

    def ended_at(self) -> float | None:
        """When the VM stopped running jobs (shut down or ended), or the job ended: closes relations."""
        times = [t for s, t in self.state_times.items() if s in _ENDING[self.kind]]
        return min(times) if times else None

    def fact(self, name: str) -> str | None:
        per_source = self._facts.get(name)
        if not per_source:
            return None
        best = max(per_source.items(), key=lambda item: (item[1][1], -_SOURCE_RANK[item[0]]))
        return best[1][2]

    def facts(self) -> dict[str, str]:
        return {name: v for name in sorted(self._facts) if (v := self.fact(name)) is not None}

    @property
    def last_event(self) -> Event | None:
        return self._last[1] if self._last is not None else None

    @property
    def registration(self) -> Event | None:
        return self._registration[1] if self._registration is not None else None

    @property
    def owner(self) -> str | None:
        reg = self.registration
        return reg.attribute("owner") if reg is not None else None

    @property
    def allowed_sources(self) -> frozenset[str]:
        """Sources that may log events of this VM or job: what its Register named (default all)."""
        reg = self.registration
        text = reg.attribute("sources") if reg is not None else None
        return allowed_sources(text) if text else frozenset(SOURCES)

    def snapshot(self) -> dict[str, object]:
        """Everything published, as plain data (tests compare these)."""
        last = self.last_event
        return {
            "state": self.state,
            "generic": self.generic_state,
            "state_times": dict(sorted(self.state_times.items())),
            "facts": self.facts(),
            "sources": sorted(self.sources),
            "last": last.key if last else None,
            "events": self.events,
            "owner": self.owner,
            "allowed": sorted(self.allowed_sources),
        }


_ENDING: Mapping[str, frozenset[str]] = {
    "vm": frozenset({"ShutDown", "Done", "Failed"}),
    "job": frozenset({"Done", "Aborted"}),
}


# -- relations -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """A job in a VM from ``since`` (None: not known) until ``until`` (None: still)."""

    job_id: str
    vm_id: str
    index: int
    since: float | None
    until: float | None

    @property
    def active(self) -> bool:
        return self.until is None

    @property
    def relation_id(self) -> str:
        return f"{self.job_id}@{self.vm_id}#{self.index}"


def intervals(
    job_id: str, vm_id: str, events: Iterable[Event], ended: float | None = None
) -> list[Interval]:
    """The intervals of one (job, VM) pair from its Relate/Unrelate events (any order).

    ``ended`` is when the VM or the job ended, if it has: an interval open then closes then.
    """
    spans: list[tuple[float | None, float | None]] = []
    open_since: float | None = None
    is_open = False
    for event in sorted(events, key=lambda e: e.order):
        if event.kind == "Relate":
            if not is_open:
                open_since, is_open = event.time, True
        elif event.kind == "Unrelate":
            if is_open:
                spans.append((open_since, event.time))
                is_open = False
            else:
                spans.append((None, event.time))
    if is_open:
        close = ended if ended is not None and open_since is not None and ended >= open_since else None
        spans.append((open_since, close))
    return [Interval(job_id, vm_id, i, since, until) for i, (since, until) in enumerate(spans)]


# -- all of them ---------------------------------------------------------------------------------


Subject = tuple[str, str]  # ("vm", id) | ("job", id) | ("rel", "job\0vm")


@dataclass
class LifecycleStore:
    """Every VM, job and relation gridinfo knows, folded from events.

    :meth:`apply` returns the subjects whose published view changed (or None for a duplicate),
    so the publisher rebuilds only those entries.
    """

    vms: dict[str, Lifecycle] = field(default_factory=dict)
    jobs: dict[str, Lifecycle] = field(default_factory=dict)
    events: dict[tuple[str, str, str, int], Event] = field(default_factory=dict)
    relation_events: dict[tuple[str, str], list[Event]] = field(default_factory=dict)
    jobs_of_vm: dict[str, set[str]] = field(default_factory=dict)
    vms_of_job: dict[str, set[str]] = field(default_factory=dict)

    def known(self, event: Event) -> Event | None:
        """The event already folded in with the same key, if any."""
        return self.events.get(event.key)

    def get(self, kind: SubjectKind, ident: str) -> Lifecycle | None:
        return (self.vms if kind == "vm" else self.jobs).get(ident)

    def apply(self, event: Event, accepted: float) -> set[Subject] | None:
        if event.key in self.events:
            return None
        self.events[event.key] = event
        touched: set[Subject] = set()
        if event.kind in ("Relate", "Unrelate"):
            assert event.job_id is not None and event.vm_id is not None
            pair = (event.job_id, event.vm_id)
            self.relation_events.setdefault(pair, []).append(event)
            self.jobs_of_vm.setdefault(event.vm_id, set()).add(event.job_id)
            self.vms_of_job.setdefault(event.job_id, set()).add(event.vm_id)
            touched.add(("rel", f"{event.job_id}\0{event.vm_id}"))
            # A Relate also tells that the job exists and is at least Scheduled.
            self._subject("job", event.job_id).apply(event, accepted)
            touched.add(("job", event.job_id))
            if event.vm_id in self.vms:
                touched.add(("vm", event.vm_id))  # its list of jobs
        elif event.vm_id is not None:
            self._subject("vm", event.vm_id).apply(event, accepted)
            touched.add(("vm", event.vm_id))
            for job in self.jobs_of_vm.get(event.vm_id, ()):  # relations may close
                touched.add(("rel", f"{job}\0{event.vm_id}"))
        else:
            assert event.job_id is not None
            self._subject("job", event.job_id).apply(event, accepted)
            touched.add(("job", event.job_id))
            for vm in self.vms_of_job.get(event.job_id, ()):
                touched.add(("rel", f"{event.job_id}\0{vm}"))
        return touched

    def _subject(self, kind: SubjectKind, ident: str) -> Lifecycle:
        table = self.vms if kind == "vm" else self.jobs
        life = table.get(ident)
        if life is None:
            life = table[ident] = Lifecycle(kind, ident)
        return life

    def relation_intervals(self, job_id: str, vm_id: str) -> list[Interval]:
        ends = []
        vm = self.vms.get(vm_id)
        if vm is not None and (t := vm.ended_at()) is not None:
            ends.append(t)
        job = self.jobs.get(job_id)
        if job is not None and (t := job.ended_at()) is not None:
            ends.append(t)
        return intervals(job_id, vm_id, self.relation_events.get((job_id, vm_id), ()), min(ends) if ends else None)

    def relations_of_vm(self, vm_id: str) -> Iterator[Interval]:
        for job in sorted(self.jobs_of_vm.get(vm_id, ())):
            yield from self.relation_intervals(job, vm_id)

    def relations_of_job(self, job_id: str) -> Iterator[Interval]:
        for vm in sorted(self.vms_of_job.get(job_id, ())):
            yield from self.relation_intervals(job_id, vm)

    # -- retention -------------------------------------------------------------------------------

    def expired(self, now: float, retention: float) -> list[tuple[SubjectKind, str]]:
        """Finished VMs and jobs that gridinfo learnt ended at least ``retention`` seconds ago.

        VMs come first.  A job waits for the VMs it ran in (so "which jobs ran in VM X" keeps
        answering while X is kept): it expires only when each of them is gone or expires too.
        """
        def due(life: Lifecycle) -> bool:
            return life.finished_accepted is not None and now - life.finished_accepted >= retention

        vms = [ident for ident, life in self.vms.items() if due(life)]
        going = set(vms)
        out: list[tuple[SubjectKind, str]] = [("vm", v) for v in vms]
        for ident, life in self.jobs.items():
            if due(life) and all(v not in self.vms or v in going for v in self.vms_of_job.get(ident, ())):
                out.append(("job", ident))
        return out

    def forget(self, kind: SubjectKind, ident: str) -> list[tuple[str, str, str, int]]:
        """Drop a VM or job and the events only it needed; returns the keys of those events.

        A VM's relations stay while their job is known (the job's entry still names the VM); a
        job's relations go with it (:meth:`expired` lets a job go only after its VMs).
        """
        table = self.vms if kind == "vm" else self.jobs
        table.pop(ident, None)
        dropped: list[tuple[str, str, str, int]] = []
        for key, e in list(self.events.items()):
            if e.kind not in ("Relate", "Unrelate") and (e.vm_id if kind == "vm" else e.job_id) == ident:
                del self.events[key]
                dropped.append(key)
        partners = self.jobs_of_vm.get(ident, set()) if kind == "vm" else self.vms_of_job.get(ident, set())
        for other in sorted(partners):
            job, vm = (other, ident) if kind == "vm" else (ident, other)
            if kind == "vm" and job in self.jobs:
                continue
            for e in self.relation_events.pop((job, vm), []):
                self.events.pop(e.key, None)
                dropped.append(e.key)
            self.jobs_of_vm.get(vm, set()).discard(job)
            self.vms_of_job.get(job, set()).discard(vm)
        for index in (self.jobs_of_vm, self.vms_of_job):
            for k in [k for k, v in index.items() if not v]:
                del index[k]
        return dropped
