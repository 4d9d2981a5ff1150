"""Soft state: which provider owns which entries, and for how long they are served.

Why one module: the data types, the output interpreter and :class:`SoftStateTable` form one pure
state machine (no reactor) that is tested as a whole with an injected ``now``.

Pure core: no ``twisted.internet``; every method that depends on time takes ``now`` (seconds
since the epoch, from the caller's clock).  The process runner (:mod:`gridinfo.gris.runner`)
produces a :class:`RunOutput`; :func:`interpret_output` turns it into a :class:`RunReport`
(entries or a reason to fail); :meth:`SoftStateTable.succeed` / :meth:`SoftStateTable.fail`
feed it into the table, which keeps the shared :class:`DirectoryTree` in step.

Theory of operation
-------------------
Each provider has one :class:`ProviderRecord`.  Its *data state* says what is served:

* ``NEW``: it never produced good output; nothing is served.
* ``FRESH``: the last good run is younger than ``ttl``; its entries are served.
* ``STALE``: older than ``ttl`` but younger than ``ttl + keepto``; its entries are still served
  (their ``Mds-validto`` is in the past, so clients can tell), and a search asks for a refresh.
* ``GONE``: the grace period ended without a good run; its entries were removed.

Orthogonal to the data state: ``running`` (a run is in progress; at most one per provider, so
concurrent searches share it), ``retry_at`` (after a failed run, no new attempt before it) and
``retired`` (the file left its folder: no more runs; its entries go when their ``validto``
passes, or at once if already stale).

Events and what they do (``TRANSITIONS`` below is the table the code follows)::

    state   | SUCCESS          | FAILURE          | TTL_ENDS       | KEEPTO_ENDS
    --------+------------------+------------------+----------------+-----------------
    NEW     | FRESH  install   | NEW    note      | -              | -
    FRESH   | FRESH  install   | FRESH  note      | STALE  -       | -
    STALE   | FRESH  install   | STALE  note      | -              | GONE   drop
    GONE    | FRESH  install   | GONE   note      | -              | -

``install`` replaces exactly the provider's entries in the tree (keys that vanished are removed,
the rest added or replaced); ``note`` records the failure in the statistics and changes nothing
served; ``drop`` removes the provider's entries.  ``TTL_ENDS`` and ``KEEPTO_ENDS`` are raised
by :meth:`SoftStateTable.advance`, which callers run on every read (expiry on read) and from a
periodic sweep.  ``KEEPTO_ENDS`` waits while a run is in flight: the run decides (a success
installs, a failure drops at once), so data refreshed as it expires is never absent between the
two (with ``keepto: 0`` every refresh of an on-demand provider would otherwise delete its
entries and add them back a moment later, to searches and change streams alike).  The wait is
bounded by the provider's ``timelimit``.

Plugins (BDII's ``plugin/`` folder) are records of kind ``plugin``: their output is
``changetype: modify`` LDIF; while a plugin's data state is FRESH or STALE its modifications
are applied (plugins in name order) over the entries other providers published, and entries
are rebuilt whenever either side changes.  Static ``*.ldif`` files in a providers folder are
records of kind ``static``: reading the file is their run.

Stamps: every installed entry carries ``Mds-validfrom``/``Mds-validto`` (the run's time and
``ttl`` later; a provider's own values are dropped).  An entry of a GLUE 2 entity class
(``GLUE2Entity`` or a subclass, as the schema says) also gets ``GLUE2EntityCreationTime``, the
run's time, and ``GLUE2EntityValidity``, the provider's ``ttl`` in whole seconds, unless the
provider wrote its own (kept as written).  Those stamps are not content: a run that
re-publishes the same entries leaves their ``modifyTimestamp`` and ``entryCSN`` alone (the
set is :data:`gridinfo.directory.tree.SOFTSTATE_STAMPS`; a creation time the provider wrote
is content).  ``failed_adds``/``failed_modifies`` count entries a run could not place and
plugin modifications of entries nobody publishes, for BDII's ``UpdateStats``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gridinfo.directory.dn import is_descendant_key, parent_key
from gridinfo.directory.gtime import format_generalized_time, format_glue2_datetime
from gridinfo.directory.ldif import LDIFLimitExceeded, LDIFLimits, Modification, parse_ldif
from gridinfo.directory.query import Scope
from gridinfo.directory.tree import FRESHNESS_STAMPS, SOFTSTATE_STAMPS
from gridinfo.errors import LDAPError, LDIFError

if TYPE_CHECKING:
    from gridinfo.directory.entry import Entry
    from gridinfo.directory.tree import DirectoryTree

KINDS = ("provider", "plugin", "static")
VALIDITY_ATTRIBUTES = ("mds-validfrom", "mds-validto")


@dataclass(frozen=True)
class ProviderDefinition:
    """One provider as configured: where it is, how to run it, how long its output lives."""

    name: str
    path: str
    kind: str = "provider"  # one of KINDS
    base: str | tuple[str, ...] = "mds-vo-name=local,o=grid"  # the subtree (or subtrees) it owns
    ttl: float = 60.0
    keepto: float = 600.0
    timelimit: float = 20.0
    sizelimit: int = 10_000
    max_output_bytes: int = 16 << 20
    retry: float = 30.0
    refresh: str = "on-demand"  # or "background"
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    feeds: str | None = None  # "vm": its runs also feed the VM event sink (gridinfo.vm.feed)
    interpreter: str | None = None  # run as ``interpreter path args`` (gridinfo's Python for ours)

    @property
    def bases(self) -> tuple[str, ...]:
        """Every subtree the provider owns (``base`` may name one or several)."""
        return (self.base,) if isinstance(self.base, str) else tuple(self.base)

    @property
    def base_text(self) -> str:
        """The owned subtrees for messages: ``its subtree a`` or ``its subtrees a and b``."""
        bases = self.bases
        return f"its subtree{'s' if len(bases) > 1 else ''} {' and '.join(bases)}"


@dataclass(frozen=True)
class RunOutput:
    """What one run of a provider produced, as the runner saw it."""

    stdout: bytes = b""
    exit_code: int | None = 0  # None when killed by a signal or never started
    signal: int | None = None
    timed_out: bool = False
    output_exceeded: bool = False  # stdout went over max_output_bytes (the run was killed)
    spawn_error: str | None = None
    started: float = 0.0
    ended: float = 0.0
    stdout_bytes: int = 0  # bytes read, including any beyond the cap that were discarded
    stderr_tail: str = ""  # the last lines the run wrote on stderr (bounded by the runner)

    @property
    def duration(self) -> float:
        return max(0.0, self.ended - self.started)


@dataclass(frozen=True)
class PublishedEntry:
    """One entry of a provider's output, as the provider wrote it (validity not yet added)."""

    dn: str
    key: str
    attributes: tuple[tuple[str, tuple[bytes, ...]], ...]


