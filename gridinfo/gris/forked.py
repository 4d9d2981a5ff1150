"""Work done by a forked child of the GRIS, its result sent back through a file in memory.

The start-up load uses it twice: a worker builds the second part of a large LDIF file
(:mod:`gridinfo.gris.parallel_load`) and a child writes the LDIF snapshot while the GRIS serves
(:mod:`gridinfo.gris.snapshot_writer`).  The child holds the parent's entries without copying
them (the pages are shared until written), so it disables the cycle collector, which would walk
and so copy every page of the heap; it leaves with ``os._exit``, running nothing of the parent's
(no reactor, no exit handlers).  A failure in the child is printed to its standard error, which
is the daemon's, and the parent learns how it ended and what it had sent until then.

A child sends its result in pieces: each is written to the file, then announced by a line on a
pipe (its offset and length; a line this short is written whole or not at all).  The parent
takes each piece as it is announced, so it can use the first while the child makes the next,
and the pipe's end tells it the child is gone.
"""

from __future__ import annotations

import gc
import os
import signal
import tempfile
import traceback
from collections.abc import Callable, Iterator

#: The child's part: called with a function that sends one piece.
Work = Callable[[Callable[[bytes], None]], None]


class Child:
    """A forked child running some work; :meth:`pieces` follows what it sends, :meth:`ended`
    waits for it."""

    def __init__(self, pid: int, fd: int, notices: int):
        self.pid = pid
        self._fd = fd
        self._notices = notices
        self._why: str | None = None

    def pieces(self) -> Iterator[bytes]:
        """Each piece the child sends, in order, as soon as it is sent (blocks until then); the
        iteration ends when the child is gone, whether it ended well or not (:meth:`ended`)."""
        if self._notices < 0:
            return
        with os.fdopen(self._notices, "rb") as notices:
            self._notices = -1
            for line in notices:
                offset, length = (int(n) for n in line.split())
                yield os.pread(self._fd, length, offset)

    def ended(self) -> str:
        """Wait for the child to exit: "" when it ended well, else how it ended ("exit status
        1", "killed by signal 9", ...)."""
        if self._why is None:
            if self._notices >= 0:
                os.close(self._notices)
                self._notices = -1
            try:
                _, status = os.waitpid(self.pid, 0)
            finally:
                os.close(self._fd)
            if os.WIFSIGNALED(status):
                self._why = f"killed by signal {os.WTERMSIG(status)}"
            else:
                code = os.waitstatus_to_exitcode(status)
                self._why = f"exit status {code}" if code else ""
        return self._why

    def stop(self) -> None:
        """Kill the child (its work is no longer wanted) and wait for it."""
        if self._why is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.ended()

    def result(self) -> tuple[bytes | None, str]:
        """Block until the child has exited: (all it sent, "") when it ended well and sent
        something, else (None, how it ended)."""
        data = b"".join(self.pieces())
        why = self.ended()
        if why:
            return None, why
        if not data:
            return None, "exit status 0, nothing sent"
        return data, ""


def _shared_file() -> int:
    """A file in memory, gone when its last descriptor closes (a temporary file where Linux's
    memfd is missing)."""
    if hasattr(os, "memfd_create"):
        return os.memfd_create("gridinfo-child", os.MFD_CLOEXEC)
    return os.dup(tempfile.TemporaryFile().fileno())


def start_streaming(work: Work, *, fork: Callable[[], int] = os.fork) -> Child:
    """Fork a child that runs ``work``, which sends its result in pieces; OSError when there is
    no shared file, pipe or fork (the caller does the work itself).

    The bytes go through a file in memory, not the pipe: tens of megabytes (a worker's built
    entries) cross a pipe in 64 KiB turns of both processes, ~0.3 s at 100k GLUE entries,
    where writing them to the file and reading them back at once takes a few hundredths."""
    fd = _shared_file()
    try:
        notices, announce = os.pipe()
    except OSError:
        os.close(fd)
        raise
    try:
        pid = fork()
    except OSError:
        for end in (fd, notices, announce):
            os.close(end)
        raise
    if pid == 0:
        status = 1
        try:
            os.close(notices)
            gc.disable()
            offset = 0

            def send(piece: bytes) -> None:
                nonlocal offset
                view = memoryview(piece)
                while view:
                    view = view[os.write(fd, view) :]
                os.write(announce, f"{offset} {len(piece)}\n".encode("ascii"))
                offset += len(piece)

            work(send)
            status = 0
        except BrokenPipeError:
            pass  # nobody reads any more (the parent exited, or closed its end): nothing to report
        except BaseException:  # noqa: BLE001 - the child reports and leaves, whatever happened
            os.write(2, traceback.format_exc().encode("utf-8", "replace"))
        finally:
            os._exit(status)
    os.close(announce)
    return Child(pid, fd, notices)


def start(work: Callable[[], bytes], *, fork: Callable[[], int] = os.fork) -> Child:
    """Fork a child that runs ``work`` and sends the bytes it returns as one piece
    (:meth:`Child.result`); OSError as :func:`start_streaming`."""
    return start_streaming(lambda send: send(work()), fork=fork)
