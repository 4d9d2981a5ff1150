"""The GIIS routing chain on a task.Clock with fake children: no sockets, no sleeping."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer, task

from gridinfo.config import GIISConfig, LimitsConfig, StaticChildConfig
from gridinfo.directory.filters import parse_filter
from gridinfo.directory.query import Scope, SearchRequest
from gridinfo.directory.schema import default_schema
from gridinfo.directory.tree import DirectoryTree
from gridinfo.errors import NoSuchObject, ResultCode
from gridinfo.giis.backend import GIISBackend
from gridinfo.giis.leases import parse_generalized_time
from gridinfo.ldap.registrar import registration_message
from gridinfo.ldap.client import ClientResult, decode_entry
from gridinfo.ldap.tree_backend import add_base_entries
from tests.giis.fakes import FakeClients, entry

SITE = "mds-vo-name=site,o=grid"
T0 = 1_700_000_000.0


def ces(name: str, n: int = 2, suffix: str = "mds-vo-name=local,o=grid") -> list[bytes]:
    return [
        entry(f"GlueCEUniqueID={name}-ce{i},{suffix}", objectClass="GlueCE", GlueCEUniqueID=f"{name}-ce{i}")
        for i in range(n)
    ]


def make(config: GIISConfig | None = None) -> tuple[GIISBackend, task.Clock, FakeClients]:
    clock = task.Clock()
    clock.advance(T0)
    clients = FakeClients()
    config = config or GIISConfig(name="site")
    tree = DirectoryTree(default_schema(), indexed=("objectClass",))
    add_base_entries(tree, config.suffix)
    return GIISBackend(tree, config, clock, client_factory=clients), clock, clients


def register(backend: GIISBackend, clock: task.Clock, port: int, *, ttl: float = 60, keepto: float = 120,
             cachettl: float = 10, timeout: float = 5) -> None:
    backend.add(
        f"Mds-Vo-Op-name=register,{SITE}",
        registration_message(host="127.0.0.1", port=port, suffix="mds-vo-name=local,o=grid", now=clock.seconds(),
                             ttl=ttl, keepto=keepto, cachettl=cachettl, timeout=timeout),
        "",
    )


def search(backend: GIISBackend, flt: str = "(objectClass=GlueCE)", **kw: Any) -> Any:
    return backend.search(SearchRequest(SITE, Scope.SUB, parse_filter(flt), **kw))


def result_of(d: Any) -> Any:
    if not isinstance(d, defer.Deferred):
        return d
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "the search has not answered yet"
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


def answer(clients: FakeClients, port: int, ops: list[bytes], code: int = 0, index: int = -1) -> None:
    (_, _, d) = clients.made[("127.0.0.1", port)].searches[index]
    d.callback(ClientResult(code=code, entries=ops))


def dns(result: Any) -> list[str]:
    return sorted(decode_entry(op)[0] for op in result.entries)


def test_an_answer_within_the_timeout_is_renamed_into_the_giis_namespace_and_cached() -> None:
    """A child's entries appear under the GIIS suffix; the next search within cachettl does not ask it."""
    backend, clock, clients = make()
    register(backend, clock, 1)
    d = search(backend)
    answer(clients, 1, ces("a"))
    assert dns(result_of(d)) == [f"GlueCEUniqueID=a-ce{i},{SITE}" for i in range(2)]
    clock.advance(9)
    again = search(backend)
    assert not isinstance(again, defer.Deferred) and len(again.entries) == 2
    assert len(clients.made[("127.0.0.1", 1)].searches) == 1


def test_a_slow_child_is_waited_for_up_to_its_timeout_and_its_late_answer_serves_the_next_search() -> None:
    """The search answers at the child's timeout with a message naming it; the late answer is cached."""
    backend, clock, clients = make()
    register(backend, clock, 1)
    register(backend, clock, 2)
    d = search(backend)
    answer(clients, 1, ces("a"))
    assert not d.called
    clock.advance(4.9)
    assert not d.called
    clock.advance(0.1)
    first = result_of(d)
    assert dns(first) == [f"GlueCEUniqueID=a-ce{i},{SITE}" for i in range(2)]
    assert first.code == ResultCode.SUCCESS
    assert first.message == "partial answer: 1 of 2 children failed; no data from ldap://127.0.0.1:2/mds-vo-name=local,o=grid"
    slow = next(c for c in backend.children.all() if c.port == 2)
    assert slow.stats.state == "slow" and slow.stats.errors == 1  # counted (gridinfo_giis_child_errors)
    clock.advance(1)
    answer(clients, 2, ces("b"))  # late
    assert slow.stats.late_answers == 1
    second = search(backend)
    assert not isinstance(second, defer.Deferred) and len(second.entries) == 4 and second.message == ""


