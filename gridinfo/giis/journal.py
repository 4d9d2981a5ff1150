"""The registration journal: a GIIS's leases on disk, so a restart does not forget its children.

One SQLite database (as the VM event journal, :mod:`gridinfo.vm.journal`, with its shared
``immediate_transaction`` helper), WAL mode, ``synchronous=FULL``: an accepted registration is
committed before the add is answered, so it survives ``kill -9``.  One row per lease key
(host, port, normalised suffix), replaced on renewal; rows past keepto are deleted by the sweep
and skipped when loading.  The row keeps what the lease table needs: the parsed registration,
the message as received, who made it (bind DN, peer), its rank and whether it is shared.
"""

from __future__ import annotations

import base64
import json
import os

from gridinfo.durable import immediate_transaction, open_versioned
from gridinfo.errors import GridinfoError
from gridinfo.giis.leases import Lease, Registration
from gridinfo.giis.ownership import Registrant

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS registrations (
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    suffix_key TEXT NOT NULL,
    keep_to REAL NOT NULL,
    first_registered REAL NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (host, port, suffix_key)
);
"""


class RegistrationJournalError(GridinfoError):
    """The registration journal cannot be opened or written; the message names the file."""


def _encode(lease: Lease) -> str:
    reg = lease.registration
    return json.dumps({
        "host": reg.host, "port": reg.port, "suffix": reg.suffix, "suffix_key": reg.suffix_key,
        "valid_from": reg.valid_from, "valid_to": reg.valid_to, "keep_to": reg.keep_to,
        "timeout": reg.timeout, "cachettl": reg.cachettl, "size_limit": reg.size_limit,
        "service_type": reg.service_type, "bind_methods": reg.bind_methods,
        "attributes": [[name, [base64.b64encode(v).decode("ascii") for v in vals]] for name, vals in reg.attributes],
        "first_registered": lease.first_registered, "last_renewed": lease.last_renewed,
        "renewals": lease.renewals, "owner_dn": lease.owner.bind_dn, "owner_peer": lease.owner.peer,
        "rank": lease.rank, "shared": lease.shared,
    }, sort_keys=True)


def _decode(body: str) -> Lease:
    d = json.loads(body)
    registration = Registration(
        host=str(d["host"]), port=int(d["port"]), suffix=str(d["suffix"]), suffix_key=str(d["suffix_key"]),
        valid_from=float(d["valid_from"]), valid_to=float(d["valid_to"]), keep_to=float(d["keep_to"]),
        timeout=float(d["timeout"]), cachettl=float(d["cachettl"]), size_limit=int(d["size_limit"]),
        service_type=str(d["service_type"]), bind_methods=str(d["bind_methods"]),
        attributes=tuple((str(n), tuple(base64.b64decode(v) for v in vals)) for n, vals in d["attributes"]),
    )
    peer = d.get("owner_peer")
    return Lease(
        registration, first_registered=float(d["first_registered"]), last_renewed=float(d["last_renewed"]),
        renewals=int(d["renewals"]), owner=Registrant(str(d.get("owner_dn", "")), None if peer is None else str(peer)),
        rank=int(d.get("rank", 0)), shared=bool(d.get("shared", False)),
    )


class RegistrationJournal:
    """``RegistrationJournal(path)``: open (or create) the journal at ``path``."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = str(path)
        self._db = open_versioned(
            self.path, _SCHEMA, SCHEMA_VERSION, "registration journal", RegistrationJournalError
        )

    def save(self, lease: Lease) -> None:
        """Write (or replace) one lease, durably."""
        host, port, suffix_key = lease.key
        fail = lambda e: RegistrationJournalError(f"{self.path}: cannot write the registration journal: {e}")  # noqa: E731
        with immediate_transaction(self._db, fail) as db:
            db.execute(
                "INSERT OR REPLACE INTO registrations (host, port, suffix_key, keep_to, first_registered, body) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (host, port, suffix_key, lease.registration.keep_to, lease.first_registered, _encode(lease)),
            )

    def load(self, now: float) -> list[Lease]:
        """Every lease not past keepto at ``now``, oldest registration first; bad rows are skipped."""
        out = []
        rows = self._db.execute(
            "SELECT body FROM registrations WHERE keep_to > ? ORDER BY first_registered, rowid", (now,)
        ).fetchall()
        for (body,) in rows:
            try:
                out.append(_decode(body))
            except (ValueError, KeyError, TypeError):
                continue
        return out

    def purge(self, now: float) -> int:
        """Delete the rows past keepto; returns how many went."""
        fail = lambda e: RegistrationJournalError(f"{self.path}: cannot purge the registration journal: {e}")  # noqa: E731
        with immediate_transaction(self._db, fail) as db:
            before = db.total_changes
            db.execute("DELETE FROM registrations WHERE keep_to <= ?", (now,))
            return db.total_changes - before

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM registrations").fetchone()[0])

    def close(self) -> None:
        self._db.close()
