"""The provider manager and GRIS backend under a test clock: refresh on read, sharing, waiting,
expiry (on read and by sweep), background refresh, folder rescans and status entries.

Runs are scripted (the test decides when a run ends and what it printed); the runner itself is
tested with real processes in test_runner.py.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from twisted.internet import defer, task
from twisted.logger import capturedLogs

from gridinfo.config import GRISConfig, ProviderConfig
from gridinfo.directory.filters import parse_filter
from gridinfo.directory.query import Scope, SearchRequest, SearchResult
from gridinfo.gris.backend import GRISBackend
from gridinfo.gris.providers import ProviderManager, merged_settings, scan_folders, skip_reason
from gridinfo.gris.softstate import ProviderDefinition, RunOutput
from gridinfo.service import make_gris_tree
from gridinfo.triggers.engine import ChangeListener

SUFFIX = "mds-vo-name=local,o=grid"


def site(uid: str) -> bytes:
    return (
        f"dn: GlueSiteUniqueID={uid},{SUFFIX}\nobjectClass: GlueTop\nobjectClass: GlueSite\nGlueSiteUniqueID: {uid}\n"
    ).encode()


class ScriptedRunner:
    """Stands in for the process runner: records each run; the test ends it with ``finish``."""

    def __init__(self, clock: task.Clock):
        self.clock = clock
        self.runs: list[tuple[ProviderDefinition, defer.Deferred[RunOutput]]] = []

    def run(self, definition: ProviderDefinition) -> defer.Deferred[RunOutput]:
        d: defer.Deferred[RunOutput] = defer.Deferred()
        self.runs.append((definition, d))
        return d

    def names(self) -> list[str]:
        return [d.name for d, _ in self.runs]

    def finish(self, index: int = -1, stdout: bytes = b"", exit_code: int = 0, **kw) -> None:
        now = self.clock.seconds()
        self.runs[index][1].callback(RunOutput(stdout=stdout, exit_code=exit_code, started=now, ended=now, **kw))


def executable(folder: Path, name: str, body: str = "#!/bin/sh\n") -> Path:
    path = folder / name
    path.write_text(body)
    path.chmod(0o755)
    return path


class World:
    """A GRIS tree + manager + backend over a test clock, with one providers folder."""

    def __init__(self, folder: Path, *, sweep: float = 1.0, rescan: float = 10.0, **defaults):
        self.clock = task.Clock()
        self.clock.advance(1_700_000_000)
        self.folder = folder
        settings = {"ttl": 60.0, "keepto": 100.0, "timelimit": 20.0, "retry": 5.0, **defaults}
        self.config = GRISConfig(
            providers=(str(folder),),
            provider_defaults=ProviderConfig(**settings),
            sweep_interval=sweep,
            rescan_interval=rescan,
        )
        self.tree = make_gris_tree(self.config, wallclock=self.clock.seconds)
        self.runner = ScriptedRunner(self.clock)
        self.manager = ProviderManager(self.tree, self.config, self.clock, runner=self.runner)
        self.backend = GRISBackend(self.tree, self.manager, naming_contexts=("o=grid", "o=infosys"))

    def search(self, base: str = SUFFIX, flt: str = "(objectClass=GlueSite)") -> defer.Deferred[SearchResult]:
        request = SearchRequest(base, Scope.SUB, parse_filter(flt))
        return defer.maybeDeferred(self.backend.search, request)

    def served(self, uid: str) -> bool:
        return self.tree.lookup(f"GlueSiteUniqueID={uid},{SUFFIX}") is not None

    def status(self, name: str) -> dict[str, list[bytes]]:
        e = self.tree.lookup(f"GridinfoProviderName={name},o=infosys")
        assert e is not None
        return {k: list(v) for k, v in e.attributes.items()}


def result_of(d: defer.Deferred):
    results = []
    d.addBoth(results.append)
    assert results, "the search has not answered yet"
    return results[0]


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path)
    executable(tmp_path, "p")
    w.manager.startService()
    yield w
    w.manager.stopService()


def test_first_search_runs_the_provider_and_waits_for_it(world):
    """A search touching a provider that never ran starts it and answers with its entries."""
    d = world.search()
    assert not d.called
    assert world.runner.names() == ["p"]
    world.runner.finish(stdout=site("a"))
    result = result_of(d)
    assert len(result.entries) == 1
    assert world.served("a")


def test_many_concurrent_searches_cause_exactly_one_run(world):
    """Concurrent searches on stale data share one run, and all get its result."""
    searches = [world.search() for _ in range(50)]
    assert world.runner.names() == ["p"]
    assert not any(d.called for d in searches)
    world.runner.finish(stdout=site("a"))
    assert all(len(result_of(d).entries) == 1 for d in searches)
    # fresh now: further searches start no run and answer at once
    assert len(result_of(world.search()).entries) == 1
    assert world.runner.names() == ["p"]


def test_search_waits_at_most_the_timelimit_then_serves_last_good(world):
    """A hanging refresh delays a search by at most the provider's timelimit; the last good data answers."""
    world.search()
    world.runner.finish(stdout=site("a"))
    world.clock.advance(61)  # stale now
    d = world.search()
    assert len(world.runner.runs) == 2
    world.clock.advance(19.9)
    assert not d.called
    world.clock.advance(0.1)
    assert [e for e in result_of(d).entries] and world.served("a")
    # the run ends later (killed): nothing changes, the status says why
    world.runner.finish(exit_code=None, signal=9, timed_out=True)
    assert world.served("a")
    status = world.status("p")
    assert status["gridinfoproviderstate"] == [b"stale"]
    assert b"timelimit" in status["gridinfoproviderlasterror"][0]


