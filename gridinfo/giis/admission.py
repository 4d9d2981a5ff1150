"""Admitting a registration: parse, policy, ownership and address checks, lease, journal.

The steps of one registration add, in order (each refusal is an LDAP result with its code and
a message, and a log line; a collision's names both registrants)::

    step         module                       refuses with
    -----------  ---------------------------  -------------------------------------------------
    parse        leases.parse_registration    objectClassViolation, constraintViolation
    policy       policy                       insufficientAccessRights, invalidCredentials
    address      ownership.check_addresses    unwillingToPerform (unspecified/link-local/multicast)
    peer         ownership.check_peer         insufficientAccessRights (hn is not the peer)
    owner        ownership.check_owner        insufficientAccessRights (held by someone else)
    overlap      ownership.HolderIndex        unwillingToPerform (suffix collides)
    lease        leases.LeaseTable.register   insufficientAccessRights (registrant cap)
    journal      giis.journal                 unavailable (the disk failed; the lease holds)

A host name (not an address) in ``Mds-Service-hn`` is resolved off the reactor thread; then
the add answers when the resolution does.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, threads
from twisted.internet.interfaces import IReactorThreads, IReactorTime
from twisted.logger import Logger

from gridinfo.config import GIISConfig
from gridinfo.errors import GridinfoError, LDAPError, Unavailable, UnwillingToPerform
from gridinfo.giis.children import ChildRegistry
from gridinfo.giis.journal import RegistrationJournal
from gridinfo.giis.leases import Lease, LeaseTable, Registration, format_generalized_time, parse_registration
from gridinfo.giis.ownership import (
    Holder, HolderIndex, Registrant, as_address, check_addresses, check_owner, check_peer,
)
from gridinfo.giis.policy import RegistrationPolicy

log = Logger()

Resolver = Callable[[str], "defer.Deferred[list[str]]"]


def _getaddrinfo(name: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return sorted({str(info[4][0]) for info in infos})


def default_resolver(reactor: Any) -> Resolver:
    """getaddrinfo in the reactor's thread pool (a slow DNS answer never blocks the reactor)."""
    if IReactorThreads.providedBy(reactor):
        return lambda name: threads.deferToThreadPool(reactor, reactor.getThreadPool(), _getaddrinfo, name)
    return lambda name: defer.succeed(_getaddrinfo(name))


