"""The batch provider on Grid Engine: parsers on captured qstat/qconf output (against a real
Grid Engine: tests/integration/test_gridengine_provider.py).

The files in data/gridengine were captured from Debian's gridengine 8.1.9 (the fixture's set-up,
queues short and long) with ``TZ=UTC qstat -f -xml -u '*' -s a -r``, ``qstat -g c -xml`` and
``qconf -sq '*'`` (the first two sets with ``-g d`` added, which lists pending array tasks one by
one; they hold no pending task list, so the output is the same without it):

- ``*-subordinated``: short had ``subordinate_list long=1``, so with a job running in short the
  long instance was suspended (S); job 2 suspended by qmod -sj (s); 4 held (hqw); 8 asking
  h_rt beyond short's limit (qw forever);
- ``*-errors``: short disabled (qmod -d, state d), long with ``slots 1,[localhost=2]`` and
  ``h_rt 7200`` running two tasks of array job 10 (the third waits), job 9 in error (Eqw: its
  working directory does not exist);
- ``*-arrays``: array job 16 (1-1000) in long, two tasks running, tasks 500 and 700 held (qhold),
  so its pending tasks are ``3-499:1,501-699:1,701-1000:1`` (qw) and ``500,700`` (hqw); array
  job 17 (1-9:2) in short with tasks 1 and 3 running; job 18 held.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from gridinfo.providers_lib.batch import BatchConfig, Queues, batch_entries
from gridinfo.providers_lib.gridengine import (
    build_queues,
    generic_state,
    job_queues,
    parse_ge_duration,
    parse_ge_time,
    parse_qstat_full,
    parse_queue_conf,
    parse_subordinates,
    task_ranges,
)
from tests.providers.support import DATA, PROVIDERS, SUFFIX, run_provider

GE_DATA = DATA / "gridengine"


def _sample(tag: str) -> Queues:
    instances, jobs = parse_qstat_full((GE_DATA / f"qstat-f-{tag}.xml").read_text())
    confs = parse_queue_conf((GE_DATA / f"qconf-sq-{tag}.txt").read_text())
    return build_queues("8.1.9", confs, instances, jobs)


def _cluster_summary(text: str) -> dict[str, dict[str, int]]:
    """``qstat -g c -xml``: Grid Engine's own per-queue slot counts, to check ours against."""
    return {
        s.findtext("name", ""): {k: int(s.findtext(k, "0")) for k in ("used", "resv", "available", "total")}
        for s in ET.fromstring(text).iter("cluster_queue_summary")
    }


def test_each_grid_engine_state_maps_to_the_generic_state_of_the_table() -> None:
    """Each Grid Engine state string gets the generic state of the theory-of-operation table."""
    assert {s: generic_state(s) for s in ("qw", "hqw", "hRwq", "Eqw", "r", "t", "Rr", "Rt", "s", "S", "T", "Rs",
                                          "dr", "dt", "dRr", "dqw", "dhqw", "z", "", "X")} == {
        "qw": "Waiting", "hqw": "Waiting", "hRwq": "Waiting", "Eqw": "Waiting",
        "r": "Running", "t": "Running", "Rr": "Running", "Rt": "Running",
        "s": "Waiting", "S": "Waiting", "T": "Waiting", "Rs": "Waiting",
        "dr": "Running", "dt": "Running", "dRr": "Running", "dqw": "Aborted", "dhqw": "Aborted",
        "z": "Done", "": "Submitted", "X": "Submitted",
    }


def test_queue_limits_round_up_to_minutes_and_qstat_times_are_unix_seconds() -> None:
    """queue_conf(5) limits in minutes (seconds rounded up); qstat's UTC times as Unix seconds."""
    assert parse_ge_duration("01:00:00") == 60
    assert parse_ge_duration("00:50:00") == 50
    assert parse_ge_duration("7200") == 120
    assert parse_ge_duration("90") == 2
    assert parse_ge_duration("2:30") == 3  # minutes:seconds
    assert parse_ge_duration("7200,[node1=3600]") == 120  # the cluster-wide value
    assert parse_ge_duration("INFINITY") is None
    assert parse_ge_duration("soon") is None
    assert parse_ge_time("2026-12-02T01:43:17") == 1796175797
    assert parse_ge_time("2026-12-02T01:43:17.123") == 1796175797
    assert parse_ge_time("") is None and parse_ge_time("yesterday") is None
    assert parse_subordinates("NONE") == [] and parse_subordinates("long=1,short") == ["long", "short"]
    assert parse_subordinates("slots=4(a:1:sr,b:2)") == ["a", "b"]


