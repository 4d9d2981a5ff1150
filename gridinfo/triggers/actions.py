"""What a firing does: ``exec`` a program, ``log`` a line, ``http`` POST a document, publish an
``ldap`` alert entry.  The Twisted edge of the triggers.

Every action takes the firing's journaled body (:func:`firing_body`) and returns a Deferred
that fires with None when the action succeeded or with the reason it failed (a string); it
never errbacks, and it always ends within the action's ``timelimit`` (plus the runner's grace
for a killed process group), so a hung action costs a retry, never the server.

* ``exec`` runs through the providers' runner (:class:`gridinfo.gris.runner.ProviderRunner`:
  own process group, killed with it at the timelimit, output bounded), with the entry as LDIF
  on stdin and ``GRIDINFO_TRIGGER``, ``GRIDINFO_EVENT``, ``GRIDINFO_DN``, ``GRIDINFO_FIRING_ID``,
  ``GRIDINFO_REPEAT``, ``GRIDINFO_CHANGED`` and ``GRIDINFO_ATTEMPT`` in its environment.  Exit
  status 0 is success.
* ``log`` emits one structured event (namespace ``gridinfo.triggers.actions``) with the fields
  ``trigger``, ``event``, ``dn``, ``firing_id``: with the JSON operator log, one JSON line.
* ``http`` POSTs the body as JSON (``Content-Type: application/json``) with Twisted's
  ``Agent``; a 2xx answer within the timelimit is success.
* ``ldap`` adds ``GridinfoAlertID=<id>,ou=alerts,o=infosys`` (schemas/gridinfo-triggers.schema)
  to the tree the daemon publishes its own entries in; :class:`AlertPublisher` keeps at most
  ``max_alerts`` of them, each for ``retention`` seconds.
"""

from __future__ import annotations

import json
import shutil
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger, LogLevel
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from gridinfo.config import TriggerActionConfig
from gridinfo.directory.dn import escape_value
from gridinfo.directory.gtime import format_generalized_time
from gridinfo.directory.ldif import format_ldif
from gridinfo.directory.tree import DirectoryTree
from gridinfo.gris.runner import ProviderRunner
from gridinfo.gris.softstate import ProviderDefinition, RunOutput
from gridinfo.infosys import INFOSYS_ATTRIBUTES, INFOSYS_DN
from gridinfo.triggers.engine import Firing

log = Logger()

ALERTS_DN = f"ou=alerts,{INFOSYS_DN}"
ALERTS_ATTRIBUTES = [("objectClass", [b"top", b"organizationalUnit"]), ("ou", [b"alerts"])]
MAX_EXEC_OUTPUT = 1 << 20  # bytes an exec action may print (its output is not used)


def firing_body(firing: Firing, firing_id: str, action: TriggerActionConfig) -> dict[str, Any]:
    """What is journaled for one action of one firing, and what ``http`` posts (less ``action``)."""
    entry = firing.entry
    attributes = {entry.names[k]: [v.decode("utf-8", "replace") for v in values] for k, values in zip(entry.shape.names, entry.values)}
    ldif = format_ldif([(entry.dn, [(entry.names[k], list(vs)) for k, vs in zip(entry.shape.names, entry.values)])])
    return {
        "id": firing_id,
        "trigger": firing.rule,
        "event": firing.event,
        "dn": firing.dn,
        "time": format_generalized_time(firing.at),
        "at": firing.at,
        "repeat": firing.repeat,
        "changed": [entry.names.get(k, k) for k in firing.changed],
        "entry": attributes,
        "ldif": ldif.decode("utf-8", "replace"),
        "action": asdict(action),
    }


def action_of(body: dict[str, Any]) -> TriggerActionConfig:
    """The action settings a journaled body carries."""
    settings = dict(body["action"])
    if isinstance(settings.get("exec"), list):
        settings["exec"] = tuple(settings["exec"])
    return TriggerActionConfig(**settings)


def posted_document(body: dict[str, Any]) -> dict[str, Any]:
    """The JSON document an ``http`` action posts: the body without the action's settings."""
    return {k: v for k, v in body.items() if k not in ("action", "at")}


