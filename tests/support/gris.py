"""A real ``gris`` process on loopback, for integration tests.

Runs ``python -m gridinfo.cli.gris`` with the given flags on a free loopback port, waits
(bounded) until it answers LDAP, and stops it on exit.  What it logged is kept in ``.log``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from gridinfo_dev.daemon import wait_for_listening
from gridinfo_dev.loadgen import LoadGenError, wait_for_ldap
from gridinfo_dev.ports import LOOPBACK

REPO = Path(__file__).resolve().parents[2]


class GrisProcess:
    """``with GrisProcess(["--ldif", path]) as gris: ... gris.url ...``"""

    def __init__(self, args: Sequence[str] = (), *, module: str = "gridinfo.cli.gris", start_timeout: float = 60.0):
        self.args = list(args)
        self.module = module
        self.start_timeout = start_timeout
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="gris-", suffix=".log", delete=False)

    @property
    def url(self) -> str:
        return f"ldap://{LOOPBACK}:{self.port}"

    @property
    def log(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def __enter__(self) -> GrisProcess:
        self.start()
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        cmd = [sys.executable, "-m", self.module, "--listen", f"tcp:0:interface={LOOPBACK}", *self.args]
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        try:
            self.port = wait_for_listening(Path(self._log.name), self.proc, self.start_timeout)
            wait_for_ldap(LOOPBACK, self.port, timeout=self.start_timeout, alive=lambda: self.proc.poll() is None)
        except (LoadGenError, TimeoutError) as e:
            self.stop()
            raise RuntimeError(f"gris did not start: {e}\n{self.log[-3000:]}") from None

    def listening_port(self, scheme: str, timeout: float = 30.0) -> int:
        """The port of the listener whose endpoint starts with ``scheme`` (``ssl:``, ``tcp:``)."""
        pattern = re.compile(rb"listening on [^ ]*:(\d+) \(" + re.escape(scheme.encode()))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = pattern.search(Path(self._log.name).read_bytes())
            if m:
                return int(m.group(1))
            time.sleep(0.02)
        raise TimeoutError(f"no {scheme} listener within {timeout} s\n{self.log[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
