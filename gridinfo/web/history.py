"""The history store: numeric attributes sampled on change, down-sampled, bounded in size.

One SQLite file (opened with :mod:`gridinfo.durable`), three tiers::

    raw   every changed value                  kept 1 day
    m5    5-minute averages of those values    kept 30 days
    h1    hourly averages                      kept 365 days

A *series* is one (DN, attribute).  :class:`Sampler` checks the directory every
``sample_interval`` seconds through the backend (the same search path and identity as the
pages), keeps the last value of each series in memory and queues only the values that changed;
the queue is written in one transaction per check, in a worker thread, so the reactor never
waits on the disk.  Past ``max_bytes`` of used pages, the oldest rows go first (raw, then m5,
then h1).  Times come from the injected clock: ``record(..., now)`` and ``query(..., now)``
take them as arguments.  For long-term or multi-site history, scrape ``/metrics`` into
Prometheus or VictoriaMetrics instead (docs/web.md).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from twisted.application import service
from twisted.internet import defer, task, threads
from twisted.logger import Logger

from gridinfo.directory.query import Scope
from gridinfo.durable import immediate_transaction, open_versioned
from gridinfo.errors import GridinfoError
from gridinfo.web.views import to_number

log = Logger()

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS series (id INTEGER PRIMARY KEY, dn TEXT NOT NULL, attribute TEXT NOT NULL,
                                   UNIQUE (dn, attribute));
CREATE TABLE IF NOT EXISTS raw (series INTEGER NOT NULL, t REAL NOT NULL, v REAL NOT NULL);
CREATE INDEX IF NOT EXISTS raw_st ON raw (series, t);
CREATE INDEX IF NOT EXISTS raw_t ON raw (t);
CREATE TABLE IF NOT EXISTS m5 (series INTEGER NOT NULL, t REAL NOT NULL, total REAL NOT NULL, n INTEGER NOT NULL,
                               PRIMARY KEY (series, t));
CREATE INDEX IF NOT EXISTS m5_t ON m5 (t);
CREATE TABLE IF NOT EXISTS h1 (series INTEGER NOT NULL, t REAL NOT NULL, total REAL NOT NULL, n INTEGER NOT NULL,
                               PRIMARY KEY (series, t));
CREATE INDEX IF NOT EXISTS h1_t ON h1 (t);
"""
VERSION = 1

DAY = 86400.0
#: tier -> (bucket seconds, seconds kept)
TIERS = {"raw": (0.0, DAY), "m5": (300.0, 30 * DAY), "h1": (3600.0, 365 * DAY)}
#: a page's range -> (seconds, tier read)
RANGES = {"hour": (3600.0, "raw"), "day": (DAY, "raw"), "week": (7 * DAY, "m5"), "month": (30 * DAY, "m5"),
          "year": (365 * DAY, "h1")}


class HistoryError(GridinfoError):
    pass


Sample = tuple[str, str, float, float]  # dn, attribute, time, value


