"""The protocol fuzzer (tools/fuzz) against a real gris: a bounded run finds nothing.

Mutated PDUs of every operation and control over real sockets: the server never crashes, never
answers ``internal error``, leaves no connection stuck, and keeps answering a valid search.
A long run is documented in docs/security.md.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.gris import REPO


def test_twenty_seconds_of_fuzzing_find_no_crash_and_no_stuck_connection(tmp_path):
    """`tools/fuzz --seconds 20`: 0 crashes, 0 stuck connections, the canary search always right."""
    out = subprocess.run(
        [sys.executable, str(REPO / "tools" / "fuzz"), "--seconds", "20", "--seed", "7", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    report = json.loads(out.stdout)
    assert out.returncode == 0, out.stdout + out.stderr
    assert report["inputs"] > 500
    assert report["crashes"] == 0 and report["stuck"] == 0 and report["canary_failures"] == 0
    assert report["final_canary"] is True