def test_expiry_on_read_without_sweeps(tmp_path):
    """With sweeps off, state still expires: a search sees fresh, then stale, then nothing."""
    w = World(tmp_path, sweep=0)
    executable(tmp_path, "p")
    w.manager.startService()
    w.search()
    w.runner.finish(stdout=site("a"))
    w.clock.advance(30)
    assert len(result_of(w.search()).entries) == 1 and len(w.runner.runs) == 1  # fresh: no run
    w.clock.advance(31)
    d = w.search()  # stale: a refresh starts; it fails
    w.runner.finish(exit_code=3)
    assert len(result_of(d).entries) == 1  # last good data served
    w.clock.advance(100)  # past keepto: gone, whatever the new attempt does
    d = w.search()
    w.runner.finish(exit_code=3)
    assert len(result_of(d).entries) == 0
    assert not w.served("a")
    assert w.status("p")["gridinfoproviderstate"] == [b"gone"]
    w.manager.stopService()


def test_sweep_expires_without_any_search(world):
    """The periodic sweep removes expired data even when nobody searches."""
    world.search()
    world.runner.finish(stdout=site("a"))
    world.clock.advance(160)
    assert not world.served("a")
    assert world.status("p")["gridinfoproviderstate"] == [b"gone"]


def test_kept_through_failures_until_keepto_then_gone(world):
    """Failures (exit status, garbage) keep the last good data until keepto; a good run revives it."""
    world.search()
    world.runner.finish(stdout=site("a"))
    for t, out in ((61, dict(exit_code=3)), (70, dict(stdout=b"garbage\n")), (80, dict(exit_code=1))):
        world.clock.advance(t - (world.clock.seconds() - 1_700_000_000))
        world.search()
        world.runner.finish(**out)
        assert world.served("a")
    assert int(world.status("p")["gridinfoproviderfailures"][0]) == 3
    world.clock.advance(160 - 80)
    assert not world.served("a")
    world.clock.advance(5)
    d = world.search()
    world.runner.finish(stdout=site("b"))
    assert len(result_of(d).entries) == 1 and world.served("b")
    assert world.status("p")["gridinfoproviderstate"] == [b"fresh"]


def test_failed_provider_is_not_rerun_by_every_search(world):
    """After a failure the next attempt waits `retry` seconds, however many searches come."""
    world.search()
    world.runner.finish(exit_code=1)
    for _ in range(10):
        world.search()
    assert len(world.runner.runs) == 1
    world.clock.advance(5)
    world.search()
    assert len(world.runner.runs) == 2


def test_background_provider_refreshed_before_it_goes_stale(tmp_path):
    """A background provider runs at start and again before its ttl ends, with no search."""
    w = World(tmp_path, ttl=60, timelimit=10)
    executable(tmp_path, "bg")
    w.config = replace(w.config, provider={"bg": ProviderConfig(refresh="background")})
    w.manager = ProviderManager(w.tree, w.config, w.clock, runner=w.runner)
    w.manager.startService()
    assert w.runner.names() == ["bg"]
    w.runner.finish(stdout=site("a"))
    w.clock.advance(48)
    assert len(w.runner.runs) == 1
    w.clock.advance(1)  # 49: the last sweep (every 1 s) before 50 = ttl - timelimit
    assert len(w.runner.runs) == 2
    w.clock.advance(6)
    w.runner.finish(stdout=site("a"))
    assert w.manager.table.records["bg"].state.value == "fresh"
    w.manager.stopService()


def test_dropped_in_and_removed_providers_are_noticed(world):
    """A script dropped into the folder is picked up at the next rescan; a removed one goes."""
    world.search()
    world.runner.finish(stdout=site("a"))
    executable(world.folder, "newcomer")
    executable(world.folder, "backup~")
    executable(world.folder, ".hidden")
    (world.folder / "notexec").write_text("#!/bin/sh\n")
    with capturedLogs() as events:
        world.clock.advance(10)
    assert set(world.manager.table.records) == {"p", "newcomer"}
    assert any(e.get("provider") == "newcomer" and e.get("verb") == "new" for e in events)
    assert {e["reason"] for e in events if "reason" in e} == {"not executable", "backup or leftover file", "dotfile"}
    # removal: no new runs; entries go when their validto passes
    os.unlink(world.folder / "p")
    world.clock.advance(10)
    assert world.served("a")
    world.clock.advance(40)  # t = 60: validto
    assert not world.served("a")
    assert world.tree.lookup("GridinfoProviderName=p,o=infosys") is None


