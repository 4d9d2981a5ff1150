"""The trigger service of a daemon: rules over the backend's change stream, firings journaled,
actions run and retried.

Rules come from the config's ``triggers:`` section and from the ``*.yaml`` files of
``triggers_dir`` (rescanned every ``trigger_rescan_interval`` seconds: a file dropped in,
changed or removed is noticed without a restart; a file that cannot be read as rules is refused
with its file, line and key in the log, and keeps its previous rules if it had any).  Each rule
is attached through ``backend.sync_view`` (the entries it matches now, its scope-and-filter
test, and the change log); one :class:`~gridinfo.triggers.engine.ChangeListener` per change log
hands every change to the pure :class:`~gridinfo.triggers.engine.TriggerEngine`, and one timer
on the injected reactor wakes it for the next ``for`` or ``repeat`` deadline.

The engine runs inside the tree's update (it only evaluates filters and moves tracks).  What it
fires is handed on with ``callLater(0)``: off the update's path, the firings of one reactor turn
are journaled in one transaction (:mod:`gridinfo.triggers.journal`), then each action starts
(:mod:`gridinfo.triggers.actions`).  Each attempt is counted in the journal before it runs; an
action that fails is retried ``retries`` times, ``retry_delay`` seconds after the first failure
and twice as long after each next one, then marked failed.  At start the deliveries a previous
run left pending (killed during an action, or stopped) are run again, once each.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from twisted.application import service
from twisted.internet import task
from twisted.logger import Logger

from gridinfo.config import TriggerConfig
from gridinfo.directory.changes import Change, ChangeLog
from gridinfo.directory.tree import SOFTSTATE_STAMPS, DirectoryTree
from gridinfo.errors import ConfigError, GridinfoError, LDAPError
from gridinfo.triggers.actions import ActionRunner, AlertPublisher, firing_body
from gridinfo.triggers.engine import ChangeListener, Firing, TriggerEngine
from gridinfo.triggers.journal import DONE, FAILED, Delivery, FiringJournal, TriggerJournalError
from gridinfo.triggers.rules import LoadedRule, compile_rule, config_rules, read_rule_file, rule_files

log = Logger()

SWEEP_INTERVAL = 60.0  # seconds between expiries of alerts and of finished journal rows


class _Stream:
    """One change log, its engine and the listener feeding it."""

    def __init__(self, changelog: ChangeLog, engine: TriggerEngine, listener: ChangeListener):
        self.changelog = changelog
        self.engine = engine
        self.listener = listener


class TriggerService(service.Service):
    """See the module docstring.  ``tree``: where the daemon publishes its own entries (the
    ``ldap`` action's alerts; its schema and DN keys)."""

    def __init__(self, backend: Any, tree: DirectoryTree, config: Any, reactor: Any):
        self.backend = backend
        self.tree = tree
        self.config = config
        self.reactor = reactor
        self.journal = FiringJournal(config.trigger_journal or ":memory:")
        self.alerts = AlertPublisher(tree, retention=config.alert_retention, max_alerts=config.max_alerts)
        self.actions = ActionRunner(reactor, alerts=self.alerts)
        self.streams: dict[int, _Stream] = {}
        self.rules: dict[str, LoadedRule] = {}  # name -> the rule running
        self._rule_stream: dict[str, _Stream] = {}
        self._files: dict[str, tuple[str, list[str]]] = {}  # rule file -> (text read, rule names)
        self._refused: dict[str, str] = {}  # rule file -> the error logged for its current text
        self._suppressing: dict[str, int] = {}  # rule -> firings dropped by rate_limit since the last one let through
        self._buffer: list[Delivery] = []
        self._flush_call: Any = None
        self._timer: Any = None
        self._timer_at: float | None = None
        self._loops: list[task.LoopingCall] = []
        self._retries: set[Any] = set()
        #: firings accepted, dropped by rate_limit; deliveries done, failed (since start)
        self.counts = {"fired": 0, "suppressed": 0, "done": 0, "failed": 0}

    # -- service ----------------------------------------------------------------------------

    def startService(self) -> None:  # noqa: N802 (Twisted hook)
        super().startService()
        self.alerts.ensure_base()  # ou=alerts,o=infosys exists before the first alert: clients subscribe to it
        pending = list(self.journal.pending())
        if pending:
            log.info("triggers: {count} deliveries left pending by the last run start again", count=len(pending))
        for delivery in pending:
            self._start(delivery)
        for loaded in config_rules(self.config):
            self.attach(loaded)
        loops = [(SWEEP_INTERVAL, self.sweep)]
        if self.config.triggers_dir:
            loops.append((self.config.trigger_rescan_interval, self.rescan))
        for interval, call in loops:
            if interval > 0:
                loop = task.LoopingCall(call)
                loop.clock = self.reactor
                loop.start(interval, now=True).addErrback(lambda f: log.failure("trigger timer failed", f))
                self._loops.append(loop)

    def stopService(self) -> Any:  # noqa: N802
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops = []
        for call in [self._timer, self._flush_call, *self._retries]:
            if call is not None and call.active():
                call.cancel()
        self._timer = self._flush_call = None
        self._retries.clear()
        for stream in self.streams.values():
            stream.changelog.unsubscribe(stream.listener)
        self.actions.stop()  # what was running stays pending in the journal: the next start reruns it
        return super().stopService()

    # -- rules ------------------------------------------------------------------------------

    def attach(self, loaded: LoadedRule) -> bool:
        """Start evaluating one rule; False (and a log line naming where it was written) if refused."""
        rule_config: TriggerConfig = loaded.config
        name = rule_config.name
        if not rule_config.enabled:
            self.detach(name)
            return True
        sync_view = getattr(self.backend, "sync_view", None)
        if sync_view is None:
            log.error("trigger {trigger} ({source}): this backend has no change stream; the rule is off",
                      trigger=name, source=loaded.source)
            return False
        try:
            rule, (entries, changelog) = compile_rule(rule_config, self.backend, self.tree.schema, self.tree.key)
        except (LDAPError, GridinfoError) as e:
            log.error("trigger {trigger} ({source}) refused: {error}", trigger=name, source=loaded.source,
                      error=getattr(e, "message", str(e)))
            return False
        self.detach(name)
        stream = self._stream(changelog)
        self.rules[name] = loaded
        self._rule_stream[name] = stream
        firings = stream.engine.add_rule(rule, entries, self.reactor.seconds())
        log.info("trigger {trigger} ({source}): watching {count} matching entries now", trigger=name,
                 source=loaded.source, count=len(entries))
        self._accept(firings)
        self._reschedule()
        return True

    def detach(self, name: str) -> None:
        stream = self._rule_stream.pop(name, None)
        self.rules.pop(name, None)
        if stream is not None:
            stream.engine.remove_rule(name)

    def _stream(self, changelog: ChangeLog) -> _Stream:
        stream = self.streams.get(id(changelog))
        if stream is None:
            engine = TriggerEngine(ignore=SOFTSTATE_STAMPS)
            listener = ChangeListener(lambda change: self._hear(engine, change))
            stream = _Stream(changelog, engine, listener)
            changelog.subscribe(listener)
            self.streams[id(changelog)] = stream
        return stream

    def rescan(self) -> None:
        """Notice rule files dropped into, changed in or removed from ``triggers_dir``."""
        seen: set[str] = set()
        for path in rule_files(self.config.triggers_dir):
            source = str(path)
            seen.add(source)
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                text = ""
            known = self._files.get(source)
            if known is not None and known[0] == text or self._refused.get(source) == text:
                continue
            try:
                loaded = read_rule_file(path)
                names = [r.config.name for r in loaded]
                for r in loaded:
                    owner = self.rules.get(r.config.name)
                    if owner is not None and not owner.source.startswith(source + ":"):
                        raise ConfigError(f"name: rule {r.config.name!r} is already defined at {owner.source}",
                                          r.source.rsplit(":", 1)[0], int(r.source.rsplit(":", 1)[1]))
            except ConfigError as e:
                self._refused[source] = text
                kept = f"; its previous rules ({', '.join(known[1])}) keep running" if known and known[1] else ""
                log.error("trigger file refused: {error}{kept}", error=str(e), kept=kept, file=source)
                continue
            self._refused.pop(source, None)
            for old in (known[1] if known else []):
                if old not in names:
                    self.detach(old)
            attached = [r.config.name for r in loaded if self.attach(r)]
            self._files[source] = (text, attached)
            log.info("trigger file {file}: {count} rules", file=source, count=len(attached))
        for source in list(self._files):
            if source not in seen:
                log.info("trigger file {file} removed: its rules stop", file=source)
                for name in self._files.pop(source)[1]:
                    self.detach(name)
        for source in list(self._refused):
            if source not in seen:
                del self._refused[source]

    # -- evaluation -------------------------------------------------------------------------

    def _hear(self, engine: TriggerEngine, change: Change) -> None:
        try:
            firings = engine.on_change(change, self.reactor.seconds())
        except Exception:  # our bug: it must not break the tree's update that reported the change
            log.failure("trigger evaluation failed for {dn}", dn=change.dn)
            return
        if firings:
            self._accept(firings)
        if engine.next_deadline() != self._timer_at:
            self._reschedule()

    def _reschedule(self) -> None:
        deadlines = [d for d in (s.engine.next_deadline() for s in self.streams.values()) if d is not None]
        when = min(deadlines) if deadlines else None
        if when == self._timer_at and (self._timer is None or self._timer.active()):
            return
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer, self._timer_at = None, when
        if when is not None and self.running:
            self._timer = self.reactor.callLater(max(0.0, when - self.reactor.seconds()), self._tick)

    def _tick(self) -> None:
        self._timer, self._timer_at = None, None
        now = self.reactor.seconds()
        for stream in list(self.streams.values()):
            firings = stream.engine.due(now)
            if firings:
                self._accept(firings)
        self._reschedule()

    # -- firings and deliveries ---------------------------------------------------------------

    def _accept(self, firings: Iterable[Firing]) -> None:
        for firing in firings:
            if firing.suppressed:
                self.counts["suppressed"] += 1
                n = self._suppressing.get(firing.rule, 0)
                if n == 0:
                    log.warn("trigger {trigger}: over its rate_limit; firings are dropped until the window passes",
                             trigger=firing.rule, event=firing.event, dn=firing.dn)
                self._suppressing[firing.rule] = n + 1
                continue
            dropped = self._suppressing.pop(firing.rule, 0)
            if dropped:
                log.warn("trigger {trigger}: {count} firings were dropped by its rate_limit", trigger=firing.rule, count=dropped)
            loaded = self.rules.get(firing.rule)
            if loaded is None:
                continue
            self.counts["fired"] += 1
            firing_id = uuid.uuid4().hex
            for i, action in enumerate(loaded.config.actions):
                self._buffer.append(Delivery(firing_id, i, firing.rule, firing_body(firing, firing_id, action)))
        if self._buffer and self._flush_call is None:
            self._flush_call = self.reactor.callLater(0, self._flush)

    def _flush(self) -> None:
        """Journal what fired this turn (one transaction), then start each action."""
        self._flush_call = None
        batch, self._buffer = self._buffer, []
        try:
            self.journal.add(batch, self.reactor.seconds())
            durable = True
        except TriggerJournalError as e:
            log.error("triggers: {error}; these firings run without being journaled", error=str(e))
            durable = False
        for delivery in batch:
            self._start(delivery, durable=durable)

    def _start(self, delivery: Delivery, *, durable: bool = True) -> None:
        now = self.reactor.seconds()
        if durable:
            try:
                if not self.journal.attempt(delivery.firing, delivery.action, now):
                    return  # done or failed already: never run twice
            except TriggerJournalError as e:
                log.error("triggers: {error}", error=str(e))
        attempt = delivery.attempts + 1
        d = self.actions.run(delivery.body, attempt)
        d.addCallback(self._ended, delivery, attempt, durable)
        d.addErrback(lambda f: log.failure("trigger delivery crashed", f))

    def _ended(self, outcome: str | None, delivery: Delivery, attempt: int, durable: bool) -> None:
        body = delivery.body
        action = body["action"]
        kind = next((k for k in ("exec", "log", "http", "ldap") if action.get(k) not in (None, False)), "?")
        now = self.reactor.seconds()
        fields = dict(trigger=delivery.rule, kind=kind, event=body["event"], dn=body["dn"], firing_id=delivery.firing,
                      attempt=attempt)
        if outcome is None:
            self.counts["done"] += 1
            if kind != "log":
                log.info("trigger {trigger}: {kind} action done ({event} {dn}, firing {firing_id}, attempt {attempt})", **fields)
            state = DONE
        elif attempt <= int(action.get("retries", 0)):
            delay = float(action.get("retry_delay", 10.0)) * 2 ** (attempt - 1)
            log.warn("trigger {trigger}: {kind} action failed ({reason}); attempt {next} in {delay} s (firing {firing_id})",
                     reason=outcome, next=attempt + 1, delay=delay, **fields)
            retry = Delivery(delivery.firing, delivery.action, delivery.rule, body, attempt)
            call = self.reactor.callLater(delay, self._retry, retry, durable)
            self._retries.add(call)
            return
        else:
            self.counts["failed"] += 1
            log.error("trigger {trigger}: {kind} action failed ({reason}) after {attempt} attempts; giving up "
                      "(firing {firing_id})", reason=outcome, **fields)
            state = FAILED
        if durable:
            try:
                self.journal.finish(delivery.firing, delivery.action, state, now)
            except TriggerJournalError as e:
                log.error("triggers: {error}", error=str(e))

    def _retry(self, delivery: Delivery, durable: bool) -> None:
        self._retries = {c for c in self._retries if c.active()}
        self._start(delivery, durable=durable)

    # -- time -------------------------------------------------------------------------------

    def sweep(self) -> None:
        """Expire old alerts and the journal's finished rows."""
        now = self.reactor.seconds()
        self.alerts.expire(now)
        try:
            self.journal.prune(now - self.config.alert_retention)
        except TriggerJournalError as e:
            log.error("triggers: {error}", error=str(e))


def wants_triggers(config: Any) -> bool:
    """Whether a daemon config has any rules (or a folder for them)."""
    return bool(getattr(config, "triggers", ()) or getattr(config, "triggers_dir", ""))


def add_trigger_service(top: service.MultiService, backend: Any, tree: DirectoryTree, config: Any, reactor: Any) -> TriggerService | None:
    """The daemon's trigger service, when its config has rules (``triggers`` or ``triggers_dir``)."""
    if not wants_triggers(config):
        return None
    triggers = TriggerService(backend, tree, config, reactor)
    triggers.setServiceParent(top)
    return triggers
