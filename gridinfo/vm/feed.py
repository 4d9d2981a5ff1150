"""Providers' runs as events into the GRIS's own event sink: ``hypervisor`` and ``batch`` observations.

A provider marked ``feeds: vm`` in gris.yaml is read after each good run, by what it prints:

* the bundled ``hypervisor`` provider prints one ``GridinfoHypervisor`` entry and one
  ``GridinfoVM`` entry per domain: its runs become ``hypervisor`` events
  (:class:`~gridinfo.vm.observe.HypervisorObserver`, one per provider and physical host);
* the bundled ``batch`` provider prints ``GlueCE`` entries and one ``GridinfoJob`` entry per job
  (with ``GridinfoJobExecHost``, the nodes it runs on): its runs become ``batch`` events
  (:class:`~gridinfo.vm.observe.BatchObserver`, one per provider), and a job running on a node
  whose name is a known VM's host name (or name) is related to that VM (``Relate``/``Unrelate``).

In two steps:

1. :meth:`HypervisorFeed.observe` reads the entries as a snapshot, turns what changed since the
   last run into events (the observers are resumed from the journal after a restart) and says
   which entries the sink publishes instead of the provider: the ``GridinfoVM`` entries of every
   VM, and the ``GridinfoJob`` entries of every job, the sink knows or is about to learn of.  The
   manager installs the provider's other entries (the hypervisor entry, the GLUE CEs, a paused
   domain nobody logged) as soft state, as before.
   A domain first seen running, of a VM last known off or paused (seen leaving another host),
   is logged as a ``PowerOn`` or ``Resume`` there: it starts a new run on this host.
2. :meth:`HypervisorFeed.deliver` gives the events to :meth:`EventSink.accept
   <gridinfo.vm.backend.EventSink.accept>` (journalled, folded, published) and shows the
   domain's measurements (VCPUs, memory, CPU time, uptime) on the VM's entry.

So a VM has one entry, at the DN the provider used (``GridinfoVMID=<uuid>,
GridinfoHypervisorID=<host>,<suffix>``) when the hypervisor's is the newest physical host heard
of, which joins what the cloud manager, the hypervisor and the VM itself said.  A job has one
entry, ``GridinfoJobID=<id>,ou=jobs,<suffix>``, whether its events came from the batch
provider's runs, from a client logging ``batch`` events by LDAP add (the same job id), or both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from twisted.logger import Logger

from gridinfo.errors import Unavailable
from gridinfo.vm.events import Event
from gridinfo.vm.observe import BatchObserver, HypervisorObserver, domains_from_entries, jobs_from_entries

if TYPE_CHECKING:
    from gridinfo.vm.backend import EventSink

log = Logger()

EntryData = tuple[str, Sequence[tuple[str, Sequence[bytes]]]]

#: Attributes of the provider's GridinfoVM entry that the sink's entry has its own values for.
_SINK_OWNS = frozenset(
    a.lower()
    for a in ("objectClass", "GridinfoVMID", "GridinfoVMState", "GridinfoJobGenericState", "GridinfoVMName",
              "GridinfoVMUUID", "GridinfoVMPhysicalHost", "GridinfoHypervisorID", "GridinfoProviderName")
)


#: The state a VM was last known in -> what a domain first seen running means for it.
_AGAIN = {"ShutDown": "PowerOn", "PoweredOff": "PowerOn", "Suspended": "Resume", "Stopped": "Resume"}


@dataclass(frozen=True)
class Observation:
    """One run's snapshot, read: the events it makes and the entries the sink publishes instead."""

    provider: str
    host: str | None
    events: list[Event] = field(default_factory=list)
    withheld: frozenset[int] = frozenset()  # positions in the run's entries
    live: dict[str, list[tuple[str, list[bytes]]]] = field(default_factory=dict)  # VM id -> measurements
    batch: bool = False  # a batch provider's run (host is None)


def _has_class(attrs: Sequence[tuple[str, Sequence[bytes]]], cls: bytes) -> bool:
    return any(name.lower() == "objectclass" and any(v.lower() == cls for v in values) for name, values in attrs)


def _is_vm(attrs: Sequence[tuple[str, Sequence[bytes]]]) -> bool:
    return _has_class(attrs, b"gridinfovm")


def _vm_id(attrs: Sequence[tuple[str, Sequence[bytes]]]) -> str | None:
    """The id the observer gives the domain: its UUID (the provider's RDN value), else its id."""
    found = {name.lower(): values for name, values in attrs}
    values = found.get("gridinfovmuuid") or found.get("gridinfovmid")
    return values[0].decode("utf-8", "replace") if values else None


