"""Lifecycle events of virtual machines and jobs: what a source says happened, validated.

An event is one fact from one source: the cloud manager registered VM ``x``, the hypervisor
sees it running, the VM's own image says its services are up, the batch system put job ``j``
into it.  Sources number their events (``seq``) and time-stamp them; gridinfo never trusts
arrival order (see :mod:`gridinfo.vm.lifecycle`).

On the wire an event is an LDAP entry of class ``GridinfoEvent`` (schemas/gridinfo.schema)
added below the events subtree of a GRIS::

    dn: GridinfoEventID=cloud:vm-42:-:7,ou=events,mds-vo-name=local,o=grid
    objectClass: GridinfoEvent
    GridinfoEventID: cloud:vm-42:-:7
    GridinfoEventType: Running
    GridinfoEventSource: cloud
    GridinfoEventSeq: 7
    GridinfoEventTime: 20240501120000Z
    GridinfoVMID: vm-42
    GridinfoEventAttribute: physical_host=node07.example.org

The same event round-trips through JSON for the journal and the client spool.  This module is
pure: no I/O, no clock (times are given).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from gridinfo.directory.dn import escape_value, parse_dn
from gridinfo.directory.gtime import format_generalized_time, parse_generalized_time
from gridinfo.errors import LDAPError, ResultCode

__all__ = [
    "ATTRIBUTE_KEYS",
    "ATTRIBUTE_PREFIXES",
    "CYCLE_KINDS",
    "Event",
    "EventError",
    "JOB_KINDS",
    "KINDS",
    "SOURCES",
    "SOURCE_KINDS",
    "event_from_entry",
    "format_time",
    "parse_time",
]

#: Every kind of event, in the order of a life cycle.
KINDS: tuple[str, ...] = (
    "Register",
    "Create",
    "Running",
    "HostDetail",
    "ReallyRunning",
    "Shutdown",
    "Suspend",
    "Resume",
    "Stop",
    "PowerOff",
    "PowerOn",
    "Migrate",
    "Reboot",
    "Done",
    "Failed",
    "Relate",
    "Unrelate",
)

#: Kinds that pause, restart or move a VM (see the table in :mod:`gridinfo.vm.lifecycle`).
CYCLE_KINDS: frozenset[str] = frozenset({"Suspend", "Resume", "Stop", "PowerOff", "PowerOn", "Migrate", "Reboot"})

#: Who sends events.
SOURCES: tuple[str, ...] = ("cloud", "hypervisor", "vm", "batch")

#: What each source may say.  The cloud manager drives a VM's life; the hypervisor sees its
#: domain run, pause, stop, start again, move or crash; the VM image says when it is really up
#: and when it goes down; the batch system runs jobs and puts them into VMs.
SOURCE_KINDS: Mapping[str, frozenset[str]] = {
    "cloud": frozenset({"Register", "Create", "Running", "HostDetail", "Shutdown", "Done", "Failed"}) | CYCLE_KINDS,
    "hypervisor": frozenset({"Running", "HostDetail", "Shutdown", "Failed", "Suspend", "Resume", "PowerOff",
                             "PowerOn", "Migrate", "Reboot"}),
    "vm": frozenset({"ReallyRunning", "HostDetail", "Shutdown"}),
    "batch": frozenset({"Register", "Create", "Running", "HostDetail", "Done", "Failed", "Relate", "Unrelate"}),
}

#: Kinds a job event may have (a job's events name a job and no VM; only the batch system sends them).
JOB_KINDS: frozenset[str] = frozenset({"Register", "Create", "Running", "HostDetail", "Done", "Failed"})

#: Attribute keys with a meaning to gridinfo; anything under the prefixes is free-form.
ATTRIBUTE_KEYS: Mapping[str, str] = {
    "hostname": "host name of the VM",
    "physical_host": "the machine (hypervisor) running the VM (Migrate: the one it moves to)",
    "owner": "owner of the VM or job (Register names who may log its events)",
    "sources": "comma-separated sources allowed to log events of this VM (Register only)",
    "name": "name the hypervisor knows the VM by",
    "uuid": "UUID of the VM",
    "queue": "batch queue of a job",
    "requirements": "what the VM or job asked for, free text",
    "runtime": "runtime information, free text",
    "reason": "why (Failed, Shutdown)",
}
ATTRIBUTE_PREFIXES: tuple[str, ...] = ("tag.", "req.", "info.")

MAX_ID_LENGTH = 256
MAX_ATTRIBUTES = 64
MAX_VALUE_LENGTH = 1024
MAX_SEQ = (1 << 63) - 1

_ID_RE = re.compile(r"[^\x00-\x1f\x7f]+\Z")
_KEY_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}\Z")
_KIND_BY_LOWER = {k.lower(): k for k in KINDS}
_SOURCE_BY_LOWER = {s.lower(): s for s in SOURCES}


class EventError(LDAPError):
    """An event that cannot be accepted as sent; the message says which field and why."""

    code = ResultCode.CONSTRAINT_VIOLATION


def parse_time(text: str) -> float:
    """A generalized time (``YYYYmmddHHMMSS[.fff]Z`` or with ``+hhmm``) as seconds since the epoch."""
    return parse_generalized_time(text, "GridinfoEventTime", error=EventError)


def format_time(t: float) -> str:
    """Seconds since the epoch as a UTC generalized time; milliseconds only when there are any."""
    return format_generalized_time(t, millis=True)


def _check_id(what: str, value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise EventError(f"{what}: expected a string, got {type(value).__name__}")
    if len(value) > MAX_ID_LENGTH:
        raise EventError(f"{what}: longer than {MAX_ID_LENGTH} characters")
    if value != value.strip() or not _ID_RE.match(value):
        raise EventError(f"{what}: {value!r} has control characters or leading/trailing spaces")
    return value


def _check_attribute(key: str, value: str) -> tuple[str, str]:
    if not _KEY_RE.match(key):
        raise EventError(f"GridinfoEventAttribute: key {key!r} must be a letter then letters, digits, '_', '.', '-'")
    lowered = key.lower()
    if lowered not in ATTRIBUTE_KEYS and not lowered.startswith(ATTRIBUTE_PREFIXES):
        raise EventError(
            f"GridinfoEventAttribute: unknown key {key!r} (known: {', '.join(ATTRIBUTE_KEYS)};"
            f" free-form keys start with {', '.join(ATTRIBUTE_PREFIXES)})"
        )
    if len(value) > MAX_VALUE_LENGTH:
        raise EventError(f"GridinfoEventAttribute: value of {key!r} is longer than {MAX_VALUE_LENGTH} characters")
    if "\x00" in value or "\n" in value:
        raise EventError(f"GridinfoEventAttribute: value of {key!r} has a NUL or newline")
    return lowered, value


@dataclass(frozen=True)
class Event:
    """One validated event.  Build with :meth:`Event.make` (which validates) or from an entry.

    ``time`` is seconds since the epoch (the source's clock).  ``attributes`` are sorted
    ``(key, value)`` pairs, keys lowercased; a key appears at most once.
    """

    kind: str
    source: str
    seq: int
    time: float
    vm_id: str | None = None
    job_id: str | None = None
    attributes: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def make(
        cls,
        kind: str,
        source: str,
        seq: int,
        time: float,
        *,
        vm_id: str | None = None,
        job_id: str | None = None,
        attributes: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    ) -> Event:
        """Validate and build an event; :class:`EventError` names the first bad field."""
        canonical_kind = _KIND_BY_LOWER.get(str(kind).lower())
        if canonical_kind is None:
            raise EventError(f"GridinfoEventType: {kind!r} is not one of {', '.join(KINDS)}")
        canonical_source = _SOURCE_BY_LOWER.get(str(source).lower())
        if canonical_source is None:
            raise EventError(f"GridinfoEventSource: {source!r} is not one of {', '.join(SOURCES)}")
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= MAX_SEQ:
            raise EventError(f"GridinfoEventSeq: {seq!r} is not an integer from 0 to {MAX_SEQ}")
        if isinstance(time, bool) or not isinstance(time, (int, float)) or not 0 <= time < 253402300800:
            raise EventError(f"GridinfoEventTime: {time!r} is not a time between 1970 and 9999")
        vm = _check_id("GridinfoVMID", vm_id)
        job = _check_id("GridinfoJobID", job_id)
        if canonical_kind not in SOURCE_KINDS[canonical_source]:
            raise EventError(
                f"GridinfoEventType: source {canonical_source!r} does not send {canonical_kind!r} events"
                f" (it sends {', '.join(k for k in KINDS if k in SOURCE_KINDS[canonical_source])})"
            )
        if canonical_kind in ("Relate", "Unrelate"):
            if vm is None or job is None:
                raise EventError(f"{canonical_kind} names both a GridinfoVMID and a GridinfoJobID")
        elif vm is not None and job is not None:
            raise EventError(f"a {canonical_kind} event names a VM or a job, not both")
        elif vm is None and job is None:
            raise EventError(f"a {canonical_kind} event needs a GridinfoVMID or a GridinfoJobID")
        elif job is not None:
            if canonical_source != "batch" or canonical_kind not in JOB_KINDS:
                raise EventError(f"job events come from source 'batch' and are one of {', '.join(sorted(JOB_KINDS))}")
        elif canonical_source == "batch":
            raise EventError("source 'batch' logs job events and Relate/Unrelate, not VM events")
        pairs = list(attributes.items()) if isinstance(attributes, Mapping) else list(attributes)
        if len(pairs) > MAX_ATTRIBUTES:
            raise EventError(f"GridinfoEventAttribute: more than {MAX_ATTRIBUTES} values")
        checked: dict[str, str] = {}
        for key, value in pairs:
            k, v = _check_attribute(str(key), str(value))
            if k in checked and checked[k] != v:
                raise EventError(f"GridinfoEventAttribute: key {k!r} given twice with different values")
            checked[k] = v
        if canonical_kind == "Migrate" and not checked.get("physical_host"):
            raise EventError("GridinfoEventAttribute: a Migrate names the host the VM moves to (physical_host=...)")
        if "sources" in checked:
            if canonical_kind != "Register":
                raise EventError("GridinfoEventAttribute: 'sources' is only allowed on Register")
            for name in _split_list(checked["sources"]):
                if name not in _SOURCE_BY_LOWER:
                    raise EventError(f"GridinfoEventAttribute: sources: {name!r} is not one of {', '.join(SOURCES)}")
        # Milliseconds: what an LDAP GridinfoEventTime carries, so an event survives the round trip.
        return cls(canonical_kind, canonical_source, seq, round(float(time), 3), vm, job, tuple(sorted(checked.items())))

    # -- identity -------------------------------------------------------------------------------

    @property
    def key(self) -> tuple[str, str, str, int]:
        """What makes an event unique: (source, VM, job, seq).  Logging it again is a no-op."""
        return (self.source, self.vm_id or "", self.job_id or "", self.seq)

    @property
    def event_id(self) -> str:
        """``source:vm:job:seq`` (``-`` for a missing VM or job): the event's RDN value."""
        return f"{self.source}:{self.vm_id or '-'}:{self.job_id or '-'}:{self.seq}"

    @property
    def order(self) -> tuple[float, int, int, str, str]:
        """A total order over distinct events: time, then source, then seq (then subject)."""
        return (self.time, SOURCES.index(self.source), self.seq, self.vm_id or "", self.job_id or "")

    def attribute(self, key: str) -> str | None:
        for k, v in self.attributes:
            if k == key:
                return v
        return None

    def describe(self) -> str:
        subject = f"VM {self.vm_id}" if self.vm_id else f"job {self.job_id}"
        if self.kind in ("Relate", "Unrelate"):
            subject = f"job {self.job_id} / VM {self.vm_id}"
        return f"{self.kind} from {self.source} #{self.seq} at {format_time(self.time)} for {subject}"

    # -- LDAP entries ---------------------------------------------------------------------------

    def dn(self, events_base: str) -> str:
        return f"GridinfoEventID={escape_value(self.event_id)},{events_base}"

    def to_attributes(self) -> list[tuple[str, list[bytes]]]:
        """The event as an LDAP entry's attributes (class GridinfoEvent)."""
        attrs: list[tuple[str, list[bytes]]] = [
            ("objectClass", [b"GridinfoEvent"]),
            ("GridinfoEventID", [self.event_id.encode()]),
            ("GridinfoEventType", [self.kind.encode()]),
            ("GridinfoEventSource", [self.source.encode()]),
            ("GridinfoEventSeq", [str(self.seq).encode()]),
            ("GridinfoEventTime", [format_time(self.time).encode()]),
        ]
        if self.vm_id:
            attrs.append(("GridinfoVMID", [self.vm_id.encode()]))
        if self.job_id:
            attrs.append(("GridinfoJobID", [self.job_id.encode()]))
        if self.attributes:
            attrs.append(("GridinfoEventAttribute", [f"{k}={v}".encode() for k, v in self.attributes]))
        return attrs

    # -- JSON (journal, spool) ------------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps(
            {
                "kind": self.kind,
                "source": self.source,
                "seq": self.seq,
                "time": self.time,
                "vm": self.vm_id,
                "job": self.job_id,
                "attributes": [list(p) for p in self.attributes],
            },
            separators=(",", ":"),
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Event:
        data = json.loads(text)
        return cls.make(
            data["kind"],
            data["source"],
            data["seq"],
            data["time"],
            vm_id=data.get("vm"),
            job_id=data.get("job"),
            attributes=[tuple(p) for p in data.get("attributes", ())],
        )


def _split_list(text: str) -> list[str]:
    return [p.strip().lower() for p in text.split(",") if p.strip()]


def allowed_sources(text: str) -> frozenset[str]:
    """The ``sources`` attribute of a Register as a set of source names."""
    return frozenset(_SOURCE_BY_LOWER[p] for p in _split_list(text) if p in _SOURCE_BY_LOWER)


_EVENT_ATTRS = {
    "objectclass": "objectClass",
    "gridinfoeventid": "GridinfoEventID",
    "gridinfoeventtype": "GridinfoEventType",
    "gridinfoeventsource": "GridinfoEventSource",
    "gridinfoeventseq": "GridinfoEventSeq",
    "gridinfoeventtime": "GridinfoEventTime",
    "gridinfovmid": "GridinfoVMID",
    "gridinfojobid": "GridinfoJobID",
    "gridinfoeventattribute": "GridinfoEventAttribute",
}
_SINGLE = ("GridinfoEventID", "GridinfoEventType", "GridinfoEventSource", "GridinfoEventSeq", "GridinfoEventTime",
           "GridinfoVMID", "GridinfoJobID")


def _first(values: Mapping[str, Sequence[str]], name: str) -> str | None:
    found = values.get(name)
    return found[0] if found else None


def event_from_entry(dn: str, attributes: Sequence[tuple[str, Sequence[bytes]]], events_base: str = "") -> Event:
    """Read an event from an LDAP add: its DN (one level below ``events_base``) and attributes.

    Raises :class:`EventError` (constraintViolation) for bad values, and the same class with
    ``objectClassViolation`` / ``namingViolation`` codes for a wrong class or a wrong place.
    """
    parsed = parse_dn(dn)
    if not parsed or len(parsed[0]) != 1 or parsed[0][0][0].lower() != "gridinfoeventid":
        raise EventError(
            f"an event's DN starts with GridinfoEventID=..., got {dn!r}", code=ResultCode.NAMING_VIOLATION
        )
    values: dict[str, list[str]] = {}
    for name, vals in attributes:
        canonical = _EVENT_ATTRS.get(name.lower().split(";", 1)[0])
        if canonical is None:
            raise EventError(
                f"attribute {name!r} is not part of an event (allowed: {', '.join(_EVENT_ATTRS.values())})",
                code=ResultCode.OBJECT_CLASS_VIOLATION,
            )
        try:
            texts = [v.decode("utf-8") for v in vals]
        except UnicodeDecodeError:
            raise EventError(f"{canonical}: not UTF-8") from None
        values.setdefault(canonical, []).extend(texts)
    classes = {c.lower() for c in values.get("objectClass", [])}
    if "gridinfoevent" not in classes:
        raise EventError("an event entry has objectClass GridinfoEvent", code=ResultCode.OBJECT_CLASS_VIOLATION)
    extra = classes - {"gridinfoevent", "top"}
    if extra:
        raise EventError(
            f"an event entry has only objectClass GridinfoEvent (and top), not {', '.join(sorted(extra))}",
            code=ResultCode.OBJECT_CLASS_VIOLATION,
        )
    for name in _SINGLE:
        if len(values.get(name, ())) > 1:
            raise EventError(f"{name}: single-valued, got {len(values[name])} values")
    for name in ("GridinfoEventType", "GridinfoEventSource", "GridinfoEventSeq", "GridinfoEventTime"):
        if not values.get(name):
            raise EventError(f"{name}: required in an event", code=ResultCode.OBJECT_CLASS_VIOLATION)
    seq_text = values["GridinfoEventSeq"][0].strip()
    if not re.fullmatch(r"[0-9]{1,19}", seq_text):
        raise EventError(f"GridinfoEventSeq: {seq_text!r} is not a non-negative integer")
    pairs = []
    for text in values.get("GridinfoEventAttribute", []):
        key, eq, value = text.partition("=")
        if not eq:
            raise EventError(f"GridinfoEventAttribute: {text!r} is not key=value")
        pairs.append((key.strip(), value))
    event = Event.make(
        values["GridinfoEventType"][0].strip(),
        values["GridinfoEventSource"][0].strip(),
        int(seq_text),
        parse_time(values["GridinfoEventTime"][0].strip()),
        vm_id=_first(values, "GridinfoVMID"),
        job_id=_first(values, "GridinfoJobID"),
        attributes=pairs,
    )
    return event
