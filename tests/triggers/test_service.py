"""The trigger service on an injected clock: rules from config and from a folder, firings
journaled before their actions, retries, and pending deliveries run again after a restart."""

from __future__ import annotations

from pathlib import Path

from twisted.internet import defer, task
from twisted.logger import LogLevel, globalLogPublisher

from gridinfo.config import GRISConfig, TriggerActionConfig, TriggerConfig
from gridinfo.directory.query import Scope, SearchRequest
from gridinfo.directory.filters import parse_filter
from gridinfo.directory.schema import default_schema
from gridinfo.directory.tree import DirectoryTree
from gridinfo.ldap.tree_backend import TreeBackend, add_base_entries
from gridinfo.triggers.journal import DONE, FAILED, PENDING, Delivery, FiringJournal
from gridinfo.triggers.service import TriggerService

SUFFIX = "mds-vo-name=local,o=grid"
CE = f"GlueCEUniqueID=ce1,{SUFFIX}"
ALERTS = "ou=alerts,o=infosys"


class Setup:
    def __init__(self, tmp_path: Path, **config: object) -> None:
        self.clock = task.Clock()
        self.clock.advance(1_000_000)
        self.tree = DirectoryTree(default_schema(), wallclock=self.clock.seconds)
        add_base_entries(self.tree, SUFFIX)
        self.backend = TreeBackend(self.tree)
        defaults: dict[str, object] = {"trigger_journal": str(tmp_path / "firings.sqlite")}
        defaults.update(config)
        self.config = GRISConfig(**defaults)  # type: ignore[arg-type]
        self.service = TriggerService(self.backend, self.tree, self.config, self.clock)

    def ce(self, free: int) -> None:
        self.tree.add(self.tree.build(CE, [("objectClass", [b"GlueCE", b"GlueCEState"]), ("GlueCEUniqueID", [b"ce1"]),
                                           ("GlueCEStateFreeCPUs", [str(free).encode()])]))

    def alerts(self) -> list[tuple[str, str]]:
        req = SearchRequest(ALERTS, Scope.ONE, parse_filter("(objectClass=GridinfoAlert)"))
        try:
            view = self.tree.sync_view(req)
        except Exception:
            return []
        return sorted((e.first("gridinfotriggerevent").decode(), e.first("gridinfoalertsubject").decode()) for e in view.entries)


def rule(**kw: object) -> TriggerConfig:
    base: dict[str, object] = {"name": "low-free", "base": SUFFIX, "filter": "(GlueCEStateFreeCPUs<=2)",
                               "on": ("enter", "leave"), "actions": (TriggerActionConfig(ldap=True),)}
    base.update(kw)
    return TriggerConfig(**base)  # type: ignore[arg-type]


def test_a_firing_is_journaled_then_published_under_ou_alerts_after_for(tmp_path: Path) -> None:
    """An `ldap` action: the firing becomes a GridinfoAlert entry once the condition held `for` s."""
    s = Setup(tmp_path, triggers=(rule(for_=30.0),))
    s.service.startService()
    s.ce(1)
    s.clock.advance(29)
    assert s.alerts() == []
    s.clock.advance(1)  # the deadline: the engine fires; the flush runs on the next turn
    s.clock.advance(0)
    assert s.alerts() == [("enter", CE)]
    assert s.service.journal.counts() == {DONE: 1}
    s.ce(9)
    s.clock.advance(30)
    s.clock.advance(0)
    assert s.alerts() == [("enter", CE), ("leave", CE)]
    s.service.stopService()


