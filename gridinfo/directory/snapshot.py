"""A verified snapshot of the entries built from static LDIF files, so a restart skips parsing.

Loading a large static LDIF (100k GLUE entries) spends most of its time parsing, checking the
schema and encoding every entry.  After such a load the built entries are written to one file
(``ldif_snapshot`` in the GRIS config names its folder); the next start with the same LDIF
files reads that file instead and adds the same entries, in the same order, to its tree.

The file is ``MAGIC``, an 8-byte header length, a JSON header and a :mod:`marshal` payload
(tuples of str, bytes and frozensets: no code is run to read it, unlike pickle).  The header's
``key`` says what the entries were built from: gridinfo's version and the snapshot format, the
Python version (marshal's format), a fingerprint of the schema, the LDIF limits, and for each
LDIF file its path, size, mtime and SHA-256.  The header also holds the payload's SHA-256.  A
snapshot is used only when its key equals the key of the files as they are now and its payload
hashes to the recorded digest; otherwise (stale, truncated, tampered, unreadable) one log line
says why and the caller parses the LDIF, then writes a new snapshot.  Records the LDIF load
refused are kept in the snapshot and logged again on restore, as a parse would log them.

Entries are restored with their encoding and attribute offsets (not encoded again); the tree
indexes them as it indexes any added entry, and stamps them with new CSNs, as a parse would.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import os
import sys
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twisted.logger import Logger

import gridinfo
from gridinfo.directory.entry import Entry, Shape, shape_for
from gridinfo.errors import InputError

log = Logger(namespace=__name__)  # named here: a compiled module has no frame to name it from

MAGIC = b"gridinfo-ldif-snapshot\n"
FORMAT = 3  # 3: no DN beside the encoding (an entry reads its DN from it)
_MARSHAL_VERSION = 4


def snapshot_path(folder: str, files: Sequence[Path]) -> Path:
    """Where the snapshot of this list of LDIF files lives in ``folder`` (one per list)."""
    names = "\n".join(str(f.resolve()) for f in files)
    return Path(folder) / f"ldif-{hashlib.sha256(names.encode('utf-8')).hexdigest()[:16]}.snapshot"


def file_facts(path: Path) -> list[Any]:
    """[path, size, mtime_ns, sha256] of one LDIF file (read once, in blocks)."""
    st = path.stat()
    h = hashlib.sha256()
    with path.open("rb") as f:
        while True:
            block = f.read(1 << 20)
            if not block:
                break
            h.update(block)
    return [str(path), st.st_size, st.st_mtime_ns, h.hexdigest()]


def snapshot_key(files: Sequence[Path], schema_fingerprint: str, limits: object) -> dict[str, Any]:
    """What a snapshot's entries depend on; raises OSError when a file cannot be read."""
    return {
        "gridinfo": gridinfo.__version__,
        "format": FORMAT,
        "python": list(sys.version_info[:3]),
        "schema": schema_fingerprint,
        "limits": repr(limits),
        "files": [file_facts(f) for f in files],
    }


def file_stats(files: Sequence[Path]) -> list[list[Any]]:
    """[path, size, mtime_ns] of each file (what :func:`file_facts` records beside the digest);
    OSError when one cannot be read."""
    out = []
    for path in files:
        st = path.stat()
        out.append([str(path), st.st_size, st.st_mtime_ns])
    return out


def key_if_unchanged(
    files: Sequence[Path], schema_fingerprint: str, limits: object, read_as: list[list[Any]]
) -> dict[str, Any] | None:
    """The snapshot key of ``files`` when each still has the size and mtime it had when it was
    read (``read_as``, from :func:`file_stats`), before and after its digest is taken; None when
    one changed or cannot be read.  A first start parses at once and takes the digests later,
    in the snapshot's writer, off the serving process's way (~0.2 s per 100 MB)."""
    try:
        key = snapshot_key(files, schema_fingerprint, limits)
    except OSError:
        return None
    if [facts[:3] for facts in key["files"]] != read_as or not unchanged_since(key):
        return None
    return key


def unchanged_since(key: dict[str, Any]) -> bool:
    """True when every file still has the size and mtime recorded in ``key``."""
    for path, size, mtime_ns, _digest in key["files"]:
        try:
            st = os.stat(path)
        except OSError:
            return False
        if st.st_size != size or st.st_mtime_ns != mtime_ns:
            return False
    return True


