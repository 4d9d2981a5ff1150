"""Loading a large static LDIF file on two CPUs: a forked worker builds its second half.

A first start spends nearly all its time in Python on each record: LDIF parsing, the schema
check and building the entry (its encoding, its shape).  None of that needs the tree, so a
large file is cut at a record boundary a little before its middle (the start of a line after
an empty line).  A forked child reads, checks and builds the second half, while this process
does the first half as a sequential load would; the child then sends its entries and refused
records in the snapshot's payload form (:func:`gridinfo.directory.snapshot.pack`) through a
file in memory (:mod:`gridinfo.gris.forked`), and this process adds them to the tree after its
own half.

The outcome is the sequential load's: entries added in file order (a DN given twice keeps its
later version), the same refused records with the same file:line (the first half's logged
first); the child reads its half with the line numbers and byte count of the whole file
(``iter_ldif_tolerant(resume=...)``).  When the file is small, there is one CPU, fork fails, or
the child does not report (killed, out of memory), the second half is read here instead, and
the result is the same, only later.  A limit that refuses the rest of the file (its size) in
the first half refuses the second half too, as it would sequentially.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from twisted.logger import Logger

from gridinfo.directory.entry import Entry
from gridinfo.directory.ldif import LDIFError, LDIFLimits, LDIFRecord, iter_ldif_tolerant
from gridinfo.directory.snapshot import pack, unpack
from gridinfo.errors import InputError
from gridinfo.gris import forked

log = Logger()

#: Files smaller than this are read in one piece: a fork and the hand-over cost ~0.1 s.
PARALLEL_MIN_BYTES = 16 << 20

_BLOCK = 1 << 20
_BOUNDARY = re.compile(rb"\n\r?\n")

#: A record -> its entry, why it is refused, or None (nothing to add)
Build = Callable[[LDIFRecord], "Entry | InputError | None"]


#: Where the cut is, as a share of the file: this process reads the first part and then adds
#: the worker's entries (about a sixth of the cost of building them), so its part is smaller.
SHARE_HERE = 0.45


def split_point(path: Path, size: int) -> int | None:
    """Byte offset of a record boundary near ``SHARE_HERE`` of the file, or None (none within a
    block of it: one huge record)."""
    middle = int(size * SHARE_HERE)
    with path.open("rb") as f:
        f.seek(max(0, middle - 2))
        ahead = f.read(_BLOCK)
    m = _BOUNDARY.search(ahead)
    if m is None:
        return None
    offset = max(0, middle - 2) + m.end()
    return offset if 0 < offset < size else None


def line_at(path: Path, offset: int) -> int:
    """The physical line number (1-based) of the byte at ``offset``."""
    lines = 1
    with path.open("rb") as f:
        left = offset
        while left > 0:
            block = f.read(min(_BLOCK, left))
            if not block:
                break
            lines += block.count(b"\n")
            left -= len(block)
    return lines


def read_half(
    path: Path,
    source: str,
    limits: LDIFLimits,
    build: Build,
    on_entry: Callable[[Entry], None],
    on_refused: Callable[[InputError], None],
    *,
    start: int = 0,
    stop: int | None = None,
    first_line: int = 1,
) -> bool:
    """Read ``path`` from byte ``start`` to ``stop`` (the whole file by default), record by
    record: each entry ``build`` makes goes to ``on_entry``, each refused record to
    ``on_refused``, both in file order.  True when a limit refused the rest of the file."""
    bad: list[LDIFError] = []
    with path.open("rb") as stream:
        stream.seek(start)
        resume = (start, first_line) if start else None
        try:
            for rec in iter_ldif_tolerant(stream, bad, source, limits, resume=resume, stop=stop):
                # the reader reports a block's unreadable records before yielding its first good
                # one: each is passed on when the reading reaches its line, so refusals (unreadable
                # or refused by build) come in file order
                while bad and (bad[0].line is None or bad[0].line < rec.line):
                    on_refused(bad.pop(0))
                made = build(rec)
                if isinstance(made, InputError):
                    on_refused(made)
                elif made is not None:
                    on_entry(made)
        except LDIFError as e:  # a limit broken: the rest of the file is refused
            while bad:
                on_refused(bad.pop(0))
            on_refused(e)
            return True
    while bad:
        on_refused(bad.pop(0))
    return False


def can_split(size: int, limits: LDIFLimits) -> bool:
    """Worth two CPUs: large enough, more than one CPU, a fork, and no limit on the record count
    (a count kept across the halves)."""
    return (
        size >= PARALLEL_MIN_BYTES
        and size <= limits.max_file_bytes
        and limits.max_records is None
        and (os.cpu_count() or 1) > 1
        and hasattr(os, "fork")
    )


def read_in_two(
    path: Path,
    source: str,
    limits: LDIFLimits,
    build: Build,
    on_entry: Callable[[Entry], None],
    on_refused: Callable[[InputError], None],
    *,
    fork: Callable[[], int] = os.fork,
) -> bool | None:
    """Read the file in two halves, the second in a forked child (see the module docstring);
    entries and refused records reach ``on_entry`` and ``on_refused`` in file order.  Returns
    whether a limit refused the rest of the file, or None when the file was not split (no
    boundary near its middle, no shared file, no fork) and nothing was read: the caller reads it."""
    offset = split_point(path, path.stat().st_size)
    if offset is None:
        return None

    def second_part() -> bytes:
        # the line number of the cut is counted here, off the parent's way
        first_line = line_at(path, offset)
        entries: list[Entry] = []
        refused: list[InputError] = []
        cut = read_half(path, source, limits, build, entries.append, refused.append, start=offset, first_line=first_line)
        return f"{first_line} {int(cut)}\n".encode("ascii") + pack(entries, refused)

    try:
        worker = forked.start(second_part, fork=fork)
    except OSError as e:
        log.info("{source}: read in one piece, no worker ({error})", source=source, error=e.strerror)
        return None
    try:
        cut = read_half(path, source, limits, build, on_entry, on_refused, stop=offset)
    finally:
        report, why = worker.result()
    if cut:
        return True  # the rest of the file is refused, the child's half with it
    if report is None:
        log.warn("the worker reading the second half (process {pid}) did not finish ({why}); reading it here",
                 pid=worker.pid, why=why)
    else:
        try:
            end = report.index(b"\n")  # the header; the rest is read in place, not copied
            first_line, cut_there = (int(n) for n in report[:end].split())
            entries, refused = unpack(memoryview(report)[end + 1 :])
        except (ValueError, TypeError, EOFError, IndexError, KeyError, AttributeError) as e:
            log.warn("{source}: the second half's worker sent what cannot be read ({error}); reading it here",
                     source=source, error=str(e))
        else:
            for err in refused:
                on_refused(err)
            for entry in entries:
                on_entry(entry)
            log.info("{source}: read in two parts, from byte {offset} (line {line}) by process {pid}",
                     source=source, offset=offset, line=first_line, pid=worker.pid)
            return bool(cut_there)
    return read_half(path, source, limits, build, on_entry, on_refused, start=offset, first_line=line_at(path, offset))
