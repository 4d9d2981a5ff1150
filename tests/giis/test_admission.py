"""Who may register what at a GIIS, with the shipped default policy, on a task.Clock: no sockets.

Each test is an attack from the hardening issue (forged registrations) or the legitimate use it
must not break (many GRIS sharing mds-vo-name=local,o=grid, renewals by their maker).
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from twisted.internet import defer, task
from twisted.logger import globalLogPublisher

from gridinfo.config import GIISConfig, PolicyRuleConfig
from gridinfo.directory.schema import default_schema
from gridinfo.directory.tree import DirectoryTree
from gridinfo.errors import InsufficientAccessRights, ResultCode, UnwillingToPerform
from gridinfo.giis.backend import GIISBackend
from gridinfo.giis.ownership import Registrant, check_owner, find_collision, Holder, HolderIndex, overlaps, unsafe_reason
from gridinfo.ldap.registrar import registration_message
from gridinfo.ldap.tree_backend import add_base_entries
from tests.giis.fakes import FakeClients
from tests.giis.test_backend import SITE, T0, answer, ces, dns, result_of, search

DN = f"Mds-Vo-Op-name=register,{SITE}"
LOCAL = "mds-vo-name=local,o=grid"


def make(config: GIISConfig | None = None, resolve: Any = None) -> tuple[GIISBackend, task.Clock, FakeClients]:
    clock = task.Clock()
    clock.advance(T0)
    clients = FakeClients()
    config = config or GIISConfig(name="site")
    tree = DirectoryTree(default_schema(), indexed=("objectClass",))
    add_base_entries(tree, config.suffix)
    return GIISBackend(tree, config, clock, client_factory=clients, resolve=resolve), clock, clients


def add(backend: GIISBackend, clock: task.Clock, *, host: str = "127.0.0.1", port: int = 2135,
        suffix: str = LOCAL, peer: str | None = "127.0.0.1", bind_dn: str = "", ttl: float = 600) -> Any:
    return backend.add(DN, registration_message(host=host, port=port, suffix=suffix, now=clock.seconds(), ttl=ttl),
                       bind_dn, peer)


@pytest.fixture
def logged() -> Any:
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def test_many_gris_share_the_local_suffix_under_the_default_policy() -> None:
    """MDS2's layout keeps working: every GRIS registers mds-vo-name=local,o=grid, each from its own address."""
    backend, clock, _ = make()
    add(backend, clock, host="127.0.0.1", port=1, peer="127.0.0.1")
    add(backend, clock, host="127.0.0.1", port=2, peer="127.0.0.1")
    add(backend, clock, host="192.0.2.7", port=2135, suffix="Mds-Vo-name=Local, O=Grid", peer="192.0.2.7")
    assert len(backend.leases) == 3


@pytest.mark.parametrize("suffix", [
    "o=grid", "O=Grid", " o = grid ", SITE, "Mds-Vo-name=SITE, o=Grid", "GlueCEUniqueID=x,mds-vo-name=site,o=grid",
])
def test_a_suffix_overlapping_the_giis_own_is_refused(suffix: str, logged: list[dict[str, Any]]) -> None:
    """Nobody anonymous can claim all of o=grid or the GIIS's own suffix, however it is spelled."""
    backend, clock, _ = make()
    with pytest.raises(UnwillingToPerform) as e:
        add(backend, clock, suffix=suffix)
    assert "overlaps this GIIS's own" in e.value.message
    assert e.value.code == ResultCode.UNWILLING_TO_PERFORM
    assert any("refused registration" in str(ev.get("log_format", "")) for ev in logged)
    assert len(backend.leases) == 0


@pytest.mark.parametrize("variant", [
    "mds-vo-name=child,o=grid", "MDS-VO-NAME=Child, O=GRID", "mds-vo-name=child ,o=grid",
    "GlueSiteUniqueID=x,mds-vo-name=child,o=grid", "cn=x+mds-vo-name=child,o=grid",
])
def test_another_registrants_suffix_is_refused_in_any_spelling(variant: str, logged: list[dict[str, Any]]) -> None:
    """A child GIIS's suffix belongs to it: a second registrant cannot serve it, or inside it, by respelling it."""
    backend, clock, _ = make()
    first = "cn=x+mds-vo-name=child,o=grid" if "+" in variant else "mds-vo-name=child,o=grid"
    add(backend, clock, host="192.0.2.1", peer="192.0.2.1", suffix=first if "+" not in variant else "mds-vo-name=child+cn=x,o=grid")
    with pytest.raises(UnwillingToPerform) as e:
        add(backend, clock, host="192.0.2.66", peer="192.0.2.66", suffix=variant)
    assert "ldap://192.0.2.1:2135/" in e.value.message and "already registered" in e.value.message
    collision = [ev for ev in logged if "suffix collision" in str(ev.get("log_format", ""))]
    assert collision and "192.0.2.66" in collision[0]["new"] and "192.0.2.1" in collision[0]["holder"]


