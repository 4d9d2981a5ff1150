"""A real single-node Slurm for the tests that need one (the `slurm` fixture: tests/integration/conftest.py)."""

from __future__ import annotations


import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gridinfo_dev.daemon import wait_for  # noqa: F401  (re-exported for the Slurm tests)

from tests.support.ports import free_ports

SLURM_PLUGINS = Path("/usr/lib/x86_64-linux-gnu/slurm-wlm")


@dataclass
class Slurm:
    """A running single-node Slurm: its config file and a way to run its commands."""

    conf: Path
    node: str

    def run(self, *argv: str) -> str:
        env = {**os.environ, "SLURM_CONF": str(self.conf)}
        return subprocess.run(argv, env=env, capture_output=True, text=True, check=True, timeout=20).stdout

    def clear(self) -> None:
        """Cancel every job and wait until squeue lists none (a test that counts jobs starts from an empty cluster)."""
        self.run("scancel", "--user", "root")
        wait_for("no jobs left", lambda: self.run("squeue", "-h") == "")


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slurm]:
    """slurmctld + slurmd from Debian's slurm-wlm, configured in a temp dir, ports on loopback.

    auth/none and cred/none stand in for munge (the only difference is who may talk to the
    daemons), so no munge key or daemon is needed.  Needs root (slurmd runs jobs as their user).
    """
    if shutil.which("slurmctld", path="/usr/sbin:/usr/bin") is None or shutil.which("sbatch") is None:
        pytest.fail("Slurm is not installed (Debian: slurm-wlm; make test installs it)")
    if os.geteuid() != 0:
        pytest.fail("slurmd must run as root to start jobs (run the tests as root, as make test does)")
    if not (SLURM_PLUGINS / "auth_none.so").exists():
        pytest.fail("Slurm's auth/none plugin is missing")
    root = tmp_path_factory.mktemp("slurm")
    node = socket.gethostname().split(".")[0]
    (root / "state").mkdir()
    (root / "spool" / node).mkdir(parents=True)
    ctld_port, d_port = free_ports(2)
    conf = root / "slurm.conf"
    conf.write_text(
        f"""ClusterName=gridinfotest
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
AuthType=auth/none
CredType=cred/none
SlurmUser=root
SlurmdUser=root
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool/%n
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
MailProg=/bin/true
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
NodeName={node} NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=60 State=UP
PartitionName=long Nodes={node} MaxTime=UNLIMITED State=UP PriorityTier=2
"""
    )
    env = {**os.environ, "SLURM_CONF": str(conf)}
    daemons = [
        subprocess.Popen(["slurmctld", "-D", "-f", str(conf)], env=env, start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen(["slurmd", "-D", "-N", node, "-f", str(conf)], env=env, start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    cluster = Slurm(conf, node)
    try:
        try:
            wait_for("node idle", lambda: "idle" in cluster.run("sinfo", "-h", "-o", "%T"))
        except TimeoutError:
            logs = "".join((root / f).read_text()[-800:] for f in ("slurmctld.log", "slurmd.log") if (root / f).exists())
            pytest.fail(f"Slurm did not start here: {logs}")
        yield cluster
    finally:
        try:
            cluster.run("scancel", "--user", "root")
            wait_for("jobs gone", lambda: cluster.run("squeue", "-h") == "", deadline=15)
            cluster.run("scontrol", "shutdown")
        except (subprocess.SubprocessError, OSError, TimeoutError):
            pass
        for daemon in daemons:
            try:
                daemon.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait()
