"""The ``hypervisor`` provider's runs as ``hypervisor`` events into the GRIS's own event sink.

A provider marked ``feeds: vm`` in gris.yaml (the bundled ``hypervisor`` provider) prints one
``GridinfoHypervisor`` entry and one ``GridinfoVM`` entry per domain.  After each good run the
provider manager hands its entries to :class:`HypervisorFeed`, in two steps:

1. :meth:`HypervisorFeed.observe` reads the entries as a snapshot
   (:func:`~gridinfo.vm.observe.domains_from_entries`), turns what changed since the last run into
   ``hypervisor`` events (:class:`~gridinfo.vm.observe.HypervisorObserver`, one per provider and
   physical host, resumed from the journal after a restart) and says which ``GridinfoVM``
   entries the sink publishes instead of the provider: those of every VM the sink knows or is
   about to learn of.  The manager installs the provider's other entries (the hypervisor entry,
   and domains that produced no event and are unknown to the sink, e.g. a paused domain nobody
   logged) as soft state, as before.
2. :meth:`HypervisorFeed.deliver` gives the events to :meth:`EventSink.accept
   <gridinfo.vm.backend.EventSink.accept>` (journalled, folded, published) and shows the
   domain's measurements (VCPUs, memory, CPU time, uptime) on the VM's entry.

So a VM has one entry, at the DN the provider used (``GridinfoVMID=<uuid>,
GridinfoHypervisorID=<host>,<suffix>``) when the hypervisor's is the newest physical host heard
of, which joins what the cloud manager, the hypervisor and the VM itself said.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from twisted.logger import Logger

from gridinfo.errors import Unavailable
from gridinfo.vm.events import Event
from gridinfo.vm.observe import HypervisorObserver, domains_from_entries

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


@dataclass(frozen=True)
class Observation:
    """One run's snapshot, read: the events it makes and the entries the sink publishes instead."""

    provider: str
    host: str | None
    events: list[Event] = field(default_factory=list)
    withheld: frozenset[int] = frozenset()  # positions in the run's entries
    live: dict[str, list[tuple[str, list[bytes]]]] = field(default_factory=dict)  # VM id -> measurements


def _is_vm(attrs: Sequence[tuple[str, Sequence[bytes]]]) -> bool:
    return any(name.lower() == "objectclass" and any(v.lower() == b"gridinfovm" for v in values)
               for name, values in attrs)


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
        self._live_of: dict[str, set[str]] = {}  # provider -> VM ids whose measurements it set

    def observer(self, provider: str, host: str) -> HypervisorObserver:
        """The observer of ``host`` as seen by ``provider``, resumed from the journal when new."""
        key = (provider, host)
        found = self._observers.get(key)
        if found is None:
            found = self._observers[key] = HypervisorObserver(host)
            found.resume(self.sink.store.events.values())
        return found

    def observe(self, provider: str, entries: Sequence[EntryData], now: float) -> Observation:
        """Step 1: the events this snapshot makes, and which entries the sink publishes instead."""
        host, domains = domains_from_entries(entries)
        if host is None:
            return Observation(provider, None)
        events = self.observer(provider, host).observe(domains, now)
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
                self._observers.pop((observation.provider, observation.host or ""), None)
            else:
                log.info("hypervisor observation {event} not taken: {error}", event=event.event_id, error=error.message)
        republish = [("vm", i) for i in sorted(changed) if i in self.sink.store.vms]
        if republish:
            publisher.publish(self.sink.store, republish)
        if observation.events:
            log.info("provider {provider}: {accepted} of {count} hypervisor observations taken for {host}",
                     provider=observation.provider, accepted=accepted, count=len(observation.events),
                     host=observation.host)
        return accepted
