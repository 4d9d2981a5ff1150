"""Running information providers: one child process per run, bounded in time and output.

Each run is a child process in a session (and so a process group) of its own, started through
``setsid`` (or, where that program is missing, a tiny Python trampoline calling ``os.setsid``),
so that ``os.killpg`` at the timelimit also kills whatever the provider forked.  Stdout is
collected up to ``max_output_bytes``; one byte more and the whole group is killed and the run
fails, so a provider printing 100 MB costs the GRIS at most the cap.  Stderr goes to the log
line by line, tagged with the provider's name (bounded too).  At most ``max_concurrent`` runs
go at once (a ``DeferredSemaphore``); the timelimit counts from the start of the process, not
from the wait for a slot.

Time comes from the injected ``reactor`` (``IReactorTime`` + ``IReactorProcess``).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections import deque
from typing import Any

from twisted.internet import defer, error, protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from gridinfo.gris.softstate import ProviderDefinition, RunOutput

log = Logger()

MAX_STDERR_LINES = 200  # per run; the rest is counted, not logged
MAX_STDERR_LINE = 2000  # characters logged of one stderr line
STDERR_TAIL_LINES = 10  # last stderr lines kept for the status entry of a failed run
STDERR_TAIL_CHARS = 2000  # ... at most this many characters of them
ABANDON_AFTER = 5.0  # seconds after a kill before the pipes are closed from our side

_TRAMPOLINE = "import os, sys; os.setsid(); os.execv(sys.argv[1], sys.argv[1:])"


def session_command(path: str, args: tuple[str, ...]) -> tuple[str, list[str]]:
    """(executable, argv) that runs ``path`` in a new session, so killpg reaches its children."""
    setsid = shutil.which("setsid")
    if setsid is not None:
        # not a process group leader (a fresh child of the reactor), so setsid execs in place
        # without forking: the pid we hold is the provider's and the group's.
        return setsid, ["setsid", path, *args]
    return sys.executable, [sys.executable, "-c", _TRAMPOLINE, path, *args]


def provider_environment(definition: ProviderDefinition, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The GRIS's environment (as BDII passes it), the provider's ``env``, and GRIDINFO_* hints."""
    env = dict(os.environ)
    env.update(extra or {})
    env["GRIDINFO_PROVIDER"] = definition.name
    env["GRIDINFO_BASE"] = definition.bases[0]  # the first subtree it owns (the o=grid suffix by default)
    env.update(dict(definition.env))
    return env