def test_a_suffix_containing_a_registrants_is_refused() -> None:
    """Registering o=glue over a child that serves GLUE2DomainID=x,o=glue is a collision too."""
    backend, clock, _ = make()
    add(backend, clock, host="192.0.2.1", peer="192.0.2.1", suffix="GLUE2DomainID=x,o=glue")
    with pytest.raises(UnwillingToPerform):
        add(backend, clock, host="192.0.2.66", peer="192.0.2.66", suffix="o=glue")


def test_mds_service_hn_must_be_the_peer() -> None:
    """A registration cannot point the GIIS at another host (no eviction, no request forgery)."""
    backend, clock, _ = make()
    with pytest.raises(InsufficientAccessRights) as e:
        add(backend, clock, host="127.0.0.1", port=2135, peer="192.0.2.66")
    assert "is not the address it came from (192.0.2.66)" in e.value.message


def test_a_name_is_accepted_when_it_resolves_to_the_peer() -> None:
    """Mds-Service-hn may be the registrant's host name, when that name resolves to the peer."""
    names = {"ce.example.org": ["192.0.2.5"]}
    backend, clock, _ = make(resolve=lambda name: defer.succeed(names.get(name, [])))
    result_of(add(backend, clock, host="ce.example.org", peer="192.0.2.5"))
    assert len(backend.leases) == 1
    d = add(backend, clock, host="ce.example.org", port=9, peer="192.0.2.66")
    with pytest.raises(InsufficientAccessRights):
        result_of(d)


@pytest.mark.parametrize("host", ["169.254.169.254", "0.0.0.0", "224.0.0.1", "fe80::1", "::"])
def test_unsafe_addresses_are_refused_by_default(host: str) -> None:
    """Cloud metadata (link-local), unspecified and multicast addresses are never dialled by default."""
    backend, clock, _ = make()
    with pytest.raises(UnwillingToPerform) as e:
        add(backend, clock, host=host, peer=host)
    assert "allow_unsafe_addresses" in e.value.message


def test_a_name_resolving_to_an_unsafe_address_is_refused() -> None:
    """A DNS name pointing at the metadata service is refused like the address itself."""
    backend, clock, _ = make(resolve=lambda name: defer.succeed(["169.254.169.254"]))
    with pytest.raises(UnwillingToPerform):
        result_of(add(backend, clock, host="metadata.example.org", peer="169.254.169.254"))


def test_allow_unsafe_addresses_lets_them_in() -> None:
    """A site on a link-local network says so in the config."""
    backend, clock, _ = make(GIISConfig(name="site", allow_unsafe_addresses=True))
    add(backend, clock, host="fe80::1", peer="fe80::1")
    assert len(backend.leases) == 1


def test_only_the_maker_renews_even_when_third_party_is_allowed() -> None:
    """With third-party registration allowed, another peer still cannot shorten a lease to 2 s (eviction)."""
    policy = (PolicyRuleConfig(filter="(Mds-Service-hn=*)", third_party=True, shared=True),)
    backend, clock, _ = make(GIISConfig(name="site", policy=policy))
    add(backend, clock, host="192.0.2.1", peer="192.0.2.1", ttl=600)
    with pytest.raises(InsufficientAccessRights) as e:
        add(backend, clock, host="192.0.2.1", peer="192.0.2.66", ttl=2)
    assert "held by anonymous from 192.0.2.1" in e.value.message
    (lease,) = backend.leases.leases.values()
    assert lease.registration.valid_to == T0 + 600
    add(backend, clock, host="192.0.2.1", peer="192.0.2.1", ttl=900)  # the maker renews
    assert lease.registration.valid_to == T0 + 900


def test_a_bound_maker_renews_from_another_address() -> None:
    """A registrant that bound may renew from a new address (same identity); others may not."""
    owner = Registrant("cn=ce,o=grid", "192.0.2.1")
    check_owner("u", owner, Registrant("CN=ce, o=grid", "192.0.2.9"))
    with pytest.raises(InsufficientAccessRights):
        check_owner("u", owner, Registrant("cn=other,o=grid", "192.0.2.9"))


