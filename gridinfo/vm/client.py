"""Logging events from a source: a durable local spool, delivered in order to a GRIS by LDAP add.

Every event goes into the spool first (SQLite, WAL, ``synchronous=FULL``: on disk before
:func:`log_event` returns), then everything pending is delivered, oldest first, over one
``ldap3`` connection.  When the GRIS cannot be reached (or is busy, or cannot write its
journal) delivery stops and the events wait, in order, for the next call or
``gridinfo-log-event --flush``.  An event the GRIS refuses for good (bad content, access
refused) is moved to the spool's ``rejected`` table with the reason and reported, so it
cannot block the ones behind it.  The GRIS ignores an event it already has, so one delivered
twice (its answer lost) is harmless: nothing is lost and nothing counts twice.

Sequence numbers: given by the caller, or by the spool: the next number for that (source, VM,
job), never below the current time in milliseconds, so numbering stays increasing even if the
spool file is lost.
"""

from __future__ import annotations

import fcntl
import math
import os
import sqlite3
import time as _time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from gridinfo.errors import GridinfoError
from gridinfo.vm.events import Event
from gridinfo.durable import immediate_transaction

DEFAULT_SERVER = "ldap://localhost:2135"
DEFAULT_SUFFIX = "mds-vo-name=local,o=grid"
DEFAULT_SPOOL = "/var/spool/gridinfo/events.sqlite"

#: LDAP result codes that refuse this event for good (retrying cannot help).
PERMANENT_CODES = frozenset({17, 18, 19, 21, 32, 34, 50, 53, 64, 65, 68, 69})


class SpoolError(GridinfoError):
    """The spool cannot be opened or written (the event is NOT safe)."""