def test_status_entries_show_each_providers_runs_state_and_the_gris_totals(world):
    """o=infosys shows each provider's runs, entries, exit status, state, and the GRIS totals."""
    world.search()
    world.runner.finish(stdout=site("a") + b"\n" + site("b"))
    d = world.search("o=infosys", "(objectClass=*)")
    result = result_of(d)
    assert len(result.entries) == 4  # o=infosys, the provider, BDII's UpdateStats, the server
    s = world.status("p")
    assert s["gridinfoproviderentries"] == [b"2"]
    assert s["gridinfoproviderexitstatus"] == [b"0"]
    assert s["gridinfoproviderruns"] == [b"1"]
    assert s["gridinfoproviderstate"] == [b"fresh"]
    assert s["gridinfoprovidername"] == [b"p"]
    server = {k: list(v) for k, v in world.tree.lookup("cn=gris,o=infosys").attributes.items()}
    assert server["gridinfoprovidercount"] == [b"1"]
    # o=grid, the suffix, two sites; o=glue, GLUE2GroupID=resource, the GRIS's own GLUE2Service
    assert server["gridinfototalentries"] == [b"7"]
    for dn in ("GridinfoProviderName=p,o=infosys", "cn=gris,o=infosys"):
        entry = world.tree.lookup(dn)
        assert world.tree.schema.check_entry({entry.names[k]: v for k, v in entry.attributes.items()}) == []


def test_failure_is_logged_with_the_provider_name(world):
    """The log says which provider failed and why."""
    with capturedLogs() as events:
        world.search()
        world.runner.finish(exit_code=3)
    failures = [e for e in events if e.get("failed")]
    assert failures and failures[0]["provider"] == "p" and failures[0]["error"] == "exited with status 3"


def test_outside_entries_are_logged(world):
    """An entry outside the provider's subtree is dropped with a warning naming provider and DN."""
    intruder = b"dn: o=elsewhere\nobjectClass: organization\no: elsewhere\n"
    with capturedLogs() as events:
        world.search()
        world.runner.finish(stdout=site("a") + b"\n" + intruder)
    warned = [e for e in events if e.get("dn") == "o=elsewhere"]
    assert warned and warned[0]["provider"] == "p"
    assert world.served("a") and world.tree.lookup("o=elsewhere") is None


def test_searches_elsewhere_do_not_run_providers(world):
    """A search of o=infosys does not run providers."""
    result_of(world.search("o=infosys", "(objectClass=*)"))
    assert world.runner.runs == []


def test_settings_merge_provider_then_defaults_then_builtin():
    """A provider's own settings win over the site defaults, which win over the built-in ones."""
    config = GRISConfig(
        provider_defaults=ProviderConfig(ttl=30, env={"A": "1"}),
        provider={"x": ProviderConfig(timelimit=5, env={"B": "2"})},
    )
    s = merged_settings("x", config)
    assert (s.ttl, s.timelimit, s.sizelimit, s.refresh) == (30, 5, 10_000, "on-demand")
    assert s.env == {"A": "1", "B": "2"}


def test_scan_skips_what_is_not_a_provider(tmp_path):
    """Non-executables, editor backups and dotfiles are not run; *.ldif files are static providers."""
    executable(tmp_path, "host")
    executable(tmp_path, "host~")
    executable(tmp_path, ".host.swp")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "site.ldif").write_text("")
    (tmp_path / "sub").mkdir()
    result = scan_folders(GRISConfig(providers=(str(tmp_path),)))
    assert {n: d.kind for n, d in result.definitions.items()} == {"host": "provider", "site.ldif": "static"}
    assert skip_reason(tmp_path / "notes.txt") == "not executable"
    assert skip_reason(tmp_path / "sub") == "not a regular file"


def test_with_keepto_0_a_refresh_in_flight_keeps_the_data_until_it_ends(tmp_path):
    """keepto 0: the ttl runs out while the refresh a search started is still running.  The entries
    stay until the run ends (no delete and add again in between, for searches and change streams
    alike); its success replaces them, and a failure drops them at once, as keepto says."""
    w = World(tmp_path, keepto=0.0)
    executable(tmp_path, "p")
    w.manager.startService()
    deletes: list[str] = []
    w.tree.changelog.subscribe(ChangeListener(lambda c: deletes.append(c.key) if c.new is None else None))
    w.search()
    w.runner.finish(stdout=site("a"))
    w.clock.advance(60)  # the ttl ends now; the search starts a refresh
    d = w.search()
    assert len(w.runner.runs) == 2 and not d.called
    w.clock.advance(1)  # past keepto, the run still in flight: a sweep and a read keep the data
    assert w.served("a")
    w.runner.finish(stdout=site("a"))
    assert len(result_of(d).entries) == 1 and w.served("a")
    assert deletes == []
    w.clock.advance(60)
    d = w.search()
    w.clock.advance(1)
    assert w.served("a")
    w.runner.finish(exit_code=3)  # the refresh failed, past keepto: gone now
    assert not w.served("a")
    assert w.status("p")["gridinfoproviderstate"] == [b"gone"]
    assert len(deletes) == 1
    w.manager.stopService()
