"""Fixtures shared by the integration tests: one real single-node Slurm for the whole session."""

from tests.support.slurm import slurm  # noqa: F401  (fixture)
