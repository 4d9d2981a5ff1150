"""Writing the LDIF snapshot: here and now, or from a forked child while the GRIS serves.

A first start parses the static LDIF and then writes the snapshot a restart will read
(:mod:`gridinfo.directory.snapshot`).  Encoding 100,000 entries into the snapshot took a second
more before the GRIS answered anything, and the 125 MB payload it built stayed in the server's
memory pools afterwards.  A daemon instead forks: the child holds the same entries (the pages
are shared until written), writes the file atomically and exits; the parent serves at once and
logs the outcome when the child is done.  The child disables the cycle collector, so reading
the entries copies only the pages their reference counts are on, and leaves with ``os._exit``,
running nothing of the parent's (no reactor, no exit handlers).

Where ``fork`` is missing or fails, the snapshot is written in process, as before.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from twisted.logger import Logger

from gridinfo.directory.entry import Entry
from gridinfo.directory.snapshot import write_snapshot
from gridinfo.errors import InputError

log = Logger()

#: (path, key, entries, refused records) -> None: writes, or starts writing, the snapshot
SnapshotWriter = Callable[[Path, dict[str, Any], Sequence[Entry], Sequence[InputError]], None]


def write_here(where: Path, key: dict[str, Any], entries: Sequence[Entry], errors: Sequence[InputError]) -> None:
    """Write the snapshot in this process, now; the outcome is logged."""
    try:
        size = write_snapshot(where, key, entries, errors)
    except OSError as e:
        log.error("LDIF snapshot not written to {path}: {error}", path=str(where), error=str(e))
    else:
        log.info("wrote LDIF snapshot {path} ({count} entries, {size} bytes)", path=str(where), count=len(entries), size=size)


def forked(call_from_thread: Callable[..., Any], *, fork: Callable[[], int] = os.fork) -> SnapshotWriter:
    """A writer that forks a child to write the snapshot; ``call_from_thread`` (the reactor's)
    brings the child's outcome back to the reactor thread, where it is logged."""

    def write(where: Path, key: dict[str, Any], entries: Sequence[Entry], errors: Sequence[InputError]) -> None:
        try:
            read_end, write_end = os.pipe()
        except OSError as e:
            log.warn("LDIF snapshot written before serving: no pipe to a writer ({error})", error=e.strerror)
            write_here(where, key, entries, errors)
            return
        try:
            pid = fork()
        except OSError as e:
            os.close(read_end)
            os.close(write_end)
            log.warn("LDIF snapshot written before serving: cannot fork a writer ({error})", error=e.strerror)
            write_here(where, key, entries, errors)
            return
        if pid == 0:
            _child(read_end, write_end, where, key, entries, errors)  # never returns
        os.close(write_end)
        log.info("writing LDIF snapshot {path} in process {pid}, serving meanwhile", path=str(where), pid=pid)
        count = len(entries)

        def wait() -> None:
            outcome = _reap(pid, read_end)
            call_from_thread(_report, where, count, pid, outcome)

        # a daemon thread: a GRIS stopped while its child writes exits at once; the child,
        # reparented, finishes the file (renamed into place only when whole)
        threading.Thread(target=wait, name=f"snapshot writer {pid}", daemon=True).start()

    return write


def _child(
    read_end: int, write_end: int, where: Path, key: dict[str, Any], entries: Sequence[Entry], errors: Sequence[InputError]
) -> None:
    status = 1
    try:
        gc.disable()  # a collection would walk, and so copy, every page of the parent's heap
        os.close(read_end)
        try:
            report = f"ok {write_snapshot(where, key, entries, errors)}"
            status = 0
        except OSError as e:
            report = f"error {e}"
        except BaseException as e:  # noqa: BLE001 - reported to the parent, which logs it
            report = f"error {type(e).__name__}: {e}"
        os.write(write_end, report.encode("utf-8", "replace"))
    finally:
        os._exit(status)


def _reap(pid: int, read_end: int) -> str:
    """The child's report, once it has exited ("ok <size>", "error <why>", or why it died)."""
    chunks = []
    with os.fdopen(read_end, "rb") as pipe:
        while chunk := pipe.read(4096):
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    report = b"".join(chunks).decode("utf-8", "replace")
    if os.WIFSIGNALED(status):
        return f"error the writer (process {pid}) was killed by signal {os.WTERMSIG(status)}"
    return report or f"error the writer (process {pid}) exited with status {os.waitstatus_to_exitcode(status)} and no report"


def _report(where: Path, count: int, pid: int, outcome: str) -> None:
    kind, _, detail = outcome.partition(" ")
    if kind == "ok":
        log.info("wrote LDIF snapshot {path} ({count} entries, {size} bytes) in process {pid}",
                 path=str(where), count=count, size=int(detail), pid=pid)
    else:
        log.error("LDIF snapshot not written to {path}: {error}", path=str(where), error=detail)