class HypervisorFeed:
    """Feeds the runs of ``feeds: vm`` providers into one :class:`EventSink` (see module doc)."""

    def __init__(self, sink: EventSink):
        self.sink = sink
        self._observers: dict[tuple[str, str], HypervisorObserver] = {}
        self._batch: dict[str, BatchObserver] = {}
        self._live_of: dict[str, set[str]] = {}  # provider -> VM ids whose measurements it set

    def observer(self, provider: str, host: str) -> HypervisorObserver:
        """The observer of ``host`` as seen by ``provider``, resumed from the journal when new."""
        key = (provider, host)
        found = self._observers.get(key)
        if found is None:
            found = self._observers[key] = HypervisorObserver(host)
            found.resume(self.sink.store.events.values())
        return found

    def batch_observer(self, provider: str) -> BatchObserver:
        """The observer of ``provider``'s batch system, resumed from the journal when new."""
        found = self._batch.get(provider)
        if found is None:
            found = self._batch[provider] = BatchObserver()
            found.resume(self.sink.store.events.values())
        return found

    def vm_of_host(self) -> dict[str, str]:
        """Host name (full and short) or name, lowercased -> VM id, over the VMs not finished."""
        found: dict[str, str] = {}
        for ident, life in sorted(self.sink.store.vms.items()):
            if life.finished:
                continue
            for fact in ("name", "hostname"):
                value = life.fact(fact)
                if value:
                    found[value.lower()] = ident
                    found.setdefault(value.lower().split(".", 1)[0], ident)
        return found

    def _observe_batch(self, provider: str, entries: Sequence[EntryData], now: float) -> Observation:
        hosts = self.vm_of_host()
        events = self.batch_observer(provider).observe(
            jobs_from_entries(entries), now, lambda node: hosts.get(node.lower()) or hosts.get(node.lower().split(".")[0]))
        known = set(self.sink.store.jobs) | {e.job_id for e in events if e.job_id is not None}
        withheld = set()
        for i, (_dn, attrs) in enumerate(entries):
            if _has_class(attrs, b"gridinfojob"):
                values = {name.lower(): values for name, values in attrs}
                ident = values.get("gridinfojobid", [b""])[0].decode("utf-8", "replace")
                if ident in known:
                    withheld.add(i)
        return Observation(provider, None, events, frozenset(withheld), batch=True)

    def _arrival(self, event: Event) -> Event:
        """A domain first seen running on this host, of a VM gridinfo last knew paused or off
        (elsewhere: another host's observer saw it go): it started again here, a new run.

        Without this a VM whose old host saw it leave before its new host saw it arrive (a
        migration nobody announced, a transient domain restarted on another host) would stay
        ``ShutDown``: a ``Running`` does not reopen the run it ended.
        """
        life = self.sink.store.vms.get(event.vm_id or "")
        if event.kind != "Running" or life is None or life.finished:
            return event
        kind = _AGAIN.get(life.state)
        if kind is None:
            return event
        return Event.make(kind, event.source, event.seq, event.time, vm_id=event.vm_id, attributes=event.attributes)

    def observe(self, provider: str, entries: Sequence[EntryData], now: float) -> Observation:
        """Step 1: the events this snapshot makes, and which entries the sink publishes instead."""
        host, domains = domains_from_entries(entries)
        if host is None:
            if any(_has_class(attrs, b"gluece") or _has_class(attrs, b"gridinfojob") for _dn, attrs in entries):
                return self._observe_batch(provider, entries, now)
            return Observation(provider, None)
        events = [self._arrival(e) for e in self.observer(provider, host).observe(domains, now)]
        known = set(self.sink.store.vms) | {e.vm_id for e in events if e.vm_id is not None}
        withheld = set()
        live: dict[str, list[tuple[str, list[bytes]]]] = {}
        for i, (_dn, attrs) in enumerate(entries):
            if not _is_vm(attrs):
                continue
            ident = _vm_id(attrs)
            if ident is None or ident not in known:
                continue
            withheld.add(i)
            live[ident] = [(name, list(values)) for name, values in attrs if name.lower() not in _SINK_OWNS]
        return Observation(provider, host, events, frozenset(withheld), live)

    def deliver(self, observation: Observation) -> int:
        """Step 2: journal and publish the events; show the measurements.  Returns events accepted."""
        publisher = self.sink.publisher
        before = self._live_of.get(observation.provider, set())
        changed = set()
        for ident in before - set(observation.live):
            if publisher.live.pop(ident, None) is not None:
                changed.add(ident)
        for ident, attrs in observation.live.items():
            # every withheld VM is published again: the install of the provider's entries may
            # just have removed the entry the provider had at the same DN before the sink knew it
            publisher.live[ident] = attrs
            changed.add(ident)
        self._live_of[observation.provider] = set(observation.live)
        outcomes = self.sink.accept(observation.events)
        accepted = 0
        for event, error in zip(observation.events, outcomes):
            if error is None:
                accepted += 1
            elif isinstance(error, Unavailable):
                # not on disk: forget what this observer believes, so the next run says it again
                if observation.batch:
                    self._batch.pop(observation.provider, None)
                else:
                    self._observers.pop((observation.provider, observation.host or ""), None)
            else:
                log.info("hypervisor observation {event} not taken: {error}", event=event.event_id, error=error.message)
        republish = [("vm", i) for i in sorted(changed) if i in self.sink.store.vms]
        if republish:
            publisher.publish(self.sink.store, republish)
        if observation.events:
            log.info("provider {provider}: {accepted} of {count} {source} observations taken for {host}",
                     provider=observation.provider, accepted=accepted, count=len(observation.events),
                     source="batch" if observation.batch else "hypervisor", host=observation.host or "its jobs")
        return accepted
