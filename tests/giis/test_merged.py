"""Merged answers, the children list and the registration status are kept while nothing they
are made of changed, and made again as soon as something did (task.Clock, fake children)."""

from __future__ import annotations

from gridinfo.directory.filters import parse_filter
from gridinfo.directory.query import Scope, SearchRequest
from gridinfo.ldap.client import decode_entry
from tests.giis.fakes import entry
from tests.giis.test_backend import SITE, answer, ces, dns, make, register, result_of, search


def warm(ports: tuple[int, ...] = (1001, 1002), cachettl: float = 10) -> tuple:  # type: ignore[type-arg]
    backend, clock, clients = make()
    for port in ports:
        register(backend, clock, port, cachettl=cachettl)
    d = search(backend)
    for port in ports:
        answer(clients, port, ces(f"c{port}"))
    result_of(d)
    return backend, clock, clients


def test_a_warm_search_is_merged_once_and_reused_counting_cache_hits() -> None:
    backend, clock, clients = warm()
    first = result_of(search(backend))
    second = result_of(search(backend))
    assert dns(first) == dns(second) and len(first.entries) == 4
    assert backend.merged.reused >= 1
    hits = [c.stats.cache_hits for c in backend.children.current(clock.seconds())]
    assert hits == [2, 2]  # both warm searches count, reused or not
    assert all(len(c.searches) == 1 for c in clients.made.values())  # nobody asked again


def test_a_new_answer_a_new_child_or_cachettl_ends_the_reuse() -> None:
    backend, clock, clients = warm()
    result_of(search(backend))
    # a child registering changes the children: its entries are in the next answer
    register(backend, clock, 1003)
    d = search(backend)
    answer(clients, 1003, ces("c1003"))
    assert len(result_of(d).entries) == 6
    assert len(result_of(search(backend)).entries) == 6
    # past cachettl every child is asked again, and what it says now is what is served
    clock.advance(11)
    d = search(backend)
    for port in (1001, 1002, 1003):
        answer(clients, port, ces(f"c{port}", n=1))
    assert len(result_of(d).entries) == 3
    assert len(result_of(search(backend)).entries) == 3


def test_a_late_answer_replacing_the_cached_one_ends_the_reuse() -> None:
    backend, clock, clients = warm(ports=(1001,))
    result_of(search(backend))
    child = backend.children.current(clock.seconds())[0]
    (key,) = child.cache
    from gridinfo.giis.answers import CachedAnswer

    child.remember(key, CachedAnswer([entry(f"GlueCEUniqueID=late,{SITE}", objectClass="GlueCE")], 0,
                                     clock.seconds()))
    assert [decode_entry(op)[0] for op in result_of(search(backend)).entries] == [f"GlueCEUniqueID=late,{SITE}"]


def test_other_requests_are_merged_apart() -> None:
    backend, clock, clients = warm(ports=(1001,))
    d = search(backend, "(GlueCEUniqueID=c1001-ce0)")
    answer(clients, 1001, ces("c1001")[:1])
    assert len(result_of(d).entries) == 1
    assert len(result_of(search(backend)).entries) == 2
    assert len(result_of(search(backend, "(GlueCEUniqueID=c1001-ce0)")).entries) == 1


def test_the_children_list_follows_registrations_and_keepto() -> None:
    backend, clock, _ = make()
    register(backend, clock, 1001, ttl=60, keepto=120)
    assert [c.port for c in backend.children.current(clock.seconds())] == [1001]
    register(backend, clock, 1002, ttl=60, keepto=300)
    assert [c.port for c in backend.children.current(clock.seconds())] == [1001, 1002]
    clock.advance(181)  # 1001 is past keepto (validto + 120 s): purged
    assert [c.port for c in backend.children.current(clock.seconds())] == [1002]


def test_the_registration_status_entry_is_made_again_when_the_child_changed() -> None:
    backend, clock, clients = make()
    register(backend, clock, 1001, ttl=60, keepto=120)
    request = SearchRequest(SITE, Scope.BASE, parse_filter("(objectClass=*)"), attributes=("giisregistrationstatus",))

    def status() -> dict[str, list[bytes]]:
        (op,) = result_of(backend.search(request)).entries
        return {name.lower(): vals for name, vals in decode_entry(op)[1]}

    first = status()
    assert first["mds-reg-status"] == [b"VALID"] and first["gridinfochildstate"] == [b"new"]
    assert status() == first
    d = search(backend)
    answer(clients, 1001, ces("c1001"))
    result_of(d)
    assert status()["gridinfochildentries"] == [b"2"]
    clock.advance(61)  # past validto: INVALID, with nothing else changed
    assert status()["mds-reg-status"] == [b"INVALID"]


def test_a_forwarded_answer_carries_the_keys_of_its_renamed_dns() -> None:
    """The keys a merge de-duplicates by are made while renaming; they are the DNs' own keys."""
    backend, clock, clients = warm(ports=(1001,))
    child = backend.children.current(clock.seconds())[0]
    (cached,) = child.cache.values()
    assert cached.keys == [backend.normaliser.key(decode_entry(op)[0]) for op in cached.entries]
    assert len(cached.keys) == 2
