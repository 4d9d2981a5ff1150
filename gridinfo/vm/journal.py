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

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from gridinfo.durable import immediate_transaction, open_versioned
from gridinfo.errors import GridinfoError
from gridinfo.vm.events import Event, EventError


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
        self._db = open_versioned(self.path, _SCHEMA, SCHEMA_VERSION, "event journal", JournalError)

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
