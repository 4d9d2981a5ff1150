"""The code type-checks: mypy (with the zope.interface plugin Twisted needs) finds nothing."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: The package, the developer tooling in tools/gridinfo_dev and the tools/ scripts (files without
#: a .py suffix, hence --scripts-are-modules).  tests/ is not type-checked.
TARGETS = ["gridinfo", "tools/gridinfo_dev", "tools/bench", "tools/bench-giis", "tools/bench-events", "tools/gendit", "tools/fuzz",
           "tools/glue2-schema", "tools/bench-web", "tools/bench-push", "tools/bench-triggers", "tools/bench-lifecycle",
           "tools/bench-sync", "tools/bench-hotpath", "tools/build-compiled"]


def test_mypy_reports_no_issues_in_gridinfo_and_the_dev_tools():
    """`mypy gridinfo` and the dev tools report no issues (house style: type hints throughout, mypy clean)."""
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--scripts-are-modules", *TARGETS],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-2000:]
    assert "Success" in out.stdout


def test_every_tool_is_type_checked():
    """A script added to tools/ is added to the mypy run too."""
    scripts = {f"tools/{p.name}" for p in (REPO / "tools").iterdir() if p.is_file()}
    assert scripts <= set(TARGETS)
