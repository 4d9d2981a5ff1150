"""The package type-checks: mypy (with the zope.interface plugin Twisted needs) finds nothing."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_mypy_clean():
    """`mypy gridinfo` reports no issues (house style: type hints throughout, mypy clean)."""
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "gridinfo"], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-2000:]
