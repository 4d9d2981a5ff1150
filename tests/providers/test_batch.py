"""The batch provider on Slurm's documented output formats (against a real Slurm: tests/integration/test_slurm_provider.py)."""

from __future__ import annotations

import time
from pathlib import Path

from gridinfo.providers_lib.batch import (
    BatchConfig,
    Queues,
    batch_entries,
    combine,
    parse_partitions,
    parse_sinfo_cpus,
    parse_slurm_duration,
    parse_squeue,
)
from gridinfo.providers_lib.output import format_entries
from tests.providers.support import DATA, SUFFIX, parse_and_check, run_provider


def test_slurms_documented_outputs_give_the_right_glue_figures() -> None:
    """scontrol/sinfo/squeue outputs in Slurm's documented formats give the right GLUE figures."""
    partitions = parse_partitions((DATA / "scontrol-partitions.txt").read_text())
    jobs = parse_squeue((DATA / "squeue.txt").read_text())
    combine(partitions, parse_sinfo_cpus((DATA / "sinfo-cpus.txt").read_text()), jobs)
    short, long, gpu = partitions["short"], partitions["long"], partitions["gpu"]
    assert (short.running, short.waiting, short.idle_cpus, short.total_cpus) == (3, 2, 20, 64)
    assert (long.running, long.waiting, long.max_time_minutes, long.priority_tier, long.preempt) == (0, 3, 4320, 5, True)
    assert (gpu.running, gpu.waiting, gpu.max_time_minutes) == (1, 0, None)
    entries = parse_and_check(format_entries(batch_entries(Queues("23.02.7", partitions, jobs), BatchConfig(ce_host="ce", cluster_id="c"), SUFFIX)))
    status = {e.one("GlueCEName"): e.one("GlueCEStateStatus") for e in entries if "gluece" in e.classes()}
    assert status == {"short": "Production", "long": "Draining", "gpu": "Queueing"}
    by_id = {e.one("GridinfoJobID"): e for e in entries if "gridinfojob" in e.classes()}
    assert by_id["1004_7"].get("GridinfoJobStartTime") is None  # a pending job's start is only an estimate
    assert by_id["1006"].one("GridinfoJobGenericState") == "Waiting"  # suspended
    assert by_id["1008"].one("GridinfoJobGenericState") == "Scheduled"
    assert by_id["1005"].one("GridinfoJobQueue") == "short,long"
    assert by_id["1001"].one("GridinfoJobStartTime") == "20231114221500Z"  # 1700000100


def test_slurm_minutes_round_up_and_unlimited_is_none() -> None:
    """Slurm's time limits in minutes (partial minutes round up), unlimited as None."""
    assert parse_slurm_duration("01:00:00") == 60
    assert parse_slurm_duration("3-00:00:00") == 4320
    assert parse_slurm_duration("1-12") == 2160
    assert parse_slurm_duration("30:00") == 30
    assert parse_slurm_duration("45") == 45
    assert parse_slurm_duration("00:00:30") == 1
    assert parse_slurm_duration("UNLIMITED") is None


def test_slurm_absent_or_unconfigured_says_so_publishes_nothing_exits_0(tmp_path: Path) -> None:
    """Slurm present but not configured (or absent): says so, publishes nothing, exits 0."""
    config = tmp_path / "batch.yaml"
    config.write_text(f"system: slurm\nslurm_conf: {tmp_path / 'absent.conf'}\n")
    run = run_provider("batch", ["--config", str(config)])
    assert run.returncode == 0 and run.entries == []
    assert "not configured" in run.stderr or "not installed" in run.stderr


def test_squeue_node_lists_become_the_jobs_exec_hosts() -> None:
    """The node list (squeue %N, last) is expanded; the older 8-field lines have none; a job with
    nodes says so in GridinfoJobExecHost (the GRIS relates it to the VMs of those names)."""
    from gridinfo.providers_lib.batch import expand_hostlist

    assert expand_hostlist("wn[01-03,7],gpu1") == ["wn01", "wn02", "wn03", "wn7", "gpu1"]
    assert expand_hostlist("") == [] and expand_hostlist("(null)") == []
    running, waiting, old = parse_squeue("11|debug|alice|RUNNING|1700000000|1700000100|2|None|wn[1-2]\n"
                                         "12|debug|bob|PENDING|1700000000|N/A|1|Resources|\n"
                                         "13|debug|carol|RUNNING|1700000000|1700000100|2|None\n")
    assert (running.nodes, running.reason) == (["wn1", "wn2"], "None")
    assert (waiting.nodes, waiting.reason) == ([], "Resources")
    assert (old.nodes, old.reason) == ([], "None")