class AlertPublisher:
    """The ``ou=alerts,o=infosys`` entries of ``ldap`` actions: at most ``max_alerts``, each for
    ``retention`` seconds (``now`` passed in; pure over the tree)."""

    def __init__(self, tree: DirectoryTree, *, retention: float = 86400.0, max_alerts: int = 10000, source: str = "gridinfo:triggers"):
        self.tree = tree
        self.retention = retention
        self.max_alerts = max(1, max_alerts)
        self.source = source
        self.published: OrderedDict[str, float] = OrderedDict()  # key -> when it was published

    def ensure_base(self) -> None:
        tree = self.tree
        if tree.lookup(INFOSYS_DN) is None:
            tree.add(tree.build(INFOSYS_DN, INFOSYS_ATTRIBUTES, source="gridinfo:status"))
        if tree.lookup(ALERTS_DN) is None:
            tree.add(tree.build(ALERTS_DN, ALERTS_ATTRIBUTES, source=self.source))

    def dn(self, firing_id: str) -> str:
        return f"GridinfoAlertID={escape_value(firing_id)},{ALERTS_DN}"

    def publish(self, body: dict[str, Any], now: float) -> None:
        self.ensure_base()
        attrs: list[tuple[str, list[bytes]]] = [
            ("objectClass", [b"top", b"GridinfoAlert"]),
            ("GridinfoAlertID", [body["id"].encode()]),
            ("GridinfoTriggerName", [body["trigger"].encode()]),
            ("GridinfoTriggerEvent", [body["event"].encode()]),
            ("GridinfoAlertSubject", [body["dn"].encode()]),
            ("GridinfoAlertTime", [body["time"].encode()]),
            ("GridinfoAlertRepeat", [str(body["repeat"]).encode()]),
            ("GridinfoAlertEntry", [body["ldif"].encode()]),
        ]
        if body["changed"]:
            attrs.append(("GridinfoAlertChanged", [a.encode() for a in body["changed"]]))
        entry = self.tree.build(self.dn(body["id"]), attrs, source=self.source)
        self.tree.add(entry)
        self.published.pop(entry.key, None)
        self.published[entry.key] = now
        while len(self.published) > self.max_alerts:
            self.tree.remove(self.published.popitem(last=False)[0])

    def expire(self, now: float) -> int:
        """Remove the alerts older than the retention; returns how many went."""
        gone = 0
        while self.published:
            key, when = next(iter(self.published.items()))
            if when > now - self.retention:
                break
            self.published.popitem(last=False)
            self.tree.remove(key)
            gone += 1
        return gone


