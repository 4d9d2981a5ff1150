"""Loading a large static LDIF file on two CPUs: a forked worker builds its second part.

A first start spends nearly all its time in Python on each record: LDIF parsing, the schema
check and building the entry (its encoding, its shape).  None of that needs the tree, so a
large file is cut at a record boundary before its middle (the start of a line after an empty
line).  A forked child reads, checks and builds the second part, while this process does the
first part as a sequential load would.  The child sends its entries and refused records in
pieces of a few megabytes of the file each, in the snapshot's payload form
(:func:`gridinfo.directory.snapshot.pack`) through a file in memory (:mod:`gridinfo.gris.forked`);
once its own part is in the tree, this process adds each piece as it comes, while the child
builds the next.  Adding an entry costs about a quarter of building it, so the cut is where
both processes end at about the same time (``SHARE_HERE``).

The outcome is the sequential load's: entries added in file order (a DN given twice keeps its
later version), the same refused records with the same file:line (each part's in file order);
the child reads its pieces with the line numbers and byte count of the whole file
(``iter_ldif_tolerant(resume=...)``), each piece's header saying where the next one starts.
When the file is small, there is one CPU, or fork fails, the file is read here in one piece;
when the child stops sending (killed, out of memory, an unreadable piece), the rest of its part
is read here from where its last piece ended, and the result is the same, only later.  A limit
that refuses the rest of the file (its size) in the first part refuses the second part too, as
it would sequentially.
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

log = Logger(namespace=__name__)  # named here: a compiled module has no frame to name it from

#: Files smaller than this are read in one piece: a fork and the hand-over cost ~0.1 s.
PARALLEL_MIN_BYTES = 16 << 20

_BLOCK = 1 << 20
_BOUNDARY = re.compile(rb"\n\r?\n")

#: A record -> its entry, why it is refused, or None (nothing to add)
Build = Callable[[LDIFRecord], "Entry | InputError | None"]


#: Where the cut is, as a share of the file: this process reads the first part and then adds
#: the worker's entries as they come, so its part is the smaller.
SHARE_HERE = 0.35

#: About how much of the file one piece from the worker covers: the last piece's adding is what
#: this process does after the worker has ended.
PIECE_BYTES = 2 << 20


def boundary_after(path: Path, at: int, size: int) -> int | None:
    """Byte offset of the first record boundary at or after ``at`` (within a block of it), or
    None: the end of the file comes first, or one huge record."""
    if at >= size:
        return None
    with path.open("rb") as f:
        f.seek(max(0, at - 2))
        ahead = f.read(_BLOCK)
    m = _BOUNDARY.search(ahead)
    if m is None:
        return None
    offset = max(0, at - 2) + m.end()
    return offset if offset < size else None


def split_point(path: Path, size: int) -> int | None:
    """Byte offset of a record boundary near ``SHARE_HERE`` of the file, or None (none within a
    block of it: one huge record)."""
    offset = boundary_after(path, int(size * SHARE_HERE), size)
    return offset if offset else None


def newlines(path: Path, start: int, stop: int) -> int:
    """How many line ends the bytes from ``start`` to ``stop`` hold."""
    count = 0
    with path.open("rb") as f:
        f.seek(start)
        left = stop - start
        while left > 0:
            block = f.read(min(_BLOCK, left))
            if not block:
                break
            count += block.count(b"\n")
            left -= len(block)
    return count


def line_at(path: Path, offset: int) -> int:
    """The physical line number (1-based) of the byte at ``offset``."""
    return 1 + newlines(path, 0, offset)


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
    """Read the file in two parts, the second in a forked child (see the module docstring);
    entries and refused records reach ``on_entry`` and ``on_refused`` in file order.  Returns
    whether a limit refused the rest of the file, or None when the file was not split (no
    boundary near its middle, no shared file, no fork) and nothing was read: the caller reads it."""
    size = path.stat().st_size
    offset = split_point(path, size)
    if offset is None:
        return None

    def second_part(send: Callable[[bytes], None]) -> None:
        # the line number of the cut is counted here, off the parent's way; each piece is a
        # run of whole records, sent when built, its header saying where the next one starts
        start, line = offset, line_at(path, offset)
        while True:
            stop = boundary_after(path, start + PIECE_BYTES, size)
            entries: list[Entry] = []
            refused: list[InputError] = []
            cut = read_half(path, source, limits, build, entries.append, refused.append,
                            start=start, stop=stop, first_line=line)
            next_line = line + newlines(path, start, stop) if stop is not None else 0
            header = f"{start} {line} {stop or 0} {next_line} {int(cut)}\n".encode("ascii")
            send(header + pack(entries, refused))
            if cut or stop is None:
                return
            start, line = stop, next_line

    try:
        worker = forked.start_streaming(second_part, fork=fork)
    except OSError as e:
        log.info("{source}: read in one piece, no worker ({error})", source=source, error=e.strerror)
        return None
    try:
        cut = read_half(path, source, limits, build, on_entry, on_refused, stop=offset)
    except BaseException:
        worker.stop()
        raise
    if cut:
        worker.stop()
        return True  # the rest of the file is refused, the child's part with it
    resume, line = offset, 0  # where the part not yet taken from the worker starts
    try:
        for piece in worker.pieces():
            try:
                end = piece.index(b"\n")  # the header; the rest is read in place, not copied
                start, first_line, stop, next_line, cut_there = (int(n) for n in piece[:end].split())
                if start != resume:
                    raise ValueError(f"a piece from byte {start} where byte {resume} was due")
                entries, refused = unpack(memoryview(piece)[end + 1 :])
            except (ValueError, TypeError, EOFError, IndexError, KeyError, AttributeError) as e:
                worker.stop()
                log.warn("{source}: the second part's worker sent what cannot be read ({error}); "
                         "reading the rest here from byte {offset}", source=source, error=str(e), offset=resume)
                break
            for err in refused:
                on_refused(err)
            for entry in entries:
                on_entry(entry)
            if resume == offset:
                log.info("{source}: read in two parts, from byte {offset} (line {line}) by process {pid}",
                         source=source, offset=offset, line=first_line, pid=worker.pid)
            if cut_there or not stop:
                worker.ended()
                return bool(cut_there)
            resume, line = stop, next_line
        else:
            why = worker.ended() or "exit status 0 before its last piece"
            log.warn("the worker reading the second part (process {pid}) did not finish ({why}); "
                     "reading it here from byte {offset}", pid=worker.pid, why=why, offset=resume)
    except BaseException:  # adding failed here: the worker is not left behind
        worker.stop()
        raise
    return read_half(path, source, limits, build, on_entry, on_refused,
                     start=resume, first_line=line or line_at(path, resume))
