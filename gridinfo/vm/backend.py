"""The events subtree of a GRIS: LDAP adds in, VM, job and relation entries out.

Why one module: the publisher, the event sink and the service that wires them are one path from an
LDAP add to published entries, with the sink's order of steps (validate, check, fold, journal,
publish) written in one place.

An LDAP add of a ``GridinfoEvent`` entry one level below ``ou=events,<suffix>`` is an event.
For each one the sink, in this order: reads and validates it (:mod:`gridinfo.vm.events`),
checks who may log it (:mod:`gridinfo.vm.acl`), folds it into the state
(:mod:`gridinfo.vm.lifecycle`), writes it to the journal (:mod:`gridinfo.vm.journal`, committed
to disk), publishes the entries it changed, and only then answers the add.  Events that arrive
in the same reactor turn share one journal transaction (group commit); if that commit fails
every one of them is answered ``unavailable`` and the state is rebuilt from the journal, so
nothing is published that is not on disk.  Events the GRIS observes itself (its ``hypervisor``
provider, :mod:`gridinfo.vm.feed`) come in through :meth:`EventSink.accept`: no bind, the same
journal and publication.

Published entries (``<suffix>`` is the GRIS's, e.g. ``mds-vo-name=local,o=grid``)::

    GridinfoVMID=<vm>,GridinfoHypervisorID=<physical host>,<suffix>   a VM whose host is known
    GridinfoVMID=<vm>,ou=vms,<suffix>                                 a VM whose host is not
    GridinfoJobID=<job>,ou=jobs,<suffix>                              a job
    GridinfoRelationID=<job>@<vm>#<n>,ou=relations,<suffix>           a job in a VM, since/until
    GridinfoEventID=<source>:<vm>:<job>:<seq>,ou=events,<suffix>      each event (publish_events)

The VM's DN follows its physical host: the hypervisor entries of the ``hypervisor`` provider
(``GridinfoHypervisorID=<host>,<suffix>``) are its parents, and a minimal parent is added when
no provider publishes one.  A finished VM or job stays for ``retention`` seconds after gridinfo
learnt it ended, then its entries and its journal rows go; so does a VM only the hypervisor ever
reported once it has been ``ShutDown`` that long, and a finished job with its past relations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger

from gridinfo.directory.dn import escape_value, parent_key
from gridinfo.directory.tree import DirectoryTree, EqualityIndex, index_add
from gridinfo.errors import ConstraintViolation, LDAPError, ResultCode, Unavailable
from gridinfo.vm.acl import AccessPolicy
from gridinfo.vm.events import Event, EventError, event_from_entry, format_time
from gridinfo.vm.journal import Journal, JournalError
from gridinfo.vm.lifecycle import Lifecycle, LifecycleStore, Subject

log = Logger()

SOURCE_TAG = "gridinfo-vm"

#: Facts with an attribute of their own; the others are published as GridinfoLifecycleDetail.
_VM_FACTS = {"owner": "GridinfoVMOwner", "hostname": "GridinfoVMHostName", "name": "GridinfoVMName",
             "uuid": "GridinfoVMUUID"}
_JOB_FACTS = {"owner": "GridinfoJobOwner", "queue": "GridinfoJobQueue"}
_NOT_DETAILS = {"sources", "physical_host"}


@dataclass(frozen=True)
class VMBases:
    """The DNs of the subtrees the sink publishes under."""

    suffix: str

    @property
    def events(self) -> str:
        return f"ou=events,{self.suffix}"

    @property
    def vms(self) -> str:
        return f"ou=vms,{self.suffix}"

    @property
    def jobs(self) -> str:
        return f"ou=jobs,{self.suffix}"

    @property
    def relations(self) -> str:
        return f"ou=relations,{self.suffix}"

    def hypervisor(self, host: str) -> str:
        return f"GridinfoHypervisorID={escape_value(host)},{self.suffix}"


#: What the L&B-style queries of docs/vm.md filter on; the sink makes sure the tree has an
#: equality index for each, so each query is answered from an index, not a scan of the tree.
VM_INDEXED: tuple[str, ...] = ("GridinfoVMID", "GridinfoJobID", "GridinfoVMOwner", "GridinfoJobOwner",
                               "GridinfoVMPhysicalHost", "GridinfoJobGenericState", "GridinfoVMState")


def ensure_indexes(tree: DirectoryTree, names: Iterable[str]) -> list[str]:
    """Add an equality index to ``tree`` for each attribute it lacks one for (filled from what
    the tree holds already); returns the attributes indexed anew."""
    added = []
    for name in names:
        m = tree.schema.matching(name)
        if m is None or m.equality is None or m.key == "objectclass" or m.key in tree.eq_indexes:
            continue
        index: EqualityIndex = {}
        for entry in tree.entries.values():
            if entry.has(m.key):
                for v in entry.normalised(m.key, "eq", m.equality):
                    index_add(index, v, entry.key)
        tree.eq_indexes[m.key] = index
        added.append(name)
    return added


def _b(text: str) -> bytes:
    return text.encode("utf-8")


class VMPublisher:
    """Writes the store's VMs, jobs and relations into the tree as entries."""

    def __init__(self, tree: DirectoryTree, suffix: str, retention: float, *, publish_events: bool = True):
        self.tree = tree
        self.bases = VMBases(suffix)
        self.retention = retention
        self.publish_events = publish_events
        self._published: dict[Subject, list[str]] = {}  # subject -> keys of its entries
        self._own_parents: set[str] = set()
        #: VM id -> measurements the hypervisor provider last reported (vcpus, memory, cpu time,
        #: uptime): shown on the VM's entry, never journalled (gridinfo.vm.feed keeps it current)
        self.live: dict[str, list[tuple[str, list[bytes]]]] = {}

    def ensure_bases(self) -> None:
        ensure_indexes(self.tree, VM_INDEXED)
        for dn in (self.bases.events, self.bases.vms, self.bases.jobs, self.bases.relations):
            if self.tree.lookup(dn) is None:
                ou = dn.split(",", 1)[0].split("=", 1)[1]
                self.tree.add(self.tree.build(dn, [("objectClass", [b"organizationalUnit"]), ("ou", [_b(ou)])],
                                              source=SOURCE_TAG))

    def publish(self, store: LifecycleStore, subjects: Iterable[Subject]) -> None:
        for subject in subjects:
            kind, ident = subject
            if kind == "vm":
                life = store.vms.get(ident)
                self._replace(subject, [self._vm_entry(store, life)] if life is not None else [])
            elif kind == "job":
                job = store.jobs.get(ident)
                self._replace(subject, [self._job_entry(store, job)] if job is not None else [])
            else:
                job_id, vm_id = ident.split("\0", 1)
                self._replace(subject, [self._relation_entry(i) for i in store.relation_intervals(job_id, vm_id)])

    def publish_all(self, store: LifecycleStore) -> None:
        subjects: list[Subject] = [("vm", v) for v in store.vms] + [("job", j) for j in store.jobs]
        subjects += [("rel", f"{j}\0{v}") for j, v in store.relation_events]
        self.publish(store, subjects)
        if self.publish_events:
            for event in store.events.values():
                self.add_event(event)

    def add_event(self, event: Event) -> None:
        if self.publish_events:
            self.tree.add(self.tree.build(event.dn(self.bases.events), event.to_attributes(), source=SOURCE_TAG))

    def remove_events(self, keys: Iterable[tuple[str, str, str, int]]) -> None:
        for source, vm, job, seq in keys:
            rdn = f"{source}:{vm or '-'}:{job or '-'}:{seq}"
            self.tree.remove(self.tree.key(f"GridinfoEventID={escape_value(rdn)},{self.bases.events}"))

    def forget(self, subjects: Iterable[Subject]) -> None:
        for subject in subjects:
            self._replace(subject, [])

    # -- entries -----------------------------------------------------------------------------------

    def _replace(self, subject: Subject, entries: list[tuple[str, list[tuple[str, list[bytes]]]]]) -> None:
        new_keys = []
        for dn, attrs in entries:
            entry = self.tree.build(dn, attrs, source=SOURCE_TAG)
            self.tree.add(entry)
            new_keys.append(entry.key)
        for old in self._published.get(subject, ()):
            if old not in new_keys:
                self.tree.remove(old)
        if new_keys:
            self._published[subject] = new_keys
        else:
            self._published.pop(subject, None)

    def _parent_for(self, host: str | None) -> str:
        if not host:
            return self.bases.vms
        dn = self.bases.hypervisor(host)
        if self.tree.lookup(dn) is None:
            attrs = [("objectClass", [b"GridinfoHypervisor"]), ("GridinfoHypervisorID", [_b(host)])]
            entry = self.tree.build(dn, attrs, source=SOURCE_TAG)
            self.tree.add(entry)
            self._own_parents.add(entry.key)
        return dn

    def _common(self, life: Lifecycle, facts: dict[str, str], mapping: dict[str, str]) -> list[tuple[str, list[bytes]]]:
        attrs: list[tuple[str, list[bytes]]] = []
        for fact, attr in mapping.items():
            if fact in facts:
                attrs.append((attr, [_b(facts[fact])]))
        details = [f"{k}={v}" for k, v in facts.items() if k not in mapping and k not in _NOT_DETAILS]
        if details:
            attrs.append(("GridinfoLifecycleDetail", [_b(d) for d in details]))
        last = life.last_event
        if last is not None:
            attrs.append(("GridinfoVMLastEvent", [_b(last.describe())]))
            attrs.append(("GridinfoLifecycleUpdated", [_b(format_time(last.time))]))
        attrs.append(("GridinfoVMSources", [_b(s) for s in sorted(life.sources)]))
        attrs.append(("GridinfoLifecycleEvents", [_b(str(life.events))]))
        attrs.append(("GridinfoLifecycleAllowedSource", [_b(s) for s in sorted(life.allowed_sources)]))
        ended = life.finished_accepted if life.finished_accepted is not None else life.retired_accepted
        if ended is not None:
            attrs.append(("GridinfoLifecycleExpires", [_b(format_time(ended + self.retention))]))
        return attrs

    def _state_times(self, life: Lifecycle) -> list[bytes]:
        return [_b(f"{s}={format_time(t)}") for s, t in sorted(life.state_times.items(), key=lambda i: (i[1], i[0]))]

    def _vm_entry(self, store: LifecycleStore, life: Lifecycle) -> tuple[str, list[tuple[str, list[bytes]]]]:
        facts = life.facts()
        host = facts.get("physical_host")
        dn = f"GridinfoVMID={escape_value(life.ident)},{self._parent_for(host)}"
        attrs: list[tuple[str, list[bytes]]] = [
            ("objectClass", [b"GridinfoVM", b"GridinfoLifecycle"]),
            ("GridinfoVMID", [_b(life.ident)]),
            ("GridinfoVMState", [_b(life.state)]),
            ("GridinfoJobGenericState", [_b(life.generic_state)]),
        ]
        if host:
            attrs.append(("GridinfoVMPhysicalHost", [_b(host)]))
            attrs.append(("GridinfoHypervisorID", [_b(host)]))
        transitions = sorted({(t, s) for run in life.runs for s, t in run.state_times})
        if transitions:
            attrs.append(("GridinfoVMStateTime", [_b(f"{s}={format_time(t)}") for t, s in transitions]))
        attrs.append(("GridinfoVMRun", [_b(run.describe()) for run in life.runs]))
        attrs.append(("GridinfoVMRunCount", [_b(str(len(life.runs)))]))
        if life.hosts:
            attrs.append(("GridinfoVMHostHistory", [_b(stay.describe()) for stay in life.hosts]))
        jobs = sorted(store.jobs_of_vm.get(life.ident, ()))
        if jobs:
            attrs.append(("GridinfoVMJob", [_b(j) for j in jobs]))
        attrs += self._common(life, facts, _VM_FACTS)
        have = {name.lower() for name, _ in attrs}
        attrs += [(name, values) for name, values in self.live.get(life.ident, ()) if name.lower() not in have]
        return dn, attrs

    def _job_entry(self, store: LifecycleStore, life: Lifecycle) -> tuple[str, list[tuple[str, list[bytes]]]]:
        facts = life.facts()
        dn = f"GridinfoJobID={escape_value(life.ident)},{self.bases.jobs}"
        attrs: list[tuple[str, list[bytes]]] = [
            ("objectClass", [b"GridinfoJob", b"GridinfoLifecycle"]),
            ("GridinfoJobID", [_b(life.ident)]),
            ("GridinfoJobState", [_b(life.state)]),
            ("GridinfoJobGenericState", [_b(life.generic_state)]),
        ]
        for state, attr in (("Submitted", "GridinfoJobSubmitTime"), ("Running", "GridinfoJobStartTime")):
            if state in life.state_times:
                attrs.append((attr, [_b(format_time(life.state_times[state]))]))
        if life.final_time is not None:
            attrs.append(("GridinfoJobEndTime", [_b(format_time(life.final_time))]))
        if life.state_times:
            attrs.append(("GridinfoJobStateTime", self._state_times(life)))
        vms = sorted(store.vms_of_job.get(life.ident, ()))
        if vms:
            attrs.append(("GridinfoJobVM", [_b(v) for v in vms]))
        if "physical_host" in facts:
            attrs.append(("GridinfoVMPhysicalHost", [_b(facts["physical_host"])]))
        if "hostname" in facts:
            attrs.append(("GridinfoVMHostName", [_b(facts["hostname"])]))
        return dn, attrs + self._common(life, facts, _JOB_FACTS)

    def _relation_entry(self, interval: Any) -> tuple[str, list[tuple[str, list[bytes]]]]:
        dn = f"GridinfoRelationID={escape_value(interval.relation_id)},{self.bases.relations}"
        attrs: list[tuple[str, list[bytes]]] = [
            ("objectClass", [b"GridinfoJobVMRelation"]),
            ("GridinfoRelationID", [_b(interval.relation_id)]),
            ("GridinfoJobID", [_b(interval.job_id)]),
            ("GridinfoVMID", [_b(interval.vm_id)]),
            ("GridinfoRelationActive", [b"TRUE" if interval.active else b"FALSE"]),
        ]
        if interval.since is not None:
            attrs.append(("GridinfoRelationSince", [_b(format_time(interval.since))]))
        if interval.until is not None:
            attrs.append(("GridinfoRelationUntil", [_b(format_time(interval.until))]))
        return dn, attrs