class _ProviderProcess(protocol.ProcessProtocol):
    """Collects one run's output under the caps and reports a :class:`RunOutput`."""

    def __init__(self, definition: ProviderDefinition, reactor: Any, done: defer.Deferred[RunOutput], stdin: bytes = b""):
        self.definition = definition
        self.stdin = stdin
        self.reactor = reactor
        self.done = done
        self.stdout = bytearray()
        self.stdout_bytes = 0
        self.stderr_buf = bytearray()
        self.stderr_lines = 0
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self.started = reactor.seconds()
        self.timed_out = False
        self.output_exceeded = False
        self.pgid: int | None = None
        self.killed = False
        self.timer: Any = None
        self.abandon_timer: Any = None

    def connectionMade(self) -> None:  # noqa: N802 (Twisted hook)
        transport: Any = self.transport
        self.pgid = transport.pid
        if self.stdin:  # a trigger action's entry (providers get nothing on stdin)
            transport.write(self.stdin)
        transport.closeStdin()
        self.timer = self.reactor.callLater(self.definition.timelimit, self._timeout)

    def _timeout(self) -> None:
        self.timer = None
        self.timed_out = True
        self.stdout.clear()
        log.warn(
            "provider {provider} killed: still running after its timelimit of {timelimit} s",
            provider=self.definition.name,
            timelimit=self.definition.timelimit,
        )
        self.kill()

    def kill(self) -> None:
        """SIGKILL the provider's whole process group (its children too)."""
        if self.killed or self.pgid is None:
            return
        self.killed = True
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except OSError as e:
            log.error("cannot kill provider {provider}: {error}", provider=self.definition.name, error=str(e))
        # A child that left the group (its own setsid) could hold our pipes open for ever:
        # after a grace period stop reading, so the run ends regardless.
        self.abandon_timer = self.reactor.callLater(ABANDON_AFTER, self._abandon)

    def _abandon(self) -> None:
        self.abandon_timer = None
        transport: Any = self.transport
        if transport is not None:
            for fd in (1, 2):
                try:
                    transport.closeChildFD(fd)
                except Exception:
                    pass

    def outReceived(self, data: bytes) -> None:  # noqa: N802
        self.stdout_bytes += len(data)
        if self.output_exceeded:
            return
        cap = self.definition.max_output_bytes
        if len(self.stdout) + len(data) > cap:
            self.output_exceeded = True
            self.stdout.clear()
            log.warn(
                "provider {provider} killed: more than {limit} bytes of output",
                provider=self.definition.name,
                limit=cap,
            )
            self.kill()
            return
        self.stdout += data

    def errReceived(self, data: bytes) -> None:  # noqa: N802
        self.stderr_buf += data
        while True:
            nl = self.stderr_buf.find(b"\n")
            if nl < 0:
                if len(self.stderr_buf) > MAX_STDERR_LINE:
                    self._stderr_line(bytes(self.stderr_buf[:MAX_STDERR_LINE]))
                    del self.stderr_buf[:]
                return
            line = bytes(self.stderr_buf[:nl])
            del self.stderr_buf[: nl + 1]
            self._stderr_line(line)

    def _stderr_line(self, line: bytes) -> None:
        self.stderr_lines += 1
        text = line[:MAX_STDERR_LINE].decode("utf-8", "replace").rstrip("\r")
        self.stderr_tail.append(text)
        if self.stderr_lines > MAX_STDERR_LINES:
            return
        log.warn("provider {provider} stderr: {line}", provider=self.definition.name, line=text, stderr=True)

    def processEnded(self, reason: Failure) -> None:  # noqa: N802
        if self.stderr_buf:
            self._stderr_line(bytes(self.stderr_buf))
            self.stderr_buf.clear()
        if self.stderr_lines > MAX_STDERR_LINES:
            log.warn(
                "provider {provider}: {count} more stderr lines not logged",
                provider=self.definition.name,
                count=self.stderr_lines - MAX_STDERR_LINES,
            )
        for timer in (self.timer, self.abandon_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self.timer = self.abandon_timer = None
        exit_code: int | None = None
        sig: int | None = None
        value = reason.value
        if isinstance(value, error.ProcessDone):
            exit_code = 0
        elif isinstance(value, error.ProcessTerminated):
            exit_code = value.exitCode
            sig = value.signal
        output = RunOutput(
            stdout=bytes(self.stdout),
            exit_code=exit_code,
            signal=sig,
            timed_out=self.timed_out,
            output_exceeded=self.output_exceeded,
            started=self.started,
            ended=self.reactor.seconds(),
            stdout_bytes=self.stdout_bytes,
            stderr_tail="\n".join(self.stderr_tail)[-STDERR_TAIL_CHARS:],
        )
        self.stdout = bytearray()
        self.done.callback(output)


class ProviderRunner:
    """Runs providers as child processes, at most ``max_concurrent`` at once."""

    def __init__(self, reactor: Any, *, max_concurrent: int = 4, extra_env: dict[str, str] | None = None):
        self.reactor = reactor
        self.semaphore = defer.DeferredSemaphore(max(1, max_concurrent))
        self.extra_env = dict(extra_env or {})
        self.active: set[_ProviderProcess] = set()

    def kill_all(self) -> None:
        """Kill every run in progress (the GRIS is stopping)."""
        for proto in list(self.active):
            proto.kill()

    def run(self, definition: ProviderDefinition, stdin: bytes = b"") -> defer.Deferred[RunOutput]:
        """Run once, when a slot is free; the Deferred always succeeds with a RunOutput."""
        return self.semaphore.run(self.run_now, definition, stdin)

    def run_now(self, definition: ProviderDefinition, stdin: bytes = b"") -> defer.Deferred[RunOutput]:
        """Run once, right away (no concurrency slot); ``stdin`` is written to the process, then closed."""
        if definition.kind == "static":
            return defer.succeed(read_static(definition, self.reactor.seconds()))
        done: defer.Deferred[RunOutput] = defer.Deferred()
        proto = _ProviderProcess(definition, self.reactor, done, stdin)
        program = os.path.abspath(definition.path)
        if definition.interpreter is not None:  # one of ours: gridinfo's Python, not PATH's
            executable, argv = session_command(definition.interpreter, (program, *definition.args))
        else:
            executable, argv = session_command(program, definition.args)
        now = self.reactor.seconds()
        try:
            self.reactor.spawnProcess(
                proto,
                executable,
                argv,
                env=provider_environment(definition, self.extra_env),
                path=os.path.dirname(program),
                usePTY=False,
            )
        except Exception as e:  # OSError, or a reactor without process support
            return defer.succeed(RunOutput(exit_code=None, spawn_error=str(e), started=now, ended=now))
        self.active.add(proto)

        def ended(output: RunOutput) -> RunOutput:
            self.active.discard(proto)
            return output

        return done.addCallback(ended)


def read_static(definition: ProviderDefinition, now: float) -> RunOutput:
    """A static ``*.ldif`` file's "run": read it (at most ``max_output_bytes`` + 1 bytes)."""
    try:
        with open(definition.path, "rb") as f:
            data = f.read(definition.max_output_bytes + 1)
    except OSError as e:
        return RunOutput(exit_code=None, spawn_error=e.strerror or str(e), started=now, ended=now)
    if len(data) > definition.max_output_bytes:
        return RunOutput(output_exceeded=True, exit_code=None, started=now, ended=now, stdout_bytes=len(data))
    return RunOutput(stdout=data, exit_code=0, started=now, ended=now, stdout_bytes=len(data))