class HistoryStore:
    """The SQLite file; every method may be called from a worker thread (one lock serialises them)."""

    def __init__(self, path: str = ":memory:", *, max_bytes: int = 64 << 20):
        self.path = path or ":memory:"
        self.max_bytes = max_bytes
        self.db = open_versioned(self.path, SCHEMA, VERSION, "web history store", HistoryError)
        self.lock = threading.Lock()
        self._ids: dict[tuple[str, str], int] = {}

    def close(self) -> None:
        with self.lock:
            self.db.close()

    def _series_id(self, dn: str, attribute: str) -> int:
        key = (dn, attribute)
        sid = self._ids.get(key)
        if sid is None:
            self.db.execute("INSERT OR IGNORE INTO series (dn, attribute) VALUES (?, ?)", key)
            sid = int(self.db.execute("SELECT id FROM series WHERE dn=? AND attribute=?", key).fetchone()[0])
            self._ids[key] = sid
        return sid

    def record(self, samples: Sequence[Sample], now: float) -> None:
        """Write a batch of samples in one transaction, then prune what is past its tier's age or the bound."""
        with self.lock, immediate_transaction(self.db, lambda e: HistoryError(f"{self.path}: cannot write history: {e}")):
            for dn, attribute, t, v in samples:
                sid = self._series_id(dn, attribute)
                self.db.execute("INSERT INTO raw VALUES (?, ?, ?)", (sid, t, v))
                for tier in ("m5", "h1"):
                    bucket = TIERS[tier][0]
                    self.db.execute(
                        f"INSERT INTO {tier} VALUES (?, ?, ?, 1) ON CONFLICT (series, t) "
                        "DO UPDATE SET total = total + excluded.total, n = n + 1",
                        (sid, t - t % bucket, v),
                    )
            for tier, (_, keep) in TIERS.items():
                self.db.execute(f"DELETE FROM {tier} WHERE t < ?", (now - keep,))
            self._bound()

    def used_bytes(self) -> int:
        pages = self.db.execute("PRAGMA page_count").fetchone()[0]
        free = self.db.execute("PRAGMA freelist_count").fetchone()[0]
        size = self.db.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)

    def _bound(self) -> None:
        """Oldest first, the finest tier first, until the used pages fit ``max_bytes``."""
        for tier in ("raw", "m5", "h1"):
            while self.used_bytes() > self.max_bytes:
                n = self.db.execute(f"SELECT count(*) FROM {tier}").fetchone()[0]
                if not n:
                    break
                cut = self.db.execute(
                    f"SELECT t FROM {tier} ORDER BY t LIMIT 1 OFFSET ?", (max(0, n // 10),)
                ).fetchone()[0]
                self.db.execute(f"DELETE FROM {tier} WHERE t <= ?", (cut,))

    def series(self) -> list[dict[str, Any]]:
        with self.lock:
            rows = self.db.execute(
                "SELECT s.dn, s.attribute, count(r.t), max(r.t) FROM series s LEFT JOIN raw r ON r.series = s.id "
                "GROUP BY s.id ORDER BY s.dn, s.attribute"
            ).fetchall()
        return [{"dn": dn, "attribute": a, "samples_today": n, "last": t} for dn, a, n, t in rows]

    def query(self, dn: str, attribute: str, range_name: str, now: float) -> list[tuple[float, float]]:
        """(time, value) points of one series over ``range_name`` (hour, day, week, month, year)."""
        span, tier = RANGES[range_name]
        with self.lock:
            row = self.db.execute("SELECT id FROM series WHERE dn=? AND attribute=? COLLATE NOCASE",
                                  (dn, attribute)).fetchone()
            if row is None:
                row = self.db.execute("SELECT id FROM series WHERE lower(dn)=lower(?) AND lower(attribute)=lower(?)",
                                      (dn, attribute)).fetchone()
            if row is None:
                return []
            if tier == "raw":
                rows = self.db.execute("SELECT t, v FROM raw WHERE series=? AND t >= ? ORDER BY t",
                                       (row[0], now - span)).fetchall()
            else:
                rows = self.db.execute(f"SELECT t, total / n FROM {tier} WHERE series=? AND t >= ? ORDER BY t",
                                       (row[0], now - span)).fetchall()
        return [(float(t), float(v)) for t, v in rows]


class Sampler(service.Service):
    """Checks the directory every ``interval`` seconds; changed values go to the store in one batch."""

    def __init__(self, store: HistoryStore, reader: Any, attributes: Iterable[str], reactor: Any,
                 *, interval: float = 60.0, in_thread: bool = True):
        self.store = store
        self.reader = reader
        self.attributes = tuple(attributes)
        self.reactor = reactor
        self.interval = interval
        self.in_thread = in_thread
        self.last: dict[tuple[str, str], float] = {}
        self.pending: list[Sample] = []
        self._loop: task.LoopingCall | None = None
        self._busy = False
        self.samples_written = 0

    def startService(self) -> None:
        super().startService()
        if self.interval > 0 and self.attributes:
            self._loop = task.LoopingCall(self.check)
            self._loop.clock = self.reactor
            self._loop.start(self.interval, now=False)

    def stopService(self) -> Any:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return None

    def filter_text(self) -> str:
        return "(|" + "".join(f"({a}=*)" for a in self.attributes) + ")"

    def observe(self, entries: Iterable[tuple[str, dict[str, list[str]]]], now: float) -> int:
        """Queue the values that changed since the last check; returns how many."""
        wanted = {a.lower(): a for a in self.attributes}
        queued = 0
        for dn, attrs in entries:
            for name, values in attrs.items():
                attribute = wanted.get(name.lower())
                if attribute is None or not values:
                    continue
                value = to_number(values[0])
                if value is None:
                    continue
                key = (dn, attribute)
                if self.last.get(key) != value:
                    self.last[key] = value
                    self.pending.append((dn, attribute, now, value))
                    queued += 1
        return queued

    def check(self) -> defer.Deferred[int]:
        """One check: search, queue the changes, write them (unless a write is still under way)."""
        if self._busy:
            return defer.succeed(0)
        self._busy = True
        now = self.reactor.seconds()
        bases = [b for b in self.reader.naming_contexts() if b.lower() != "o=infosys"]

        def search_all() -> defer.Deferred[list[Any]]:
            return defer.gatherResults(
                [self.reader.search(b, Scope.SUB, self.filter_text(), self.attributes).addErrback(lambda _: None)
                 for b in bases]
            )

        def observed(answers: list[Any]) -> Any:
            for answer in answers:
                if answer is not None:
                    self.observe(answer.entries, now)
            return self.flush(now)

        def done(result: Any) -> int:
            self._busy = False
            return int(result or 0)

        def failed(f: Any) -> int:
            self._busy = False
            log.error("web history: {error}", error=f.getErrorMessage())
            return 0

        return search_all().addCallback(observed).addCallbacks(done, failed)

    def flush(self, now: float) -> defer.Deferred[int]:
        batch, self.pending = self.pending, []
        if not batch:
            return defer.succeed(0)

        def written(_: Any) -> int:
            self.samples_written += len(batch)
            return len(batch)

        d = threads.deferToThread(self.store.record, batch, now) if self.in_thread else defer.maybeDeferred(
            self.store.record, batch, now)
        return d.addCallback(written)
