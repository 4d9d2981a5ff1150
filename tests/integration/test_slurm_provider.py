"""The batch provider against a real single-node Slurm (the parsers on Slurm's documented formats: tests/providers/test_batch.py)."""

from __future__ import annotations

import time
from pathlib import Path

from tests.providers.support import SUFFIX, run_provider
from tests.support.slurm import Slurm, wait_for


def test_real_slurm_queues_and_jobs(slurm: Slurm, tmp_path: Path) -> None:
    """Partitions become GlueCEs with the job counts, free CPUs and limits Slurm reports, and each
    job (running, pending for resources, held) becomes a GridinfoJob under its CE."""
    slurm.clear()  # the session's Slurm: other tests leave held jobs behind
    running = slurm.run("sbatch", "--parsable", "-p", "debug", "-n", "2", "-o", "/dev/null", "--wrap", "sleep 120").strip()
    pending = slurm.run("sbatch", "--parsable", "-p", "debug", "-n", "1", "-o", "/dev/null", "--wrap", "sleep 120").strip()
    held = slurm.run("sbatch", "--parsable", "--hold", "-p", "long", "-n", "1", "-o", "/dev/null", "--wrap", "true").strip()
    wait_for("job running", lambda: slurm.run("squeue", "-h", "-j", running, "-o", "%T").strip() == "RUNNING")

    config = tmp_path / "batch.yaml"
    config.write_text(f"slurm_conf: {slurm.conf}\nce_host: ce.example.org\ncluster_id: cluster.example.org\n")
    run = run_provider("batch", ["--config", str(config)])
    assert run.returncode == 0, run.stderr
    ces = {ce.one("GlueCEName"): ce for ce in run.by_class("GlueCE")}
    assert set(ces) == {"debug", "long"}
    debug, long = ces["debug"], ces["long"]
    assert debug.dn == f"GlueCEUniqueID=ce.example.org/slurm-debug,{SUFFIX}"
    assert debug.one("GlueCEHostingCluster") == "cluster.example.org"
    assert debug.one("GlueCEInfoLRMSType") == "slurm"
    assert debug.one("GlueCEInfoLRMSVersion") == slurm.run("sinfo", "--version").split()[-1]
    assert (debug.one("GlueCEStateRunningJobs"), debug.one("GlueCEStateWaitingJobs")) == ("1", "1")
    assert debug.one("GlueCEStateTotalJobs") == "2"
    assert debug.one("GlueCEStateFreeCPUs") == "0" and debug.one("GlueCEInfoTotalCPUs") == "2"
    assert debug.one("GlueCEStateStatus") == "Production"
    assert debug.one("GlueCEPolicyMaxWallClockTime") == "60"
    assert long.get("GlueCEPolicyMaxWallClockTime") is None  # UNLIMITED
    assert long.one("GlueCEPolicyPriority") == "2"
    assert (long.one("GlueCEStateRunningJobs"), long.one("GlueCEStateWaitingJobs")) == ("0", "1")

    jobs = {job.one("GridinfoJobID"): job for job in run.by_class("GridinfoJob")}
    assert set(jobs) == {running, pending, held}
    assert jobs[running].one("GridinfoJobState") == "RUNNING"
    assert jobs[running].one("GridinfoJobGenericState") == "Running"
    assert jobs[running].get("GridinfoJobStartTime")
    assert jobs[pending].one("GridinfoJobGenericState") == "Waiting"
    assert jobs[pending].get("GridinfoJobStartTime") is None
    assert jobs[held].dn == f"GridinfoJobID={held},{long.dn}"
    assert jobs[held].one("GridinfoJobOwner") == "root" and jobs[held].one("GridinfoJobQueue") == "long"
    submit = slurm.run("squeue", "-h", "-j", pending, "-o", "%V").strip()
    assert time.strftime("%Y-%m-%dT%H:%M:%S", time.strptime(jobs[pending].one("GridinfoJobSubmitTime"), "%Y%m%d%H%M%SZ")) == \
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.mktime(time.strptime(submit, "%Y-%m-%dT%H:%M:%S"))))
    assert run.seconds < 10  # well inside the default timelimit (20 s); speed itself is measured in docs/providers.md
