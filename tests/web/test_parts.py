"""Pure parts of the web view: page rows from entries, foreign-key links, loopback endpoints,
the live-update source on a Clock, command-line flags and the YAML keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from twisted.internet import defer, task

from gridinfo.web import views
from gridinfo.web.live import PollingChanges
from gridinfo.web.wiring import http_endpoint


def test_glue2_shares_and_domains_become_queue_and_site_rows() -> None:
    site = "GLUE2DomainID=SITE-B,o=glue"
    share = f"GLUE2ShareID=s1,GLUE2ServiceID=svc,GLUE2GroupID=resource,{site}"
    rows = views.queues([
        (site, {"objectClass": ["GLUE2AdminDomain"], "GLUE2DomainID": ["SITE-B"]}),
        (share, {"objectClass": ["GLUE2ComputingShare"], "GLUE2ShareID": ["s1"],
                 "GLUE2ComputingShareMappingQueue": ["grid"], "GLUE2ComputingShareFreeSlots": ["25"],
                 "GLUE2ComputingShareUsedSlots": ["75"], "GLUE2ComputingShareRunningJobs": ["75"],
                 "GLUE2ComputingShareWaitingJobs": ["oops"], "GLUE2ComputingShareServingState": ["production"]}),
    ])
    (q,) = rows["queues"]
    assert (q["site"], q["name"], q["total"], q["free"], q["load"], q["state"]) == ("SITE-B", "grid", 100, 25, 0.75, "production")
    assert q["waiting"] is None  # not a number: missing, never zero
    (s,) = rows["sites"]
    assert (s["queues"], s["total"], s["running"], s["waiting"]) == (1, 100, 75, 0)


@pytest.mark.parametrize("attribute,value,expected", [
    ("GlueForeignKey", "GlueClusterUniqueID=ce.example.org", "(GlueClusterUniqueID=ce.example.org)"),
    ("GlueChunkKey", "GlueSEUniqueID=se(1)", "(GlueSEUniqueID=se\\281\\29)"),
    ("GLUE2ShareServiceForeignKey", "svc*", "(GLUE2ServiceID=svc\\2a)"),
    ("GLUE2ComputingShareExecutionEnvironmentForeignKey", "ee1", "(GLUE2ResourceID=ee1)"),
    ("GLUE2EndpointServiceForeignKey", "svc", "(GLUE2ServiceID=svc)"),
    ("GridinfoJobVM", "vm-1", "(GridinfoVMID=vm-1)"),
    ("GlueForeignKey", "no equals sign", None),
    ("GlueCEName", "short", None),
])
def test_foreign_keys_become_search_links(attribute: str, value: str, expected: str | None) -> None:
    assert views.link_filter(attribute, value) == expected


@pytest.mark.parametrize("given,served", [
    ("tcp:8080", "tcp:8080:interface=127.0.0.1"),
    ("8080", "tcp:8080:interface=127.0.0.1"),
    ("tcp6:8080", "tcp6:8080:interface=\\:\\:1"),
    ("tcp:8080:interface=0.0.0.0", "tcp:8080:interface=0.0.0.0"),  # configured otherwise
    ("unix:/run/gridinfo/web.sock", "unix:/run/gridinfo/web.sock"),
])
def test_http_endpoints_are_loopback_unless_an_interface_is_named(given: str, served: str) -> None:
    assert http_endpoint(given) == served


class Reader:
    def __init__(self) -> None:
        self.value = "1"

    def naming_contexts(self) -> list[str]:
        return ["o=grid"]

    def search_encoded(self, base: str, *a: Any, **kw: Any) -> defer.Deferred[Any]:
        from gridinfo.directory.query import SearchResult

        return defer.succeed(SearchResult(entries=[b"cn=x,o=grid v=" + self.value.encode()]))


def test_live_changes_poll_only_while_someone_listens_and_tell_each_change() -> None:
    clock = task.Clock()
    reader = Reader()
    live = PollingChanges(reader, clock, interval=5)
    assert live.checks == 0 and live.subscribers == 0
    seen: list[str] = []
    unsubscribe = live.subscribe(seen.append)
    assert live.checks == 1 and seen == []  # the first check only learns the digest
    clock.advance(5)
    assert seen == []  # nothing changed
    reader.value = "2"
    clock.advance(5)
    assert seen == ["1"] and live.token == "1"
    unsubscribe()
    reader.value = "3"
    clock.advance(50)
    assert live.checks == 3 and seen == ["1"]  # nobody listens: no more checks
    live.changed()  # a change stream can feed the same interface
    assert live.token == "2"


def test_live_changes_from_the_change_stream_tell_a_burst_once_and_ignore_status() -> None:
    """Pages of a daemon whose backend has a change stream (``sync_view``; a GRIS's tree here)
    hear of its changes on the next reactor turn, with no polling."""
    from gridinfo.config import GRISConfig
    from gridinfo.ldap.tree_backend import TreeBackend
    from gridinfo.service import make_gris_tree
    from gridinfo.web.live import StreamChanges
    from gridinfo.web.reader import BackendReader

    clock = task.Clock()
    tree = make_gris_tree(GRISConfig(), wallclock=clock.seconds)
    backend = TreeBackend(tree, naming_contexts=("o=grid", "o=glue", "o=infosys"))
    live = StreamChanges(backend, BackendReader(backend, clock), clock)

    def site(uid: str, name: str) -> None:
        tree.add(tree.build(f"GlueSiteUniqueID={uid},mds-vo-name=local,o=grid",
                            [("objectClass", [b"GlueTop", b"GlueSite"]), ("GlueSiteUniqueID", [uid.encode()]),
                             ("GlueSiteName", [name.encode()])]))

    site("a", "before")  # nobody listens: nothing held
    assert tree.changelog.subscriptions == set()
    seen: list[str] = []
    unsubscribe = live.subscribe(seen.append)
    assert len(tree.changelog.subscriptions) == 2  # o=grid and o=glue; not o=infosys
    for i in range(50):
        site("a", f"flap {i}")  # a burst between two turns
    clock.advance(0)
    assert seen == ["1"]
    tree.add(tree.build("cn=gris,o=infosys", [("objectClass", [b"GridinfoServerStatus"]), ("cn", [b"gris"])]))
    clock.advance(0)
    assert seen == ["1"]  # status entries under o=infosys are not page content
    for i in range(2000):  # past the subscription's bound: still one change, and it is renewed
        site(f"s{i}", "x")
    clock.advance(0)
    site("a", "after")
    clock.advance(0)
    assert seen == ["1", "2", "3"]
    assert live.checks == 3 and not live.polling and clock.getDelayedCalls() == []  # no timer: nothing polls
    unsubscribe()
    assert tree.changelog.subscriptions == set()


def test_a_daemon_whose_backend_has_sync_view_is_wired_to_its_change_stream() -> None:
    """The wiring picks the change stream for any backend with ``sync_view`` (a GRIS today; a
    GIIS once its backend has one), polling for the others."""
    from dataclasses import replace

    from gridinfo.config import GIISConfig, GRISConfig
    from gridinfo.service import make_giis_service, make_gris_service
    from gridinfo.web.live import StreamChanges

    clock = task.Clock()
    gris = make_gris_service(replace(GRISConfig(), http=("tcp:0",)), clock)
    assert isinstance(gris.web.live, StreamChanges)  # type: ignore[attr-defined]
    seen: list[str] = []
    unsubscribe = gris.web.live.subscribe(seen.append)  # type: ignore[attr-defined]
    tree = gris.backend.tree  # type: ignore[attr-defined]
    tree.add(tree.build("GlueSiteUniqueID=a,mds-vo-name=local,o=grid",
                        [("objectClass", [b"GlueTop", b"GlueSite"]), ("GlueSiteUniqueID", [b"a"])]))
    clock.advance(0)
    assert seen == ["1"] and not gris.web.live.polling  # type: ignore[attr-defined]
    unsubscribe()
    giis = make_giis_service(replace(GIISConfig(), http=("tcp:0",)), clock)
    has_stream = callable(getattr(giis.backend, "sync_view", None))  # type: ignore[attr-defined]
    assert isinstance(giis.web.live, StreamChanges) == has_stream  # type: ignore[attr-defined]


def test_live_changes_poll_when_the_backend_gives_no_change_stream() -> None:
    """A backend whose ``sync_view`` refuses (or gives no changelog) still tells open pages of
    changes: by polling, logged once; nobody listening, no polling."""
    from twisted.logger import LogLevel, globalLogPublisher

    from gridinfo.config import GRISConfig
    from gridinfo.errors import UnwillingToPerform
    from gridinfo.ldap.tree_backend import TreeBackend
    from gridinfo.service import make_gris_tree
    from gridinfo.web.live import StreamChanges
    from gridinfo.web.reader import BackendReader

    class NoStream(TreeBackend):
        def sync_view(self, request: Any) -> Any:
            raise UnwillingToPerform("no change streams here")

    clock = task.Clock()
    tree = make_gris_tree(GRISConfig(), wallclock=clock.seconds)
    backend = NoStream(tree, naming_contexts=("o=grid", "o=infosys"))
    live = StreamChanges(backend, BackendReader(backend, clock), clock, interval=5)
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        seen: list[str] = []
        unsubscribe = live.subscribe(seen.append)
    finally:
        globalLogPublisher.removeObserver(events.append)
    (warning,) = [e for e in events if e.get("log_level") == LogLevel.warn]
    assert "no change streams here" in warning["error"]  # the reason, in the log
    assert live.polling and live.checks == 1
    for _ in range(5):
        clock.advance(0)
    tree.add(tree.build("GlueSiteUniqueID=b,mds-vo-name=local,o=grid",
                        [("objectClass", [b"GlueTop", b"GlueSite"]), ("GlueSiteUniqueID", [b"b"])]))
    clock.advance(5)
    for _ in range(5):
        clock.advance(0)
    assert seen == ["1"]
    unsubscribe()
    clock.advance(50)
    assert live.checks == 2  # nobody listens: no more checks


def test_http_flag_and_yaml_keys(tmp_path: Path) -> None:
    from gridinfo.cli import giis, gris
    from gridinfo.config import GRISConfig, load_config
    from gridinfo.errors import ConfigError

    args = gris.build_parser().parse_args(["--http", "tcp:8080", "--http", "tcp:8081"])
    assert gris.make_config(args).http == ("tcp:8080", "tcp:8081")
    assert giis.make_config(giis.build_parser().parse_args(["--http", "tcp:9"])).http == ("tcp:9",)
    conf = tmp_path / "gris.yaml"
    conf.write_text("http: [tcp:8080]\nweb:\n  history: web/history.sqlite\n  sample_interval: 30\n")
    config = load_config(conf, GRISConfig)
    assert config.http == ("tcp:8080",) and config.web.history == str(tmp_path / "web" / "history.sqlite")
    conf.write_text("web:\n  sample_interval: 30\n  colour: blue\n")
    with pytest.raises(ConfigError, match=r"gris.yaml:3: unknown key web.colour"):
        load_config(conf, GRISConfig)
    conf.write_text("http: tcp:8080\n")  # a scalar where a list is meant
    with pytest.raises(ConfigError, match=r"gris.yaml:1: http: expected a list of a string"):
        load_config(conf, GRISConfig)


def test_open_pages_asking_the_same_share_one_search_until_the_answer_ages() -> None:
    """Identical API requests within ``cache_seconds`` (on the injected clock) cost one search;
    a failure is not kept."""
    from gridinfo.config import GRISConfig
    from gridinfo.ldap.tree_backend import TreeBackend
    from gridinfo.service import make_gris_tree
    from gridinfo.web.reader import BackendReader
    from gridinfo.web.server import Root, WebApp

    repo = Path(__file__).resolve().parents[2]
    clock = task.Clock()
    asked: list[Any] = []

    class Counting(TreeBackend):
        def search(self, request: Any) -> Any:
            asked.append(request)
            return super().search(request)

    backend = Counting(make_gris_tree(GRISConfig(ldif=(str(repo / "conf" / "ldif"),))))
    app = WebApp("gris", "mds-vo-name=local,o=grid", BackendReader(backend, clock), clock)
    root = Root(app, cache_seconds=5)

    def searches() -> int:
        return len(asked)

    answers: list[bytes] = []
    root._answer("/api/queues", {}).addCallback(answers.append)
    root._answer("/api/queues", {}).addCallback(answers.append)  # while the first is answered
    for _ in range(20):
        clock.advance(0)  # the sliced searches' later turns
    assert len(answers) == 2 and answers[0] == answers[1] and b"EXAMPLE-SITE" in answers[0]
    assert searches() == 1
    clock.advance(4)
    root._answer("/api/queues", {}).addCallback(answers.append)
    assert searches() == 1 and root.cache_hits == 2
    clock.advance(1)  # 5 s old: asked again
    root._answer("/api/queues", {}).addCallback(answers.append)
    for _ in range(20):
        clock.advance(0)
    assert searches() == 2 and len(answers) == 4
    failures: list[Any] = []
    for _ in range(2):
        root._answer("/api/entry", {"dn": "o=nowhere"}).addErrback(failures.append)
        for _ in range(5):
            clock.advance(0)
    assert [f.value.status for f in failures] == [404, 404] and searches() == 6  # base + children, twice


def test_an_announced_change_ends_the_reuse_of_an_answer() -> None:
    """A page refreshing on a change must not get the answer from before it: the answer cache is
    kept per live-update token (a push arrives faster than ``cache_seconds`` runs out)."""
    from gridinfo.config import GRISConfig
    from gridinfo.ldap.tree_backend import TreeBackend
    from gridinfo.service import make_gris_tree
    from gridinfo.web.live import PollingChanges
    from gridinfo.web.reader import BackendReader
    from gridinfo.web.server import Root, WebApp

    repo = Path(__file__).resolve().parents[2]
    clock = task.Clock()
    tree = make_gris_tree(GRISConfig(ldif=(str(repo / "conf" / "ldif"),)))
    reader = BackendReader(TreeBackend(tree), clock)
    live = PollingChanges(reader, clock)
    root = Root(WebApp("gris", "mds-vo-name=local,o=grid", reader, clock, live=live), cache_seconds=5)
    dn = "GlueCEUniqueID=ce.example.org:8443/cream-slurm-long,mds-vo-name=local,o=grid"

    def free() -> bytes:
        out: list[bytes] = []
        root._answer("/api/entry", {"dn": dn}).addCallback(out.append)
        for _ in range(20):
            clock.advance(0)
        return out[0]

    assert b'"9"' in free()
    entry = tree.lookup(dn)
    attrs = [(entry.names[k], [b"3"] if k == "gluecestatefreecpus" else list(v)) for k, v in entry.attributes.items()]
    tree.add(tree.build(dn, attrs, source="test"))
    assert b'"9"' in free()  # no change announced yet: the kept answer
    live.changed()
    assert b'"3"' in free() and b'"9"' not in free()
