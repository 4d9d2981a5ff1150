"""How a failing provider is reported: the reason, and its stderr tail in its status entry."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from twisted.trial import unittest

from gridinfo.config import GRISConfig
from gridinfo.gris.softstate import DataState, ProviderDefinition, RunOutput, SoftStateTable, interpret_output
from gridinfo.gris.status import StatusPublisher, provider_status_dn
from gridinfo.service import make_gris_tree

SUFFIX = "mds-vo-name=local,o=grid"


def _site(uid: str, suffix: str = SUFFIX) -> bytes:
    return f"dn: GlueSiteUniqueID={uid},{suffix}\nobjectClass: GlueTop\nobjectClass: GlueSite\nGlueSiteUniqueID: {uid}\n\n".encode()


def test_a_run_whose_every_entry_is_outside_its_subtree_fails() -> None:
    """A provider printing only under another suffix fails (last good data kept), with the base and a DN."""
    tree = make_gris_tree(GRISConfig())
    definition = ProviderDefinition(name="p", path="/p", base=SUFFIX)
    output = RunOutput(stdout=_site("a", "mds-vo-name=other,o=grid"))
    report = interpret_output(definition, output, tree)
    assert report.error == (
        f"every entry is outside its subtree {SUFFIX}: GlueSiteUniqueID=a,mds-vo-name=other,o=grid"
    )
    assert report.outside == ("GlueSiteUniqueID=a,mds-vo-name=other,o=grid",)
    assert interpret_output(definition, RunOutput(stdout=b""), tree).ok  # printing nothing is no error


def test_status_entry_carries_the_stderr_tail_of_a_failed_run_until_a_good_one() -> None:
    """`ldapsearch -b o=infosys` shows why a provider fails (its last stderr lines); a good run clears them."""
    tree = make_gris_tree(GRISConfig())
    table = SoftStateTable(tree)
    table.define(ProviderDefinition(name="p", path="/p", base=SUFFIX))
    status = StatusPublisher(tree, table, start_time=0.0)
    table.start("p", 10.0)
    table.fail("p", 10.0, "exited with status 1", RunOutput(exit_code=1, stderr_tail="p: ERROR: slurmctld down\nbye"))
    status.publish(10.0)
    entry = tree.lookup(provider_status_dn("p"))
    assert entry is not None
    assert list(entry.get("gridinfoproviderstderr")) == [b"p: ERROR: slurmctld down\nbye"]
    assert list(entry.get("gridinfoproviderlasterror")) == [b"exited with status 1"]
    assert not tree.schema.check_entry(dict(entry.attributes.items()))
    table.start("p", 20.0)
    good = RunOutput(stdout=_site("a"))
    table.succeed("p", 20.0, interpret_output(table.records["p"].definition, good, tree), good)
    status.publish(20.0)
    entry = tree.lookup(provider_status_dn("p"))
    assert entry is not None and table.records["p"].state is DataState.FRESH
    assert not list(entry.get("gridinfoproviderstderr"))


class RunnerStderrTail(unittest.TestCase):
    timeout = 60

    def test_the_runner_keeps_the_last_stderr_lines_of_a_real_process(self):
        """The tail is the run's last lines (bounded), from the real process's stderr."""
        from twisted.internet import reactor

        from gridinfo.gris.runner import STDERR_TAIL_LINES, ProviderRunner

        folder = Path(tempfile.mkdtemp(prefix="gridinfo-stderr-"))
        self.addCleanup(shutil.rmtree, folder, True)
        script = folder / "noisy"
        script.write_text("#!/bin/sh\nfor i in $(seq 1 50); do echo line $i >&2; done\nexit 1\n")
        script.chmod(0o755)

        def check(output: RunOutput) -> None:
            assert output.exit_code == 1
            assert output.stderr_tail.splitlines() == [f"line {i}" for i in range(51 - STDERR_TAIL_LINES, 51)]

        d = ProviderRunner(reactor).run_now(ProviderDefinition(name="noisy", path=str(script.absolute())))
        return d.addCallback(check)
