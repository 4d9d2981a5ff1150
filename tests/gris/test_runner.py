"""Hostile providers, run for real: what is served afterwards, what the status says, what the log says.

Each test publishes good data from a provider named ``p`` first, then replaces ``p``'s program
with a hostile fixture (tests/gris/fixtures/) and searches again (ttl 0: every search refreshes).
The real reactor and real processes run under trial's TestCase; nothing sleeps.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from twisted.internet import defer, reactor
from twisted.logger import globalLogPublisher
from twisted.trial import unittest

from gridinfo.config import GRISConfig, ProviderConfig
from gridinfo.directory.filters import parse_filter
from gridinfo.directory.query import Scope, SearchRequest
from gridinfo.gris.backend import GRISBackend
from gridinfo.gris.providers import ProviderManager, make_definition
from gridinfo.gris.runner import ProviderRunner
from gridinfo.service import make_gris_tree

FIXTURES = Path(__file__).parent / "fixtures"
SUFFIX = "mds-vo-name=local,o=grid"


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class HostileProviders(unittest.TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="gridinfo-providers-"))
        self.addCleanup(shutil.rmtree, self.folder, True)
        self.pidfile = self.folder.parent / (self.folder.name + ".pid")
        self.addCleanup(lambda: self.pidfile.exists() and self.pidfile.unlink())
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        self.install("good")
        self.config = GRISConfig(
            providers=(str(self.folder),),
            provider_defaults=ProviderConfig(
                ttl=0, keepto=3600, retry=0, timelimit=5, max_output_bytes=1 << 20,
                env={"FIXTURE_PIDFILE": str(self.pidfile), "FIXTURE_DELAY": "0.5"},
            ),
            sweep_interval=0,
            rescan_interval=0,
        )
        self.tree = make_gris_tree(self.config)
        self.manager = ProviderManager(self.tree, self.config, reactor)
        self.backend = GRISBackend(self.tree, self.manager)
        self.manager.startService()
        self.addCleanup(self.manager.stopService)

    def install(self, fixture: str) -> None:
        """Make provider ``p`` run the named fixture from now on."""
        target = self.folder / "p"
        shutil.copyfile(FIXTURES / fixture, target)
        target.chmod(0o755)

    def search(self) -> defer.Deferred:
        request = SearchRequest(SUFFIX, Scope.SUB, parse_filter("(objectClass=GlueSite)"))
        return defer.maybeDeferred(self.backend.search, request)

    def served(self, uid: str) -> bool:
        return self.tree.lookup(f"GlueSiteUniqueID={uid},{SUFFIX}") is not None

    def status(self) -> dict[str, list[bytes]]:
        entry = self.tree.lookup("GridinfoProviderName=p,o=infosys")
        return {k: list(v) for k, v in entry.attributes.items()}

    def logged(self, **fields) -> list[dict]:
        return [e for e in self.events if all(e.get(k) == v for k, v in fields.items())]

    @defer.inlineCallbacks
    def good_then(self, fixture: str):
        """Publish the good fixture, then switch to ``fixture`` and search again."""
        result = yield self.search()
        self.assertEqual(len(result.entries), 2)
        self.install(fixture)
        result = yield self.search()
        yield self.manager.run_finished("p")  # a search may answer before a killed run ends
        return result

    def assert_failed_keeping_good(self, error_part: str) -> None:
        self.assertTrue(self.served("good") and self.served("good-2"))
        status = self.status()
        self.assertEqual(status["gridinfoproviderfailures"], [b"1"])
        self.assertEqual(status["gridinfoproviderruns"], [b"2"])
        self.assertEqual(status["gridinfoproviderentries"], [b"2"])  # of the last good run
        self.assertIn(error_part, status["gridinfoproviderlasterror"][0].decode())
        failed = self.logged(failed=True, provider="p")
        self.assertEqual(len(failed), 1)
        self.assertIn(error_part, failed[0]["error"])

    @defer.inlineCallbacks
    def test_hangs_and_its_child_are_killed(self):
        """A provider that hangs (and forks a hanging child) is killed with its child at its timelimit."""
        result = yield self.good_then("hangs")
        self.assertEqual(len(result.entries), 2)  # the search waited, then served the last good data
        self.assert_failed_keeping_good("timelimit")
        child = int(self.pidfile.read_text())
        self.assertFalse(alive(child), "the provider's child survived the kill")
        self.assertEqual(self.status()["gridinfoproviderexitstatus"], [b"-9"])
        self.assertTrue(self.logged(provider="p", line="hangs: about to hang"))  # its stderr, tagged

    @defer.inlineCallbacks
    def test_garbage_output_fails_the_run_and_keeps_the_last_good_data(self):
        """Garbage on stdout fails the run; the last good data stays."""
        result = yield self.good_then("garbage")
        self.assertEqual(len(result.entries), 2)
        self.assert_failed_keeping_good("bad LDIF")

    @defer.inlineCallbacks
    def test_output_past_max_output_bytes_kills_the_provider_and_keeps_nothing(self):
        """100 MB of output is cut at max_output_bytes: the provider is killed, nothing is kept."""
        result = yield self.good_then("huge")
        self.assertEqual(len(result.entries), 2)
        self.assert_failed_keeping_good("max_output_bytes")
        self.assertTrue(self.logged(provider="p", limit=1 << 20))

    @defer.inlineCallbacks
    def test_exit_3_after_good_ldif(self):
        """Good LDIF followed by exit status 3 is not published."""
        result = yield self.good_then("exit3")
        self.assertEqual(len(result.entries), 2)
        self.assertFalse(self.served("exit3"))
        self.assert_failed_keeping_good("exited with status 3")
        self.assertEqual(self.status()["gridinfoproviderexitstatus"], [b"3"])
        self.assertTrue(self.logged(provider="p", line="exit3: something went wrong after printing"))

    @defer.inlineCallbacks
    def test_entries_outside_its_subtree(self):
        """Entries outside the subtree are dropped with a warning; the rest replaces the old data."""
        result = yield self.good_then("outside")
        self.assertEqual(len(result.entries), 1)
        self.assertTrue(self.served("inside"))
        self.assertFalse(self.served("good"))
        self.assertIsNone(self.tree.lookup("GlueSiteUniqueID=intruder,mds-vo-name=other,o=grid"))
        self.assertEqual(self.status()["gridinfoproviderfailures"], [b"0"])
        warned = self.logged(provider="p", dn="GlueSiteUniqueID=intruder,mds-vo-name=other,o=grid")
        self.assertEqual(len(warned), 1)

    @defer.inlineCallbacks
    def test_an_entry_breaking_the_schema_is_refused_alone_and_the_rest_of_the_run_served(self):
        """As slapd refuses one add and takes the others: the good entry of the run is served, the
        broken one is refused (named with its DN in the status and the log), the run is not a failure."""
        yield self.good_then("badschema")
        self.assertTrue(self.served("fine"))
        self.assertFalse(self.served("broken"))
        self.assertFalse(self.served("good"))  # replaced by the new run, as any good run replaces
        status = self.status()
        self.assertEqual(status["gridinfoproviderfailures"], [b"0"])
        self.assertEqual(status["gridinfoproviderstate"], [b"fresh"])
        last_error = status["gridinfoproviderlasterror"][0].decode()
        self.assertIn(f"1 entries refused, breaking the schema: GlueSiteUniqueID=broken,{SUFFIX}", last_error)
        warned = [e["warning"] for e in self.logged(provider="p") if "warning" in e]
        self.assertTrue(warned and all(w.startswith(f"schema violation, entry refused: GlueSiteUniqueID=broken,{SUFFIX}: ")
                                       for w in warned), warned)

    @defer.inlineCallbacks
    def test_glue2_schema_violations_name_dn_attribute_and_rule(self):
        """GLUE 2 entries breaking the schema are refused one by one like GLUE 1.3 ones, the good
        entry of the run is served; the status names the first offender's DN, attribute and rule,
        and the log has one line per offender, each with all three."""
        yield self.good_then("glue2-bad")
        g = "GLUE2GroupID=resource,o=glue"
        self.assertIsNotNone(self.tree.lookup(f"GLUE2LocationID=fine,{g}"))
        for share in ("s1", "s2", "s3", "s4"):
            self.assertIsNone(self.tree.lookup(f"GLUE2ShareID={share},{g}"))
        status = self.status()
        self.assertEqual(status["gridinfoproviderfailures"], [b"0"])
        last_error = status["gridinfoproviderlasterror"][0].decode()
        self.assertIn("4 entries refused", last_error)
        self.assertIn(f"GLUE2ShareID=s1,{g}: attribute 'GLUE2ComputingShareRunningJobs' value 'many' is not valid", last_error)
        self.assertIn("integerMatch", last_error)
        self.assertIn("(and 3 more)", last_error)
        lines = [e["warning"].removeprefix("schema violation, entry refused: ")
                 for e in self.logged(provider="p") if "warning" in e]
        self.assertEqual(lines[1:], [
            f"GLUE2ShareID=s2,{g}: attribute 'GLUE2ComputingShareServingState' is SINGLE-VALUE but has 2 values",
            f"GLUE2ShareID=s3,{g}: attribute 'GLUE2EndpointURL' is not allowed by the entry's objectClasses",
            f"GLUE2ShareID=s4,{g}: missing attribute 'GLUE2ComputingShareServingState' required by objectClass "
            "'GLUE2ComputingShare'",
        ])
        self.assertTrue(lines[0].startswith(f"GLUE2ShareID=s1,{g}: "))

    @defer.inlineCallbacks
    def test_slow_but_in_time(self):
        """A slow provider within its timelimit is waited for; its output is served."""
        result = yield self.good_then("slow")
        self.assertEqual(len(result.entries), 1)
        self.assertTrue(self.served("slow"))
        status = self.status()
        self.assertEqual(status["gridinfoproviderstate"], [b"fresh"])
        self.assertGreaterEqual(int(status["gridinfoproviderduration"][0]), 400)


class Runner(unittest.TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def test_no_more_than_max_concurrent_providers_run_at_once(self):
        """No more than max_concurrent providers run at once; the rest wait for a slot."""
        runner = ProviderRunner(reactor, max_concurrent=2)
        config = GRISConfig(provider_defaults=ProviderConfig(env={"FIXTURE_DELAY": "0.3"}))
        definition = make_definition(FIXTURES / "slow", "provider", config)
        runs = [runner.run(definition) for _ in range(3)]
        self.assertEqual(runner.semaphore.tokens, 0)
        self.assertEqual(len(runner.semaphore.waiting), 1)
        outputs = yield defer.gatherResults(runs)
        self.assertEqual([o.exit_code for o in outputs], [0, 0, 0])
        # the third started when one of the first two ended
        self.assertGreaterEqual(outputs[2].started, min(outputs[0].ended, outputs[1].ended) - 0.01)

    @defer.inlineCallbacks
    def test_provider_environment_and_args(self):
        """Providers get their args, their env and GRIDINFO_PROVIDER / GRIDINFO_BASE."""
        folder = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, folder, True)
        script = folder / "echoer"
        script.write_text('#!/bin/sh\necho "$GRIDINFO_PROVIDER|$GRIDINFO_BASE|$X|$*"\n')
        script.chmod(0o755)
        config = GRISConfig(provider={"echoer": ProviderConfig(args=("a", "b"), env={"X": "y"})})
        definition = make_definition(script, "provider", config)
        output = yield ProviderRunner(reactor).run(definition)
        self.assertEqual(output.stdout, f"echoer|{SUFFIX}|y|a b\n".encode())

    @defer.inlineCallbacks
    def test_a_provider_that_cannot_be_executed_fails_with_a_reason(self):
        """A provider that cannot be executed fails with a reason, it does not crash the GRIS."""
        definition = make_definition(Path("/nonexistent/provider"), "provider", GRISConfig())
        output = yield ProviderRunner(reactor).run(definition)
        self.assertNotEqual(output.exit_code, 0)
