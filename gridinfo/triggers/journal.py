"""The firing journal: every delivery (one firing, one action) on disk before its action runs.

One SQLite file, opened as the VM journal is (:mod:`gridinfo.durable`: WAL, ``synchronous=FULL``,
so a committed row survives ``kill -9``).  A row is keyed by (firing id, action index) and goes
``pending`` -> ``done`` or ``failed``; its body holds everything the action needs (the firing as
JSON, with the action's own settings), so a row left pending by a crash is run again after the
restart exactly as it was meant, even if the rule changed or went meanwhile, and a row marked
done is never run again.  ``attempts`` counts the attempts that were started.

Theory of operation::

    state    | event                            | next
    ---------+----------------------------------+--------------------------------------------
    -        | the engine fires                 | pending (attempts 0), then the action starts
    pending  | an attempt starts                | pending (attempts + 1, committed first)
    pending  | the action succeeds              | done
    pending  | it fails, retries left           | pending (the next attempt is timed)
    pending  | it fails, none left              | failed
    pending  | gridinfo restarts                | pending: run again (the attempt cut short counts)
    done     | older than the retention         | deleted
    failed   | older than the retention         | deleted

An in-memory journal (``path`` ``":memory:"``) keeps the same rules for one process's life.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from gridinfo.durable import immediate_transaction, open_versioned
from gridinfo.errors import GridinfoError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (
    firing TEXT NOT NULL,
    action INTEGER NOT NULL,
    rule TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (firing, action)
);
CREATE INDEX IF NOT EXISTS deliveries_state ON deliveries (state, updated);
"""

PENDING = "pending"
DONE = "done"
FAILED = "failed"


class TriggerJournalError(GridinfoError):
    """The firing journal cannot be opened or written; the message names the file."""


@dataclass(frozen=True)
class Delivery:
    """One action of one firing, as journaled."""

    firing: str
    action: int
    rule: str
    body: dict[str, Any]
    attempts: int = 0
    state: str = PENDING


class FiringJournal:
    """``FiringJournal(path)``: open (or create) the firing journal at ``path``."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = str(path)
        self._db = open_versioned(self.path, _SCHEMA, SCHEMA_VERSION, "firing journal", TriggerJournalError)

    def _fail(self, what: str) -> Any:
        return lambda e: TriggerJournalError(f"{self.path}: cannot {what} the firing journal: {e}")

    def add(self, deliveries: Iterable[Delivery], now: float) -> int:
        """Journal new deliveries in one durable transaction; one already there is left alone.

        Returns how many were new.
        """
        rows = [(d.firing, d.action, d.rule, now, now, json.dumps(d.body, sort_keys=True)) for d in deliveries]
        if not rows:
            return 0
        with immediate_transaction(self._db, self._fail("write to")) as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO deliveries (firing, action, rule, created, updated, body) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            return db.total_changes - before

    def attempt(self, firing: str, action: int, now: float) -> bool:
        """Count one more attempt of a pending delivery (committed before it runs).

        False when the delivery is not pending (done, failed or unknown): it must not run.
        """
        with immediate_transaction(self._db, self._fail("write to")) as db:
            cur = db.execute(
                "UPDATE deliveries SET attempts = attempts + 1, updated = ? WHERE firing = ? AND action = ? AND state = ?",
                (now, firing, action, PENDING),
            )
            return cur.rowcount == 1

    def finish(self, firing: str, action: int, state: str, now: float) -> None:
        """Mark a delivery done or failed."""
        with immediate_transaction(self._db, self._fail("write to")) as db:
            db.execute(
                "UPDATE deliveries SET state = ?, updated = ? WHERE firing = ? AND action = ? AND state = ?",
                (state, now, firing, action, PENDING),
            )

    def pending(self) -> Iterator[Delivery]:
        """Every pending delivery, oldest first (what a restart runs again)."""
        rows = self._db.execute(
            "SELECT firing, action, rule, body, attempts, state FROM deliveries WHERE state = ? ORDER BY created, firing, action",
            (PENDING,),
        ).fetchall()
        for firing, action, rule, body, attempts, state in rows:
            yield Delivery(firing, action, rule, json.loads(body), attempts, state)

    def get(self, firing: str, action: int) -> Delivery | None:
        row = self._db.execute(
            "SELECT firing, action, rule, body, attempts, state FROM deliveries WHERE firing = ? AND action = ?",
            (firing, action),
        ).fetchone()
        if row is None:
            return None
        return Delivery(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5])

    def counts(self) -> dict[str, int]:
        """Deliveries by state."""
        return {state: n for state, n in self._db.execute("SELECT state, COUNT(*) FROM deliveries GROUP BY state")}

    def prune(self, before: float) -> int:
        """Delete done and failed deliveries last updated before ``before``.  Returns how many went."""
        with immediate_transaction(self._db, self._fail("prune")) as db:
            cur = db.execute("DELETE FROM deliveries WHERE state != ? AND updated < ?", (PENDING, before))
            return cur.rowcount

    def close(self) -> None:
        self._db.close()
