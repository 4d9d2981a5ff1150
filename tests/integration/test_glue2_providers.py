"""The bundled providers' GLUE 2 output together, batch from a real Slurm (the single-provider GLUE 2 checks: tests/providers/test_glue2.py)."""

from __future__ import annotations

from pathlib import Path

from tests.providers import egi_glue2_profile as profile
from tests.providers.support import ROOT, run_provider
from tests.providers.test_glue2 import G2
from tests.support.slurm import Slurm


def test_the_bundled_providers_output_meets_the_schema_and_the_egi_profile(slurm: Slurm, tmp_path: Path) -> None:
    """The real providers' GLUE 2 output, together: schema-clean (run_provider checks every entry),
    no breach of the profile's rules, and the mandatory attributes present except the ones no
    source here knows (the profile's validator warns about exactly those)."""
    (tmp_path / "batch.yaml").write_text(f"slurm_conf: {slurm.conf}\nsite_id: EXAMPLE-SITE\nvos: ['VO:ops']\n")
    (tmp_path / "host.yaml").write_text("benchmarks: {hep-spec06: 10.5}\n")
    runs = [
        run_provider("site", ["--config", str(ROOT / "conf" / "providers" / "site.yaml")]),
        run_provider("host", ["--config", str(tmp_path / "host.yaml"), "--state-dir", str(tmp_path)]),
        run_provider("batch", ["--config", str(tmp_path / "batch.yaml")]),
    ]
    assert [r.returncode for r in runs] == [0, 0, 0], [r.stderr for r in runs]
    glue2 = profile.as_entries((e.dn, e.attrs) for r in runs for e in r.entries if e.dn.endswith(G2))
    assert len(glue2) >= 14
    assert profile.problems(glue2) == []
    assert profile.missing_mandatory(glue2) == {
        # no source gives these: Slurm's partitions say nothing of memory limits, CPU time or
        # waiting-time estimates, and the model has no physical CPU count
        "GLUE2ComputingShare": {
            "GLUE2ComputingShareDefaultCPUTime", "GLUE2ComputingShareMaxMainMemory",
            "GLUE2ComputingShareGuaranteedMainMemory", "GLUE2ComputingShareMaxVirtualMemory",
            "GLUE2ComputingShareGuaranteedVirtualMemory", "GLUE2ComputingShareEstimatedAverageWaitingTime",
            "GLUE2ComputingShareEstimatedWorstWaitingTime", "GLUE2ComputingShareDefaultWallTime",
        },
        "GLUE2ComputingManager": {"GLUE2ComputingManagerTotalPhysicalCPUs"},
    }
