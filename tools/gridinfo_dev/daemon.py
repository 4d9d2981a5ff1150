"""Waiting for a gridinfo daemon (``gris``, ``giis``) started as a subprocess."""

from __future__ import annotations

import re
import subprocess
import time
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
