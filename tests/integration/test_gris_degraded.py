"""A GRIS whose providers fail: its status says why, and giis-tree shows it degraded."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from twisted.internet import defer, reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest

from gridinfo.cli.giis_tree import all_healthy, render, walk
from gridinfo.config import GRISConfig, RegisterConfig
from gridinfo.service import make_gris_service
from tests.giis.support import Running, ldapsearch, register_now, start_giis

FIXTURES = Path(__file__).parent.parent / "gris" / "fixtures"
LOOPBACK = "tcp:0:interface=127.0.0.1"


class DegradedGRIS(unittest.TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.running: list[Running] = []

    @defer.inlineCallbacks
    def tearDown(self):
        for r in reversed(self.running):
            yield r.stop()

    def start(self, r: Running) -> Running:
        self.running.append(r)
        return r

    @defer.inlineCallbacks
    def test_failing_provider_shows_its_stderr_and_the_gris_as_degraded(self):
        """o=infosys holds the failed run's stderr tail; giis-tree marks the GRIS degraded and exits 1."""
        folder = Path(tempfile.mkdtemp(prefix="gridinfo-degraded-"))
        self.addCleanup(shutil.rmtree, folder, True)
        shutil.copy(FIXTURES / "exit3", folder / "exit3")
        site = self.start(start_giis("site"))
        config = GRISConfig(listen=(LOOPBACK,), providers=(str(folder),), rescan_interval=0, sweep_interval=0)
        config = replace(config, register=(RegisterConfig(url=site.url("mds-vo-name=site,o=grid"), hostname="127.0.0.1"),))
        gris = self.start(Running(make_gris_service(config, reactor)))
        yield register_now(gris)
        # a search of the GRIS suffix runs the provider (on demand) and waits for it
        yield ldapsearch(gris.port, "-b", "mds-vo-name=local,o=grid", "(objectClass=*)", "1.1")
        out, err, code = yield ldapsearch(gris.port, "-b", "o=infosys", "(GridinfoProviderName=exit3)")
        assert code == 0, err
        text = out.decode()
        assert "GridinfoProviderLastError: exited with status 3" in text
        assert "GridinfoProviderStderr: exit3: something went wrong after printing" in text

        root = yield walk(reactor, site.url("mds-vo-name=site,o=grid"), depth=3, timeout=5, count=False)
        [node] = root.children
        assert node.port == gris.port
        assert node.failing_providers == {"exit3": "exited with status 3"}
        assert not node.healthy and not all_healthy(root)
        line = next(line for line in render(root).splitlines() if f":{gris.port}/" in line)
        assert "DEGRADED: providers failing: exit3 (exited with status 3)" in line

        out, err, code = yield getProcessOutputAndValue(
            sys.executable,
            ["-m", "gridinfo.cli.giis_tree", "--json", "--timeout", "5", site.url("mds-vo-name=site,o=grid")],
            env={"PYTHONPATH": ":".join(sys.path)},
        )
        assert code == 1, err
        [child] = json.loads(out)["children"]
        assert child["degraded"] is True and child["failing_providers"] == {"exit3": "exited with status 3"}
