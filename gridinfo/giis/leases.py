"""The GIIS registry: soft-state leases of the servers registered below a GIIS.

Pure: no I/O, no reactor; every call that depends on time takes ``now`` (seconds since the
epoch, the GIIS's own clock).

Theory of operation
-------------------
A registrant (a GRIS, another GIIS, any LDAP server) registers with an LDAP add of
``Mds-Vo-Op-name=register,<giis suffix>`` (MDS2's GRRP message, see :func:`parse_registration`).
A registration is keyed by (host, port, normalised suffix); the same add renews it, replacing
the previous one wholesale.  The lease's state is a function of the GIIS's clock and the two
times the registrant chose (``Mds-validto`` <= ``Mds-keepto``)::

    state     while                      routing (searches)   cached answers     listed
    -------   -------------------------  -------------------  -----------------  -------
    VALID     now <  validto             forwarded to         fresh, then stale  VALID
    INVALID   validto <= now < keepto    not forwarded to     served stale       INVALID
    PURGED    keepto <= now              gone                 dropped            no

    transition            cause
    --------------------  --------------------------------------------
    (none)  -> VALID      accepted registration
    VALID   -> VALID      renewal (same key): times replaced
    INVALID -> VALID      renewal before keepto
    VALID   -> INVALID    clock passes validto
    INVALID -> PURGED     clock passes keepto (removed on read and by sweep)
    PURGED  -> VALID      a new registration (a fresh lease)

There are no scattered ifs: :meth:`Lease.state` is the table's first half, and the table
(:class:`LeaseTable`) removes PURGED leases whenever it reads them and in :meth:`LeaseTable.sweep`.
A registration whose ``Mds-validto`` is already past, or further ahead than ``max_lease``, is
refused with ``constraintViolation``; a registrant cap refuses new keys (renewals still pass).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from gridinfo.directory.gtime import format_generalized_time, parse_generalized_time
from gridinfo.errors import ConstraintViolation, InsufficientAccessRights, ObjectClassViolation
from gridinfo.giis.ownership import Registrant, as_address

#: The object classes a registration must carry (MDS2's GRRP message).
REQUIRED_CLASSES = ("MdsService", "MdsServiceLdap")
DEFAULT_TIMEOUT = 20.0  # Mds-Service-Ldap-timeout when absent (Globus default)
DEFAULT_CACHETTL = 30.0  # Mds-Service-Ldap-cachettl when absent (Globus default)
DEFAULT_MAX_LEASE = 86400.0  # a validto further ahead than this is refused


class LeaseState(enum.Enum):
    VALID = "VALID"
    INVALID = "INVALID"
    PURGED = "PURGED"


@dataclass(frozen=True)
class Registration:
    """One accepted registration message, parsed: who, where, and for how long."""

    host: str
    port: int
    suffix: str  # as the registrant wrote it
    suffix_key: str  # normalised, for the lease key
    valid_from: float
    valid_to: float
    keep_to: float
    timeout: float = DEFAULT_TIMEOUT
    cachettl: float = DEFAULT_CACHETTL
    size_limit: int = 0
    service_type: str = "ldap"
    bind_methods: str = "ANONYM-ONLY"
    attributes: tuple[tuple[str, tuple[bytes, ...]], ...] = ()  # the message as received

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.host.lower(), self.port, self.suffix_key)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ldap://{host}:{self.port}/{self.suffix}"


def _values(attributes: Iterable[tuple[str, Sequence[bytes]]]) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for name, vals in attributes:
        out.setdefault(name.partition(";")[0].lower(), []).extend(vals)
    return out


def _single(values: dict[str, list[bytes]], name: str, required: bool = True) -> str | None:
    vals = values.get(name.lower())
    if not vals:
        if required:
            raise ObjectClassViolation(f"registration lacks the required attribute {name}")
        return None
    text = vals[0].decode("utf-8", "replace").strip()
    if not text and required:
        raise ConstraintViolation(f"{name} is empty")
    return text or None


def _number(values: dict[str, list[bytes]], name: str, default: float, *, integer: bool = False) -> float:
    text = _single(values, name, required=False)
    if text is None:
        return default
    try:
        number = int(text) if integer else float(text)
    except ValueError:
        raise ConstraintViolation(f"{name}: {text!r} is not a number") from None
    if number < 0 or number != number:
        raise ConstraintViolation(f"{name}: {text!r} must not be negative")
    return float(number)


def parse_registration(
    attributes: Iterable[tuple[str, Sequence[bytes]]],
    *,
    now: float,
    normalise_suffix: Callable[[str], str],
    max_lease: float = DEFAULT_MAX_LEASE,
    default_timeout: float = DEFAULT_TIMEOUT,
    default_cachettl: float = DEFAULT_CACHETTL,
) -> Registration:
    """Check and parse a registration's attributes (an LDAP add's) into a :class:`Registration`.

    Raises ObjectClassViolation for a missing class or attribute, ConstraintViolation for a bad
    value or lease times (validto past, or more than ``max_lease`` ahead), each naming what.
    ``normalise_suffix`` turns the suffix into its canonical key (raises InvalidDNSyntax).
    """
    attributes = [(name, tuple(vals)) for name, vals in attributes]
    values = _values(attributes)
    classes = {v.decode("utf-8", "replace").strip().lower() for v in values.get("objectclass", ())}
    for oc in REQUIRED_CLASSES:
        if oc.lower() not in classes:
            raise ObjectClassViolation(f"registration lacks objectClass {oc}")
    host = _single(values, "Mds-Service-hn")
    port_text = _single(values, "Mds-Service-port")
    suffix = _single(values, "Mds-Service-Ldap-suffix")
    assert host is not None and port_text is not None and suffix is not None
    if as_address(host) is None and any(c.isspace() or c in "/:@" for c in host):
        raise ConstraintViolation(f"Mds-Service-hn: {host!r} is not a host name")
    try:
        port = int(port_text)
    except ValueError:
        raise ConstraintViolation(f"Mds-Service-port: {port_text!r} is not a port number") from None
    if not 0 < port < 65536:
        raise ConstraintViolation(f"Mds-Service-port: {port} is not a port number (1-65535)")
    suffix_key = normalise_suffix(suffix)
    validto_text = _single(values, "Mds-validto", required=False)
    if validto_text is None:
        raise ConstraintViolation("registration lacks Mds-validto: a lease needs an end")
    valid_to = parse_generalized_time(validto_text, "Mds-validto")
    validfrom_text = _single(values, "Mds-validfrom", required=False)
    valid_from = parse_generalized_time(validfrom_text, "Mds-validfrom") if validfrom_text else now
    keepto_text = _single(values, "Mds-keepto", required=False)
    keep_to = parse_generalized_time(keepto_text, "Mds-keepto") if keepto_text else valid_to
    if valid_to <= now:
        raise ConstraintViolation(
            f"Mds-validto {validto_text} is in the past (the GIIS's clock says "
            f"{format_generalized_time(now)}): check the registrant's clock and ttl"
        )
    if valid_to - now > max_lease:
        raise ConstraintViolation(
            f"Mds-validto {validto_text} is {valid_to - now:.0f} s ahead; this GIIS grants at most "
            f"{max_lease:.0f} s (re-register every regperiod instead)"
        )
    keep_to = max(keep_to, valid_to)
    if keep_to - now > 2 * max_lease:
        raise ConstraintViolation(
            f"Mds-keepto {keepto_text} is {keep_to - now:.0f} s ahead; this GIIS keeps data at most "
            f"{2 * max_lease:.0f} s"
        )
    return Registration(
        host=host,
        port=port,
        suffix=suffix,
        suffix_key=suffix_key,
        valid_from=valid_from,
        valid_to=valid_to,
        keep_to=keep_to,
        timeout=_number(values, "Mds-Service-Ldap-timeout", default_timeout),
        cachettl=_number(values, "Mds-Service-Ldap-cachettl", default_cachettl),
        size_limit=int(_number(values, "Mds-Service-Ldap-sizelimit", 0, integer=True)),
        service_type=_single(values, "Mds-Service-type", required=False) or "ldap",
        bind_methods=_single(values, "Mds-Bind-Method-servers", required=False) or "ANONYM-ONLY",
        attributes=tuple((name, tuple(vals)) for name, vals in attributes),
    )


@dataclass
class Lease:
    """A registrant's lease: its latest registration and when it was first and last seen."""

    registration: Registration
    first_registered: float
    last_renewed: float
    renewals: int = 0
    owner: Registrant = Registrant()  # who made it: only they may renew or replace it
    rank: int = 0  # the accepting policy rule's position: lower wins a duplicate DN
    shared: bool = False  # accepted by a rule whose suffix may be shared

    @property
    def key(self) -> tuple[str, int, str]:
        return self.registration.key

    def state(self, now: float) -> LeaseState:
        reg = self.registration
        if now < reg.valid_to:
            return LeaseState.VALID
        if now < reg.keep_to:
            return LeaseState.INVALID
        return LeaseState.PURGED