def test_a_suspended_instance_takes_no_job_and_suspended_or_held_jobs_wait() -> None:
    """A suspended instance takes no job (Queueing, no free CPU); suspended and held jobs wait."""
    queues = _sample("subordinated")
    assert queues.system == "sge" and queues.lrms_version == "8.1.9"
    short, long = queues.partitions["short"], queues.partitions["long"]
    assert (short.state, short.total_cpus, short.idle_cpus, short.running, short.waiting) == ("UP", 2, 0, 1, 3)
    assert (long.state, long.total_cpus, long.idle_cpus, long.running, long.waiting) == ("DOWN", 2, 0, 0, 2)
    assert (short.max_time_minutes, long.max_time_minutes) == (60, 120)
    assert (short.preempt, long.preempt) == (False, True)  # short's subordinate_list suspends long
    states = {j.id: (j.state, j.generic, j.partitions) for j in queues.jobs}
    assert states == {
        "1": ("r", "Running", ["short"]), "2": ("s", "Waiting", ["short"]), "3": ("qw", "Waiting", ["short"]),
        "8": ("qw", "Waiting", ["short"]), "9": ("qw", "Waiting", ["long"]), "4": ("hqw", "Waiting", ["long"]),
    }
    job1 = next(j for j in queues.jobs if j.id == "1")
    assert (job1.start, job1.submit, job1.cpus) == (1796175797, None, 1)  # qstat gives a running job's start only
    assert len(job1.nodes) == 1 and job1.nodes[0]  # the host of its queue instance (queue@host)
    assert next(j for j in queues.jobs if j.id == "3").nodes == []  # pending: nowhere yet
    summary = _cluster_summary((GE_DATA / "qstat-gc-subordinated.xml").read_text())
    assert {n: (p.total_cpus, p.idle_cpus) for n, p in queues.partitions.items()} == {
        n: (s["total"], s["available"]) for n, s in summary.items()
    }


def test_captured_output_errors_and_arrays() -> None:
    """A disabled queue is Queueing; array tasks are jobs <id>.<task>; a job in error waits."""
    queues = _sample("errors")
    short, long = queues.partitions["short"], queues.partitions["long"]
    assert (short.state, short.idle_cpus, short.running, short.waiting) == ("DOWN", 0, 1, 3)
    assert (long.state, long.total_cpus, long.idle_cpus, long.running, long.waiting) == ("UP", 2, 0, 2, 3)
    ids = [j.id for j in queues.jobs]
    assert ids == ["10.1", "10.2", "1", "2", "3", "8", "9", "10.3", "4"]
    assert next(j for j in queues.jobs if j.id == "9").generic == "Waiting"
    entries = {e.dn: e for e in batch_entries(queues, BatchConfig(ce_host="ce.example.org"), SUFFIX)}
    ce = entries[f"GlueCEUniqueID=ce.example.org/sge-long,{SUFFIX}"]
    assert ce.values("GlueCEInfoLRMSType") == ["sge"] and ce.values("GlueCEImplementationName") == ["SGE"]
    assert ce.values("GlueCEStateStatus") == ["Production"]
    assert entries[f"GlueCEUniqueID=ce.example.org/sge-short,{SUFFIX}"].values("GlueCEStateStatus") == ["Queueing"]
    assert ce.values("GlueCEPolicyMaxWallClockTime") == ["120"]
    assert f"GridinfoJobID=10.3,GlueCEUniqueID=ce.example.org/sge-long,{SUFFIX}" in entries


def test_captured_output_pending_task_lists() -> None:
    """Pending array tasks listed as ranges count one by one and become jobs <job>.<task>; max_jobs bounds the list."""
    instances, jobs = parse_qstat_full((GE_DATA / "qstat-f-arrays.xml").read_text())
    confs = parse_queue_conf((GE_DATA / "qconf-sq-arrays.txt").read_text())
    queues = build_queues("8.1.9", confs, instances, jobs)
    short, long = queues.partitions["short"], queues.partitions["long"]
    assert (long.running, long.waiting) == (2, 998)
    assert (short.running, short.waiting) == (2, 4)  # 17.5, 17.7, 17.9 and the held job 18
    ids = [j.id for j in queues.jobs]
    assert len(ids) == 1006 and len(set(ids)) == 1006
    assert ids[:4] == ["16.1", "16.2", "17.1", "17.3"] and "16.499" in ids and "16.500" in ids and "17.9" in ids
    held = {j.id for j in queues.jobs if j.state == "hqw"}
    assert held == {"16.500", "16.700", "18"}
    summary = _cluster_summary((GE_DATA / "qstat-gc-arrays.xml").read_text())
    assert {n: (p.total_cpus, p.idle_cpus) for n, p in queues.partitions.items()} == {
        n: (s["total"], s["available"]) for n, s in summary.items()
    }
    capped = build_queues("8.1.9", confs, instances, jobs, max_jobs=10)
    assert len(capped.jobs) == 10 and (capped.partitions["long"].waiting, capped.partitions["short"].waiting) == (998, 4)
    assert [r for r in task_ranges("3-499:1,501-699:1,701-1000:1")] == [range(3, 500), range(501, 700), range(701, 1001)]
    assert task_ranges("5-9:2") == [range(5, 10, 2)] and task_ranges("500,700") == [range(500, 501), range(700, 701)]
    with pytest.raises(ValueError, match="task list"):
        task_ranges("1-x")


