"""Durable SQLite files: the VM event journal, the event spool and the GIIS registration journal.

One way to open them (WAL, ``synchronous=FULL``: a committed transaction survives ``kill -9``
and a power cut; a ``meta`` table holding the schema version) and one way to write
(``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on error).  Errors are the caller's own class,
with a message naming the file.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def immediate_transaction(
    db: sqlite3.Connection, failure: Callable[[sqlite3.Error], Exception]
) -> Iterator[sqlite3.Connection]:
    """One ``BEGIN IMMEDIATE`` ... ``COMMIT``; on an SQLite error, roll back and raise ``failure(e)``."""
    try:
        db.execute("BEGIN IMMEDIATE")
        yield db
        db.execute("COMMIT")
    except sqlite3.Error as e:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise failure(e) from None


def open_versioned(
    path: str | os.PathLike[str], schema: str, version: int, what: str, error: type[Exception]
) -> sqlite3.Connection:
    """Open (or create) the SQLite file ``path`` holding ``what`` at schema ``version``.

    ``schema`` must create a ``meta (name, value)`` table.  A file of another version, a file
    that cannot switch to WAL mode, or any SQLite or OS error raises ``error`` naming the file.
    """
    name = str(path)
    try:
        if name != ":memory:":
            Path(name).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(name, isolation_level=None, check_same_thread=False)
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if name != ":memory:" and str(mode).lower() != "wal":
            raise error(f"{name}: cannot switch the {what} to WAL mode (got {mode})")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(schema)
        row = db.execute("SELECT value FROM meta WHERE name='version'").fetchone()
        if row is None:
            db.execute("INSERT INTO meta VALUES ('version', ?)", (str(version),))
        elif int(row[0]) != version:
            raise error(f"{name}: {what} version {row[0]}, this gridinfo reads {version}")
    except (sqlite3.Error, OSError) as e:
        raise error(f"{name}: cannot open the {what}: {e}") from None
    return db
