"""A VM's event history on the VMs page's API: events logged over LDAP to a real gris."""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import quote

from tests.support.gris import GrisProcess
from tests.web.conftest import get_json, until
from tests.web.hierarchy import http_url

CONFIG = """\
vm:
  enabled: true
  journal: {journal}
  allow_anonymous: true
"""

EVENT = """\
dn: GridinfoEventID=cloud:vm-42:-:{seq},ou=events,mds-vo-name=local,o=grid
objectClass: GridinfoEvent
GridinfoEventID: cloud:vm-42:-:{seq}
GridinfoEventType: {kind}
GridinfoEventSource: cloud
GridinfoEventSeq: {seq}
GridinfoEventTime: 2024050112{seq:02d}00Z
GridinfoVMID: vm-42
GridinfoEventAttribute: physical_host=node07.example.org
GridinfoEventAttribute: owner=alice

"""


def test_vm_events_and_state_history(tmp_path: Path) -> None:
    conf = tmp_path / "gris.yaml"
    conf.write_text(CONFIG.format(journal=tmp_path / "events.sqlite"))
    with GrisProcess(["--config", str(conf), "--http", "tcp:0"]) as gris:
        web = http_url(gris)
        ldif = "".join(EVENT.format(seq=seq, kind=kind) for seq, kind in ((1, "Register"), (2, "Running")))
        out = subprocess.run(["ldapadd", "-x", "-H", gris.url], input=ldif, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        (vm,) = until(lambda: get_json(web + "/api/vms")[1]["vms"], "the VM entry")
        assert (vm["id"], vm["owner"], vm["physical_host"]) == ("vm-42", "alice", "node07.example.org")
        assert vm["runs"] == 1 and vm["hosts"] == ["node07.example.org"]  # the runs and hosts of its life cycle
        status, data = get_json(web + "/api/vm?dn=" + quote(vm["dn"]))
        assert status == 200
        assert [(e["type"], e["seq"], e["source"]) for e in data["events"]] == [("Register", 1, "cloud"), ("Running", 2, "cloud")]
        assert "physical_host=node07.example.org" in data["events"][0]["attributes"]