def pack(entries: Sequence[Entry], errors: Sequence[InputError]) -> bytes:
    """Built entries and refused records as one ``marshal`` payload (what :func:`unpack` reads):
    per entry its key, attribute names (shared by shape), encoding, offsets, source and
    objectClass closure.  The snapshot's payload, and what a parallel load's worker sends."""
    shapes: dict[int, int] = {}
    shape_names: list[dict[str, str]] = []
    rows = []
    for e in entries:
        si = shapes.get(id(e.shape))
        if si is None:
            si = shapes[id(e.shape)] = len(shape_names)
            shape_names.append(e.shape.names)
        rows.append((e.key, si, e.encoded, e.ends.tobytes(), e.source, e.object_classes))
    refused = [(err.message, err.source, err.line) for err in errors]
    return marshal.dumps((shape_names, rows, refused), _MARSHAL_VERSION)


def unpack(payload: bytes | memoryview) -> tuple[list[Entry], list[InputError]]:
    """The entries and refused records of a :func:`pack` payload (ValueError, TypeError, ... when
    it is not one)."""
    shape_names, rows, refused = marshal.loads(payload)
    shapes: list[Shape] = [shape_for(names) for names in shape_names]
    entries = []
    for ekey, si, encoded, ends, source, ocs in rows:
        entries.append(
            Entry(
                "", ekey, (), shapes[si],  # the DN is in the encoding
                object_classes=ocs, source=source, encoded=encoded, ends=array("I", ends),
            )
        )
    errors = [InputError(message, source, line) for message, source, line in refused]
    return entries, errors


def write_snapshot(path: Path, key: dict[str, Any], entries: Sequence[Entry], errors: Sequence[InputError]) -> int:
    """Write the snapshot atomically (a temporary file renamed over it); returns its size."""
    payload = pack(entries, errors)
    header = json.dumps(
        {"key": key, "sha256": hashlib.sha256(payload).hexdigest(), "entries": len(entries)}, sort_keys=True
    ).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as f:
            f.write(MAGIC + len(header).to_bytes(8, "big") + header)
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return len(MAGIC) + 8 + len(header) + len(payload)


class SnapshotRejected(Exception):
    """Why a snapshot cannot be used (the message is logged)."""


def read_snapshot(path: Path, key: dict[str, Any]) -> tuple[list[Entry], list[InputError]]:
    """The entries and refused records of a snapshot whose key is ``key``; raises
    :class:`SnapshotRejected` (stale, truncated, tampered, unreadable) or OSError."""
    with path.open("rb") as f:
        data = f.read()
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 8:
        raise SnapshotRejected("not a gridinfo LDIF snapshot (or truncated in its header)")
    at = len(MAGIC)
    n = int.from_bytes(data[at : at + 8], "big")
    at += 8
    if at + n > len(data):
        raise SnapshotRejected("truncated in its header")
    try:
        header = json.loads(data[at : at + n])
    except ValueError:
        raise SnapshotRejected("its header is not valid JSON") from None
    if not isinstance(header, dict) or not isinstance(header.get("sha256"), str):
        raise SnapshotRejected("its header has no payload digest")
    if header.get("key") != key:
        raise SnapshotRejected(f"stale: {_difference(header.get('key'), key)}")
    payload = memoryview(data)[at + n :]
    if hashlib.sha256(payload).hexdigest() != header["sha256"]:
        raise SnapshotRejected("its content does not match its digest (truncated or modified)")
    try:
        entries, errors = unpack(payload)
    except (ValueError, TypeError, EOFError, IndexError, KeyError, AttributeError) as e:
        raise SnapshotRejected(f"its content cannot be read ({e})") from None
    if len(entries) != header.get("entries"):
        raise SnapshotRejected("it holds a different number of entries than its header says")
    return entries, errors


def _difference(old: Any, new: dict[str, Any]) -> str:
    if not isinstance(old, dict):
        return "no key"
    for name in ("gridinfo", "format", "python", "schema", "limits"):
        if old.get(name) != new.get(name):
            return f"{name} differs"
    old_files = old.get("files") or []
    if [f[0] for f in old_files if isinstance(f, list) and f] != [f[0] for f in new["files"]]:
        return "another list of LDIF files"
    for a, b in zip(old_files, new["files"]):
        if a != b:
            return f"LDIF file {b[0]} changed"
    return "key differs"
