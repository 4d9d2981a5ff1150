"""The batch provider on a real Grid Engine, alone and under a GRIS (the parsers on captured output: tests/providers/test_gridengine.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.providers.support import PROVIDERS, SUFFIX, parse_and_check, run_provider
from tests.providers.test_gridengine import _cluster_summary
from tests.support.gridengine import GridEngine, gridengine, wait_for  # noqa: F401  (gridengine: fixture)
from tests.support.ports import free_port


def test_real_gridengine_queues_and_jobs(gridengine: GridEngine, tmp_path: Path) -> None:
    """The provider's CEs and jobs agree with what qstat says of a running Grid Engine."""
    gridengine.clear()
    running = gridengine.submit("-q", "short")
    queued = [gridengine.submit("-q", "long") for _ in range(2)]  # long has 1 slot: one runs, one waits
    held = gridengine.submit("-h", "-q", "short", "--", "true")
    wait_for("jobs scheduled", lambda: gridengine.run("qstat", "-u", "*").count(" r ") >= 2)
    config = tmp_path / "batch.yaml"
    config.write_text(gridengine.config_yaml() + "ce_host: ce.example.org\ncluster_id: cluster.example.org\n")
    run = run_provider("batch", ["--config", str(config)])
    assert run.returncode == 0, run.stderr
    ces = {e.one("GlueCEName"): e for e in run.by_class("GlueCE")}
    assert set(ces) == {"short", "long"}
    short, long = ces["short"], ces["long"]
    assert short.dn == f"GlueCEUniqueID=ce.example.org/sge-short,{SUFFIX}"
    assert short.one("GlueCEInfoLRMSType") == "sge"
    assert short.one("GlueCEInfoLRMSVersion") == gridengine.run("qstat", "-help").split()[1]
    assert (short.one("GlueCEInfoTotalCPUs"), short.one("GlueCEStateFreeCPUs")) == ("2", "1")
    assert (short.one("GlueCEStateRunningJobs"), short.one("GlueCEStateWaitingJobs")) == ("1", "1")
    assert (long.one("GlueCEInfoTotalCPUs"), long.one("GlueCEStateFreeCPUs")) == ("1", "0")
    assert (long.one("GlueCEStateRunningJobs"), long.one("GlueCEStateWaitingJobs")) == ("1", "1")
    assert short.one("GlueCEPolicyMaxWallClockTime") == "60" and long.get("GlueCEPolicyMaxWallClockTime") is None
    assert short.one("GlueCEStateStatus") == "Production"
    jobs = {e.one("GridinfoJobID"): e for e in run.by_class("GridinfoJob")}
    assert set(jobs) == {running, *queued, held}
    assert jobs[held].one("GridinfoJobState") == "hqw" and jobs[held].one("GridinfoJobGenericState") == "Waiting"
    assert jobs[running].one("GridinfoJobGenericState") == "Running"
    assert jobs[running].dn.endswith(short.dn) and jobs[held].dn.endswith(short.dn)
    summary = _cluster_summary(gridengine.run("qstat", "-g", "c", "-xml"))
    assert summary["short"]["available"] == 1 and summary["long"]["available"] == 0
    gridengine.clear()


def test_real_array_and_max_jobs(gridengine: GridEngine, tmp_path: Path) -> None:
    """A 50-task array with max_jobs 5: the CE counts all 50 tasks, 5 jobs are published, a warning says so."""
    gridengine.clear()
    array = gridengine.submit("-h", "-q", "long", "-t", "1-50").split(".")[0]
    config = tmp_path / "batch.yaml"
    config.write_text(gridengine.config_yaml() + "max_jobs: 5\n")
    run = run_provider("batch", ["--config", str(config)])
    gridengine.clear()
    assert run.returncode == 0, run.stderr
    ces = {e.one("GlueCEName"): e for e in run.by_class("GlueCE")}
    assert ces["long"].one("GlueCEStateWaitingJobs") == "50" and ces["short"].one("GlueCEStateWaitingJobs") == "0"
    assert [e.one("GridinfoJobID") for e in run.by_class("GridinfoJob")] == [f"{array}.{t}" for t in range(1, 6)]
    assert run.stderr.count("50 jobs, publishing the first 5 (max_jobs)") == 1


def test_qmaster_down_exits_1(gridengine: GridEngine, tmp_path: Path) -> None:
    """Configured but failing (nothing answers on the qmaster port): exit 1, the GRIS keeps its data."""
    config = tmp_path / "batch.yaml"
    dead = free_port()
    config.write_text(gridengine.config_yaml().replace(f"sge_qmaster_port: {gridengine.qmaster_port}", f"sge_qmaster_port: {dead}"))
    run = run_provider("batch", ["--config", str(config)])
    assert run.returncode == 1 and run.entries == []
    assert "Grid Engine did not answer" in run.stderr and "qstat exited with status 1" in run.stderr


def test_system_auto_without_slurm_publishes_the_grid_engine_queues(gridengine: GridEngine, tmp_path: Path) -> None:
    """system: auto, no Slurm configured, a Grid Engine cell here: Grid Engine's queues are published."""
    config = tmp_path / "batch.yaml"
    config.write_text(gridengine.config_yaml().replace("system: gridengine", "system: auto")
                      + f"slurm_conf: {tmp_path / 'absent.conf'}\n")
    run = run_provider("batch", ["--config", str(config)])
    assert run.returncode == 0, run.stderr
    assert {e.one("GlueCEInfoLRMSType") for e in run.by_class("GlueCE")} == {"sge"}


def test_a_gris_running_the_batch_provider_on_grid_engine_answers_ldapsearch(gridengine: GridEngine, tmp_path: Path) -> None:
    """A GRIS running the batch provider on Grid Engine answers ldapsearch over loopback with its CEs and jobs."""
    gridengine.clear()
    waiting = gridengine.submit("-h", "-q", "long", "--", "true")
    folder = tmp_path / "providers"
    folder.mkdir()
    (folder / "batch").symlink_to(PROVIDERS / "batch")
    (tmp_path / "batch.yaml").write_text(gridengine.config_yaml())
    port = free_port()
    (tmp_path / "gris.yaml").write_text(
        f"listen: ['tcp:{port}:interface=127.0.0.1']\nproviders: [{folder}]\n"
        f"provider:\n  batch: {{args: ['--config', '{tmp_path / 'batch.yaml'}']}}\n"
    )
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    gris = subprocess.Popen([str(Path(sys.executable).parent / "gris"), "--config", str(tmp_path / "gris.yaml")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def search(filter_: str) -> list:  # type: ignore[type-arg]
        out = subprocess.run(["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", f"ldap://127.0.0.1:{port}",
                              "-b", SUFFIX, filter_], capture_output=True, text=True, timeout=30, check=True).stdout
        return parse_and_check(out)

    try:
        wait_for("GRIS answers", lambda: bool(search("(objectClass=GlueCE)")))
        ces = {e.one("GlueCEName"): e for e in search("(objectClass=GlueCE)")}
        jobs = {e.one("GridinfoJobID"): e for e in search("(objectClass=GridinfoJob)")}
    finally:
        gris.terminate()
        gris.wait(10)
        gridengine.clear()
    assert set(ces) == {"short", "long"}
    assert ces["long"].one("GlueCEStateWaitingJobs") == "1" and ces["long"].one("GlueCEStateFreeCPUs") == "1"
    assert ces["short"].one("GlueCEStateFreeCPUs") == "2" and ces["short"].one("GlueCEInfoLRMSType") == "sge"
    assert set(jobs) == {waiting} and jobs[waiting].one("GridinfoJobState") == "hqw"