def test_the_overlap_rule_and_the_address_classes_follow_their_tables() -> None:
    """The overlap rule and the address classes, as tables."""
    assert find_collision("o=grid", False, "mds-vo-name=site,o=grid", []) == "the GIIS's own suffix"
    assert find_collision("mds-vo-name=local,o=grid", True, "mds-vo-name=site,o=grid",
                          [Holder("a", "mds-vo-name=local,o=grid", True)]) is None
    assert find_collision("mds-vo-name=local,o=grid", False, "mds-vo-name=site,o=grid",
                          [Holder("a", "mds-vo-name=local,o=grid", True)]) == "a"
    assert unsafe_reason("::ffff:169.254.1.1") == "a link-local address"
    assert unsafe_reason("127.0.0.1") is None and unsafe_reason("host.example.org") is None


def test_the_holder_index_finds_what_comparing_with_every_holder_finds() -> None:
    """The index's answer is the pairwise rule's (the first holder in order that overlaps, unless
    both may share) on random holders: equal, nested and disjoint suffixes, escaped commas and
    escaped backslashes before a separator."""
    rdns = ["mds-vo-name=a", "mds-vo-name=b", "glueseuniqueid=x\\,y", "gluesiteuniqueid=s", "cn=x\\\\"]
    rng = random.Random(7)

    def suffix() -> str:
        return ",".join(rng.choice(rdns) for _ in range(rng.randint(0, 3))) + (",o=grid" if rng.random() < 0.9 else "")

    for _ in range(300):
        holders = [Holder(f"ldap://h{i}", suffix().lstrip(","), rng.random() < 0.5) for i in range(rng.randint(0, 12))]
        index = HolderIndex(holders)
        for _ in range(10):
            key, shared = suffix().lstrip(","), rng.random() < 0.5
            pairwise = "the GIIS's own suffix" if overlaps(key, "mds-vo-name=site,o=glue") else next(
                (h.url for h in holders if overlaps(key, h.suffix_key) and not (shared and h.shared)), None)
            assert index.collision(key, shared, "mds-vo-name=site,o=glue") == pairwise, (key, shared, holders)


def test_registrations_see_the_leases_as_they_change() -> None:
    """The overlap check keeps its holders between registrations, never past a change: a new
    child's suffix is taken at once, a renewal that stops sharing is seen, and a lease purged by
    the clock frees its suffix."""
    backend, clock, _ = make()
    for i in range(50):
        add(backend, clock, host=f"192.0.2.{i + 1}", peer=f"192.0.2.{i + 1}", suffix=f"mds-vo-name=c{i},o=grid", ttl=60)
    with pytest.raises(UnwillingToPerform) as e:
        add(backend, clock, host="192.0.2.99", peer="192.0.2.99", suffix="GlueSiteUniqueID=s,mds-vo-name=c49,o=grid")
    assert "ldap://192.0.2.50:2135/" in e.value.message
    add(backend, clock, host="192.0.2.99", peer="192.0.2.99", suffix="mds-vo-name=c99,o=grid", ttl=600)
    with pytest.raises(UnwillingToPerform):
        add(backend, clock, host="192.0.2.98", peer="192.0.2.98", suffix="mds-vo-name=c99,o=grid")
    # the fifty leases run out and are purged (keepto): their suffixes are free again
    clock.advance(3600)
    add(backend, clock, host="192.0.2.99", peer="192.0.2.99", suffix="mds-vo-name=c99,o=grid", ttl=600)  # renewed
    add(backend, clock, host="192.0.2.98", peer="192.0.2.98", suffix="GlueSiteUniqueID=s,mds-vo-name=c49,o=grid")
    with pytest.raises(UnwillingToPerform) as e:
        add(backend, clock, host="192.0.2.97", peer="192.0.2.97", suffix="mds-vo-name=c49,o=grid")
    assert "ldap://192.0.2.98:2135/" in e.value.message


def test_duplicate_dns_are_served_once_from_the_first_registrant(logged: list[dict[str, Any]]) -> None:
    """A second GRIS serving the first one's DNs (forged 99999 free CPUs) is not served for them."""
    backend, clock, clients = make()
    add(backend, clock, host="127.0.0.1", port=1, peer="127.0.0.1")
    add(backend, clock, host="127.0.0.2", port=2, peer="127.0.0.2")
    d = search(backend)
    answer(clients, 1, ces("a"))
    forged = [op.replace(b"a-ce", b"A-CE") for op in ces("a")] + ces("b", 1)
    (_, _, pending) = clients.made[("127.0.0.2", 2)].searches[-1]
    from gridinfo.ldap.client import ClientResult

    pending.callback(ClientResult(code=0, entries=forged))
    got = dns(result_of(d))
    assert got == sorted([f"GlueCEUniqueID=a-ce0,{SITE}", f"GlueCEUniqueID=a-ce1,{SITE}", f"GlueCEUniqueID=b-ce0,{SITE}"])
    dup = [ev for ev in logged if "duplicate DN" in str(ev.get("log_format", ""))]
    assert dup and "127.0.0.1:1" in dup[0]["winner"] and "127.0.0.2:2" in dup[0]["loser"]


