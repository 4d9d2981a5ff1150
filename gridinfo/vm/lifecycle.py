"""The VM and job state machines: a pure function of the set of events seen.

Why one module: the state tables, the fold that reads them and the relation intervals that close
when a run ends are one theory of operation; split, the table and the code that honours it would
drift apart.

Theory of operation
-------------------
Several sources report one VM, each over its own path, with its own clock and numbering.  Events
arrive late, twice, out of order, or never.  So the state is not "the last event received" but a
function of the *set* of events received: each read sorts what is known by fixed keys and folds
it, so any arrival order of the same events gives the same published state and history (the
property tests in ``tests/vm/test_lifecycle.py`` check this for random orders, with losses and
duplicates, of random life cycles with cycles).  Replaying the journal rebuilds the same state.

Real VMs go round: they are suspended and resumed, powered off and on, rebooted, moved.  A VM's
life is therefore a sequence of *runs* (epochs), numbered from 0, and within one run states
only move forward:

1. **Epochs, per authoritative source, by its sequence numbers.**  The authoritative sources are
   ``cloud`` and ``hypervisor``.  Reading one such source's events of the VM in ``seq`` order, a
   *pause* (``Suspend``, ``Stop``, ``PowerOff``, ``Shutdown``; not a departure, rule 5) arms it;
   a *start* (``Resume``, ``PowerOn``) after a pause opens the next epoch; ``Reboot`` always
   opens the next epoch.  Each of that source's events belongs to the epoch open at its ``seq``.
   A start with no pause before it (the other source's report of the same restart, or a lost
   pause) opens nothing.  Epoch *k* begins at the earliest time any source opened its *k*-th.
2. **By time.**  An event of ``vm`` or ``batch`` belongs to the newest epoch that began at or
   before its time (epoch 0 if none).  An authoritative source whose own count is behind that
   epoch at one of its events catches up there, and its earlier pause counts as used: it missed
   a restart (a reboot the hypervisor cannot see) or reported the same one later than the
   other source.  Catching up can move the other source's epochs in turn; the fold repeats
   until nothing moves (counts only grow, and there are finitely many starts).
3. **The current run** is the highest epoch any event belongs to.  Within a run the VM is in the
   highest-ranked state an event of that run reached (table below), so a late ``Running`` after
   ``ShutDown`` *of the same run* is ignored and a lost ``Create`` does not matter.
   ``Migrating`` lasts only until an authoritative source reports the VM running (``Running``,
   ``Resume``, ``PowerOn``) later than the newest ``Migrate`` (by time); then the run is in the
   highest state below ``Migrating`` it reached.
4. **Final states.**  ``Done`` and ``Failed`` end the life: once any final event is known the VM
   is in the final state of the *earliest* final event (by time, then source, then seq).  A
   cycle event (``Suspend`` ... ``Reboot``) later than that final event contradicts the table and
   is refused (constraintViolation, nothing changes); any other late event is folded in and
   changes no state.
5. **Hosts.**  A *placement* is an authoritative event carrying ``physical_host`` whose kind puts
   the VM somewhere (``Create``, ``Running``, ``HostDetail``, ``Suspend``, ``Resume``,
   ``PowerOn``, ``Reboot``, ``Migrate``: for ``Migrate`` the host it moves to).  Placements in
   time order give the host history (each host, since, until); the current host is the newest.
   A hypervisor ``Shutdown`` from a host other than the one the VM was placed on just before it
   is a *departure* (the domain left after a migration): it records nothing but the history
   already shows, neither pauses nor changes state.
6. **Facts** other than the host come from event attributes: within one source the highest
   ``seq`` wins (a source's numbering beats its clock), across sources the newest of those (by
   time, then source order cloud, hypervisor, vm, batch).  The registration (owner, allowed
   sources) is the earliest ``Register``.  The same (source, VM, job, seq) twice counts once.

VM states (``GridinfoVMState``), the generic job states (``GridinfoJobGenericState``) they map
to so that one query finds VMs and jobs alike, and the events that enter them::

    state          rank   generic     entered by (source)                    run
    Unknown        0      Submitted   (only HostDetail seen so far)          -
    Registered     1      Submitted   Register (cloud)                       same
    Created        2      Scheduled   Create (cloud: placed, booting)        same
    Running        3      Running     Running (cloud, hypervisor)            same
                                      Resume, PowerOn (cloud, hypervisor)    next, after a pause
                                      Reboot (cloud, hypervisor)             next, always
    ReallyRunning  4      Running     ReallyRunning (vm: services up)        same
    Migrating      5      Running     Migrate (cloud, hypervisor)            same; ends by rule 3
    Suspended      6      Waiting     Suspend (cloud, hypervisor)            same; pauses
    ShuttingDown   7      Running     Shutdown (cloud, vm: going down)       same; cloud's pauses
    ShutDown       8      Done        Shutdown (hypervisor: domain off)      same; pauses
    PoweredOff     9      Waiting     PowerOff (cloud, hypervisor)           same; pauses
    Stopped        10     Waiting     Stop (cloud: saved to disk)            same; pauses
    Done           final  Done        Done (cloud: released)                 -
    Failed         final  Aborted     Failed (cloud, hypervisor: crashed)    -

(The pausing states outrank each other in the order the cloud's intent explains the
hypervisor's view: a stopped or powered-off VM's domain is also off.)

Job states (published as both ``GridinfoJobState`` and ``GridinfoJobGenericState``); jobs have
one run::

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
``since``.  An interval still open when its run of the VM ended (``ShutDown``, ``PoweredOff``,
a ``Reboot``, a final state), or the job ended, closes then; a suspension or a migration does
not end it.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from gridinfo.vm.events import CYCLE_KINDS, SOURCES, Event, allowed_sources

SubjectKind = Literal["vm", "job"]

# -- tables ------------------------------------------------------------------------------------

#: VM state -> (rank within a run, generic state).  Rank None: final.
VM_STATES: Mapping[str, tuple[int | None, str]] = {
    "Unknown": (0, "Submitted"),
    "Registered": (1, "Submitted"),
    "Created": (2, "Scheduled"),
    "Running": (3, "Running"),
    "ReallyRunning": (4, "Running"),
    "Migrating": (5, "Running"),
    "Suspended": (6, "Waiting"),
    "ShuttingDown": (7, "Running"),
    "ShutDown": (8, "Done"),
    "PoweredOff": (9, "Waiting"),
    "Stopped": (10, "Waiting"),
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
    (None, "Suspend"): "Suspended",
    (None, "Resume"): "Running",
    (None, "Stop"): "Stopped",
    (None, "PowerOff"): "PoweredOff",
    (None, "PowerOn"): "Running",
    (None, "Migrate"): "Migrating",
    (None, "Reboot"): "Running",
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

#: Sources whose pauses and starts cut a VM's life into runs (rule 1).
AUTHORITATIVE: frozenset[str] = frozenset({"cloud", "hypervisor"})
PAUSES: frozenset[str] = frozenset({"Suspend", "Stop", "PowerOff", "Shutdown"})
STARTS: frozenset[str] = frozenset({"Resume", "PowerOn"})
#: Kinds whose physical_host places the VM (rule 5).
PLACING: frozenset[str] = frozenset({"Create", "Running", "HostDetail", "Suspend", "Resume", "PowerOn", "Reboot",
                                     "Migrate"})
#: States that end a run for the jobs in it (relations close), beside the final ones.
RUN_ENDING: frozenset[str] = frozenset({"ShutDown", "PoweredOff"})

_SOURCE_RANK = {s: i for i, s in enumerate(SOURCES)}
_RUNNING_AGAIN = frozenset({"Running", "Resume", "PowerOn"})
_INF = float("inf")


def target_state(kind: SubjectKind, event: Event) -> str | None:
    """The state an event moves a VM or job towards (None: it changes no state)."""
    table = VM_TRANSITIONS if kind == "vm" else JOB_TRANSITIONS
    return table.get((event.source, event.kind)) or table.get((None, event.kind))


# -- one VM or job -------------------------------------------------------------------------------

Order = tuple[float, int, int, str, str]


@dataclass(frozen=True)
class Run:
    """One run (epoch) of a VM: when it began, the states it went through, how it ended."""

    index: int
    began: float | None
    state_times: tuple[tuple[str, float], ...]  # (state, earliest time in this run), by time
    state: str  # where the run is (the current run) or ended (an earlier one)

    def describe(self) -> str:
        """``<n> <state> STATE=time ...``: the value of ``GridinfoVMRun``."""
        from gridinfo.vm.events import format_time

        return " ".join([str(self.index), self.state] + [f"{s}={format_time(t)}" for s, t in self.state_times])


@dataclass(frozen=True)
class HostStay:
    """The VM on one physical host from ``since`` until ``until`` (None: still there)."""

    host: str
    since: float
    until: float | None

    def describe(self) -> str:
        """``<host> <since> <until or ->``: the value of ``GridinfoVMHostHistory``."""
        from gridinfo.vm.events import format_time

        return f"{self.host} {format_time(self.since)} {format_time(self.until) if self.until is not None else '-'}"


@dataclass(frozen=True)
class _View:
    """What the set of events says, computed on demand (see the theory of operation)."""

    state: str
    epoch: int
    runs: tuple[Run, ...]
    state_times: dict[str, float]
    hosts: tuple[HostStay, ...]
    run_ends: tuple[float, ...]
    final: tuple[Order, str] | None


@dataclass
class Lifecycle:
    """The folded state of one VM or job.  :meth:`apply` is commutative and idempotent."""

    kind: SubjectKind
    ident: str
    _events: dict[tuple[str, str, str, int], tuple[Event, float]] = field(default_factory=dict)
    _facts: dict[str, dict[str, tuple[int, float, str]]] = field(default_factory=dict)
    sources: set[str] = field(default_factory=set)
    _last: tuple[Order, Event] | None = None
    _registration: tuple[Order, Event] | None = None
    _view_cache: _View | None = None
    events: int = 0
    first_accepted: float | None = None

    @property
    def states(self) -> Mapping[str, tuple[int | None, str]]:
        return VM_STATES if self.kind == "vm" else JOB_STATES

    def apply(self, event: Event, accepted: float) -> bool:
        """Fold one event in; False (and nothing changes) when it was already folded in."""
        key = event.key
        if key in self._events:
            return False
        self._events[key] = (event, accepted)
        if target_state(self.kind, event) is not None or _places(event):
            self._view_cache = None  # an event with neither changes no state, run or host
        self.events += 1
        self.sources.add(event.source)
        order = event.order
        if self.first_accepted is None or accepted < self.first_accepted:
            self.first_accepted = accepted
        if self._last is None or order > self._last[0]:
            self._last = (order, event)
        if event.kind == "Register" and (self._registration is None or order < self._registration[0]):
            self._registration = (order, event)
        for name, value in event.attributes:
            per_source = self._facts.setdefault(name, {})
            held = per_source.get(event.source)
            if held is None or event.seq > held[0]:
                per_source[event.source] = (event.seq, event.time, value)
        return True

    def contradiction(self, event: Event) -> str | None:
        """Why ``event`` contradicts the table given what is known (rule 4), or None."""
        if self.kind != "vm" or event.kind not in CYCLE_KINDS or event.key in self._events:
            return None
        final = self._view.final
        if final is not None and event.order > final[0]:
            from gridinfo.vm.events import format_time

            when = self.state_times.get(final[1])
            return (f"VM {self.ident!r} is {final[1]} since {format_time(when) if when is not None else '?'};"
                    f" a {event.kind} at {format_time(event.time)} cannot follow a final state")
        return None

    # -- the fold ----------------------------------------------------------------------------------

    @property
    def _view(self) -> _View:
        if self._view_cache is None:
            self._view_cache = self._compute()
        return self._view_cache

    def _compute(self) -> _View:
        events = [e for e, _ in self._events.values() if target_state(self.kind, e) is not None or _places(e)]
        hosts, placed = _host_history(events) if self.kind == "vm" else ((), [])

        def departure(e: Event) -> bool:
            if e.source != "hypervisor" or e.kind != "Shutdown" or not placed:
                return False
            here = e.attribute("physical_host")
            i = bisect.bisect_left(placed, (e.order, "")) - 1
            return here is not None and i >= 0 and placed[i][1] != here

        # rules 1 and 2: epochs.  Each authoritative source's own count, caught up by time with
        # the others' starts; the catching up can start epochs elsewhere, so repeat until stable
        # (counts only grow and are bounded by the number of starts).
        epoch_of: dict[int, int] = {}  # id(event) -> epoch (events live through the fold)
        streams = {source: sorted((e for e in events if e.source == source), key=lambda e: e.seq)
                   for source in sorted(AUTHORITATIVE)} if self.kind == "vm" else {}
        opened: dict[str, dict[int, float]] = {source: {} for source in streams}  # source -> epoch -> time
        reboots: list[float] = []
        for _ in range(len(events) + 2):
            reboots = []
            now_opened: dict[str, dict[int, float]] = {}
            for source, stream in streams.items():
                others = _epoch_starts(o for other, by in opened.items() if other != source for o in by.items())
                mine = now_opened[source] = {}
                epoch, armed = 0, False
                for e in stream:
                    caught = others(e.time)
                    if caught > epoch:
                        epoch, armed = caught, False  # another source opened it: this pause is used
                    if e.kind == "Reboot" or (e.kind in STARTS and armed):
                        epoch, armed = epoch + 1, False
                        mine[epoch] = min(mine.get(epoch, _INF), e.time)
                        if e.kind == "Reboot":
                            reboots.append(e.time)
                    elif e.kind in PAUSES and not departure(e):
                        armed = True
                    epoch_of[id(e)] = epoch
            stable = now_opened == opened or sum(1 for stream in streams.values() if stream) < 2
            opened = now_opened
            if stable:  # (one source alone has nobody to catch up with)
                break
        began: dict[int, float] = {}
        for by in opened.values():
            for k, t in by.items():
                began[k] = min(began.get(k, _INF), t)
        by_time = _epoch_starts(began.items())
        for e in events:
            if id(e) not in epoch_of:
                epoch_of[id(e)] = by_time(e.time)
        current = max(epoch_of.values(), default=0)
        # rules 3 and 4: states per run, the final state over all
        per_run: dict[int, dict[str, float]] = {}
        newest_migrate: dict[int, float] = {}
        running_again: dict[int, float] = {}
        final: tuple[Order, str] | None = None
        final_run = 0
        all_times: dict[str, float] = {}
        for e in events:
            target = target_state(self.kind, e)
            if target is None or departure(e):
                continue
            k = epoch_of[id(e)]
            times = per_run.setdefault(k, {})
            if e.time < times.get(target, _INF):
                times[target] = e.time
            if e.time < all_times.get(target, _INF):
                all_times[target] = e.time
            if self.states[target][0] is None and (final is None or e.order < final[0]):
                final, final_run = (e.order, target), k
            if e.kind == "Migrate":
                newest_migrate[k] = max(newest_migrate.get(k, -_INF), e.time)
            elif e.kind in _RUNNING_AGAIN and e.source in AUTHORITATIVE:
                running_again[k] = max(running_again.get(k, -_INF), e.time)
        runs = []
        run_ends = list(reboots)
        for k in range(current + 1):
            times = per_run.get(k, {})
            ranked = [(r, s) for s in times if (r := self.states[s][0]) is not None]
            best = max(ranked, default=(0, "Unknown"))
            if best[1] == "Migrating" and running_again.get(k, -_INF) > newest_migrate[k]:
                best = max(((r, s) for r, s in ranked if s != "Migrating"), default=(0, "Unknown"))
            state = final[1] if final is not None and k == final_run else best[1]
            run_ends += [t for s, t in times.items() if s in RUN_ENDING]
            first = began.get(k) if k else None
            if first is None and times:
                first = min(times.values())
            runs.append(Run(k, first, tuple(sorted(times.items(), key=lambda i: (i[1], i[0]))), state))
        if final is not None:
            run_ends.append(all_times[final[1]])
            state = final[1]
        else:
            state = runs[-1].state
        return _View(state, current, tuple(runs), all_times, hosts, tuple(sorted(run_ends)), final)

    # -- reading -----------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._view.state

    @property
    def generic_state(self) -> str:
        return self.states[self.state][1]

    @property
    def epoch(self) -> int:
        """The current run's number (0 until the VM first restarts)."""
        return self._view.epoch

    @property
    def runs(self) -> tuple[Run, ...]:
        return self._view.runs

    @property
    def state_times(self) -> dict[str, float]:
        """The earliest time each state was entered, over all runs."""
        return self._view.state_times

    @property
    def hosts(self) -> tuple[HostStay, ...]:
        """Every physical host the VM was placed on, in order, with times (rule 5)."""
        return self._view.hosts

    @property
    def finished(self) -> bool:
        return self._view.final is not None

    @property
    def final_time(self) -> float | None:
        final = self._view.final
        return self.state_times.get(final[1]) if final is not None else None

    @property
    def finished_accepted(self) -> float | None:
        """When gridinfo first learnt it had ended (its clock): retention counts from then."""
        if self._view.final is None:
            return None
        return min(a for e, a in self._events.values() if self.states.get(target_state(self.kind, e) or "", (0,))[0] is None)

    @property
    def retired_accepted(self) -> float | None:
        """For a VM only the hypervisor ever reported: when gridinfo learnt its current run ended off.

        Such a VM has no final event (the hypervisor cannot tell a domain that is gone for good
        from one that will start again), so retention counts from the first accepted event that
        put the current run in ``ShutDown``; a later start (a new run) makes it None again.
        """
        if self.kind != "vm" or self.sources != {"hypervisor"} or self.state != "ShutDown":
            return None
        began = self.runs[-1].began or 0.0
        accepted = [a for e, a in self._events.values()
                    if e.kind == "Shutdown" and e.source == "hypervisor" and e.time >= began]
        return min(accepted) if accepted else None

    def run_ends(self) -> tuple[float, ...]:
        """When runs ended for the jobs in them (ShutDown, PoweredOff, Reboot, final), sorted."""
        if self.kind == "job":
            t = self.final_time
            return (t,) if t is not None else ()
        return self._view.run_ends

    def fact(self, name: str) -> str | None:
        if name == "physical_host" and self.kind == "vm" and self.hosts:
            return self.hosts[-1].host
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
            "epoch": self.epoch,
            "runs": [r.describe() for r in self.runs],
            "hosts": [h.describe() for h in self.hosts],
            "state_times": dict(sorted(self.state_times.items())),
            "facts": self.facts(),
            "sources": sorted(self.sources),
            "last": last.key if last else None,
            "events": self.events,
            "owner": self.owner,
            "allowed": sorted(self.allowed_sources),
        }


