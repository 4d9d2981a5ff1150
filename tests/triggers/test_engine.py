"""The trigger engine on a real directory tree, with time passed in: enter, leave, change,
``for`` (hysteresis), ``repeat``, ``rate_limit``, and the attribute index."""

from __future__ import annotations

from gridinfo.config import RateLimitConfig, TriggerActionConfig, TriggerConfig
from gridinfo.directory.schema import default_schema
from gridinfo.directory.tree import SOFTSTATE_STAMPS, DirectoryTree
from gridinfo.ldap.tree_backend import TreeBackend
from gridinfo.triggers.engine import ENTER, LEAVE, ChangeListener, Firing, Phase, TriggerEngine
from gridinfo.triggers.rules import compile_rule

SUFFIX = "mds-vo-name=local,o=grid"
CE = f"GlueCEUniqueID=ce1.example.org:2119/jobmanager-pbs-long,{SUFFIX}"
LOG = (TriggerActionConfig(log="info"),)


class World:
    """A tree, an engine listening to its change log, and a clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.tree = DirectoryTree(default_schema(), wallclock=lambda: self.now)
        for dn, attrs in (("o=grid", [("objectClass", [b"organization"]), ("o", [b"grid"])]),
                          (SUFFIX, [("objectClass", [b"MdsVo"]), ("Mds-Vo-name", [b"local"])])):
            self.tree.add(self.tree.build(dn, attrs))
        self.backend = TreeBackend(self.tree)
        self.engine = TriggerEngine(ignore=SOFTSTATE_STAMPS)
        self.fired: list[Firing] = []
        self.tree.changelog.subscribe(ChangeListener(lambda c: self.fired.extend(self.engine.on_change(c, self.now))))

    def rule(self, **kw: object) -> str:
        config = TriggerConfig(**{"name": "low-free", "base": SUFFIX, "filter": "(GlueCEStateFreeCPUs<=2)",
                                  "actions": LOG, **kw})  # type: ignore[arg-type]
        rule, (entries, _log) = compile_rule(config, self.backend, self.tree.schema, self.tree.key)
        self.fired.extend(self.engine.add_rule(rule, entries, self.now))
        return config.name

    def ce(self, free: int, dn: str = CE, **extra: bytes) -> None:
        attrs = [("objectClass", [b"GlueCE", b"GlueCEState"]), ("GlueCEUniqueID", [dn.split(",")[0].split("=", 1)[1].encode()]),
                 ("GlueCEStateFreeCPUs", [str(free).encode()])]
        attrs += [(k, [v]) for k, v in extra.items()]
        self.tree.add(self.tree.build(dn, attrs))

    def advance(self, seconds: float) -> None:
        """Move time on, firing what comes due on the way (as the service's timer does)."""
        end = self.now + seconds
        while True:
            deadline = self.engine.next_deadline()
            if deadline is None or deadline > end:
                break
            self.now = max(self.now, deadline)
            self.fired.extend(self.engine.due(self.now))
        self.now = end

    def events(self) -> list[tuple[str, float]]:
        out = [(f.event, f.at) for f in self.fired]
        self.fired.clear()
        return out


def test_a_value_crossing_a_threshold_fires_enter_after_for_and_leave_after_for_again() -> None:
    """A CE whose free CPUs fall to the threshold fires enter once it has stayed there `for` seconds,
    and leave once it has stayed above `for` seconds: what "mail me when we are almost full" needs."""
    w = World()
    w.rule(on=("enter", "leave"), for_=60.0)
    w.ce(10)
    w.advance(10)
    w.ce(1)  # crosses at t=1010
    w.advance(59)
    assert w.events() == []
    w.advance(1)
    assert w.events() == [(ENTER, 1070.0)]
    w.advance(500)
    assert w.events() == []  # no repeat configured
    w.ce(8)  # back above at 1570
    w.advance(60)
    assert w.events() == [(LEAVE, 1630.0)]
    assert w.engine.tracks("low-free") == {}


def test_flapping_inside_for_fires_nothing_either_way() -> None:
    """A value that flaps across the threshold faster than `for` fires neither enter nor leave."""
    w = World()
    w.rule(on=("enter", "leave"), for_=60.0)
    w.ce(10)
    for _ in range(20):
        w.ce(1)
        w.advance(30)
        w.ce(9)
        w.advance(30)
    assert w.events() == []
    w.ce(1)
    w.advance(60)
    assert w.events() == [(ENTER, w.now)]
    for _ in range(20):  # now active: dips out and back inside `for` do not fire leave
        w.ce(9)
        w.advance(30)
        w.ce(1)
        w.advance(30)
    assert w.events() == []


def test_without_for_enter_and_leave_fire_on_the_change_itself() -> None:
    """`for: 0` (the default) fires on the change; the entry goes away: that is a leave too."""
    w = World()
    w.rule(on=("enter", "leave"))
    w.ce(1)
    assert w.events() == [(ENTER, 1000.0)]
    w.advance(5)
    w.tree.remove(w.tree.key(CE))
    [firing] = w.fired
    assert (firing.event, firing.dn, firing.entry.first("gluecestatefreecpus")) == (LEAVE, CE, b"1")
    w.fired.clear()


def test_only_the_events_in_on_fire() -> None:
    """`on: [leave]` fires when the condition stops holding, never when it starts."""
    w = World()
    w.rule(on=("leave",))
    w.ce(1)
    w.ce(5)
    assert w.events() == [(LEAVE, 1000.0)]


def test_repeat_refires_while_the_condition_holds_and_stops_when_it_ends() -> None:
    """`repeat: 300` re-fires enter every 300 s while it holds, numbered, and stops on leave."""
    w = World()
    w.rule(on=("enter", "leave"), for_=60.0, repeat=300.0)
    w.ce(1)
    w.advance(60 + 3 * 300)
    assert [(f.event, f.repeat, f.at) for f in w.fired] == [
        (ENTER, 0, 1060.0), (ENTER, 1, 1360.0), (ENTER, 2, 1660.0), (ENTER, 3, 1960.0)]
    w.fired.clear()
    w.ce(7)
    w.advance(1000)
    assert w.events() == [(LEAVE, 1960.0 + 60)]


def test_rate_limit_drops_firings_beyond_the_window_and_lets_them_through_after() -> None:
    """`rate_limit: {firings: 2, per: 600}`: the third firing in ten minutes runs no action."""
    w = World()
    w.rule(on=("enter",), rate_limit=RateLimitConfig(firings=2, per=600.0))
    for i in range(4):
        w.ce(1, dn=CE.replace("ce1", f"ce{i}"))
    assert [f.suppressed for f in w.fired] == [False, False, True, True]
    w.fired.clear()
    w.advance(600)
    w.ce(1, dn=CE.replace("ce1", "ce9"))
    assert [f.suppressed for f in w.fired] == [False]


def test_change_fires_for_the_listed_attributes_only_while_the_condition_holds() -> None:
    """`on: change` with `attributes:` fires when one of them changes on a matching entry, naming it."""
    w = World()
    w.rule(filter="(objectClass=GlueCE)", on=("change",), attributes=("GlueCEStateStatus",))
    w.ce(4, GlueCEStateStatus=b"Production")
    w.ce(5, GlueCEStateStatus=b"Production")  # free CPUs: not listed
    assert w.fired == []
    w.ce(5, GlueCEStateStatus=b"Draining")
    assert [(f.event, f.changed) for f in w.fired] == [("change", ("gluecestatestatus",))]


def test_the_index_evaluates_only_the_rules_that_read_a_changed_attribute() -> None:
    """A thousand rules on other attributes cost nothing when free CPUs change: rules are indexed
    by the attributes their filters read, not all evaluated on every change."""
    w = World()
    w.rule()
    for i in range(1000):
        w.rule(name=f"waiting-{i}", filter=f"(GlueCEStateWaitingJobs>={i})")
    w.ce(10)  # an add: offered to the rules requiring no class (all of them here)
    before = w.engine.evaluations
    for free in (9, 8, 7, 1):
        w.ce(free)
    assert w.engine.evaluations - before == 4  # the one rule reading GlueCEStateFreeCPUs, once each
    assert [f.rule for f in w.fired] == ["low-free"]


def test_a_rule_added_while_entries_match_fires_enter_for_them_after_for() -> None:
    """A rule dropped in while its condition already holds treats it as just started."""
    w = World()
    w.ce(1)
    w.rule(for_=30.0)
    assert w.engine.tracks("low-free") == {w.tree.key(CE): Phase.PENDING_ENTER}
    w.advance(30)
    assert w.events() == [(ENTER, 1030.0)]


def test_a_rule_whose_base_does_not_exist_yet_starts_working_when_it_appears() -> None:
    """`base:` naming one CE that is not published yet is not an error: it fires once the CE exists."""
    w = World()
    w.rule(base=CE, scope="base")
    w.ce(1, dn=CE.replace("ce1", "ce2"))  # another CE: out of scope
    assert w.fired == []
    w.ce(1)
    assert w.events() == [(ENTER, 1000.0)]


def test_removing_a_rule_forgets_its_tracks_without_firing() -> None:
    """A rule file removed (or changed) fires nothing for what it was tracking."""
    w = World()
    w.rule(on=("enter", "leave"), for_=60.0)
    w.ce(1)
    w.engine.remove_rule("low-free")
    w.advance(120)
    w.ce(9)
    assert w.fired == [] and w.engine.next_deadline() is None


def test_freshness_stamps_alone_are_not_a_change() -> None:
    """Soft state rewriting Mds-validto with new content elsewhere fires change only for that content."""
    w = World()
    w.rule(filter="(objectClass=GlueCE)", on=("change",))
    w.ce(3, **{"Mds-validto": b"20260101000000Z"})
    w.ce(3, **{"Mds-validto": b"20260101000100Z"})  # the tree sees no content change: no Change at all
    w.ce(4, **{"Mds-validto": b"20260101000200Z"})
    assert [(f.event, f.changed) for f in w.fired] == [("change", ("gluecestatefreecpus",))]


def test_rules_based_at_other_entries_cost_nothing() -> None:
    """A thousand per-CE rules watching other CEs: a change to one CE evaluates only its own rule
    (rules are indexed by base as well as by attribute)."""
    w = World()
    for i in range(1000):
        w.rule(name=f"ce-{i}", base=CE.replace("ce1", f"other{i}"), scope="base")
    w.rule(name="mine", base=CE, scope="base")
    w.ce(10)
    before = w.engine.evaluations
    w.ce(1)
    assert w.engine.evaluations - before == 1
    assert [f.rule for f in w.fired] == ["mine"]
