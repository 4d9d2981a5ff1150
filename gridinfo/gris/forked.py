"""Work done by a forked child of the GRIS, its result sent back through a file in memory.

The start-up load uses it twice: a worker builds the second part of a large LDIF file
(:mod:`gridinfo.gris.parallel_load`) and a child writes the LDIF snapshot while the GRIS serves
(:mod:`gridinfo.gris.snapshot_writer`).  The child holds the parent's entries without copying
them (the pages are shared until written), so it disables the cycle collector, which would walk
and so copy every page of the heap; it leaves with ``os._exit``, running nothing of the parent's
(no reactor, no exit handlers).  A failure in the child is printed to its standard error, which
is the daemon's, and the parent learns that it sent nothing and how it ended.
"""

from __future__ import annotations

import gc
import os
import tempfile
import traceback
from collections.abc import Callable


class Child:
    """A forked child running some work; :meth:`result` waits for it."""

    def __init__(self, pid: int, fd: int):
        self.pid = pid
        self._fd = fd

    def result(self) -> tuple[bytes | None, str]:
        """Block until the child has exited: (what it sent, "") when it ended well and sent
        something, else (None, how it ended: "exit status 1", "killed by signal 9", ...)."""
        try:
            _, status = os.waitpid(self.pid, 0)
            data = os.pread(self._fd, os.fstat(self._fd).st_size, 0)
        finally:
            os.close(self._fd)
        if os.WIFSIGNALED(status):
            return None, f"killed by signal {os.WTERMSIG(status)}"
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            return None, f"exit status {code}"
        if not data:
            return None, "exit status 0, nothing sent"
        return data, ""


def _shared_file() -> int:
    """A file in memory, gone when its last descriptor closes (a temporary file where Linux's
    memfd is missing)."""
    if hasattr(os, "memfd_create"):
        return os.memfd_create("gridinfo-child", os.MFD_CLOEXEC)
    return os.dup(tempfile.TemporaryFile().fileno())


def start(work: Callable[[], bytes], *, fork: Callable[[], int] = os.fork) -> Child:
    """Fork a child that runs ``work`` and sends the bytes it returns; OSError when there is no
    shared file or no fork (the caller does the work itself).

    The bytes go through a file in memory, not a pipe: tens of megabytes (a worker's built
    entries) cross a pipe in 64 KiB turns of both processes, ~0.3 s at 100k GLUE entries,
    where writing them to the file and reading them back at once takes a few hundredths."""
    fd = _shared_file()
    try:
        pid = fork()
    except OSError:
        os.close(fd)
        raise
    if pid == 0:
        status = 1
        try:
            gc.disable()
            view = memoryview(work())
            while view:
                view = view[os.write(fd, view) :]
            status = 0
        except BaseException:  # noqa: BLE001 - the child reports and leaves, whatever happened
            os.write(2, traceback.format_exc().encode("utf-8", "replace"))
        finally:
            os._exit(status)
    return Child(pid, fd)
