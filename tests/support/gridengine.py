"""A real single-host Grid Engine (Debian's gridengine 8.1.9) for the batch provider's tests.

``gridengine`` is a session fixture: sge_qmaster and sge_execd from Debian's packages, run as
root in the foreground (``SGE_ND``) with a private SGE_ROOT and cell in a temp folder, classic
(flat file) spooling, qmaster and execd ports picked free on this host, and two cluster queues:

    short   2 slots, h_rt 1:00:00, s_rt 0:50:00
    long    1 slot, priority 10

Container host names are odd (``vm`` resolving to 127.0.0.1, which resolves back to
``localhost``): Grid Engine refuses a client whose address resolves to another name than the one
it calls itself.  The cell's ``host_aliases`` makes both names one host, and ``act_qmaster``
names it as the address resolves back.  The admin user is ``none`` (daemons stay root, so
Debian's ``sgeadmin`` and its files are not involved), and ``min_uid 0`` lets root's test jobs
run.  The Debian-configured cell (/var/lib/gridengine/default) is left alone.
"""

from __future__ import annotations


import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gridinfo_dev.daemon import wait_for  # noqa: F401  (re-exported for the provider tests)

from tests.support.ports import free_ports

CELL = "gridinfotest"
UTILBIN = Path("/usr/lib/gridengine")
SGE_SHARE = Path("/usr/share/gridengine")

#: The full queue_conf(5) of a cluster queue as ``qconf -aq`` proposes it on Debian 8.1.9, with
#: the values the tests need; ``qconf -Aq`` wants every attribute.
QUEUE_TEMPLATE = {
    "qname": "", "hostlist": "NONE", "seq_no": "0", "load_thresholds": "NONE",
    "suspend_thresholds": "NONE", "nsuspend": "1", "suspend_interval": "00:05:00", "priority": "0",
    "min_cpu_interval": "00:05:00", "processors": "UNDEFINED", "qtype": "BATCH INTERACTIVE",
    "ckpt_list": "NONE", "pe_list": "NONE", "rerun": "FALSE", "slots": "1", "tmpdir": "/tmp",
    "shell": "/bin/sh", "prolog": "NONE", "epilog": "NONE", "shell_start_mode": "posix_compliant",
    "starter_method": "NONE", "suspend_method": "NONE", "resume_method": "NONE",
    "terminate_method": "NONE", "notify": "00:00:60", "owner_list": "NONE", "user_lists": "NONE",
    "xuser_lists": "NONE", "subordinate_list": "NONE", "complex_values": "NONE", "projects": "NONE",
    "xprojects": "NONE", "calendar": "NONE", "initial_state": "default",
    **{f"{kind}_{limit}": "INFINITY" for limit in ("rt", "cpu", "fsize", "data", "stack", "core", "rss", "vmem")
       for kind in ("s", "h")},
}

QUEUES = {
    "short": {"slots": "2", "h_rt": "01:00:00", "s_rt": "00:50:00"},
    "long": {"slots": "1", "priority": "10"},
}


@dataclass
class GridEngine:
    """A running Grid Engine cell: where it is and a way to run its commands."""

    root: Path
    cell: str
    qmaster_port: int
    execd_port: int
    host: str

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ, "SGE_ROOT": str(self.root), "SGE_CELL": self.cell, "SGE_QMASTER_PORT": str(self.qmaster_port),
            "SGE_EXECD_PORT": str(self.execd_port), "TZ": "UTC", "LC_ALL": "C",
        }

    def run(self, *argv: str, check: bool = True) -> str:
        out = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=30, cwd="/tmp")
        if check and out.returncode != 0:
            raise subprocess.CalledProcessError(out.returncode, argv, out.stdout, out.stderr)
        return out.stdout

    def submit(self, *options: str) -> str:
        """``qsub`` a binary job (sleep 300 unless the options end with a command); its job id."""
        command = list(options) if any(o == "--" for o in options) else [*options, "--", "sleep", "300"]
        split = command.index("--")
        return self.run("qsub", "-terse", "-b", "y", "-o", "/dev/null", "-j", "y", *command[:split], *command[split + 1:]).strip()

    def clear(self) -> None:
        """Delete every job and wait until qstat lists none (a test starts from an empty cluster)."""
        self.run("qdel", "-f", "-u", "*", check=False)
        wait_for("no jobs left", lambda: self.run("qstat", "-u", "*").strip() == "")

    def config_yaml(self) -> str:
        """The batch provider's config keys that point it at this cell."""
        return f"system: gridengine\nsge_root: {self.root}\nsge_cell: {self.cell}\nsge_qmaster_port: {self.qmaster_port}\n"


