"""The history store and its sampler: tiers, down-sampling, the size bound, change-only samples.

Time is always passed in (``now``) or comes from ``twisted.internet.task.Clock``: nothing waits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from twisted.internet import defer, task

from gridinfo.directory.query import Scope
from gridinfo.errors import ConfigError
from gridinfo.web.history import DAY, HistoryError, HistoryStore, Sampler
from gridinfo.web.reader import Answer

DN = "GlueCEUniqueID=ce1,mds-vo-name=local,o=grid"
T0 = 1_700_000_000.0 - 1_700_000_000.0 % 3600  # an hour boundary


def test_raw_points_for_the_last_hour_and_day(tmp_path: Path) -> None:
    store = HistoryStore(str(tmp_path / "h.sqlite"))
    store.record([(DN, "GlueCEStateFreeCPUs", T0 + i * 600, float(i)) for i in range(12)], T0 + 7200)
    hour = store.query(DN, "GlueCEStateFreeCPUs", "hour", T0 + 7200)
    assert hour == [(T0 + i * 600, float(i)) for i in range(6, 12)]
    assert len(store.query(DN, "GlueCEStateFreeCPUs", "day", T0 + 7200)) == 12
    assert store.query(DN, "GlueCEStateWaitingJobs", "day", T0 + 7200) == []  # an unknown series: no points


def test_five_minute_and_hourly_averages(tmp_path: Path) -> None:
    store = HistoryStore(str(tmp_path / "h.sqlite"))
    # two samples in each 5-minute bucket of one hour: 0 and 10, 1 and 11, ...
    samples = [(DN, "a", T0 + k * 300 + 10, float(k)) for k in range(12)]
    samples += [(DN, "a", T0 + k * 300 + 200, float(k + 10)) for k in range(12)]
    store.record(samples, T0 + 3600)
    week = store.query(DN, "a", "week", T0 + 3600)
    assert week == [(T0 + k * 300, k + 5.0) for k in range(12)]
    (hourly,) = store.query(DN, "a", "year", T0 + 3600)
    assert hourly == (T0, sum(v for *_, v in samples) / 24)


def test_each_tier_keeps_its_age(tmp_path: Path) -> None:
    store = HistoryStore(str(tmp_path / "h.sqlite"))
    store.record([(DN, "a", T0, 1.0)], T0)
    store.record([(DN, "a", T0 + 2 * DAY, 2.0)], T0 + 2 * DAY)  # raw from T0 is past its day
    assert store.query(DN, "a", "day", T0 + 2 * DAY) == [(T0 + 2 * DAY, 2.0)]
    assert [v for _, v in store.query(DN, "a", "week", T0 + 2 * DAY)] == [1.0, 2.0]  # 5-min tier: 30 days
    store.record([(DN, "a", T0 + 40 * DAY, 3.0)], T0 + 40 * DAY)
    assert [v for _, v in store.query(DN, "a", "month", T0 + 40 * DAY)] == [3.0]
    assert [v for _, v in store.query(DN, "a", "year", T0 + 40 * DAY)] == [1.0, 2.0, 3.0]  # hourly: a year


def test_the_size_bound_drops_the_oldest_first(tmp_path: Path) -> None:
    store = HistoryStore(str(tmp_path / "h.sqlite"), max_bytes=1 << 20)
    for batch in range(40):
        store.record([(f"cn=e{i},o=grid", "a", T0 + batch * 60 + i * 0.001, float(i)) for i in range(500)],
                     T0 + batch * 60)
    assert store.used_bytes() <= 1 << 20
    points = store.query("cn=e1,o=grid", "a", "day", T0 + 40 * 60)
    assert points and points[-1][0] == T0 + 39 * 60 + 0.001  # the newest stays
    assert points[0][0] > T0  # the oldest went


def test_a_store_of_another_version_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    HistoryStore(str(path)).db.execute("UPDATE meta SET value='99' WHERE name='version'")
    with pytest.raises(HistoryError, match=f"{path}: web history store version 99"):
        HistoryStore(str(path))


class FakeReader:
    """Answers searches from a dict of entries (the sampler only needs search and naming contexts)."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, list[str]]] = {}
        self.searches = 0

    def naming_contexts(self) -> list[str]:
        return ["o=grid", "o=infosys"]

    def search(self, base: str, scope: Scope, filter_text: str, attributes: tuple[str, ...]) -> defer.Deferred[Any]:
        self.searches += 1
        return defer.succeed(Answer(list(self.entries.items())))


def test_the_sampler_writes_only_changes_on_its_clock() -> None:
    clock = task.Clock()
    clock.advance(T0)
    store = HistoryStore()
    reader = FakeReader()
    reader.entries[DN] = {"GlueCEStateFreeCPUs": ["5"], "GlueCEName": ["short"], "GlueCEStateWaitingJobs": ["x"]}
    sampler = Sampler(store, reader, ["GlueCEStateFreeCPUs", "GlueCEStateWaitingJobs"], clock, interval=60,
                      in_thread=False)
    sampler.startService()
    assert reader.searches == 0  # the first check is one interval after start
    clock.advance(60)
    clock.advance(60)  # unchanged: nothing written
    reader.entries[DN] = {"glueCEStateFreeCPUs": ["7"]}  # attribute names compare case-insensitively
    clock.advance(60)
    sampler.stopService()
    assert reader.searches == 3  # o=infosys is not sampled
    assert store.query(DN, "GlueCEStateFreeCPUs", "hour", clock.seconds()) == [(T0 + 60, 5.0), (T0 + 180, 7.0)]
    # a value that is not a number ("x") is not a sample: missing, never zero
    assert store.query(DN, "GlueCEStateWaitingJobs", "hour", clock.seconds()) == []
    assert sampler.samples_written == 2


def test_history_config_is_validated() -> None:
    from dataclasses import replace

    from gridinfo.config import GRISConfig, WebConfig, validate

    cases = {
        # each bad value and the start of the message it gets (ConfigError, nothing built)
        "web.history_max_bytes: expected at least 1048576": WebConfig(history_max_bytes=1000),
        "web.live_interval: expected at least 0.5": WebConfig(live_interval=0.1),
        "web.url: expected an http:// or https:// URL": WebConfig(url="giis.example.org/web"),
        "web.hierarchy_depth: expected a number of levels from 1 to 20, got 0": WebConfig(hierarchy_depth=0),
        "web.hierarchy_timeout: expected seconds above 0 and at most 300, got -1": WebConfig(hierarchy_timeout=-1),
        "web.bind_dn: expected a DN listed in credentials": WebConfig(bind_dn="cn=web,o=grid"),
        "web.history_attributes[0]: expected an attribute type the schema defines, got 'NoSuch'":
            WebConfig(history_attributes=("NoSuch",)),
    }
    for message, web in cases.items():
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
            validate(replace(GRISConfig(), web=web))
    with pytest.raises(ConfigError, match=r"http\[0\]: expected a Twisted endpoint string"):
        validate(GRISConfig(http=("bogus:1",)))
    validate(replace(GRISConfig(credentials={"cn=web,o=grid": "pw"}), web=WebConfig(bind_dn="CN=web, o=grid")))
    validate(replace(GRISConfig(), web=WebConfig(url="https://giis.example.org/gridinfo/", hierarchy_depth=20)))