_Pending = tuple[Event, "str | None", "defer.Deferred[None] | None"]  # bind DN None: observed by the GRIS


class EventSink:
    """Accepts events by LDAP add, keeps them in the journal, publishes their effect.

    ``clock()`` gives the time gridinfo accepts an event at (retention counts from it).  With a
    ``reactor``, :meth:`add` returns a Deferred and events of one reactor turn share a commit;
    without one, each add is processed (and committed) before it returns.
    """

    def __init__(
        self,
        tree: DirectoryTree,
        suffix: str,
        journal: Journal,
        policy: AccessPolicy,
        *,
        clock: Callable[[], float],
        reactor: Any = None,
        retention: float = 86400.0,
        publish_events: bool = True,
    ):
        self.tree = tree
        self.journal = journal
        self.policy = policy
        self.clock = clock
        self.reactor = reactor
        self.retention = retention
        self.store = LifecycleStore()
        self.publisher = VMPublisher(tree, suffix, retention, publish_events=publish_events)
        self.events_base = self.publisher.bases.events
        self._events_key = tree.key(self.events_base)
        self._pending: list[_Pending] = []
        self._flush_call: Any = None
        self.accepted = 0
        self.duplicates = 0
        self.refused = 0
        self.batches = 0

    # -- start ------------------------------------------------------------------------------------

    def load(self) -> int:
        """Rebuild the state from the journal and publish it; returns the events replayed."""
        self.publisher.ensure_bases()
        self.store = LifecycleStore()
        replayed = 0
        for record in self.journal.replay():
            if isinstance(record, EventError):
                log.error("skipping a bad journal row: {error}", error=record.message)
                continue
            if self.store.apply(record.event, record.accepted) is not None:
                replayed += 1
        self.publisher.publish_all(self.store)
        log.info("rebuilt {vms} VMs and {jobs} jobs from {events} journalled events in {path}",
                 vms=len(self.store.vms), jobs=len(self.store.jobs), events=replayed, path=self.journal.path)
        return replayed

    # -- adds -------------------------------------------------------------------------------------

    def handles(self, dn: str) -> bool:
        """True for a DN in the events subtree (the GRIS backend delegates those adds here)."""
        try:
            key = self.tree.key(dn)
        except LDAPError:
            return False
        return key == self._events_key or parent_key(key) == self._events_key

    def add(self, dn: str, attributes: list[tuple[str, list[bytes]]], bind_dn: str) -> defer.Deferred[None] | None:
        key = self.tree.key(dn)
        if parent_key(key) != self._events_key:
            raise EventError(f"events are added one level below {self.events_base}", code=ResultCode.NAMING_VIOLATION)
        event = event_from_entry(dn, attributes, self.events_base)
        if self.reactor is None:
            error = self._process([(event, bind_dn, None)])[0]
            if error is not None:
                raise error
            return None
        d: defer.Deferred[None] = defer.Deferred()
        self._pending.append((event, bind_dn, d))
        if self._flush_call is None:
            self._flush_call = self.reactor.callLater(0, self._flush)
        return d

    def accept(self, events: Iterable[Event]) -> list[LDAPError | None]:
        """Take events the GRIS observed itself (its ``hypervisor`` provider): no bind, no LDAP.

        Like :meth:`add` otherwise, and at once: each event is checked against its VM's
        registration (:meth:`AccessPolicy.check_observed`), folded in, committed to the journal
        and published before this returns.  The same (source, VM, job, seq) again is a no-op.
        Returns one outcome per event (None: accepted or already known).
        """
        batch: list[_Pending] = [(event, None, None) for event in events]
        return self._process(batch) if batch else []

    def _flush(self) -> None:
        self._flush_call = None
        batch, self._pending = self._pending, []
        outcomes = self._process(batch)
        for (_, _, d), error in zip(batch, outcomes):
            assert d is not None
            if error is None:
                d.callback(None)
            else:
                d.errback(error)

    def _process(self, batch: list[_Pending]) -> list[LDAPError | None]:
        """Check, fold, journal and publish a batch; one outcome (None: accepted) per event."""
        now = self.clock()
        outcomes: list[LDAPError | None] = []
        written: list[tuple[Event, float]] = []
        touched: set[Subject] = set()
        for event, bind_dn, _ in batch:
            try:
                if bind_dn is None:
                    self.policy.check_observed(event, self.store)
                else:
                    self.policy.check(event, bind_dn, self.store)
                known = self.store.known(event)
                if known is not None:
                    if known != event:
                        raise ConstraintViolation(
                            f"event {event.event_id} was already logged with different content"
                            " (a source numbers each event once)"
                        )
                    self.duplicates += 1
                    outcomes.append(None)
                    continue
                reason = self.store.contradiction(event)
                if reason is not None:
                    raise ConstraintViolation(f"event {event.event_id}: {reason}")
                changed = self.store.apply(event, now)
                touched |= changed or set()
                written.append((event, now))
                outcomes.append(None)
            except LDAPError as e:
                self.refused += 1
                who = "the GRIS's own observation" if bind_dn is None else bind_dn or "anonymous"
                log.info("refused event from {who}: {error}", who=who, error=e.message)
                outcomes.append(e)
        try:
            self.journal.append(written)
        except JournalError as e:
            log.critical("{error}; answering unavailable and rebuilding from the journal", error=str(e))
            failure = Unavailable(f"the event journal cannot be written: {e}")
            self._rebuild()
            return [o if o is not None else failure for o in outcomes]
        self.batches += 1
        self.accepted += len(written)
        self.publisher.publish(self.store, sorted(touched))
        for event, _ in written:
            self.publisher.add_event(event)
        return outcomes

    def _rebuild(self) -> None:
        for subject in list(self.publisher._published):
            self.publisher.forget([subject])
        if self.publisher.publish_events:
            self.publisher.remove_events(self.store.events.keys())
        self.load()

    # -- retention --------------------------------------------------------------------------------

    def sweep(self) -> int:
        """Delete finished VMs and jobs whose retention ended; returns how many went."""
        expired = self.store.expired(self.clock(), self.retention)
        if not expired:
            return 0
        keys: list[tuple[str, str, str, int]] = []
        touched: set[Subject] = set()
        for kind, ident in expired:
            pairs_before = {p for p in self.store.relation_events if (p[1] if kind == "vm" else p[0]) == ident}
            keys += self.store.forget(kind, ident)
            touched.add((kind, ident))
            for job, vm in pairs_before:
                touched.add(("rel", f"{job}\0{vm}"))
                touched.add(("job", job) if kind == "vm" else ("vm", vm))
        self.journal.delete(keys)
        self.publisher.publish(self.store, sorted(touched))
        self.publisher.remove_events(keys)
        log.info("retention: {count} finished VMs and jobs removed ({events} events)", count=len(expired), events=len(keys))
        return len(expired)


