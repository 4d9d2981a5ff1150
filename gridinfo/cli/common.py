"""Helpers shared by the daemons' command lines: logging setup and running a service."""

from __future__ import annotations

import gc
import sys
from typing import Any, TextIO

from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    Logger,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)

import gridinfo
from gridinfo import debuglog

log = Logger()


def start_logging(level: str = "info", stream: TextIO = sys.stderr) -> None:
    threshold = LogLevel.levelWithName(level)
    debuglog.wanted = threshold <= LogLevel.debug  # its one observer drops debug events otherwise
    predicate = LogLevelFilterPredicate(defaultLogLevel=threshold)
    observer = FilteringLogObserver(textFileLogObserver(stream), [predicate])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def run_service(top: Any, reactor: Any) -> int:
    """Start a service, run the reactor until it stops (SIGINT/SIGTERM), return exit status."""
    status = {"code": 0}

    def start() -> None:
        try:
            top.startService()
        except Exception as e:  # a listener that cannot bind, etc.
            sys.stderr.write(f"error: cannot start: {e}\n")
            status["code"] = 1
            reactor.stop()

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", top.stopService)
    reactor.run()
    failed = failures(top)
    for message in failed:
        sys.stderr.write(f"error: {message}\n")
    return 1 if failed else status["code"]


def failures(top: Any) -> list[str]:
    """Why the services under ``top`` that failed to start did (a listener that cannot bind)."""
    return [s.failed for s in _walk(top) if getattr(s, "failed", None)]


def _walk(top: Any) -> list[Any]:
    out = [top]
    for child in getattr(top, "services", ()):
        out.extend(_walk(child))
    return out


def run_daemon(prog: str, make_config: Any, make_service: Any, log_level: str) -> int:
    """Build a daemon from its config and run it: config errors exit 2 with file:line, key and why."""
    from gridinfo.errors import GridinfoError

    try:
        config = make_config()
        from gridinfo import eventloop

        eventloop.install()
        from twisted.internet import reactor

        start_logging(log_level)
        log_build()
        raise_open_file_limit()
        top = make_service(config, reactor)
        # what was loaded at start lives as long as the process: keep it out of the cycle
        # collector's generations, so collections stay short however large the tree is
        gc.collect()
        gc.freeze()
    except (GridinfoError, ValueError) as e:
        sys.stderr.write(f"{prog}: {e}\n")
        return 2
    return run_service(top, reactor)


def log_build() -> None:
    """Say whether the hot modules run compiled (``make compiled``) or as written."""
    names = gridinfo.compiled_modules()
    if names:
        log.info("{count} modules run compiled: {names}", count=len(names),
                 names=", ".join(name.removeprefix("gridinfo.") for name in names))
    elif gridinfo.PURE_PYTHON:
        log.info("running pure Python: GRIDINFO_PURE_PYTHON is set")
    else:
        log.info("running pure Python: no compiled modules (make compiled builds them)")


def raise_open_file_limit() -> None:
    """Raise the soft limit on open files to the hard limit.

    A GIIS holds a connection per child it forwards to, plus its clients: the common default
    soft limit of 1,024 would make a GIIS with a thousand registrants refuse everyone.
    """
    import resource

    from twisted.logger import Logger

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft < 4096:
        Logger().warn(
            "open-file limit is {soft}: a GIIS with many registrants needs about twice their number "
            "plus max_connections (raise it with ulimit -n)",
            soft=soft,
        )
