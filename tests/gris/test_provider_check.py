"""``gridinfo-provider-check``: the verdict a site admin relies on before deploying a provider."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
CHECK = Path(sys.executable).parent / "gridinfo-provider-check"


def _check(name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CHECK), str(FIXTURES / name)], capture_output=True, text=True, timeout=60)


def test_a_provider_whose_every_entry_is_dropped_fails_with_the_reason() -> None:
    """Entries all outside the provider's subtree: FAILED, exit 1, naming the subtree and a DN (not 'OK: 0 entries')."""
    run = _check("all-outside")
    assert run.returncode == 1, run.stdout
    assert "OK" not in run.stdout
    verdict = run.stdout.strip().splitlines()[-1]
    assert verdict == (
        "FAILED: every entry is outside its subtrees mds-vo-name=local,o=grid and GLUE2GroupID=resource,o=glue: "
        "GlueSiteUniqueID=lost,mds-vo-name=elsewhere,o=grid (and 1 more)"
    )


def test_a_provider_with_some_entries_outside_still_passes() -> None:
    """Entries outside the subtree are dropped with a listing; the rest would be published."""
    run = _check("outside")
    assert run.returncode == 0, run.stdout
    assert "OK: the GRIS would publish 1 entries" in run.stdout
    assert "GlueSiteUniqueID=intruder,mds-vo-name=other,o=grid" in run.stdout


def test_a_failed_run_shows_the_tail_of_its_stderr() -> None:
    """A failing provider's verdict comes with what it wrote on stderr, as its status entry has it."""
    run = _check("exit3")
    assert run.returncode == 1
    assert "FAILED: exited with status 3" in run.stdout
    assert "  exit3: something went wrong after printing" in run.stdout