def test_a_failing_action_is_retried_with_backoff_then_given_up(tmp_path: Path) -> None:
    """An action that keeps failing: 1 + retries attempts, retry_delay doubling each time, then failed (logged)."""
    s = Setup(tmp_path, triggers=(rule(on=("enter",), actions=(TriggerActionConfig(exec="false", retries=2, retry_delay=5.0),)),))
    attempts: list[float] = []

    def fake_run(body: dict, attempt: int) -> defer.Deferred:
        attempts.append(s.clock.seconds())
        return defer.succeed("exited with status 1")

    s.service.actions.run = fake_run  # type: ignore[method-assign]
    s.service.startService()
    start = s.clock.seconds()
    s.ce(1)
    s.clock.advance(0)
    s.clock.advance(5)
    s.clock.advance(10)
    assert [a - start for a in attempts] == [0, 5, 15]
    assert s.service.journal.counts() == {FAILED: 1}
    assert s.service.counts["failed"] == 1
    s.service.stopService()


def test_pending_deliveries_run_again_at_start_and_done_ones_never(tmp_path: Path) -> None:
    """After kill -9 the journal holds what was pending: it runs once at the next start; what was
    done does not run again (exactly once per firing id)."""
    path = tmp_path / "firings.sqlite"
    journal = FiringJournal(path)
    body = {"id": "f1", "trigger": "low-free", "event": "enter", "dn": CE, "time": "20260101000000Z", "at": 0.0,
            "repeat": 0, "changed": [], "entry": {}, "ldif": f"dn: {CE}\n", "action": {"ldap": True}}
    journal.add([Delivery("f1", 0, "low-free", body), Delivery("f2", 0, "low-free", dict(body, id="f2"))], 0.0)
    assert journal.attempt("f1", 0, 1.0)  # f1 was running when the daemon died
    journal.finish("f2", 0, DONE, 2.0)  # f2 had finished
    journal.close()
    s = Setup(tmp_path)
    ran: list[tuple[str, int]] = []
    s.service.actions.run = lambda body, attempt: ran.append((body["id"], attempt)) or defer.succeed(None)  # type: ignore[method-assign]
    s.service.startService()
    assert ran == [("f1", 2)]
    s.service.stopService()
    again = TriggerService(s.backend, s.tree, s.config, s.clock)
    again.actions.run = lambda body, attempt: ran.append((body["id"], attempt)) or defer.succeed(None)  # type: ignore[method-assign]
    again.startService()
    assert ran == [("f1", 2)]
    assert again.journal.get("f1", 0).state == DONE  # type: ignore[union-attr]
    again.stopService()


def test_rule_files_are_picked_up_changed_and_removed_without_restart(tmp_path: Path) -> None:
    """A *.yaml file dropped into triggers_dir starts a rule; a bad one is refused with file, line
    and key and the others keep working; a removed one stops."""
    folder = tmp_path / "triggers"
    folder.mkdir()
    s = Setup(tmp_path, triggers_dir=str(folder), trigger_rescan_interval=1.0)
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    try:
        s.service.startService()
        (folder / "low-free.yaml").write_text(
            f"base: {SUFFIX}\nfilter: (GlueCEStateFreeCPUs<=2)\nactions:\n  - ldap: true\n")
        (folder / "bad.yaml").write_text("name: bad\nfilter: (GlueCEStateFreeCPUs<=2\nactions:\n  - log: info\n")
        (folder / "typo.yaml").write_text("name: typo\nfilter: (objectClass=*)\nactoins:\n  - log: info\n")
        s.clock.advance(1)
        assert set(s.service.rules) == {"low-free"}
        errors = [e for e in events if e.get("log_level") == LogLevel.error]
        messages = sorted(e["error"] for e in errors)
        assert messages[0].startswith(f"{folder}/bad.yaml:2: filter: expected an LDAP filter")
        assert messages[1].startswith(f"{folder}/typo.yaml:3: unknown key actoins")
        s.ce(1)
        s.clock.advance(0)
        assert s.alerts() == [("enter", CE)]
        s.clock.advance(1)
        assert len([e for e in events if e.get("log_level") == LogLevel.error]) == 2  # refused once, not every rescan
        (folder / "low-free.yaml").unlink()
        s.clock.advance(1)
        assert s.service.rules == {}
    finally:
        globalLogPublisher.removeObserver(events.append)
        s.service.stopService()
    assert PENDING not in s.service.journal.counts()
