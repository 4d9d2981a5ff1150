"""The event journal: every accepted event, on disk, before its add is answered.

One SQLite database (stdlib ``sqlite3``) in WAL mode with ``synchronous=FULL``: a committed
transaction survives ``kill -9`` and a power cut.  Events are keyed by (source, VM, job, seq),
so writing one twice is a no-op.  At start the whole state is rebuilt by replaying the journal
into a :class:`~gridinfo.vm.lifecycle.LifecycleStore`; since the fold does not depend on order,
the rebuilt state is the state before the restart.  Finished VMs and jobs are deleted once their
retention ends (see :meth:`LifecycleStore.expired`).

Calls block for the time of one fsync; the event sink batches concurrent events into one
transaction (group commit), so the cost is per batch, not per event.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from gridinfo.errors import GridinfoError
from gridinfo.vm.events import Event, EventError


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

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    vm TEXT NOT NULL,
    job TEXT NOT NULL,
    seq INTEGER NOT NULL,
    accepted REAL NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (source, vm, job, seq)
);
"""


class JournalError(GridinfoError):
    """The journal cannot be opened or written; the message names the file."""


@dataclass(frozen=True)
class JournalRecord:
    """One row: the event, and when gridinfo accepted it (its own clock)."""

    row: int
    event: Event
    accepted: float


class Journal:
    """``Journal(path)``: open (or create) the journal at ``path``."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = str(path)
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if self.path != ":memory:" and str(mode).lower() != "wal":
                raise JournalError(f"{self.path}: cannot switch the journal to WAL mode (got {mode})")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE name='version'").fetchone()
            if row is None:
                self._db.execute("INSERT INTO meta VALUES ('version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise JournalError(f"{self.path}: journal version {row[0]}, this gridinfo reads {SCHEMA_VERSION}")
        except sqlite3.Error as e:
            raise JournalError(f"{self.path}: cannot open the event journal: {e}") from None

    def append(self, records: Sequence[tuple[Event, float]]) -> int:
        """Write events (with their acceptance times) in one durable transaction.

        Returns how many were new.  Raises :class:`JournalError` when nothing was written.
        """
        if not records:
            return 0
        fail = lambda e: JournalError(f"{self.path}: cannot write to the event journal: {e}")  # noqa: E731
        with immediate_transaction(self._db, fail) as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO events (source, vm, job, seq, accepted, body) VALUES (?, ?, ?, ?, ?, ?)",
                [(e.source, e.vm_id or "", e.job_id or "", e.seq, accepted, e.to_json()) for e, accepted in records],
            )
            return db.total_changes - before

    def replay(self) -> Iterator[JournalRecord | EventError]:
        """Every event in the order it was accepted; a row that no longer validates is an error."""
        for row, accepted, body in self._db.execute("SELECT id, accepted, body FROM events ORDER BY id"):
            try:
                yield JournalRecord(row, Event.from_json(body), accepted)
            except (EventError, ValueError, KeyError, TypeError) as e:
                yield EventError(f"{self.path}: journal row {row}: {e}")

    def delete(self, keys: Iterable[tuple[str, str, str, int]]) -> int:
        """Delete events by key (retention); one transaction.  Returns how many went."""
        keys = list(keys)
        if not keys:
            return 0
        fail = lambda e: JournalError(f"{self.path}: cannot delete from the event journal: {e}")  # noqa: E731
        with immediate_transaction(self._db, fail) as db:
            before = db.total_changes
            db.executemany("DELETE FROM events WHERE source=? AND vm=? AND job=? AND seq=?", keys)
            return db.total_changes - before

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def close(self) -> None:
        self._db.close()
