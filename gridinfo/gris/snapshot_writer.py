"""Writing the LDIF snapshot: here and now, or from a forked child while the GRIS serves.

A first start parses the static LDIF and then writes the snapshot a restart will read
(:mod:`gridinfo.directory.snapshot`).  Encoding 100,000 entries into the snapshot took a second
more before the GRIS answered anything, and the 125 MB payload it built stayed in the server's
memory pools afterwards.  A daemon instead forks: the child holds the same entries (the pages
are shared until written), writes the file atomically and exits (:mod:`gridinfo.gris.forked`);
the parent serves at once and logs the outcome when the child is done.

Where ``fork`` is missing or fails, the snapshot is written in process, as before.  The
snapshot's key (the files' digests) is taken by the writer too, and nothing is written when an
LDIF file changed since it was read (:func:`gridinfo.directory.snapshot.key_if_unchanged`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from twisted.logger import Logger

from gridinfo.directory.entry import Entry
from gridinfo.directory.snapshot import write_snapshot
from gridinfo.errors import InputError
from gridinfo.gris.forked import start as start_child

log = Logger()

#: The snapshot's key, or None when an LDIF file changed since it was read (nothing to write)
KeyOf = Callable[[], "dict[str, Any] | None"]

#: (path, key, entries, refused records) -> None: writes, or starts writing, the snapshot
SnapshotWriter = Callable[[Path, KeyOf, Sequence[Entry], Sequence[InputError]], None]

_CHANGED = "LDIF snapshot not written: an LDIF file changed while it was read"


def write_here(where: Path, key_of: KeyOf, entries: Sequence[Entry], errors: Sequence[InputError]) -> None:
    """Write the snapshot in this process, now; the outcome is logged."""
    key = key_of()
    if key is None:
        log.info(_CHANGED)
        return
    try:
        size = write_snapshot(where, key, entries, errors)
    except OSError as e:
        log.error("LDIF snapshot not written to {path}: {error}", path=str(where), error=str(e))
    else:
        log.info("wrote LDIF snapshot {path} ({count} entries, {size} bytes)", path=str(where), count=len(entries), size=size)


def forked(call_from_thread: Callable[..., Any], *, fork: Callable[[], int] = os.fork) -> SnapshotWriter:
    """A writer that forks a child to write the snapshot; ``call_from_thread`` (the reactor's)
    brings the child's outcome back to the reactor thread, where it is logged."""

    def write(where: Path, key_of: KeyOf, entries: Sequence[Entry], errors: Sequence[InputError]) -> None:
        def in_child() -> bytes:
            try:
                key = key_of()
                if key is None:
                    return b"changed"
                return f"ok {write_snapshot(where, key, entries, errors)}".encode()
            except OSError as e:
                return f"error {e}".encode("utf-8", "replace")

        try:
            child = start_child(in_child, fork=fork)
        except OSError as e:
            log.warn("LDIF snapshot written before serving: cannot fork a writer ({error})", error=e.strerror)
            write_here(where, key_of, entries, errors)
            return
        log.info("writing LDIF snapshot {path} in process {pid}, serving meanwhile", path=str(where), pid=child.pid)
        count = len(entries)

        def wait() -> None:
            report, why = child.result()
            outcome = report.decode("utf-8", "replace") if report is not None else f"error the writer (process {child.pid}) ended: {why}"
            call_from_thread(_report, where, count, child.pid, outcome)

        # a daemon thread: a GRIS stopped while its child writes exits at once; the child,
        # reparented, finishes the file (renamed into place only when whole)
        threading.Thread(target=wait, name=f"snapshot writer {child.pid}", daemon=True).start()

    return write


def _report(where: Path, count: int, pid: int, outcome: str) -> None:
    kind, _, detail = outcome.partition(" ")
    if kind == "changed":
        log.info(_CHANGED)
    elif kind == "ok":
        log.info("wrote LDIF snapshot {path} ({count} entries, {size} bytes) in process {pid}",
                 path=str(where), count=count, size=int(detail), pid=pid)
    else:
        log.error("LDIF snapshot not written to {path}: {error}", path=str(where), error=detail)
