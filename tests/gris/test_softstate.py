"""The soft-state table: what is served, for how long, and what a run changes (pure, time passed in)."""

from __future__ import annotations

import pytest

from gridinfo.config import GRISConfig
from gridinfo.directory.query import Scope
from gridinfo.directory.gtime import format_generalized_time
from gridinfo.gris.softstate import (
    TRANSITIONS,
    DataState,
    Event,
    ProviderDefinition,
    RunOutput,
    SoftStateTable,
    apply_modifications,
    interpret_output,
)
from gridinfo.directory.ldif import Modification
from gridinfo.service import make_gris_tree

SUFFIX = "mds-vo-name=local,o=grid"


def site(uid: str, extra: str = "") -> str:
    return (
        f"dn: GlueSiteUniqueID={uid},{SUFFIX}\nobjectClass: GlueTop\nobjectClass: GlueSite\n"
        f"GlueSiteUniqueID: {uid}\n{extra}\n"
    )


@pytest.fixture
def tree():
    return make_gris_tree(GRISConfig())


def definition(name: str = "p", **kw) -> ProviderDefinition:
    return ProviderDefinition(name=name, path=f"/providers/{name}", **{"ttl": 60.0, "keepto": 100.0, **kw})


def run(table: SoftStateTable, name: str, now: float, ldif: str, exit_code: int = 0) -> str | None:
    """One run of ``name`` at ``now`` printing ``ldif``; returns the failure, or None."""
    d = table.records[name].definition
    output = RunOutput(stdout=ldif.encode(), exit_code=exit_code, started=now, ended=now)
    assert table.start(name, now)
    report = interpret_output(d, output, table.tree)
    if report.ok:
        table.succeed(name, now, report, output)
        return None
    table.fail(name, now, report.error or "", output)
    return report.error


def served(tree, uid: str):
    return tree.lookup(f"GlueSiteUniqueID={uid},{SUFFIX}")


def test_transition_table_covers_every_state_for_runs():
    """Every state knows what a success and a failure do: no run result is ever unhandled."""
    for state in DataState:
        assert (state, Event.SUCCESS) in TRANSITIONS
        assert (state, Event.FAILURE) in TRANSITIONS
        assert TRANSITIONS[(state, Event.FAILURE)][0] == state  # a failure never changes what is served


def test_entries_carry_validity_of_their_run(tree):
    """Every published entry has Mds-validfrom/Mds-validto (UTC generalized time) of its run."""
    table = SoftStateTable(tree)
    table.define(definition())
    assert run(table, "p", 1_000_000.0, site("a")) is None
    e = served(tree, "a")
    assert list(e.get("mds-validfrom")) == [b"19700112134640Z"]
    assert list(e.get("mds-validto")) == [format_generalized_time(1_000_060.0).encode()]
    assert format_generalized_time(0) == "19700101000000Z"
    assert e.source == "provider:p"
    assert list(e.get("gridinfoprovidername")) == [b"p"]
    # the stamps ride on the GridinfoSoftState auxiliary class: the entry stays schema-clean
    assert tree.schema.check_entry({e.names[k]: e.get(k) for k in e.names}) == []


def test_provider_validity_attributes_are_replaced_by_ours(tree):
    """A provider cannot claim its own validity: the GRIS's run times win."""
    table = SoftStateTable(tree)
    table.define(definition())
    run(table, "p", 0.0, site("a", "Mds-validto: 20991231000000Z\n"))
    assert list(served(tree, "a").get("mds-validto")) == [format_generalized_time(60.0).encode()]


def test_fresh_then_stale_then_gone_with_the_clock(tree):
    """Data is served while fresh, still served while stale (until keepto), then removed."""
    table = SoftStateTable(tree)
    table.define(definition(ttl=60, keepto=100))
    run(table, "p", 0.0, site("a"))
    assert table.records["p"].state is DataState.FRESH
    table.advance(59.9)
    assert table.records["p"].state is DataState.FRESH
    assert table.wants_refresh("p", 59.9) is False
    assert table.advance(60.0) == [("p", DataState.FRESH, DataState.STALE)]
    assert served(tree, "a") is not None
    assert table.wants_refresh("p", 60.0) is True
    table.advance(159.9)
    assert served(tree, "a") is not None
    assert table.advance(160.0) == [("p", DataState.STALE, DataState.GONE)]
    assert served(tree, "a") is None
    assert table.records["p"].state is DataState.GONE


