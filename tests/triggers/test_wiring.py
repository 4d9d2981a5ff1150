"""The daemons' wiring: a config with rules gets a trigger service over the backend's change
stream; one without gets none (and pays nothing)."""

from __future__ import annotations

from pathlib import Path

from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, globalLogPublisher

from gridinfo.config import GIISConfig, GRISConfig, TriggerActionConfig, TriggerConfig
from gridinfo.directory.filters import parse_filter
from gridinfo.directory.query import Scope, SearchRequest
from gridinfo.service import make_giis_service, make_gris_service

RULE = TriggerConfig(name="any-ce", filter="(objectClass=GlueCE)", actions=(TriggerActionConfig(ldap=True),))


def test_a_gris_with_rules_watches_its_tree_and_serves_ou_alerts(tmp_path: Path) -> None:
    """gris: the rules attach through the backend's sync_view; ou=alerts,o=infosys exists at once."""
    reactor = MemoryReactorClock()
    top = make_gris_service(GRISConfig(listen=("tcp:0",), triggers=(RULE,)), reactor)
    top.startService()
    try:
        assert set(top.triggers.rules) == {"any-ce"}  # type: ignore[attr-defined]
        view = top.backend.sync_view(SearchRequest("ou=alerts,o=infosys", Scope.BASE, parse_filter("(objectClass=*)")))  # type: ignore[attr-defined]
        assert [e.dn for e in view.entries] == ["ou=alerts,o=infosys"]
    finally:
        top.stopService()
    assert make_gris_service(GRISConfig(listen=("tcp:0",)), MemoryReactorClock()).triggers is None  # type: ignore[attr-defined]


def test_a_giis_gets_triggers_through_its_backend_when_it_has_a_change_stream(tmp_path: Path) -> None:
    """giis: wired the same way; a backend without sync_view says so per rule instead of failing."""
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    reactor = MemoryReactorClock()
    top = make_giis_service(GIISConfig(listen=("tcp:0",), triggers=(RULE,)), reactor)
    try:
        top.startService()
        triggers = top.triggers  # type: ignore[attr-defined]
        if hasattr(top.backend, "sync_view"):  # type: ignore[attr-defined]
            assert set(triggers.rules) == {"any-ce"}
        else:
            assert triggers.rules == {}
            assert any("has no change stream" in e.get("log_format", "") and e.get("log_level") == LogLevel.error
                       for e in events)
    finally:
        globalLogPublisher.removeObserver(events.append)
        top.stopService()
