"""Hypervisor observations as ``hypervisor`` events, so they feed the same state machine.

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
