"""BDII's UpdateStats entry of a GRIS: its figures per update cycle, its modifyTimestamp.

A GRIS over a test clock (the tree's wall clock is the same clock) and a scripted runner:
every time is exact, nothing sleeps.
"""

from __future__ import annotations

import pytest
from twisted.internet import defer

from gridinfo.directory.filters import parse_filter
from gridinfo.directory.query import Scope, SearchRequest
from gridinfo.infosys import UPDATE_STATS_FIGURES
from tests.gris.test_manager import World, executable, result_of, site
from tests.directory.test_tree import decode

FRESHNESS_FILTER = "(|(objectClass=UpdateStats)(objectClass=InfoSystemStats))"


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path)
    executable(tmp_path, "p")
    w.manager.startService()
    yield w
    w.manager.stopService()


def probe(world: World) -> list[tuple[str, dict[str, list[bytes]]]]:
    """What a freshness probe asks: UpdateStats under o=infosys, modifyTimestamp and the figures."""
    request = SearchRequest(
        "o=infosys", Scope.SUB, parse_filter(FRESHNESS_FILTER), attributes=("modifyTimestamp", "*")
    )
    result = result_of(defer.maybeDeferred(world.backend.search, request))
    return [decode(e) for e in result.entries]


def figures(attrs: dict[str, list[bytes]]) -> dict[str, int]:
    return {k: int(attrs[k][0]) for k in UPDATE_STATS_FIGURES}


def test_update_stats_entry_is_published_with_every_figure(world):
    [(dn, attrs)] = probe(world)
    host = world.manager.status.update_stats.hostname
    assert dn.lower() == f"hostname={host},o=infosys".lower()
    assert attrs["objectClass"] == [b"UpdateStats"]
    assert attrs["Hostname"] == [host.encode()]
    assert set(UPDATE_STATS_FIGURES) <= set(attrs)
    assert attrs["modifyTimestamp"] == [b"20231114221320Z"]  # the clock: 1_700_000_000
    e = world.tree.lookup(dn)
    assert world.tree.schema.check_entry({e.names[k]: v for k, v in e.attributes.items()}) == []


def test_a_provider_cycle_moves_modify_timestamp_and_counts_changes(world):
    world.clock.advance(5)
    world.search()
    world.clock.advance(2)  # the run takes 2 s
    world.runner.finish(stdout=site("a") + b"\n" + site("b"))
    [(_, attrs)] = probe(world)
    assert attrs["modifyTimestamp"] == [b"20231114221327Z"]
    f = figures(attrs)
    assert f["NewEntries"] == 2 and f["ModifiedEntries"] == 0 and f["DeletedEntries"] == 0
    infosys = world.tree.subtree_sizes.get(world.tree.key("o=infosys"), 0)
    # every entry served outside o=infosys: o=grid, the suffix, two sites, and the o=glue base
    # entries with the GRIS's own GLUE2Service
    assert f["TotalEntries"] == len(world.tree) - infosys
    total = f["TotalEntries"]
    assert world.tree.lookup("GlueSiteUniqueID=b,mds-vo-name=local,o=grid") is not None
    assert f["ProvidersTime"] == 0  # the scripted runner's runs take no time (see the pure test below)

    # the next run: a unchanged, b modified
    world.clock.advance(60)  # stale: the next search refreshes
    world.search()
    world.runner.finish(stdout=site("a") + b"\n" + site("b") + b"GlueSiteName: renamed\n")
    [(_, attrs)] = probe(world)
    assert attrs["modifyTimestamp"] == [b"20231114221427Z"]
    f = figures(attrs)
    assert (f["NewEntries"], f["ModifiedEntries"], f["DeletedEntries"]) == (0, 1, 0)

    world.clock.advance(60)
    world.search()
    world.runner.finish(stdout=site("a"))
    f = figures(probe(world)[0][1])
    assert (f["NewEntries"], f["ModifiedEntries"], f["DeletedEntries"]) == (0, 0, 1)
    assert f["TotalEntries"] == total - 1  # site b is gone


def test_an_unchanged_refresh_still_moves_modify_timestamp(world):
    """BDII rewrites UpdateStats each cycle: a run that changes nothing is still a cycle."""
    world.search()
    world.runner.finish(stdout=site("a"))
    world.clock.advance(60)
    world.search()
    world.runner.finish(stdout=site("a"))
    [(_, attrs)] = probe(world)
    assert attrs["modifyTimestamp"] == [b"20231114221420Z"]
    f = figures(attrs)
    assert (f["NewEntries"], f["ModifiedEntries"], f["DeletedEntries"]) == (0, 0, 0)
    # the site itself was not modified by the second run
    site_entry = world.tree.lookup("GlueSiteUniqueID=a,mds-vo-name=local,o=grid")
    assert world.tree.operational_values(site_entry, "modifytimestamp") == [b"20231114221320Z"]


def test_reading_o_infosys_is_not_a_cycle(world):
    """Searches of o=infosys republish the status entries; without runs, UpdateStats stays put."""
    world.search()
    world.runner.finish(stdout=site("a"))
    before = probe(world)[0][1]["modifyTimestamp"]
    world.clock.advance(30)
    probe(world)
    world.clock.advance(30)
    assert probe(world)[0][1]["modifyTimestamp"] == before


def test_failed_run_is_a_cycle_with_no_changes(world):
    world.search()
    world.runner.finish(stdout=site("a"))
    world.clock.advance(60)
    world.search()
    world.runner.finish(exit_code=1)
    [(_, attrs)] = probe(world)
    assert attrs["modifyTimestamp"] == [b"20231114221420Z"]
    assert figures(attrs)["NewEntries"] == 0


def test_times_are_the_runs_durations_pure():
    """ProvidersTime/PluginsTime sum the durations of the runs of the cycle, in whole seconds."""
    from gridinfo.config import GRISConfig
    from gridinfo.gris.softstate import ProviderDefinition, RunOutput, SoftStateTable, interpret_output
    from gridinfo.gris.status import StatusPublisher
    from gridinfo.service import make_gris_tree

    now = [1_700_000_000.0]
    tree = make_gris_tree(GRISConfig(), wallclock=lambda: now[0])
    table = SoftStateTable(tree)
    status = StatusPublisher(tree, table, start_time=now[0], hostname="bdii.example.org")
    status.publish(now[0])
    for name, kind, took in (("p", "provider", 2.5), ("q", "provider", 1.75), ("z", "plugin", 1.0)):
        d = table.define(ProviderDefinition(name=name, path=f"/x/{name}", kind=kind)).definition
        out = RunOutput(stdout=b"" if kind == "plugin" else site(name), started=now[0], ended=now[0] + took)
        table.start(name, now[0])
        table.succeed(name, now[0], interpret_output(d, out, tree), out)
    now[0] += 5
    status.publish(now[0])
    attrs = {k: list(v) for k, v in tree.lookup("Hostname=bdii.example.org,o=infosys").attributes.items()}
    assert attrs["providerstime"] == [b"4"] and attrs["pluginstime"] == [b"1"] and attrs["updatetime"] == [b"5"]
    assert attrs["newentries"] == [b"2"] and attrs["readtime"] == [b"0"] and attrs["faileddeletes"] == [b"0"]
    e = tree.lookup("Hostname=bdii.example.org,o=infosys")
    assert tree.operational_values(e, "modifytimestamp") == [b"20231114221325Z"]