class ActionRunner:
    """Runs one action of one journaled firing; see the module docstring."""

    def __init__(self, reactor: Any, *, alerts: AlertPublisher | None, max_concurrent: int = 4,
                 agent_factory: Callable[[Any], Any] | None = None):
        self.reactor = reactor
        self.alerts = alerts
        self.processes = ProviderRunner(reactor, max_concurrent=max_concurrent)
        self._agent_factory = agent_factory
        self._agent: Any = None

    def stop(self) -> None:
        self.processes.kill_all()

    def run(self, body: dict[str, Any], attempt: int) -> defer.Deferred[str | None]:
        action = action_of(body)
        kind = action.kind
        try:
            if kind == "exec":
                return self._exec(action, body, attempt)
            if kind == "http":
                return self._http(action, body)
            if kind == "log":
                self._log(action, body)
                return defer.succeed(None)
            if kind == "ldap":
                if self.alerts is None:
                    return defer.succeed("this daemon publishes no ou=alerts,o=infosys")
                self.alerts.publish(body, self.reactor.seconds())
                return defer.succeed(None)
        except Exception as e:  # our bug, or a tree that refused the entry: a failed attempt
            log.failure("trigger {trigger}: {kind} action failed", trigger=body["trigger"], kind=kind)
            return defer.succeed(f"{type(e).__name__}: {e}")
        return defer.succeed(f"unknown action {kind!r}")

    # -- exec -------------------------------------------------------------------------------

    def _exec(self, action: TriggerActionConfig, body: dict[str, Any], attempt: int) -> defer.Deferred[str | None]:
        argv = action.argv
        program = shutil.which(argv[0]) or argv[0]
        env = {
            "GRIDINFO_TRIGGER": body["trigger"],
            "GRIDINFO_EVENT": body["event"],
            "GRIDINFO_DN": body["dn"],
            "GRIDINFO_FIRING_ID": body["id"],
            "GRIDINFO_REPEAT": str(body["repeat"]),
            "GRIDINFO_CHANGED": ",".join(body["changed"]),
            "GRIDINFO_ATTEMPT": str(attempt),
            **action.env,
        }
        definition = ProviderDefinition(
            name=f"trigger:{body['trigger']}",
            path=program,
            args=tuple(argv[1:]),
            timelimit=action.timelimit,
            max_output_bytes=MAX_EXEC_OUTPUT,
            env=tuple(env.items()),
        )

        def judged(out: RunOutput) -> str | None:
            if out.spawn_error:
                return f"cannot start {program}: {out.spawn_error}"
            if out.timed_out:
                return f"killed after its timelimit of {action.timelimit:g} s"
            if out.output_exceeded:
                return f"killed: more than {MAX_EXEC_OUTPUT} bytes of output"
            if out.exit_code != 0:
                how = f"signal {out.signal}" if out.signal else f"status {out.exit_code}"
                tail = f": {out.stderr_tail.splitlines()[-1]}" if out.stderr_tail else ""
                return f"{program} exited with {how}{tail}"
            return None

        return self.processes.run(definition, body["ldif"].encode("utf-8")).addCallback(judged)

    # -- log --------------------------------------------------------------------------------

    def _log(self, action: TriggerActionConfig, body: dict[str, Any]) -> None:
        level = {"debug": LogLevel.debug, "info": LogLevel.info, "warn": LogLevel.warn,
                 "error": LogLevel.error, "critical": LogLevel.critical}[action.log or "info"]
        log.emit(
            level,
            "trigger {trigger} fired: {event} {dn} (firing {firing_id})",
            trigger=body["trigger"],
            event=body["event"],
            dn=body["dn"],
            firing_id=body["id"],
            repeat=body["repeat"],
            changed=body["changed"],
            trigger_firing=True,
        )

    # -- http -------------------------------------------------------------------------------

    def _http(self, action: TriggerActionConfig, body: dict[str, Any]) -> defer.Deferred[str | None]:
        from twisted.web.client import Agent, readBody
        from twisted.web.http_headers import Headers

        if self._agent is None:
            self._agent = self._agent_factory(self.reactor) if self._agent_factory else Agent(self.reactor)
        url = action.http or ""
        payload = json.dumps(posted_document(body), sort_keys=True).encode("utf-8")
        headers = Headers({b"Content-Type": [b"application/json"], b"User-Agent": [b"gridinfo-trigger"]})
        d = self._agent.request(b"POST", url.encode("utf-8"), headers, _BytesProducer(payload))

        def answered(response: Any) -> Any:
            code = response.code
            # the answer is read (bounded) and dropped, so the connection is released
            r = readBody(response)
            r.addBoth(lambda _: None)
            if 200 <= code < 300:
                return None
            return f"{url} answered HTTP {code}"

        def failed(failure: Any) -> str:
            if failure.check(defer.TimeoutError, defer.CancelledError):
                return f"{url} did not answer within {action.timelimit:g} s"
            return f"{url}: {failure.getErrorMessage()}"

        d.addCallback(answered)
        d.addTimeout(action.timelimit, self.reactor)
        d.addErrback(failed)
        return d



@implementer(IBodyProducer)
class _BytesProducer:
    """A request body already in memory, written at once."""

    def __init__(self, data: bytes):
        self.data = data
        self.length = len(data)

    def startProducing(self, consumer: Any) -> defer.Deferred[None]:  # noqa: N802 (Twisted hook)
        consumer.write(self.data)
        return defer.succeed(None)

    def pauseProducing(self) -> None:  # noqa: N802
        pass

    def resumeProducing(self) -> None:  # noqa: N802
        pass

    def stopProducing(self) -> None:  # noqa: N802
        pass
