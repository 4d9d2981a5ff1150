"""Who may hold which registration: suffix overlap, lease ownership, the registrant's address.

Pure: no I/O.  Host names are resolved by the caller (:mod:`gridinfo.giis.backend`) and the
addresses passed in.

Theory of operation
-------------------
A registration names a host, a port and a suffix; a GIIS that accepts it will connect to that
host and serve what it says under that suffix.  So, for every registration the policy
accepted (the accepting rule's ``shared`` and ``third_party`` flags apply), in this order::

    check        refused when                                            result code
    -----------  ------------------------------------------------------  -----------------------
    address      Mds-Service-hn (or what it resolves to) is unspecified,  unwillingToPerform
                 link-local or multicast (unless allow_unsafe_addresses)
    peer         Mds-Service-hn is not the connecting peer's address      insufficientAccessRights
                 and does not resolve to it (unless the rule is
                 third_party)
    owner        the same (host, port, suffix) is held by a live lease    insufficientAccessRights
                 made by another identity: renewal or replacement needs
                 the same bind DN (when the owner bound) or the same
                 peer address
    overlap      the suffix equals, contains or is contained by the      unwillingToPerform
                 GIIS's own suffix, or another live registrant's or a
                 static child's (unless both were accepted by shared
                 rules)

Every comparison is between normalised keys (:class:`gridinfo.directory.dn.DNNormaliser`), so
case, spaces, escapes and the order of multi-valued RDNs change nothing.  A registration made
in-process (``peer`` None: code and tests, not the network) skips the peer and owner checks.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from gridinfo.directory.dn import is_descendant_key, loose_key, parent_key
from gridinfo.errors import InsufficientAccessRights, UnwillingToPerform


@dataclass(frozen=True)
class Registrant:
    """Who made a registration: the bound DN ("" anonymous) and the peer address (None: in-process)."""

    bind_dn: str = ""
    peer: str | None = None


@dataclass(frozen=True)
class Holder:
    """A live child whose suffix a new registration must not overlap."""

    url: str
    suffix_key: str
    shared: bool


def as_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address written in ``text`` (IPv4-mapped IPv6 as IPv4), or None for a name."""
    try:
        address = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def unsafe_reason(address: str) -> str | None:
    """Why the GIIS must not connect to ``address`` by default, or None."""
    ip = as_address(address)
    if ip is None:
        return None
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    return None


def same_address(a: str, b: str) -> bool:
    ia, ib = as_address(a), as_address(b)
    if ia is None or ib is None:
        return a.strip().lower() == b.strip().lower()
    return ia == ib


def check_addresses(url: str, host: str, addresses: Iterable[str]) -> None:
    """Refuse a registrant whose host is (or resolves to) an address the GIIS must not dial."""
    for address in [host, *addresses]:
        reason = unsafe_reason(address)
        if reason is not None:
            raise UnwillingToPerform(
                f"registration of {url} refused: Mds-Service-hn {host!r} is {reason} ({address}); "
                f"this GIIS does not connect there (allow_unsafe_addresses)"
            )


def check_peer(url: str, host: str, addresses: Iterable[str], peer: str) -> None:
    """Mds-Service-hn must be the connecting peer's address, or a name resolving to it."""
    if same_address(host, peer) or any(same_address(a, peer) for a in addresses):
        return
    raise InsufficientAccessRights(
        f"registration of {url} refused: Mds-Service-hn {host!r} is not the address it came from "
        f"({peer}); a registrant registers itself unless the policy allows third-party registration"
    )


def check_owner(url: str, owner: Registrant, registrant: Registrant) -> None:
    """Only who made a registration may renew or replace it."""
    if registrant.peer is None or owner.peer is None:
        return
    if owner.bind_dn and registrant.bind_dn and loose_key(owner.bind_dn) == loose_key(registrant.bind_dn):
        return
    if same_address(owner.peer, registrant.peer):
        return
    made_by = f"{owner.bind_dn} from {owner.peer}" if owner.bind_dn else f"anonymous from {owner.peer}"
    by = f"{registrant.bind_dn} from {registrant.peer}" if registrant.bind_dn else f"anonymous from {registrant.peer}"
    raise InsufficientAccessRights(
        f"registration of {url} is held by {made_by}; {by} may not renew or replace it"
    )


def overlaps(a: str, b: str) -> bool:
    """Two normalised suffix keys overlap when one equals or contains the other."""
    return is_descendant_key(a, b) or is_descendant_key(b, a)


def find_collision(suffix_key: str, shared: bool, giis_suffix_key: str, holders: Iterable[Holder]) -> str | None:
    """Why a suffix may not be registered ("" names the GIIS's own), or None when it is free:
    the first holder (in ``holders``' order) it overlaps, unless both may share."""
    return HolderIndex(holders).collision(suffix_key, shared, giis_suffix_key)


class HolderIndex:
    """Holders by suffix key, for the overlap check of a registration: the holders at its key
    and at each of its ancestors, and those below it, are looked up (a few dictionary reads for
    the GLUE suffixes children register), not every holder compared with it, which made a
    GIIS's registration of n children cost n^2/2 comparisons."""

    def __init__(self, holders: Iterable[Holder] = ()):
        self._at: dict[str, list[tuple[int, Holder]]] = {}  # a holder's own suffix key
        self._below: dict[str, list[tuple[int, Holder]]] = {}  # each key strictly above it
        self._count = 0
        for holder in holders:
            self.add(holder)

    def add(self, holder: Holder) -> None:
        """One more holder, after those already held (a collision names the first)."""
        placed = (self._count, holder)
        self._count += 1
        self._at.setdefault(holder.suffix_key, []).append(placed)
        k = parent_key(holder.suffix_key)
        while k is not None:
            self._below.setdefault(k, []).append(placed)
            k = parent_key(k)

    def collision(self, suffix_key: str, shared: bool, giis_suffix_key: str) -> str | None:
        """As :func:`find_collision` over the holders added, in the order they were added."""
        if overlaps(suffix_key, giis_suffix_key):
            return "the GIIS's own suffix"
        first: tuple[int, Holder] | None = None
        groups = [self._below.get(suffix_key, ())]
        k: str | None = suffix_key
        while k is not None:
            groups.append(self._at.get(k, ()))
            k = parent_key(k)
        for group in groups:
            for placed in group:
                if first is not None and placed[0] >= first[0]:
                    break  # a group is in the order of adding: nothing later in it comes first
                if not (shared and placed[1].shared):
                    first = placed
                    break
        return first[1].url if first is not None else None
