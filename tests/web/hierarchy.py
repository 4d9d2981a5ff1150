"""A live test hierarchy for the web view: a ``gris`` registered under a site ``giis``, itself
registered under a top ``giis`` (three levels, as a GRIS -> site BDII -> top BDII).

All three run as real processes on loopback with ``--http tcp:0``.  The GRIS serves the example
site's static LDIF and one information provider (``queue``) whose output comes from a file the
test rewrites (``set_free_cpus``): a GlueCE, a VM, a job and a network path.  The provider's
ttl and the GIIS's cachettl are 1 s, so a change reaches the pages within a few checks.
"""

from __future__ import annotations

import re
import stat
import time
from pathlib import Path
from typing import Any

from tests.support.gris import REPO, GrisProcess

SUFFIX = "mds-vo-name=local,o=grid"
CE_DN = f"GlueCEUniqueID=ce.test.org:8443/cream-slurm-live,{SUFFIX}"

PROVIDER = """#!/bin/sh
free=$(cat "{data}")
cat <<LDIF
dn: GlueCEUniqueID=ce.test.org:8443/cream-slurm-live,{suffix}
objectClass: GlueCETop
objectClass: GlueCE
objectClass: GlueCEInfo
objectClass: GlueCEState
objectClass: GlueKey
objectClass: GlueSchemaVersion
GlueCEUniqueID: ce.test.org:8443/cream-slurm-live
GlueCEName: live
GlueCEInfoTotalCPUs: 64
GlueCEStateStatus: Production
GlueCEStateFreeCPUs: $free
GlueCEStateRunningJobs: 50
GlueCEStateWaitingJobs: 7
GlueForeignKey: GlueClusterUniqueID=ce.example.org
GlueSchemaVersionMajor: 1
GlueSchemaVersionMinor: 3

dn: GridinfoVMID=vm-test-1,{suffix}
objectClass: GridinfoVM
objectClass: GridinfoLifecycle
GridinfoVMID: vm-test-1
GridinfoVMName: worker-one
GridinfoVMState: Running
GridinfoJobGenericState: Running
GridinfoVMOwner: alice
GridinfoVMHostName: vm1.test.org
GridinfoVMPhysicalHost: node07.test.org
GridinfoVMUptime: 3600
GridinfoVMStateTime: Pending=20240501115000Z
GridinfoVMStateTime: Running=20240501120000Z
GridinfoVMJob: job-77

dn: GridinfoJobID=job-77,{suffix}
objectClass: GridinfoJob
GridinfoJobID: job-77
GridinfoJobOwner: alice
GridinfoJobQueue: live
GridinfoJobState: R
GridinfoJobGenericState: Running
GridinfoJobVM: vm-test-1

dn: GridinfoPathID=gris-to-giis,{suffix}
objectClass: GridinfoNetworkPath
GridinfoPathID: gris-to-giis
GridinfoPathSource: gris.test.org
GridinfoPathDestination: giis.test.org
GridinfoPathMethod: tcp
GridinfoPathRTTMin: 100
GridinfoPathRTTAvg: 200
GridinfoPathRTTMax: 400
GridinfoPathLoss: 0
GridinfoPathHops: 1
LDIF
"""

GRIS_CONFIG = """\
ldif: [{ldif}]
providers: [{folder}]
rescan_interval: 0.5
provider_defaults:
  ttl: 1
  keepto: 0
  timelimit: 10
register:
  - url: "ldap://127.0.0.1:{giis_port}/mds-vo-name=site,o=grid"
    regperiod: 30
    ttl: 60
    cachettl: 1
    timeout: 5
    hostname: 127.0.0.1
web:
  sample_interval: 0.5
  live_interval: 0.5
"""

GIIS_CONFIG = """\
name: site
register:
  - url: "ldap://127.0.0.1:{top_port}/mds-vo-name=top,o=grid"
    regperiod: 30
    ttl: 60
    cachettl: 1
    timeout: 5
    hostname: 127.0.0.1
web:
  sample_interval: 0.5
  live_interval: 0.5
"""

TOP_CONFIG = """\
name: top
web:
  sample_interval: 0.5
  live_interval: 0.5
"""

_WEB = re.compile(rb"web view on http://([^ /]+)/")


def http_url(daemon: GrisProcess, timeout: float = 30.0) -> str:
    """The web view's base URL, from the daemon's ``web view on http://HOST:PORT/`` log line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = _WEB.search(Path(daemon._log.name).read_bytes())
        if m:
            return "http://" + m.group(1).decode()
        time.sleep(0.02)
    raise TimeoutError(f"no web view line within {timeout} s\n{daemon.log[-2000:]}")


class Hierarchy:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.data = workdir / "free-cpus"
        self.top: GrisProcess | None = None
        self.giis: GrisProcess | None = None
        self.gris: GrisProcess | None = None
        self.top_url = self.giis_url = self.gris_url = ""

    def set_free_cpus(self, n: int) -> None:
        tmp = self.data.with_suffix(".tmp")
        tmp.write_text(f"{n}\n")
        tmp.replace(self.data)

    def __enter__(self) -> Hierarchy:
        self.set_free_cpus(11)
        folder = self.workdir / "providers"
        folder.mkdir()
        script = folder / "queue"
        script.write_text(PROVIDER.format(data=self.data, suffix=SUFFIX))
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        top_conf = self.workdir / "top.yaml"
        top_conf.write_text(TOP_CONFIG)
        self.top = GrisProcess(["--config", str(top_conf), "--http", "tcp:0"], module="gridinfo.cli.giis")
        self.top.start()
        self.top_url = http_url(self.top)
        giis_conf = self.workdir / "giis.yaml"
        giis_conf.write_text(GIIS_CONFIG.format(top_port=self.top.port))
        self.giis = GrisProcess(["--config", str(giis_conf), "--http", "tcp:0"], module="gridinfo.cli.giis")
        self.giis.start()
        self.giis_url = http_url(self.giis)
        gris_conf = self.workdir / "gris.yaml"
        gris_conf.write_text(GRIS_CONFIG.format(ldif=REPO / "conf" / "ldif", folder=folder, giis_port=self.giis.port))
        self.gris = GrisProcess(["--config", str(gris_conf), "--http", "tcp:0"])
        self.gris.start()
        self.gris_url = http_url(self.gris)
        return self

    def __exit__(self, *exc: Any) -> None:
        for daemon in (self.gris, self.giis, self.top):
            if daemon is not None:
                daemon.stop()