@dataclass(frozen=True)
class RunReport:
    """The verdict on one run: entries to install, or the reason it failed."""

    error: str | None = None
    entries: tuple[PublishedEntry, ...] = ()
    modifications: tuple[tuple[str, str, tuple[Modification, ...]], ...] = ()  # (key, dn, mods)
    outside: tuple[str, ...] = ()  # DNs dropped: outside the provider's base
    violations: tuple[str, ...] = ()  # schema violations, "dn: problem"
    refused: tuple[str, ...] = ()  # keys of the entries refused for breaking the schema

    @property
    def ok(self) -> bool:
        return self.error is None


class DataState(enum.Enum):
    NEW = "never"
    FRESH = "fresh"
    STALE = "stale"
    GONE = "gone"


class Event(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    TTL_ENDS = "ttl-ends"
    KEEPTO_ENDS = "keepto-ends"


class Action(enum.Enum):
    INSTALL = "install"
    NOTE = "note"
    DROP = "drop"
    NONE = "none"


S, E, A = DataState, Event, Action
TRANSITIONS: dict[tuple[DataState, Event], tuple[DataState, Action]] = {
    (S.NEW, E.SUCCESS): (S.FRESH, A.INSTALL),
    (S.NEW, E.FAILURE): (S.NEW, A.NOTE),
    (S.FRESH, E.SUCCESS): (S.FRESH, A.INSTALL),
    (S.FRESH, E.FAILURE): (S.FRESH, A.NOTE),
    (S.FRESH, E.TTL_ENDS): (S.STALE, A.NONE),
    (S.STALE, E.SUCCESS): (S.FRESH, A.INSTALL),
    (S.STALE, E.FAILURE): (S.STALE, A.NOTE),
    (S.STALE, E.KEEPTO_ENDS): (S.GONE, A.DROP),
    (S.GONE, E.SUCCESS): (S.FRESH, A.INSTALL),
    (S.GONE, E.FAILURE): (S.GONE, A.NOTE),
}
del S, E, A


@dataclass
class ProviderRecord:
    """The soft state and run statistics of one provider."""

    definition: ProviderDefinition
    base_keys: tuple[str, ...]
    state: DataState = DataState.NEW
    running: bool = False
    retired: bool = False
    valid_from: float | None = None  # time of the last good run
    valid_to: float | None = None
    keep_to: float | None = None
    retry_at: float | None = None  # after a failure: no new attempt before this
    published: dict[str, PublishedEntry] = field(default_factory=dict)  # key -> as the provider wrote it
    modifications: dict[str, tuple[Modification, ...]] = field(default_factory=dict)  # plugins only
    # statistics for the status entries
    runs: int = 0
    failures: int = 0
    last_run: float | None = None
    last_duration: float = 0.0
    last_exit: str = ""
    last_exit_status: int | None = None  # negative: killed by that signal; None: never started
    last_entries: int = 0  # entries (or plugin modifications) of the last good run
    last_bytes: int = 0
    last_error: str = ""
    last_stderr: str = ""  # stderr tail of the last failed run ("" after a good run)
    last_ok: bool | None = None

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def base_key(self) -> str:
        """The first subtree's key (most providers own one)."""
        return self.base_keys[0]

    @property
    def serving(self) -> bool:
        return self.state in (DataState.FRESH, DataState.STALE)


def describe_exit(output: RunOutput) -> str:
    if output.spawn_error is not None:
        return "not started"
    if output.timed_out:
        return "killed (timelimit)"
    if output.output_exceeded:
        return "killed (output limit)"
    if output.signal is not None:
        return f"signal {output.signal}"
    return str(output.exit_code)


def interpret_output(
    definition: ProviderDefinition,
    output: RunOutput,
    tree: DirectoryTree,
    *,
    check_schema: bool = True,
) -> RunReport:
    """Judge one run: failures first (spawn, timeout, size, exit status), then the LDIF.

    Entries outside the provider's base are dropped (listed in ``outside``); when that leaves
    nothing of a run that printed entries, the run fails (the provider publishes under the wrong
    suffix: serving nothing as a success would hide it).  An entry that breaks the schema is
    refused on its own (listed in ``violations`` with its DN, attribute and rule, its key in
    ``refused``; soft state keeps that entry's last good version), as slapd refuses one add and
    takes the others; a run whose every entry was refused fails.  Bad LDIF and too many entries
    make the run fail.
    """
    name = definition.name
    if output.spawn_error is not None:
        return RunReport(error=f"cannot run {definition.path}: {output.spawn_error}")
    if output.timed_out:
        return RunReport(error=f"killed after its timelimit of {definition.timelimit:g} s")
    if output.output_exceeded:
        return RunReport(error=f"killed: output exceeded max_output_bytes ({definition.max_output_bytes} bytes)")
    if output.signal is not None:
        return RunReport(error=f"killed by signal {output.signal}")
    if output.exit_code != 0:
        return RunReport(error=f"exited with status {output.exit_code}")
    source = f"provider:{name}"
    limits = LDIFLimits(max_file_bytes=max(1, definition.max_output_bytes), max_records=definition.sizelimit)
    try:
        records = parse_ldif(output.stdout, source, limits)
    except LDIFLimitExceeded as e:
        if "record" in str(e).lower():
            return RunReport(error=f"more than its sizelimit of {definition.sizelimit} entries")
        return RunReport(error=f"output refused: {e}")
    except LDIFError as e:
        return RunReport(error=f"bad LDIF: {e}")
    try:
        base_keys = base_keys_of(definition, tree)
    except LDAPError as e:
        return RunReport(error=f"bad base {definition.base!r}: {e.message}")
    schema = tree.schema
    entries: dict[str, PublishedEntry] = {}
    mods: dict[str, tuple[str, str, tuple[Modification, ...]]] = {}
    outside: list[str] = []
    violations: list[str] = []
    refused: list[str] = []
    plugin = definition.kind == "plugin"
    for rec in records:
        try:
            key = tree.key(rec.dn)
        except LDAPError as e:
            return RunReport(error=f"{source}:{rec.line}: bad DN {rec.dn!r}: {e.message}")
        if not any(is_descendant_key(key, b) for b in base_keys):
            outside.append(rec.dn)
            continue
        if plugin:
            if rec.changetype != "modify":
                return RunReport(error=f"{source}:{rec.line}: a plugin must print changetype: modify records")
            prior = mods.get(key)
            mods[key] = (key, rec.dn, (prior[2] if prior else ()) + rec.modifications)
            continue
        if rec.changetype not in (None, "add"):
            return RunReport(error=f"{source}:{rec.line}: changetype {rec.changetype} is not allowed in provider output")
        attrs = tuple((a, v) for a, v in rec.attributes if a.lower() not in VALIDITY_ATTRIBUTES)
        if check_schema:
            problems = schema.check_entry(dict(attrs))
            if problems:
                violations.extend(f"{rec.dn}: {p}" for p in problems)
                refused.append(key)
                entries.pop(key, None)
                continue
        entries[key] = PublishedEntry(rec.dn, key, attrs)
    if violations and not entries and not mods:
        more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
        return RunReport(
            error=f"schema violation: {violations[0]}{more}", outside=tuple(outside), violations=tuple(violations),
            refused=tuple(refused),
        )
    if outside and not entries and not mods:
        more = f" (and {len(outside) - 1} more)" if len(outside) > 1 else ""
        return RunReport(
            error=f"every entry is outside {definition.base_text}: {outside[0]}{more}", outside=tuple(outside)
        )
    return RunReport(
        entries=tuple(entries.values()), modifications=tuple(mods.values()), outside=tuple(outside),
        violations=tuple(violations), refused=tuple(refused),
    )


def base_keys_of(definition: ProviderDefinition, tree: DirectoryTree) -> tuple[str, ...]:
    """The keys of the subtrees a provider owns (raises LDAPError for one that is not a DN)."""
    return tuple(tree.key(b) for b in definition.bases)


def apply_modifications(
    attributes: Sequence[tuple[str, Sequence[bytes]]], modifications: Iterable[Modification]
) -> list[tuple[str, list[bytes]]]:
    """Apply LDIF modify operations to a list of attributes (names compared case-insensitively)."""
    out: dict[str, tuple[str, list[bytes]]] = {a.lower(): (a, list(v)) for a, v in attributes}
    for m in modifications:
        k = m.attribute.lower()
        if m.op == "add":
            name, values = out.setdefault(k, (m.attribute, []))
            values.extend(v for v in m.values if v not in values)
        elif m.op == "replace":
            if m.values:
                out[k] = (out[k][0] if k in out else m.attribute, list(m.values))
            else:
                out.pop(k, None)
        elif m.op == "delete":
            if not m.values:
                out.pop(k, None)
            elif k in out:
                kept = [v for v in out[k][1] if v not in m.values]
                if kept:
                    out[k] = (out[k][0], kept)
                else:
                    del out[k]
        elif m.op == "increment" and k in out:
            try:
                step = int(m.values[0]) if m.values else 1
                out[k] = (out[k][0], [str(int(v) + step).encode() for v in out[k][1]])
            except ValueError:
                pass
    return list(out.values())


def is_glue2_entry(attributes: Sequence[tuple[str, Sequence[bytes]]]) -> bool:
    """An entry of a GLUE 2.0 class (GLUE2Entity's subclasses, GLUE2Group)."""
    return any(
        v.lower().startswith(b"glue2") for a, vs in attributes if a.lower() == "objectclass" for v in vs
    )


def _overlaps(provider_base: str, base_key: str, scope: Scope) -> bool:
    """A search of (base, scope) can return entries of the subtree ``provider_base``."""
    if is_descendant_key(base_key, provider_base):
        return True
    if scope == Scope.BASE:
        return False
    if scope == Scope.ONE:
        return parent_key(provider_base) == base_key
    return is_descendant_key(provider_base, base_key)


class SoftStateTable:
    """Providers' soft state over one shared directory tree.

    The tree holds every entry; the table knows which keys each provider owns, so that an
    install replaces exactly that provider's entries.  A key held by a static or base entry
    (not a provider's) is displaced while a provider publishes it and restored afterwards.
    """

    def __init__(self, tree: DirectoryTree, *, check_schema: bool = True, stamps: bool = True):
        self.tree = tree
        self.check_schema = check_schema
        self.stamps = stamps  # False: entries go out as the provider printed them (BDII's readers)
        self.records: dict[str, ProviderRecord] = {}
        self.owner: dict[str, str] = {}  # entry key -> provider name
        self._displaced: dict[str, Entry] = {}
        self._glue2: dict[frozenset[str], bool] = {}  # objectClass values -> a GLUE 2 entity?
        self.failed_adds = 0  # entries of good runs that could not be placed, since start
        self.failed_modifies = 0  # plugin modifications of entries no provider publishes

    # -- definitions ------------------------------------------------------------------------

    def define(self, definition: ProviderDefinition) -> ProviderRecord:
        """Add a provider, or update its definition (a rescan); a retired one comes back."""
        record = self.records.get(definition.name)
        base_keys = base_keys_of(definition, self.tree)
        if record is None:
            record = ProviderRecord(definition, base_keys)
            self.records[definition.name] = record
        else:
            record.definition = definition
            record.base_keys = base_keys
            record.retired = False
        return record

    def retire(self, name: str, now: float) -> None:
        """The provider left its folder: no more runs; its entries go when their validto passes."""
        record = self.records.get(name)
        if record is not None:
            record.retired = True
            self.advance(now)

    def get(self, name: str) -> ProviderRecord | None:
        return self.records.get(name)

    # -- which providers a search needs -----------------------------------------------------

    def overlapping(self, base_key: str, scope: Scope) -> list[str]:
        """Providers whose subtree can hold entries a search of (base, scope) returns."""
        names = []
        for name, r in self.records.items():
            if any(_overlaps(pb, base_key, scope) for pb in r.base_keys):
                names.append(name)
        return names

    def wants_refresh(self, name: str, now: float) -> bool:
        """A search touching this provider should start (or join) a run now."""
        r = self.records[name]
        if r.retired:
            return False
        if r.running:
            return True
        if r.retry_at is not None and now < r.retry_at:
            return False
        return r.state != DataState.FRESH or (r.valid_to is not None and now >= r.valid_to)

    def due_background(self, now: float, *, standing: bool = False, horizon: float = 0.0) -> list[str]:
        """Background providers to run now: before their data goes stale (by their timelimit).

        ``standing``: someone follows the tree's change stream, a search that never ends, so
        on-demand providers are kept current as background ones are (nobody else would ask).
        ``horizon``: the time until the caller asks again (its sweep interval): a provider that
        would fall due before then runs now, so a ttl shorter than the sweep never lapses.
        """
        due = []
        for name, r in self.records.items():
            d = r.definition
            if (d.refresh != "background" and not standing) or r.retired or r.running:
                continue
            if r.retry_at is not None and now < r.retry_at:
                continue
            if r.state != DataState.FRESH or r.valid_to is None:
                due.append(name)
                continue
            lead = min(d.timelimit, d.ttl / 2)
            if now + horizon >= r.valid_to - lead:
                due.append(name)
        return due

    # -- runs --------------------------------------------------------------------------------

    def start(self, name: str, now: float) -> bool:
        """Mark a run as started; False when one is already running (never two at once)."""
        r = self.records[name]
        if r.running or r.retired:
            return False
        r.running = True
        return True

    def succeed(self, name: str, now: float, report: RunReport, output: RunOutput) -> list[str]:
        """Install a good run's entries; returns warnings (entries that could not be placed)."""
        r = self.records.get(name)
        if r is None:
            return []
        r.running = False
        if r.retired:  # it left its folder while running: its output is not published
            return []
        self._count(r, now, output, ok=True)
        r.last_entries = len(report.entries) or len(report.modifications)
        r.retry_at = None
        r.last_error = ""
        r.last_stderr = ""
        if report.refused:
            more = f" (and {len(report.violations) - 1} more)" if len(report.violations) > 1 else ""
            r.last_error = (
                f"{len(report.refused)} entries refused, breaking the schema: {report.violations[0]}{more}"
            )
        new_state, action = TRANSITIONS[(r.state, Event.SUCCESS)]
        assert action is Action.INSTALL
        d = r.definition
        r.valid_from = now
        r.valid_to = now + d.ttl
        r.keep_to = r.valid_to + d.keepto
        r.state = new_state
        if d.kind == "plugin":
            warnings = self._install_plugin(r, {key: mods for key, _, mods in report.modifications})
            self.failed_modifies += len(warnings)
            return warnings
        new = {e.key: e for e in report.entries}
        for key in report.refused:  # a refused entry keeps its last good version, if it had one
            if key in r.published:
                new[key] = r.published[key]
        warnings = self._install(r, new)
        self.failed_adds += len(warnings) + len(report.refused)
        return [f"schema violation, entry refused: {v}" for v in report.violations] + warnings

    def fail(self, name: str, now: float, error: str, output: RunOutput) -> None:
        """Record a failed run: nothing served changes; the next attempt waits ``retry``."""
        r = self.records.get(name)
        if r is None:
            return
        r.running = False
        self._count(r, now, output, ok=False)
        r.failures += 1
        r.last_error = error
        r.last_stderr = output.stderr_tail
        r.retry_at = now + min(r.definition.retry, r.definition.ttl)
        r.state = TRANSITIONS[(r.state, Event.FAILURE)][0]

    def _count(self, r: ProviderRecord, now: float, output: RunOutput, *, ok: bool) -> None:
        r.runs += 1
        r.last_run = now
        r.last_duration = output.duration
        r.last_exit = describe_exit(output)
        if output.signal is not None:
            r.last_exit_status = -output.signal
        else:
            r.last_exit_status = output.exit_code
        r.last_bytes = output.stdout_bytes or len(output.stdout)
        r.last_ok = ok

    # -- time ---------------------------------------------------------------------------------

    def advance(self, now: float) -> list[tuple[str, DataState, DataState]]:
        """Raise TTL_ENDS / KEEPTO_ENDS for every record whose time came; forget retired ones.

        Returns the transitions made, as (provider, old state, new state).
        """
        changes: list[tuple[str, DataState, DataState]] = []
        for name, r in list(self.records.items()):
            if r.retired:
                if not r.serving or (r.valid_to is not None and now >= r.valid_to):
                    old = r.state
                    self._drop(r)
                    del self.records[name]
                    changes.append((name, old, DataState.GONE))
                continue
            while True:
                event = None
                if r.state == DataState.FRESH and r.valid_to is not None and now >= r.valid_to:
                    event = Event.TTL_ENDS
                elif r.state == DataState.STALE and r.keep_to is not None and now >= r.keep_to and not r.running:
                    event = Event.KEEPTO_ENDS  # (a run in flight decides: its success installs, its failure drops)
                if event is None:
                    break
                old = r.state
                r.state, action = TRANSITIONS[(old, event)]
                if action is Action.DROP:
                    self._drop(r)
                changes.append((name, old, r.state))
        return changes

    # -- the tree -----------------------------------------------------------------------------

    def _install(self, r: ProviderRecord, new: dict[str, PublishedEntry]) -> list[str]:
        warnings: list[str] = []
        name = r.name
        for key in list(r.published):
            if key not in new:
                self._remove_key(key)
        accepted: dict[str, PublishedEntry] = {}
        for key, pub in new.items():
            holder = self.owner.get(key)
            if holder is not None and holder != name and holder in self.records:
                warnings.append(f"{pub.dn}: already published by provider {holder}; dropped")
                continue
            accepted[key] = pub
        r.published = accepted
        for key, pub in accepted.items():
            try:
                self._place(key, name)
            except LDAPError as e:
                warnings.append(f"{pub.dn}: {e.message}; dropped")
                del r.published[key]
                self._remove_key(key)
        return warnings

    def _install_plugin(self, r: ProviderRecord, mods: dict[str, tuple[Modification, ...]]) -> list[str]:
        touched = set(r.modifications) | set(mods)
        r.modifications = mods
        warnings = [
            f"{key}: modified by plugin {r.name} but no provider publishes it"
            for key in mods
            if key not in self.owner
        ]
        for key in touched:
            holder = self.owner.get(key)
            if holder is not None:
                self._place(key, holder)
        return warnings

    def _drop(self, r: ProviderRecord) -> None:
        if r.definition.kind == "plugin":
            touched = list(r.modifications)
            r.modifications = {}
            for key in touched:
                holder = self.owner.get(key)
                if holder is not None:
                    self._place(key, holder)
            return
        for key in list(r.published):
            self._remove_key(key)
        r.published = {}

    def _remove_key(self, key: str) -> None:
        self.owner.pop(key, None)
        self.tree.remove(key)
        displaced = self._displaced.pop(key, None)
        if displaced is not None:
            self.tree.add(displaced)

    def _place(self, key: str, name: str) -> None:
        """(Re)build the entry ``key`` of provider ``name``: its attributes, plugins, validity."""
        r = self.records[name]
        pub = r.published[key]
        attrs: Sequence[tuple[str, Sequence[bytes]]] = pub.attributes
        for plugin in sorted(self.records.values(), key=lambda p: p.name):
            if plugin.definition.kind == "plugin" and plugin.serving:
                mods = plugin.modifications.get(key)
                if mods:
                    changed = apply_modifications(attrs, mods)
                    if not self.check_schema or not self.tree.schema.check_entry(dict(changed)):
                        attrs = changed
        assert r.valid_from is not None and r.valid_to is not None
        validfrom = format_generalized_time(r.valid_from).encode()
        # the validity stamps ride on an auxiliary class, so the entry stays schema-clean; a
        # GLUE 2 entry carries GLUE 2 classes only (the EGI profile refuses any other class):
        # a GLUE 2 entity is stamped with GLUE2EntityCreationTime / GLUE2EntityValidity instead
        full = list(attrs)
        if self.stamps and not is_glue2_entry(attrs):
            full += [
                ("objectClass", [b"GridinfoSoftState"]),
                ("Mds-validfrom", [validfrom]),
                ("Mds-validto", [format_generalized_time(r.valid_to).encode()]),
                ("GridinfoProviderName", [name.encode("utf-8")]),
            ]
        stamps = FRESHNESS_STAMPS
        if self._is_glue2(attrs):
            given = {a.lower() for a, _ in attrs}
            if "glue2entitycreationtime" not in given:
                full.append(("GLUE2EntityCreationTime", [format_glue2_datetime(r.valid_from).encode()]))
                stamps = SOFTSTATE_STAMPS
            if "glue2entityvalidity" not in given:
                full.append(("GLUE2EntityValidity", [str(int(r.definition.ttl)).encode()]))
        entry = self.tree.builder.build(
            pub.dn, [(a, list(v)) for a, v in full], source=f"provider:{name}", valid_to=r.keep_to
        )
        if self.owner.get(key) != name:
            current = self.tree.get(key)
            if current is not None and key not in self.owner:
                self._displaced[key] = current
            self.owner[key] = name
        self.tree.add(entry, stamps=stamps)

    def _is_glue2(self, attrs: Sequence[tuple[str, Sequence[bytes]]]) -> bool:
        """Whether the entry's classes include GLUE2Entity or a subclass of it."""
        classes = frozenset(
            v.decode("utf-8", "replace").strip().lower() for a, vs in attrs if a.lower() == "objectclass" for v in vs
        )
        hit = self._glue2.get(classes)
        if hit is None:
            schema = self.tree.schema
            hit = any("glue2entity" in schema.superclasses(c) for c in classes)
            if len(self._glue2) < 10_000:
                self._glue2[classes] = hit
        return hit