def test_expiry_jumps_several_states_at_once(tree):
    """A read long after the last run sees the data gone, even if no sweep ran in between."""
    table = SoftStateTable(tree)
    table.define(definition(ttl=60, keepto=100))
    run(table, "p", 0.0, site("a"))
    changes = table.advance(10_000.0)
    assert [c[2] for c in changes] == [DataState.STALE, DataState.GONE]
    assert served(tree, "a") is None


def test_failures_keep_last_good_data_until_keepto(tree):
    """A failing run changes nothing served; the last good output stays until its grace ends."""
    table = SoftStateTable(tree)
    table.define(definition(ttl=60, keepto=100, retry=10))
    run(table, "p", 0.0, site("a"))
    table.advance(61.0)
    assert run(table, "p", 61.0, site("b"), exit_code=3) == "exited with status 3"
    assert served(tree, "a") is not None and served(tree, "b") is None
    r = table.records["p"]
    assert r.state is DataState.STALE and r.failures == 1 and r.last_error == "exited with status 3"
    assert r.last_exit_status == 3
    # no new attempt before retry has passed
    assert table.wants_refresh("p", 70.0) is False
    assert table.wants_refresh("p", 71.0) is True
    table.advance(160.0)
    assert served(tree, "a") is None


def test_success_replaces_exactly_the_providers_entries(tree):
    """A refresh removes the keys that vanished and adds/replaces the rest; others are untouched."""
    table = SoftStateTable(tree)
    table.define(definition("p"))
    table.define(definition("q"))
    run(table, "p", 0.0, site("a") + "\n" + site("b"))
    run(table, "q", 0.0, site("q1"))
    run(table, "p", 1.0, site("b", "GlueSiteName: renamed\n") + "\n" + site("c"))
    assert served(tree, "a") is None
    assert list(served(tree, "b").get("gluesitename")) == [b"renamed"]
    assert served(tree, "c") is not None
    assert served(tree, "q1") is not None
    assert set(table.records["p"].published) == {tree.key(f"GlueSiteUniqueID={u},{SUFFIX}") for u in "bc"}


def test_a_key_belongs_to_one_provider(tree):
    """A second provider publishing the same DN is refused for that entry (with a warning)."""
    table = SoftStateTable(tree)
    table.define(definition("p"))
    table.define(definition("q"))
    run(table, "p", 0.0, site("a", "GlueSiteName: from p\n"))
    d = table.records["q"].definition
    out = RunOutput(stdout=site("a", "GlueSiteName: from q\n").encode())
    table.start("q", 0.0)
    warnings = table.succeed("q", 0.0, interpret_output(d, out, tree), out)
    assert warnings and "already published by provider p" in warnings[0]
    assert list(served(tree, "a").get("gluesitename")) == [b"from p"]


def test_provider_may_replace_a_static_entry_and_it_comes_back(tree):
    """A provider's version of the suffix entry is served while it lives; then the base entry returns."""
    table = SoftStateTable(tree)
    table.define(definition(ttl=10, keepto=0))
    original = tree.lookup(SUFFIX)
    run(table, "p", 0.0, f"dn: {SUFFIX}\nobjectClass: MdsVo\nMds-Vo-name: local\n")
    assert tree.lookup(SUFFIX).source == "provider:p"
    table.advance(10.0)
    assert tree.lookup(SUFFIX) is original


def test_outside_entries_are_dropped_not_fatal(tree):
    """Entries outside the provider's base are dropped and reported; the rest is published."""
    d = definition(base=f"GlueSiteUniqueID=a,{SUFFIX}")
    ldif = site("a") + "\n" + site("b")
    report = interpret_output(d, RunOutput(stdout=ldif.encode()), tree)
    assert report.ok
    assert [e.dn for e in report.entries] == [f"GlueSiteUniqueID=a,{SUFFIX}"]
    assert report.outside == (f"GlueSiteUniqueID=b,{SUFFIX}",)