def _write_cell(root: Path, spool: Path, env: dict[str, str]) -> str:
    """The cell's common/ files and spool; the host name Grid Engine will use for this host."""
    common = root / CELL / "common"
    common.mkdir(parents=True)
    (root / "util").symlink_to(SGE_SHARE / "util")
    (common / "bootstrap").write_text(
        "admin_user none\ndefault_domain none\nignore_fqdn true\nspooling_method classic\n"
        f"spooling_lib libspoolc\nspooling_params {common};{spool / 'qmaster'}\nbinary_path /usr/sbin\n"
        f"qmaster_spool_dir {spool / 'qmaster'}\nsecurity_mode none\nlistener_threads 2\nworker_threads 2\n"
        "scheduler_threads 1\n"
    )
    def util(*argv: str) -> str:
        out = subprocess.run([str(UTILBIN / argv[0]), *argv[1:]], env=env, capture_output=True, text=True, timeout=20)
        return out.stdout.strip() if out.returncode == 0 else ""

    me = util("gethostname", "-name")
    address = next((w for w in util("gethostbyname", "-all", me).split() if w.count(".") == 3), "") if me else ""
    back = util("gethostbyaddr", "-name", address) if address else ""
    if not me or not back:
        pytest.fail(f"this host's name {me or '(none)'} does not resolve to an address and back ({address or 'no address'}); "
                    "Grid Engine needs both (add it to /etc/hosts)")
    (common / "host_aliases").write_text(f"{back} {me}\n" if back != me else "")
    (common / "act_qmaster").write_text(back + "\n")
    (spool / "qmaster").mkdir(parents=True)
    (spool / "execd").mkdir()
    conf = spool / "global-configuration"
    overrides = {"execd_spool_dir": str(spool / "execd"), "mailer": "/bin/true", "min_uid": "0", "min_gid": "0",
                 "load_report_time": "00:00:05", "max_unheard": "00:01:00"}
    lines = []
    for line in (SGE_SHARE / "default-configuration").read_text().splitlines():
        key = line.split()[0] if line.strip() and not line.startswith("#") else ""
        lines.append(f"{key} {overrides[key]}" if key in overrides else line)
    conf.write_text("\n".join(lines) + "\n")
    for argv in (
        ["spoolinit", "classic", "libspoolc", f"{common};{spool / 'qmaster'}", "init"],
        ["spooldefaults", "configuration", str(conf)],
        ["spooldefaults", "complexes", str(SGE_SHARE / "util/resources/centry")],
        ["spooldefaults", "usersets", str(SGE_SHARE / "util/resources/usersets")],
        ["spooldefaults", "managers", "root"],
    ):
        out = subprocess.run([str(UTILBIN / argv[0]), *argv[1:]], env=env, capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            pytest.fail(f"Grid Engine's {' '.join(argv[:2])} failed: {out.stdout}{out.stderr}")
    return back


@pytest.fixture(scope="session")
def gridengine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GridEngine]:
    """sge_qmaster + sge_execd in a private cell with two queues (see the module docstring)."""
    for program in ("/usr/sbin/sge_qmaster", "/usr/sbin/sge_execd", "/usr/bin/qstat", "/usr/bin/qconf", "/usr/bin/qsub"):
        if not os.path.exists(program):
            pytest.fail(f"Grid Engine is not installed ({program} missing; Debian: gridengine-master, "
                        "gridengine-exec, gridengine-client; make test installs them)")
    if os.geteuid() != 0:
        pytest.fail("sge_execd must run as root to start jobs (run the tests as root, as make test does)")
    base = tmp_path_factory.mktemp("gridengine")
    root, spool = base / "root", base / "spool"
    qmaster_port, execd_port = free_ports(2)
    env = {**os.environ, "SGE_ROOT": str(root), "SGE_CELL": CELL, "SGE_QMASTER_PORT": str(qmaster_port),
           "SGE_EXECD_PORT": str(execd_port), "SGE_ND": "1", "LC_ALL": "C"}
    host = _write_cell(root, spool, env)
    cluster = GridEngine(root, CELL, qmaster_port, execd_port, host)
    daemons: list[subprocess.Popen[bytes]] = []

    def start(program: str) -> None:
        log = open(base / f"{program}.out", "wb")
        daemons.append(subprocess.Popen([f"/usr/sbin/{program}"], env=env, cwd=base, start_new_session=True,
                                        stdout=log, stderr=subprocess.STDOUT))
        log.close()

    def logs() -> str:
        files = [base / "sge_qmaster.out", base / "sge_execd.out", spool / "qmaster" / "messages",
                 spool / "execd" / host / "messages"]
        return "".join(f"--- {f.name}\n{f.read_text(errors='replace')[-1500:]}" for f in files if f.exists())

    try:
        start("sge_qmaster")
        try:
            wait_for("qmaster answers", lambda: host in cluster.run("qconf", "-sh"))
            cluster.run("qconf", "-as", host)
            sched = cluster.run("qconf", "-ssconf")
            settings = {"schedule_interval": "0:0:1", "flush_submit_sec": "1", "flush_finish_sec": "1",
                        "job_load_adjustments": "NONE"}
            sched = "\n".join(f"{line.split()[0]} {settings[line.split()[0]]}" if line.split() and line.split()[0] in settings
                              else line for line in sched.splitlines())
            (base / "sched").write_text(sched + "\n")
            cluster.run("qconf", "-Msconf", str(base / "sched"))
            start("sge_execd")
            for name, values in QUEUES.items():
                attributes = {**QUEUE_TEMPLATE, "qname": name, "hostlist": host, **values}
                (base / f"queue-{name}").write_text("".join(f"{k} {v}\n" for k, v in attributes.items()))
                cluster.run("qconf", "-Aq", str(base / f"queue-{name}"))
            # the execd has reported in when its queue instances lose the "u" (unknown) state
            wait_for("execd reports", lambda: "Queue-List" in (out := cluster.run("qstat", "-f", "-xml"))
                     and re.search(r"<state>[^<]*u", out) is None)
        except (TimeoutError, subprocess.CalledProcessError) as e:
            pytest.fail(f"Grid Engine did not start here ({e}): {getattr(e, 'stderr', '')}\n{logs()}")
        yield cluster
    finally:
        cluster.run("qdel", "-f", "-u", "*", check=False)
        cluster.run("qconf", "-kej", host, check=False)  # execd and its jobs
        cluster.run("qconf", "-km", check=False)
        for daemon in daemons:
            try:
                daemon.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait()
        shutil.rmtree(base, ignore_errors=True)