def test_anonymous_readers_see_a_coarse_status_only() -> None:
    """giisregistrationstatus and o=infosys tell anonymous readers "unreachable", not the error (no port scanner)."""
    from gridinfo.directory.filters import parse_filter
    from gridinfo.directory.query import Scope, SearchRequest

    backend, clock, clients = make()
    add(backend, clock, host="127.0.0.1", port=1, peer="127.0.0.1")
    d = search(backend)
    (_, _, pending) = clients.made[("127.0.0.1", 1)].searches[-1]
    pending.errback(ConnectionRefusedError("Connection was refused by other side: 111: Connection refused."))
    result_of(d)

    def status(bind_dn: str) -> bytes:
        request = SearchRequest(SITE, Scope.BASE, parse_filter("(objectClass=*)"), ("giisregistrationstatus",),
                                bind_dn=bind_dn)
        return b"".join(result_of(backend.search(request)).entries)

    assert b"unreachable" in status("") and b"refused" not in status("")
    assert b"refused" in status("cn=admin,o=grid")
    infosys = result_of(backend.search(SearchRequest("o=infosys", Scope.SUB, parse_filter("(objectClass=GridinfoChildStatus)"))))
    body = b"".join(infosys.entries)
    assert b"unreachable" in body and b"refused" not in body


def test_journaled_registrations_come_back_after_a_restart(tmp_path: Any) -> None:
    """A GIIS restarted on the same journal lists its registrants at once, with their leases and owners."""
    config = GIISConfig(name="site", journal=str(tmp_path / "giis.sqlite"))
    backend, clock, _ = make(config)
    add(backend, clock, host="127.0.0.1", port=1, peer="127.0.0.1", ttl=600)
    add(backend, clock, host="127.0.0.1", port=2, peer="127.0.0.1", ttl=30)
    backend.stop()
    again, clock2, _ = make(config)
    leases = {lease.key[1]: lease for lease in again.leases.leases.values()}
    assert set(leases) == {1, 2}
    assert leases[1].registration.valid_to == T0 + 600 and leases[1].owner == Registrant("", "127.0.0.1")
    with pytest.raises(InsufficientAccessRights):  # ownership survives the restart
        add(again, clock2, host="127.0.0.1", port=1, peer="192.0.2.66")
    clock2.advance(31)
    again.sweep()  # port 2's lease ended (keepto = validto): gone from the table and the journal
    assert again.admission.journal is not None and again.admission.journal.count() == 1
    again.stop()
    third, _, _ = make(config)
    assert [lease.key[1] for lease in third.leases.leases.values()] == [1]


def test_a_forged_copy_cannot_slip_into_a_search_the_real_copy_does_not_match() -> None:
    """Once the real GRIS served a DN, a later registrant's copy is never served, whatever the filter."""
    from gridinfo.ldap.client import ClientResult

    backend, clock, clients = make()
    add(backend, clock, host="127.0.0.1", port=1, peer="127.0.0.1")
    add(backend, clock, host="127.0.0.2", port=2, peer="127.0.0.2")
    d = search(backend)
    answer(clients, 1, ces("a"))
    clients.made[("127.0.0.2", 2)].searches[-1][2].callback(ClientResult(code=0, entries=[]))
    assert len(result_of(d).entries) == 2
    d = search(backend, "(GlueCEStateFreeCPUs>=1000)")
    answer(clients, 1, [])  # the real CEs do not match
    clients.made[("127.0.0.2", 2)].searches[-1][2].callback(ClientResult(code=0, entries=ces("a")))  # forged ones do
    assert result_of(d).entries == []


def test_a_gris_cannot_write_into_a_child_giis_subtree() -> None:
    """Entries a GRIS publishes below mds-vo-name=child (a child GIIS's mount point) are not served; the child's are."""
    from gridinfo.ldap.client import ClientResult

    backend, clock, clients = make()
    add(backend, clock, host="127.0.0.1", port=1, peer="127.0.0.1", suffix="mds-vo-name=child,o=grid")
    add(backend, clock, host="127.0.0.2", port=2, peer="127.0.0.2")
    d = search(backend)
    answer(clients, 1, ces("real", 1, suffix="mds-vo-name=child,o=grid"))
    intruder = ces("fake", 1, suffix="mds-vo-name=child,mds-vo-name=local,o=grid") + ces("own", 1)
    clients.made[("127.0.0.2", 2)].searches[-1][2].callback(ClientResult(code=0, entries=intruder))
    assert dns(result_of(d)) == sorted([f"GlueCEUniqueID=real-ce0,mds-vo-name=child,{SITE}", f"GlueCEUniqueID=own-ce0,{SITE}"])