class Admission:
    """Decides registrations for one GIIS and records the accepted ones."""

    def __init__(
        self,
        config: GIISConfig,
        reactor: IReactorTime,
        policy: RegistrationPolicy,
        leases: LeaseTable,
        children: ChildRegistry,
        normalise: Callable[[str], str],
        giis_suffix_key: str,
        *,
        journal: RegistrationJournal | None = None,
        resolve: Resolver | None = None,
    ):
        self.config = config
        self.reactor = reactor
        self.policy = policy
        self.leases = leases
        self.children = children
        self.normalise = normalise
        self.giis_suffix_key = giis_suffix_key
        self.journal = journal
        self.resolve = resolve if resolve is not None else default_resolver(reactor)
        #: the live holders' suffixes (:meth:`_holders`), with the lease table's version and the
        #: static children's count they were read at, and the time the first may be purged
        self._holders_index: tuple[HolderIndex, tuple[int, int], float] | None = None

    def restore(self) -> int:
        """Load the journal's leases into the table (at start); returns how many."""
        if self.journal is None:
            return 0
        now = self.reactor.seconds()
        restored = sum(1 for lease in self.journal.load(now) if self.leases.restore(lease, now))
        if restored:
            log.info("restored {n} registrations from {path}", n=restored, path=self.journal.path)
        return restored

    def purge(self, now: float) -> None:
        if self.journal is not None:
            try:
                self.journal.purge(now)
            except GridinfoError as e:
                log.error("{error}", error=str(e))

    def admit(
        self, dn: str, attributes: list[tuple[str, list[bytes]]], registrant: Registrant
    ) -> defer.Deferred[None] | None:
        """Accept a registration (None, or a Deferred when a name had to be resolved) or raise."""
        c = self.config
        now = self.reactor.seconds()
        try:
            registration = parse_registration(
                attributes, now=now, normalise_suffix=self.normalise, max_lease=c.max_lease,
                default_timeout=c.default_timeout, default_cachettl=c.default_cachettl,
            )
        except LDAPError as e:
            log.warn("refused registration: {error}", error=e.message, peer=registrant.peer)
            raise
        rank, rule = self.policy.check_ranked(dn, registration, registrant.bind_dn)
        if self.children.is_static(registration.key):
            return None  # listed in the config: the static entry rules
        host = registration.host
        if as_address(host) is not None or host.lower() == "localhost":
            addresses = [host] if host.lower() != "localhost" else ["127.0.0.1", "::1"]
            self._decide(registration, rank, rule.shared, rule.third_party, registrant, addresses)
            return None
        resolved = self.resolve(host)

        def decide(addresses: list[str]) -> None:
            self._decide(registration, rank, rule.shared, rule.third_party, registrant, addresses)

        return resolved.addCallback(decide)

    def _decide(
        self, registration: Registration, rank: int, shared: bool, third_party: bool, registrant: Registrant,
        addresses: list[str],
    ) -> None:
        url = registration.url
        try:
            if not self.config.allow_unsafe_addresses:
                check_addresses(url, registration.host, addresses)
            if registrant.peer is not None and not third_party:
                check_peer(url, registration.host, addresses, registrant.peer)
            now = self.reactor.seconds()
            existing = self.leases.get(registration.key, now)
            if existing is not None:
                check_owner(url, existing.owner, registrant)
            else:
                self._check_overlap(registration, shared, now, registrant)
            version = self.leases.version
            lease, new = self.leases.register(registration, now, owner=registrant, rank=rank, shared=shared)
            self._holders_added(lease, new, version)
        except LDAPError as e:
            log.warn("refused registration of {url}: {error}", url=url, error=e.message, peer=registrant.peer,
                     bind_dn=registrant.bind_dn)
            raise
        if self.journal is not None:
            try:
                self.journal.save(lease)
            except GridinfoError as e:  # the disk failed: the lease stays, the client hears why
                log.error("{error}", error=str(e))
                raise Unavailable(f"registration of {url} accepted but not journaled: {e}") from None
        if new:
            log.info("registered {url} until {validto}", url=url,
                     validto=format_generalized_time(registration.valid_to), peer=registrant.peer)
        else:
            log.debug("renewed {url}", url=url)

    def _holders(self, now: float) -> HolderIndex:
        """The live leases' and the static children's suffixes, read again only when the lease
        table changed otherwise than by a new lease (added to it) or one may have been purged."""
        kept = self._holders_index
        if kept is not None and kept[1] == self._holders_version() and now < kept[2]:
            return kept[0]
        leases = self.leases.current(now)
        index = HolderIndex(Holder(child.url, child.key[2], False) for child in self.children.static.values())
        for lease in leases:
            index.add(Holder(lease.registration.url, lease.registration.suffix_key, lease.shared))
        until = min((lease.registration.keep_to for lease in leases), default=float("inf"))
        self._holders_index = (index, self._holders_version(), until)
        return index

    def _holders_version(self) -> tuple[int, int]:
        return self.leases.version, len(self.children.static)

    def _holders_added(self, lease: Lease, new: bool, version: int) -> None:
        """After ``leases.register`` (the table at ``version`` before it): a new lease joins the
        kept index, as the last holder; any other change leaves the index behind the table's
        version, so the next check reads the holders again."""
        kept = self._holders_index
        if kept is None or not new or kept[1] != (version, len(self.children.static)) \
                or self.leases.version != version + 1:
            return
        index, _, until = kept
        index.add(Holder(lease.registration.url, lease.registration.suffix_key, lease.shared))
        self._holders_index = (index, self._holders_version(), min(until, lease.registration.keep_to))

    def _check_overlap(self, registration: Registration, shared: bool, now: float, registrant: Registrant) -> None:
        collision = self._holders(now).collision(registration.suffix_key, shared, self.giis_suffix_key)
        if collision is None and self.children.layout is not None:
            try:
                collision = self.children.collision(registration.suffix, shared,
                                                    exclude=(registration.host.lower(), registration.port))
            except ValueError as e:  # a base under neither o=grid nor o=glue
                log.warn("refused registration of {url}: {error}", url=registration.url, error=str(e))
                raise UnwillingToPerform(f"registration of {registration.url} refused: {e}") from None
        if collision is None:
            return
        if collision == "the GIIS's own suffix":
            message = (f"registration of {registration.url} refused: its suffix overlaps this GIIS's own "
                       f"({registration.suffix_key} vs {self.giis_suffix_key})")
        else:
            message = (f"registration of {registration.url} refused: its suffix {registration.suffix_key} "
                       f"overlaps that of {collision}, already registered")
            log.warn("suffix collision: {new} (from {peer}) would overlap {holder}; refused",
                     new=registration.url, holder=collision, peer=registrant.peer)
        raise UnwillingToPerform(message)
