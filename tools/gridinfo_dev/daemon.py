"""Waiting for real processes: a gridinfo daemon started as a subprocess, or any external daemon."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from gridinfo_dev.loadgen import LoadGenError

_LISTENING = re.compile(rb"listening on [^ ]*:(\d+) ")


def wait_for_listening(log: Path, proc: subprocess.Popen[bytes], timeout: float) -> int:
    """The port a gridinfo daemon bound, from its ``listening on HOST:PORT`` log line.

    Daemons started on port 0 name the port the kernel gave them, so no other process can take
    it between our choosing it and the daemon binding it.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = _LISTENING.search(log.read_bytes())
        if m:
            return int(m.group(1))
        if proc.poll() is not None:
            raise LoadGenError(f"exited with status {proc.returncode} before listening")
        time.sleep(0.02)
    raise TimeoutError(f"no 'listening on' line within {timeout} s")


def wait_for(what: str, check: Callable[[], bool], deadline: float = 60.0, interval: float = 0.2) -> None:
    """Poll a real process until ``check`` holds, for at most ``deadline`` seconds (TimeoutError).

    For what the tests cannot drive with a clock of their own: another process answering over
    its own protocol (slurmctld, sge_qmaster, a gris running its providers).  A check that
    fails with a subprocess or OS error counts as "not yet".
    """
    end = time.monotonic() + deadline
    while True:
        try:
            if check():
                return
        except (subprocess.SubprocessError, OSError):
            pass
        if time.monotonic() >= end:
            raise TimeoutError(f"not within {deadline:g} s: {what}")
        time.sleep(interval)