class EventService(service.Service):
    """Runs an :class:`EventSink` inside a GRIS: loads the journal, sweeps retention, closes."""

    name = "vm-events"  # type: ignore[assignment]

    def __init__(self, sink: EventSink, reactor: Any, sweep_interval: float):
        self.sink = sink
        self.reactor = reactor
        self.sweep_interval = sweep_interval
        self._loop: task.LoopingCall | None = None

    def startService(self) -> None:
        super().startService()
        if self.sweep_interval > 0:
            self._loop = task.LoopingCall(self.sink.sweep)
            self._loop.clock = self.reactor
            self._loop.start(self.sweep_interval, now=False).addErrback(
                lambda f: log.failure("retention sweep failed", failure=f)
            )

    def stopService(self) -> Any:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self.sink._flush_call is not None and self.sink._flush_call.active():
            self.sink._flush_call.cancel()
            self.sink._flush()
        self.sink.journal.close()
        return super().stopService()


def make_event_service(tree: DirectoryTree, suffix: str, config: Any, reactor: Any) -> EventService:
    """The ``vm:`` section of gris.yaml as a running event sink (journal replayed, published)."""
    if not config.journal:
        from gridinfo.errors import ConfigError

        raise ConfigError("vm.journal: a file path is needed when vm.enabled is true", getattr(config, "source", "<config>"))
    policy = AccessPolicy(config.sources, config.owners, allow_anonymous=config.allow_anonymous)
    journal = Journal(config.journal)
    sink = EventSink(
        tree,
        suffix,
        journal,
        policy,
        clock=reactor.seconds,
        reactor=reactor,
        retention=config.retention,
        publish_events=config.publish_events,
    )
    sink.load()
    return EventService(sink, reactor, config.sweep_interval)