def test_a_dead_child_is_served_stale_until_keepto_then_it_and_its_lease_are_gone() -> None:
    """A failed child's last answer comes back with Mds-validto in the past until keepto; then nothing."""
    backend, clock, clients = make()
    register(backend, clock, 1)
    d = search(backend)
    answer(clients, 1, ces("a"))
    result_of(d)
    clock.advance(11)  # past cachettl: asked again, and it fails
    d = search(backend)
    clients.made[("127.0.0.1", 1)].searches[-1][2].errback(ConnectionRefusedError("refused"))
    stale = result_of(d)
    assert len(stale.entries) == 2
    for op in stale.entries:
        attrs = {k.lower(): v for k, v in decode_entry(op)[1]}
        assert parse_generalized_time(attrs["mds-validto"][0]) < clock.seconds()
    assert "last answer (marked stale) from ldap://127.0.0.1:1/" in stale.message
    clock.advance(50)  # past validto (60 s): INVALID, not asked, still stale
    asked = len(clients.made[("127.0.0.1", 1)].searches)
    invalid = search(backend)
    assert not isinstance(invalid, defer.Deferred) and len(invalid.entries) == 2
    assert len(clients.made[("127.0.0.1", 1)].searches) == asked
    clock.advance(120)  # past keepto
    assert search(backend).entries == []
    assert backend.children.current(clock.seconds()) == [] and len(backend.leases) == 0
    assert clients.made[("127.0.0.1", 1)].closed >= 1


def test_the_sweep_drops_a_purged_child_without_any_search() -> None:
    """One expiry path: the lease table's sweep removes the lease and its child."""
    backend, clock, clients = make()
    register(backend, clock, 1, ttl=60, keepto=0)
    assert len(backend.children.current(clock.seconds())) == 1
    clock.advance(61)
    assert backend.sweep() == 1
    assert len(backend.leases) == 0 and backend.children.all() == []


@pytest.mark.parametrize("child_code", [0, 4])
def test_a_client_size_limit_met_by_one_child_is_size_limit_exceeded(child_code: int) -> None:
    """``ldapsearch -z 2`` through a GIIS: the entries so far and code 4, as slapd answers, whether the
    child stopped at the limit itself or sent more."""
    backend, clock, clients = make()
    register(backend, clock, 1)
    d = search(backend, size_limit=2)
    answer(clients, 1, ces("a", 2 if child_code == 4 else 3), code=child_code)
    result = result_of(d)
    assert len(result.entries) == 2 and result.code == ResultCode.SIZE_LIMIT_EXCEEDED
    again = search(backend, size_limit=2)  # from the cache: the same answer
    assert len(again.entries) == 2 and again.code == ResultCode.SIZE_LIMIT_EXCEEDED


def test_a_size_limit_the_answer_fits_in_is_success() -> None:
    """Exactly as many entries as the limit, and the child had no more: success, as in slapd."""
    backend, clock, clients = make()
    register(backend, clock, 1)
    d = search(backend, size_limit=2)
    answer(clients, 1, ces("a", 2))
    assert result_of(d).code == ResultCode.SUCCESS


def test_a_child_answering_with_an_error_is_named_in_the_message() -> None:
    """A child that fails mid-answer (e.g. a request over its size limit) is named; the code stays 0."""
    backend, clock, clients = make()
    register(backend, clock, 1)
    d = search(backend)
    answer(clients, 1, [], code=51)
    result = result_of(d)
    assert result.code == ResultCode.SUCCESS and result.entries == []
    assert result.message == "partial answer: 1 of 1 children failed; no data from ldap://127.0.0.1:1/mds-vo-name=local,o=grid"
    (child,) = backend.children.all()
    assert child.stats.state == "unreachable" and "51" in child.stats.last_error


def test_compare_on_a_child_entry_asks_the_owning_child() -> None:
    """Compare on an entry the GIIS's search returns is answered from the child, not noSuchObject."""
    backend, clock, clients = make()
    register(backend, clock, 1)
    dn = f"GlueCEUniqueID=a-ce0,{SITE}"
    d = backend.compare(dn, "GlueCEUniqueID", b"a-ce0")
    assert isinstance(d, defer.Deferred)
    (args, kw, _) = clients.made[("127.0.0.1", 1)].searches[-1]
    assert args[0].lower() == "glueceuniqueid=a-ce0,mds-vo-name=local,o=grid" and args[1] == 0
    answer(clients, 1, ces("a", 1))
    assert result_of(d) is True
    d = backend.compare(dn, "GlueCEUniqueID", b"other")
    answer(clients, 1, [])
    assert result_of(d) is False
    d = backend.compare(f"GlueCEUniqueID=none,{SITE}", "GlueCEUniqueID", b"none")
    answer(clients, 1, [], code=32)
    with pytest.raises(NoSuchObject):
        result_of(d)
    assert backend.compare(SITE, "Mds-Vo-name", b"site") is True  # our own entry: here


