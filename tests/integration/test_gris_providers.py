"""End to end over loopback: a running ``gris`` process, its providers folder, and ``ldapsearch``.

Drop an executable into the folder of a running GRIS and its entries appear; remove it and they
go when their state expires; ``-b o=infosys`` shows its status.  The GRIS runs with a 1 s ttl
and fast rescans so the test takes a few seconds; it polls (never sleeps blindly) with a deadline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from twisted.internet import defer, reactor, task, utils
from twisted.trial import unittest

from tests.support.ports import free_port

LDAPSEARCH = shutil.which("ldapsearch")
FIXTURES = Path(__file__).parent.parent / "gris" / "fixtures"
ROOT = Path(__file__).resolve().parents[2]

CONFIG = """\
listen: ["tcp:{port}:interface=127.0.0.1"]
providers: [{folder}]
rescan_interval: 0.2
sweep_interval: 0.1
provider_defaults:
  ttl: 1
  keepto: 0
  timelimit: 5
"""


class DropInProvider(unittest.TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="gridinfo-gris-"))
        self.addCleanup(shutil.rmtree, self.workdir, True)
        self.folder = self.workdir / "providers"
        self.folder.mkdir()
        self.port = free_port()
        conf = self.workdir / "gris.yaml"
        conf.write_text(CONFIG.format(port=self.port, folder="providers"))
        # --providers on the command line adds a second (empty) folder: the flag works too
        extra = self.workdir / "more-providers"
        extra.mkdir()
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.log = open(self.workdir / "gris.log", "wb")
        self.addCleanup(self.log.close)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gridinfo.cli.gris", "--config", str(conf), "--providers", str(extra)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.addCleanup(self.stop)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def ldapsearch(self, base: str, *args: str) -> defer.Deferred:
        argv = ["-x", "-LLL", "-H", f"ldap://127.0.0.1:{self.port}", "-b", base, *args]
        return utils.getProcessOutputAndValue(LDAPSEARCH, argv, env=dict(os.environ))

    @defer.inlineCallbacks
    def until(self, base: str, predicate, *args: str, deadline: float = 20.0):
        """Run ldapsearch until ``predicate(rc, stdout)`` holds; fail after ``deadline`` seconds."""
        start = reactor.seconds()
        while True:
            out, err, rc = yield self.ldapsearch(base, *args)
            text = out.decode()
            if predicate(rc, text):
                return text
            if self.proc.poll() is not None:
                self.fail("gris exited:\n" + (self.workdir / "gris.log").read_text())
            if reactor.seconds() - start > deadline:
                self.fail(f"condition not met after {deadline} s; last answer rc={rc}:\n{text}{err.decode()}")
            yield task.deferLater(reactor, 0.1, lambda: None)

    @defer.inlineCallbacks
    def test_drop_in_and_remove(self):
        """A provider dropped into a running GRIS's folder is served; removed, its entries expire."""
        base = "mds-vo-name=local,o=grid"
        text = yield self.until(base, lambda rc, t: rc == 0, "-s", "base")
        self.assertIn("dn: mds-vo-name=local,o=grid", text)
        self.assertNotIn("GlueSiteUniqueID=good", text)

        shutil.copyfile(FIXTURES / "good", self.folder / "good.tmp")
        os.chmod(self.folder / "good.tmp", 0o755)
        os.rename(self.folder / "good.tmp", self.folder / "good")  # appears atomically
        text = yield self.until(base, lambda rc, t: "GlueSiteUniqueID=good," in t, "(objectClass=GlueSite)")
        self.assertIn("dn: GlueSiteUniqueID=good-2,mds-vo-name=local,o=grid", text)
        self.assertIn("Mds-validfrom: ", text)
        self.assertIn("Mds-validto: ", text)

        status = yield self.until("o=infosys", lambda rc, t: "GridinfoProviderName: good" in t, "(GridinfoProviderName=good)")
        self.assertIn("GridinfoProviderExitStatus: 0", status)
        self.assertIn("GridinfoProviderEntries: 2", status)

        os.unlink(self.folder / "good")
        text = yield self.until(base, lambda rc, t: rc == 0 and "GlueSiteUniqueID" not in t, "(objectClass=GlueSite)")
        self.assertEqual(text.strip(), "")
        status = yield self.until("o=infosys", lambda rc, t: rc == 0 and "good" not in t, "(objectClass=GridinfoProviderStatus)")
        self.assertNotIn("GridinfoProviderName: good", status)