def test_a_pending_job_belongs_to_the_queues_it_asked_for_or_every_queue() -> None:
    """A pending job belongs to the queues it asked for (patterns, queue@host), or to every queue."""
    from gridinfo.providers_lib.gridengine import GEJob

    names = ["long", "short", "test"]

    def job(*requested: str) -> GEJob:
        return GEJob("1", "u", "qw", None, list(requested), None, None, 1)

    assert job_queues(job(), names) == names
    assert job_queues(job("short"), names) == ["short"]
    assert job_queues(job("s*,test@node1"), names) == ["short", "test"]
    assert job_queues(job("nosuch"), names) == []


def test_bad_output_is_a_precise_error() -> None:
    """Output that is not qstat's XML is refused with what was wrong (the provider then exits 1)."""
    with pytest.raises(ValueError, match="not XML"):
        parse_qstat_full("error: commlib error\n")
    with pytest.raises(ValueError, match="<html>"):
        parse_qstat_full("<html/>")
    assert parse_queue_conf("") == {}
    assert parse_queue_conf("garbage without qname\n") == {}


def test_no_grid_engine_cell_or_qstat_says_so_publishes_nothing_exits_0(tmp_path: Path) -> None:
    """No cell, or no qstat on PATH: says so once, publishes nothing, exits 0."""
    config = tmp_path / "batch.yaml"
    config.write_text(f"system: gridengine\nsge_root: {tmp_path}\nsge_cell: nocell\n")
    run = run_provider("batch", ["--config", str(config)])
    assert run.returncode == 0 and run.entries == []
    assert run.stderr.count("has no cell") == 1
    empty = tmp_path / "bin"
    empty.mkdir()
    run = run_provider("batch", ["--config", str(config)], env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{empty}"})
    assert run.returncode == 0 and run.entries == []
    assert run.stderr.count("qstat is not installed") == 1


def test_system_auto_with_neither_batch_system_names_what_is_missing_exits_0(tmp_path: Path) -> None:
    """system: auto with no slurm.conf and no Grid Engine cell: one line names what is missing for each, exit 0."""
    config = tmp_path / "batch.yaml"
    config.write_text(f"slurm_conf: {tmp_path / 'absent.conf'}\nsge_root: {tmp_path}\nsge_cell: nocell\n")
    run = run_provider("batch", ["--config", str(config)])
    assert run.returncode == 0 and run.entries == []
    [line] = [line for line in run.stderr.splitlines() if "WARNING" in line or "no batch system" in line]
    assert "no batch system here (Slurm:" in line and "has no cell" in line


def test_shipped_config_is_the_defaults() -> None:
    """conf/providers/batch.yaml documents every key with its default value."""
    from gridinfo.providers_lib.runtime import load_provider_config

    shipped = load_provider_config(str(PROVIDERS.parent / "conf" / "providers" / "batch.yaml"), BatchConfig)
    assert replace(shipped, source="<defaults>") == BatchConfig()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("system: lsf\n", "system: expected one of"),
        ("sge_qmaster_port: 70000\n", "sge_qmaster_port: expected a TCP port (1-65535), got 70000"),
        ("sge_qmaster_port: 0\n", "sge_qmaster_port: expected a TCP port"),
        ("ce_id_format: '{host}/{queue}'\n", "ce_id_format: expected a format using only {host}, {lrms} and {partition}"),
    ],
)
def test_bad_config_is_refused(tmp_path: Path, text: str, expected: str) -> None:
    """A bad value stops the provider with exit 2 and a message naming the file, line and key; nothing is published."""
    config = tmp_path / "batch.yaml"
    config.write_text("timeout: 5\n" + text)
    run = run_provider("batch", ["--config", str(config)])
    assert run.returncode == 2 and run.entries == []
    assert expected in run.stderr and f"{config}" in run.stderr and ":2" in run.stderr