def _places(event: Event) -> bool:
    """A placement (rule 5)."""
    return event.source in AUTHORITATIVE and event.kind in PLACING and event.attribute("physical_host") is not None


def _epoch_starts(starts: Iterable[tuple[int, float]]) -> Callable[[float], int]:
    """From (epoch, time it began) pairs: the newest epoch begun at or before a time (0: none)."""
    ordered = sorted((t, k) for k, t in starts)
    newest = [0]
    for _, k in ordered:
        newest.append(max(newest[-1], k))
    return lambda t: newest[bisect.bisect_right(ordered, (t, _INF))]


def _host_history(events: Iterable[Event]) -> tuple[tuple[HostStay, ...], list[tuple[Order, str]]]:
    """Rule 5: the stays on each host, and the placements (order, host) sorted."""
    placed = sorted((e.order, host) for e in events if _places(e) and (host := e.attribute("physical_host")))
    stays: list[HostStay] = []
    for order, host in placed:
        if stays and stays[-1].host == host:
            continue
        if stays:
            stays[-1] = HostStay(stays[-1].host, stays[-1].since, order[0])
        stays.append(HostStay(host, order[0], None))
    return tuple(stays), placed


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
    job_id: str, vm_id: str, events: Iterable[Event], ends: Iterable[float] = ()
) -> list[Interval]:
    """The intervals of one (job, VM) pair from its Relate/Unrelate events (any order).

    ``ends`` are when runs of the VM ended, or the job ended: an interval still open closes at
    the first of them at or after its start.
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
        close = min((t for t in ends if open_since is not None and t >= open_since), default=None)
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
        ends: list[float] = []
        vm = self.vms.get(vm_id)
        if vm is not None:
            ends += vm.run_ends()
        job = self.jobs.get(job_id)
        if job is not None:
            ends += job.run_ends()
        return intervals(job_id, vm_id, self.relation_events.get((job_id, vm_id), ()), ends)

    def relations_of_vm(self, vm_id: str) -> Iterator[Interval]:
        for job in sorted(self.jobs_of_vm.get(vm_id, ())):
            yield from self.relation_intervals(job, vm_id)

    def relations_of_job(self, job_id: str) -> Iterator[Interval]:
        for vm in sorted(self.vms_of_job.get(job_id, ())):
            yield from self.relation_intervals(job_id, vm)

    # -- retention -------------------------------------------------------------------------------

    def expired(self, now: float, retention: float) -> list[tuple[SubjectKind, str]]:
        """VMs and jobs whose retention ended: ``retention`` seconds after gridinfo learnt they ended.

        A VM or job ended with its final event; a VM only the hypervisor ever reported also
        ends when its current run is ``ShutDown`` (:attr:`Lifecycle.retired_accepted`).  A job
        and its (then closed) relations go on its own retention, so "which jobs ran in VM X"
        answers for the jobs that ended within the retention, however long X lives.  VMs come
        first.
        """
        def due(since: float | None) -> bool:
            return since is not None and now - since >= retention

        out: list[tuple[SubjectKind, str]] = [
            ("vm", ident) for ident, life in self.vms.items()
            if due(life.finished_accepted) or due(life.retired_accepted)
        ]
        out += [("job", ident) for ident, life in self.jobs.items() if due(life.finished_accepted)]
        return out

    def contradiction(self, event: Event) -> str | None:
        """Why ``event`` contradicts the table for its VM (rule 4), or None."""
        life = self.vms.get(event.vm_id) if event.vm_id is not None and event.job_id is None else None
        return life.contradiction(event) if life is not None else None

    def forget(self, kind: SubjectKind, ident: str) -> list[tuple[str, str, str, int]]:
        """Drop a VM or job and the events only it needed; returns the keys of those events.

        A VM's relations stay while their job is known (the job's entry still names the VM); a
        job's relations go with it.
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