@dataclass
class LeaseTable:
    """Leases by (host, port, suffix key); expired ones vanish on read and by sweep."""

    max_registrants: int = 0  # 0 = no cap
    leases: dict[tuple[str, int, str], Lease] = field(default_factory=dict)
    #: bumped on every change (a lease added, renewed or removed): who derives something from
    #: the leases (ChildRegistry.current) may keep it while the version and the clock allow
    version: int = 0

    def __len__(self) -> int:
        return len(self.leases)

    def register(
        self, registration: Registration, now: float, *, owner: Registrant = Registrant(), rank: int = 0,
        shared: bool = False,
    ) -> tuple[Lease, bool]:
        """Accept a (parsed, policy-checked) registration; returns (lease, is_new).

        Renewal replaces the registration.  A new key beyond ``max_registrants`` is refused with
        insufficientAccessRights (PURGED leases are swept first, so they never count).
        """
        key = registration.key
        lease = self.leases.get(key)
        if lease is not None and lease.state(now) is LeaseState.PURGED:
            del self.leases[key]
            self.version += 1
            lease = None
        if lease is not None:
            self.version += 1
            lease.registration = registration
            lease.last_renewed = now
            lease.renewals += 1
            lease.rank, lease.shared = rank, shared
            return lease, False
        if self.max_registrants and len(self.leases) >= self.max_registrants:
            self.sweep(now)
            if len(self.leases) >= self.max_registrants:
                raise InsufficientAccessRights(
                    f"this GIIS accepts at most {self.max_registrants} registrants and has that many"
                )
        lease = Lease(registration, first_registered=now, last_renewed=now, owner=owner, rank=rank, shared=shared)
        self.leases[key] = lease
        self.version += 1
        return lease, True

    def restore(self, lease: Lease, now: float) -> bool:
        """Put back a lease read from the journal (in first-registered order); False if purged."""
        if lease.state(now) is LeaseState.PURGED:
            return False
        self.leases[lease.key] = lease
        self.version += 1
        return True

    def get(self, key: tuple[str, int, str], now: float) -> Lease | None:
        """The lease under ``key`` unless it has been purged (expires on read)."""
        lease = self.leases.get(key)
        if lease is not None and lease.state(now) is LeaseState.PURGED:
            del self.leases[key]
            self.version += 1
            return None
        return lease

    def current(self, now: float) -> list[Lease]:
        """Every lease not yet purged (VALID or INVALID), in registration order."""
        out = []
        for key, lease in list(self.leases.items()):
            if lease.state(now) is LeaseState.PURGED:
                del self.leases[key]
                self.version += 1
            else:
                out.append(lease)
        return out

    def valid(self, now: float) -> list[Lease]:
        """The leases searches are forwarded to."""
        return [lease for lease in self.current(now) if lease.state(now) is LeaseState.VALID]

    def sweep(self, now: float) -> list[Lease]:
        """Remove purged leases; returns them (so their cached data can go too)."""
        gone = [lease for lease in self.leases.values() if lease.state(now) is LeaseState.PURGED]
        for lease in gone:
            del self.leases[lease.key]
        if gone:
            self.version += 1
        return gone

    def purged_from(self) -> float:
        """The earliest time a lease held now becomes PURGED (its keepto); inf when none is held."""
        return min((lease.registration.keep_to for lease in self.leases.values()), default=float("inf"))


__all__ = ["Lease", "LeaseState", "LeaseTable", "Registration", "format_generalized_time", "parse_generalized_time", "parse_registration"]