def test_mirror_children_answer_locally_and_honour_the_size_limit() -> None:
    """A mirrored child's entries are served from the mirror tree; a size limit cuts them with code 4."""
    config = GIISConfig(name="site", children=(StaticChildConfig(url="ldap://127.0.0.1:7/mds-vo-name=local,o=grid", mode="mirror"),))
    backend, clock, clients = make(config)
    (child,) = backend.children.all()
    d = backend.pull_mirror(child)
    suffix = entry("mds-vo-name=local,o=grid", objectClass="MdsVo", Mds_Vo_name="local")
    clients.made[("127.0.0.1", 7)].searches[-1][2].callback(ClientResult(entries=[suffix, *ces("m", 3)]))
    assert result_of(d) == 4
    everything = search(backend, "(objectClass=*)")
    assert dns(everything).count(SITE) == 1  # the GIIS's own suffix entry, not the child's as well
    assert len(search(backend).entries) == 3
    cut = search(backend, size_limit=2)
    assert len(cut.entries) == 2 and cut.code == ResultCode.SIZE_LIMIT_EXCEEDED


def test_the_server_size_limit_applies_across_children() -> None:
    """``limits.size_limit`` caps what the GIIS returns from its children, with code 4."""
    backend, clock, clients = make(GIISConfig(name="site", limits=LimitsConfig(size_limit=3)))
    register(backend, clock, 1)
    register(backend, clock, 2)
    d = search(backend)
    answer(clients, 1, ces("a"))
    answer(clients, 2, ces("b"))
    result = result_of(d)
    assert len(result.entries) == 3 and result.code == ResultCode.SIZE_LIMIT_EXCEEDED


def test_object_class_names_come_back_as_the_schema_spells_them() -> None:
    """A child storing ``objectClass: MDS`` or ``gluece`` is published as ``Mds`` / ``GlueCE`` (as slapd
    answers), forwarded or mirrored, so a BDII above sees no change where there is none."""
    backend, clock, clients = make()
    register(backend, clock, 1)
    d = search(backend, "(objectClass=*)")
    answer(clients, 1, [entry("GlueCEUniqueID=x,mds-vo-name=local,o=grid", objectClass="gluece", GlueCEUniqueID="x"),
                        entry("Mds-Vo-name=sub,mds-vo-name=local,o=grid", objectClass="MDS", Mds_Vo_name="sub")])
    classes = sorted(v for op in result_of(d).entries for k, vs in decode_entry(op)[1] if k == "objectClass" for v in vs)
    assert classes == [b"GlueCE", b"Mds", b"MdsVo", b"top"]  # (top and MdsVo: the GIIS's own suffix entry)
    config = GIISConfig(name="site", children=(StaticChildConfig(url="ldap://127.0.0.1:7/mds-vo-name=local,o=grid", mode="mirror"),))
    backend, clock, clients = make(config)
    (child,) = backend.children.all()
    backend.pull_mirror(child)
    clients.made[("127.0.0.1", 7)].searches[-1][2].callback(
        ClientResult(entries=[entry("Mds-Vo-name=sub,mds-vo-name=local,o=grid", objectClass="MDS", Mds_Vo_name="sub")])
    )
    (op,) = search(backend, "(Mds-Vo-name=sub)").entries
    assert dict(decode_entry(op)[1])["objectClass"] == [b"Mds"]


def test_a_childs_first_answer_is_not_logged_but_its_recovery_is() -> None:
    """Its registration is logged already, so its first answer adds no info line (1,000 of them
    were a tenth of the first search's CPU); answering again after failing is logged."""
    from twisted.logger import LogLevel, capturedLogs

    backend, clock, clients = make()
    register(backend, clock, 1, cachettl=1)
    with capturedLogs() as events:
        d = search(backend)
        answer(clients, 1, ces("a", 1))
        result_of(d)
    assert not [e for e in events if e["log_level"] >= LogLevel.info and "child" in e["log_format"]]
    clock.advance(2)
    d = search(backend)
    answer(clients, 1, [], code=51)
    result_of(d)
    clock.advance(2)
    with capturedLogs() as events:
        d = search(backend)
        answer(clients, 1, ces("a", 1))
        result_of(d)
    assert [e["state"] for e in events if e.get("log_format") == "child {url} is {state}"] == ["ok"]