@pytest.mark.parametrize(
    "output, error",
    [
        (RunOutput(stdout=b"garbage\n"), "bad LDIF"),
        (RunOutput(stdout=site("a").encode(), exit_code=3), "exited with status 3"),
        (RunOutput(timed_out=True, exit_code=None, signal=9), "timelimit"),
        (RunOutput(output_exceeded=True, exit_code=None, signal=9), "max_output_bytes"),
        (RunOutput(spawn_error="No such file"), "cannot run"),
        (RunOutput(stdout=site("a", "GlueSchemaVersionMajor: one\n").encode()), "schema violation"),
        (RunOutput(stdout=site("a", "NoSuchAttribute: x\n").encode()), "schema violation"),
        (RunOutput(stdout=(site("a") + "\n" + site("b") + "\n" + site("c")).encode()), "sizelimit of 2"),
        (RunOutput(stdout=f"dn: {SUFFIX}\nchangetype: delete\n".encode()), "changetype delete"),
    ],
)
def test_each_kind_of_run_failure_fails_the_whole_run(tree, output, error):
    """Each kind of failure (bad LDIF, exit status, timeout, size, schema) fails the whole run."""
    report = interpret_output(definition(sizelimit=2), output, tree)
    assert not report.ok
    assert error in report.error


def test_schema_violations_are_listed(tree):
    """All violations are reported, each with its DN."""
    ldif = site("a", "GlueSchemaVersionMajor: one\nNoSuchAttribute: x\n")
    report = interpret_output(definition(), RunOutput(stdout=ldif.encode()), tree)
    assert len(report.violations) == 2
    assert all(v.startswith(f"GlueSiteUniqueID=a,{SUFFIX}: ") for v in report.violations)


def test_an_entry_breaking_the_schema_is_refused_and_the_others_kept(tree):
    """One bad entry among good ones: the run is good, the bad entry is refused by key."""
    ldif = site("a") + "\n" + site("b", "GlueSchemaVersionMajor: one\n")
    report = interpret_output(definition(), RunOutput(stdout=ldif.encode()), tree)
    assert report.ok
    assert [e.dn for e in report.entries] == [f"GlueSiteUniqueID=a,{SUFFIX}"]
    assert report.refused == (tree.key(f"GlueSiteUniqueID=b,{SUFFIX}"),)
    assert report.violations[0].startswith(f"GlueSiteUniqueID=b,{SUFFIX}: ")


def test_a_refused_entry_keeps_its_last_good_version(tree):
    """Good, then broken: the served entry stays the good one; it is counted as a failed add."""
    table = SoftStateTable(tree)
    d = definition()
    table.define(d)
    good = site("a") + "\n" + site("b", "GlueSiteName: before\n")
    bad = site("a") + "\n" + site("b", "GlueSchemaVersionMajor: one\n")
    for now, ldif in ((1000.0, good), (1100.0, bad)):
        assert table.start(d.name, now)
        output = RunOutput(stdout=ldif.encode(), started=now, ended=now)
        warnings = table.succeed(d.name, now, interpret_output(d, output, tree), output)
    kept = tree.lookup(f"GlueSiteUniqueID=b,{SUFFIX}")
    assert kept is not None and kept.get("gluesitename") == [b"before"]
    assert warnings and warnings[0].startswith("schema violation, entry refused: GlueSiteUniqueID=b,")
    assert table.failed_adds == 1
    assert "1 entries refused" in table.records[d.name].last_error


def test_plugins_modify_provider_entries_while_they_live(tree):
    """A plugin's modify-LDIF is applied over the providers' entries, and undone when it goes."""
    table = SoftStateTable(tree)
    table.define(definition("p", ttl=1000))
    table.define(definition("fix", kind="plugin", ttl=10, keepto=0))
    run(table, "p", 0.0, site("a", "GlueSiteName: old\n"))
    mods = (
        f"dn: GlueSiteUniqueID=a,{SUFFIX}\nchangetype: modify\nreplace: GlueSiteName\nGlueSiteName: new\n-\n"
        "add: GlueSiteDescription\nGlueSiteDescription: fixed by plugin\n-\n"
    )
    assert run(table, "fix", 0.0, mods) is None
    e = served(tree, "a")
    assert list(e.get("gluesitename")) == [b"new"]
    assert list(e.get("gluesitedescription")) == [b"fixed by plugin"]
    # the provider refreshes: the plugin still applies
    run(table, "p", 5.0, site("a", "GlueSiteName: old\n"))
    assert list(served(tree, "a").get("gluesitename")) == [b"new"]
    # the plugin's state ends: the provider's own values come back
    table.advance(10.0)
    assert list(served(tree, "a").get("gluesitename")) == [b"old"]
    assert list(served(tree, "a").get("gluesitedescription")) == []