_SPOOL_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rejected (id INTEGER PRIMARY KEY, body TEXT NOT NULL, code INTEGER NOT NULL,
                                     reason TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS seqs (source TEXT NOT NULL, vm TEXT NOT NULL, job TEXT NOT NULL, last INTEGER NOT NULL,
                                 PRIMARY KEY (source, vm, job));
"""


class Spool:
    """``Spool(path)``: the local queue of events not yet accepted by a GRIS."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = str(path)
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SPOOL_SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise SpoolError(f"{self.path}: cannot open the event spool: {e}") from None

    def _write(self, statements: Iterable[tuple[str, tuple[Any, ...]]]) -> list[Any]:
        fail = lambda e: SpoolError(f"{self.path}: cannot write the event spool: {e}")  # noqa: E731
        with immediate_transaction(self._db, fail) as db:
            return [db.execute(sql, args).lastrowid for sql, args in statements]

    def next_seq(self, source: str, vm_id: str | None, job_id: str | None, now: float) -> int:
        """The next sequence number for (source, VM, job): increasing, and not below now in ms."""
        db = self._db
        key = (source, vm_id or "", job_id or "")
        try:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT last FROM seqs WHERE source=? AND vm=? AND job=?", key).fetchone()
            seq = max((row[0] + 1) if row else 0, int(now * 1000))
            db.execute("INSERT OR REPLACE INTO seqs VALUES (?, ?, ?, ?)", (*key, seq))
            db.execute("COMMIT")
            return seq
        except sqlite3.Error as e:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise SpoolError(f"{self.path}: cannot number the event: {e}") from None

    def put(self, event: Event) -> int:
        """Keep an event (durably); returns its place in the queue."""
        return int(self._write([("INSERT INTO pending (body) VALUES (?)", (event.to_json(),))])[0])

    def pending(self, limit: int = 1000) -> list[tuple[int, Event]]:
        rows = self._db.execute("SELECT id, body FROM pending ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [(row_id, Event.from_json(body)) for row_id, body in rows]

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM pending").fetchone()[0])

    def delivered(self, row_ids: Iterable[int]) -> None:
        self._write([("DELETE FROM pending WHERE id=?", (i,)) for i in row_ids])

    def reject(self, row_id: int, code: int, reason: str, now: float) -> None:
        self._write([
            ("INSERT OR REPLACE INTO rejected (id, body, code, reason, at) SELECT id, body, ?, ?, ? FROM pending WHERE id=?",
             (code, reason, now, row_id)),
            ("DELETE FROM pending WHERE id=?", (row_id,)),
        ])

    def rejected(self) -> list[tuple[Event, int, str]]:
        rows = self._db.execute("SELECT body, code, reason FROM rejected ORDER BY id").fetchall()
        return [(Event.from_json(body), code, reason) for body, code, reason in rows]

    def close(self) -> None:
        self._db.close()


@dataclass
class DeliveryReport:
    """What one delivery did: sent, refused for good, still waiting, and why it stopped."""

    delivered: int = 0
    rejected: list[tuple[Event, int, str]] = field(default_factory=list)
    pending: int = 0
    error: str | None = None  # why delivery stopped early (the events wait in the spool)
    event: Event | None = None  # the event log_event logged

    @property
    def complete(self) -> bool:
        return self.error is None and self.pending == 0


@dataclass(frozen=True)
class EventTLS:
    """TLS for event delivery: ``ca`` verifies the GRIS (with it, ldap:// URLs use StartTLS;
    ldaps:// always uses TLS); ``certificate``/``key`` are presented (SASL EXTERNAL)."""

    ca: str = ""
    certificate: str = ""
    key: str = ""

    @classmethod
    def from_environment(cls) -> EventTLS:
        env = os.environ
        return cls(env.get("GRIDINFO_EVENT_CA", ""), env.get("GRIDINFO_EVENT_CERT", ""), env.get("GRIDINFO_EVENT_KEY", ""))


def _server(url: str, timeout: float, tls: EventTLS | None = None) -> tuple[Any, bool]:
    """The ldap3 server for ``url``, and whether StartTLS must come first."""
    import ssl

    import ldap3

    tls = tls or EventTLS()
    parsed = urlparse(url if "://" in url else f"ldap://{url}")
    use_ssl = parsed.scheme == "ldaps"
    port = parsed.port or (636 if use_ssl else 2135)
    settings = None
    if use_ssl or tls.ca:
        # CERT_REQUIRED: the chain is verified (against ca, else the system's CAs) and so is
        # the host name or address in the URL
        settings = ldap3.Tls(
            validate=ssl.CERT_REQUIRED,
            ca_certs_file=tls.ca or None,
            local_certificate_file=tls.certificate or None,
            local_private_key_file=tls.key or None,
        )
    server = ldap3.Server(parsed.hostname or "localhost", port=port, use_ssl=use_ssl, tls=settings,
                          get_info=ldap3.NONE, connect_timeout=timeout)
    return server, bool(tls.ca) and not use_ssl


def deliver(
    spool: Spool,
    *,
    server: str = DEFAULT_SERVER,
    bind_dn: str = "",
    password: str = "",
    suffix: str = DEFAULT_SUFFIX,
    timeout: float = 10.0,
    clock: Any = _time.time,
    tls: EventTLS | None = None,
) -> DeliveryReport:
    """Send every pending event, oldest first; stop (keeping the rest) when the GRIS cannot take them.

    With ``tls`` naming a CA, an ldap:// server is asked for StartTLS before the bind (a
    refusal or a certificate that does not verify stops delivery: nothing goes in the clear).
    """
    import ldap3
    from ldap3.core.exceptions import LDAPException

    report = DeliveryReport()
    events_base = f"ou=events,{suffix}"
    lock_path = spool.path + ".lock"
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one deliverer at a time keeps the order
        try:
            batch = spool.pending()
            if not batch:
                return report
            ldap_server, start_tls = _server(server, timeout, tls)
            # a client certificate and no bind DN: SASL EXTERNAL (the GRIS binds us as its subject)
            external = {"authentication": ldap3.SASL, "sasl_mechanism": ldap3.EXTERNAL} \
                if tls is not None and tls.certificate and not bind_dn else {}
            conn = ldap3.Connection(
                ldap_server, user=bind_dn or None, password=password or None,
                receive_timeout=max(1, math.ceil(timeout)), raise_exceptions=False, read_only=False, **external,
            )
            try:
                if start_tls:
                    conn.open()
                    if not conn.start_tls():
                        report.error = f"StartTLS with {server} failed: {conn.result.get('description')}" \
                                       f" {conn.result.get('message') or ''}".rstrip()
                        return report
                if not conn.bind():
                    who = bind_dn or ("SASL EXTERNAL" if external else "anonymous")
                    report.error = f"bind to {server} as {who} failed: {conn.result.get('description')}" \
                                   f" {conn.result.get('message') or ''}".rstrip()
                    return report
                while batch:
                    done: list[int] = []
                    for row_id, event in batch:
                        attrs = {name: values for name, values in event.to_attributes()}
                        ok = conn.add(event.dn(events_base), attributes=attrs)
                        code = conn.result.get("result", 80) if conn.result else 80
                        if ok or code == 0:
                            done.append(row_id)
                            continue
                        reason = str(conn.result.get("message") or conn.result.get("description"))
                        if code in PERMANENT_CODES:
                            spool.delivered(done)
                            report.delivered += len(done)
                            done = []
                            spool.reject(row_id, code, reason, clock())
                            report.rejected.append((event, code, reason))
                            continue
                        report.error = f"{server} answered {conn.result.get('description')} ({code}): {reason}"
                        break
                    spool.delivered(done)
                    report.delivered += len(done)
                    if report.error:
                        break
                    batch = spool.pending()
            except LDAPException as e:
                report.error = f"{server}: {type(e).__name__}: {e}"
            finally:
                try:
                    conn.unbind()
                except LDAPException:
                    pass
        except LDAPException as e:
            report.error = f"{server}: {type(e).__name__}: {e}"
        finally:
            report.pending = spool.count()
            fcntl.flock(lock, fcntl.LOCK_UN)
    return report


def default_spool_path() -> str:
    return os.environ.get("GRIDINFO_EVENT_SPOOL") or DEFAULT_SPOOL


def log_event(
    kind: str,
    *,
    source: str,
    vm_id: str | None = None,
    job_id: str | None = None,
    seq: int | None = None,
    time: float | None = None,
    attributes: Mapping[str, str] | None = None,
    server: str | None = None,
    bind_dn: str = "",
    password: str = "",
    spool: str | os.PathLike[str] | Spool | None = None,
    suffix: str = DEFAULT_SUFFIX,
    timeout: float = 10.0,
    deliver_now: bool = True,
    tls: EventTLS | None = None,
) -> DeliveryReport:
    """Log one event: validate it, keep it in the spool, then deliver everything pending.

    Raises :class:`~gridinfo.vm.events.EventError` for an invalid event (nothing is kept) and
    :class:`SpoolError` when the spool cannot be written.  Otherwise the event is safe: the
    report says whether it (and older ones) reached the GRIS or still wait in the spool.
    ``server`` defaults to ``$GRIDINFO_EVENT_SERVER`` or ldap://localhost:2135, ``spool`` to
    ``$GRIDINFO_EVENT_SPOOL`` or /var/spool/gridinfo/events.sqlite, ``tls`` to
    ``$GRIDINFO_EVENT_CA``, ``$GRIDINFO_EVENT_CERT``, ``$GRIDINFO_EVENT_KEY``.
    """
    now = _time.time()
    owned = not isinstance(spool, Spool)
    queue = spool if isinstance(spool, Spool) else Spool(spool or default_spool_path())
    try:
        Event.make(kind, source, 0, now if time is None else time, vm_id=vm_id, job_id=job_id,
                   attributes=attributes or {})  # validate before taking a number
        number = seq if seq is not None else queue.next_seq(source.lower(), vm_id, job_id, now)
        event = Event.make(kind, source, number, now if time is None else time, vm_id=vm_id, job_id=job_id,
                           attributes=attributes or {})
        queue.put(event)
        if deliver_now:
            report = deliver(queue, server=server or os.environ.get("GRIDINFO_EVENT_SERVER") or DEFAULT_SERVER,
                             bind_dn=bind_dn, password=password, suffix=suffix, timeout=timeout,
                             tls=tls if tls is not None else EventTLS.from_environment())
        else:
            report = DeliveryReport(pending=queue.count())
        report.event = event
        return report
    finally:
        if owned:
            queue.close()