def test_plugin_output_must_be_modify_records(tree):
    """A plugin printing plain entries fails (it would otherwise shadow providers)."""
    d = definition("fix", kind="plugin")
    report = interpret_output(d, RunOutput(stdout=site("a").encode()), tree)
    assert not report.ok and "changetype: modify" in report.error


def test_ldif_modify_adds_deletes_replaces_and_increments_values():
    """LDIF modify semantics: add, delete (values or all), replace, increment."""
    attrs = [("cn", [b"a"]), ("n", [b"5"]), ("x", [b"1", b"2"])]
    out = apply_modifications(
        attrs,
        [
            Modification("add", "CN", (b"b",)),
            Modification("increment", "n", (b"2",)),
            Modification("delete", "x", (b"1",)),
            Modification("replace", "y", (b"new",)),
        ],
    )
    assert dict(out) == {"cn": [b"a", b"b"], "n": [b"7"], "x": [b"2"], "y": [b"new"]}
    assert apply_modifications(attrs, [Modification("delete", "x", ())]) == [("cn", [b"a"]), ("n", [b"5"])]


def test_retired_provider_entries_go_at_validto(tree):
    """A provider removed from its folder is not run again; its entries go when their validto passes."""
    table = SoftStateTable(tree)
    table.define(definition(ttl=60))
    run(table, "p", 0.0, site("a"))
    table.retire("p", 30.0)
    assert served(tree, "a") is not None
    assert table.wants_refresh("p", 30.0) is False
    table.advance(60.0)
    assert served(tree, "a") is None
    assert "p" not in table.records


def test_one_run_at_a_time(tree):
    """Never two runs of one provider at once."""
    table = SoftStateTable(tree)
    table.define(definition())
    assert table.start("p", 0.0) is True
    assert table.start("p", 0.0) is False


def test_overlapping_providers_by_scope(tree):
    """A search only refreshes providers whose subtree it can reach."""
    table = SoftStateTable(tree)
    table.define(definition("top"))
    table.define(definition("deep", base=f"GlueSiteUniqueID=a,{SUFFIX}"))
    key = tree.key
    assert set(table.overlapping(key("o=grid"), Scope.SUB)) == {"top", "deep"}
    assert table.overlapping(key("o=grid"), Scope.BASE) == []
    assert table.overlapping(key("o=grid"), Scope.ONE) == ["top"]  # it may publish its base entry
    assert set(table.overlapping(key(SUFFIX), Scope.ONE)) == {"top", "deep"}
    assert set(table.overlapping(key(f"GlueSiteUniqueID=a,{SUFFIX}"), Scope.BASE)) == {"top", "deep"}
    assert table.overlapping(key("o=infosys"), Scope.SUB) == []


def test_background_refresh_is_due_before_staleness(tree):
    """Background providers are due before their ttl ends (by their timelimit), others never."""
    table = SoftStateTable(tree)
    table.define(definition("bg", refresh="background", ttl=60, timelimit=5))
    table.define(definition("od"))
    assert table.due_background(0.0) == ["bg"]
    run(table, "bg", 0.0, site("a"))
    assert table.due_background(54.9) == []
    assert table.due_background(55.0) == ["bg"]


def test_a_standing_subscriber_keeps_on_demand_providers_current_like_background_ones(tree) -> None:
    """Someone follows the tree's change stream (a GIIS above, a page): nobody else will search, so
    on-demand providers are rerun before their data goes stale, as background ones are."""
    table = SoftStateTable(tree)
    table.define(definition("od", ttl=60, timelimit=5))
    assert table.due_background(0.0) == []
    assert table.due_background(0.0, standing=True) == ["od"]
    run(table, "od", 0.0, site("a"))
    assert table.due_background(54.9, standing=True) == []
    assert table.due_background(55.0, standing=True) == ["od"]
    assert table.due_background(55.0) == []


def test_a_provider_that_would_fall_due_before_the_next_sweep_runs_now(tree) -> None:
    """A ttl shorter than the sweep interval: waiting for the next sweep would let the data lapse
    (stale, then gone, then published again: a gap subscribers see as a delete and an add)."""
    table = SoftStateTable(tree)
    table.define(definition("bg", refresh="background", ttl=1, timelimit=5))
    run(table, "bg", 0.0, site("a"))
    assert table.due_background(0.1) == []  # due at 0.5 (ttl / 2 before the end)
    assert table.due_background(0.1, horizon=1.0) == ["bg"]  # the next sweep, at 1.1, would be late
