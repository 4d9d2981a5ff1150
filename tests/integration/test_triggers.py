"""Triggers end to end: a real ``gris`` process, a real provider whose value crosses a threshold,
real action programs and a real local HTTP server.

The provider reads the free-CPU figure from a file the test writes and runs in the background
every fraction of a second, so the tree changes as a real site's would.  The actions append
what they were given to a file; the test polls that file with a deadline (never sleeps
blindly).  Where "nothing fired" must be shown, a witness rule with no `for` over the same
condition counts the crossings that happened meanwhile.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.gris import GrisProcess

SUFFIX = "mds-vo-name=local,o=grid"
CE = f"GlueCEUniqueID=ce1.example.org:2119/jobmanager-pbs-long,{SUFFIX}"

PROVIDER = """#!/bin/sh
# the CE's free CPUs: the figure in {value}; with {flap} present, alternately 1 and 9 on each run
free=$(cat {value})
if [ -e {flap} ]; then
  n=$(cat {counter} 2>/dev/null || echo 0); n=$((n + 1)); echo $n > {counter}
  if [ $((n % 2)) -eq 0 ]; then free=1; else free=9; fi
fi
cat <<EOF
dn: {ce}
objectClass: GlueCE
objectClass: GlueCEState
GlueCEUniqueID: ce1.example.org:2119/jobmanager-pbs-long
GlueCEStateFreeCPUs: $free

EOF
"""

ACTION = """#!/bin/sh
# one line per start and per end: event, DN, firing id, attempt, and the first line of stdin
first=$(head -n 1)
echo "start $GRIDINFO_TRIGGER $GRIDINFO_EVENT $GRIDINFO_FIRING_ID $GRIDINFO_ATTEMPT $$ [$GRIDINFO_DN] [$first]" >> {out}
if [ -e {hang} ]; then exec sleep 300; fi
echo "done $GRIDINFO_TRIGGER $GRIDINFO_EVENT $GRIDINFO_FIRING_ID" >> {out}
"""


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def until(what: str, check: Callable[[], Any], deadline: float = 30.0, log: Callable[[], str] = lambda: "") -> Any:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {deadline} s\n{log()[-4000:]}")


class Site:
    """A work folder with a provider, an action script, and a gris config naming both."""

    def __init__(self, tmp_path: Path, rules: str, *, extra: str = "") -> None:
        self.dir = tmp_path
        self.value = tmp_path / "free"
        self.value.write_text("10\n")
        self.flap = tmp_path / "flap"
        self.hang = tmp_path / "hang"
        self.out = tmp_path / "actions.log"
        providers = tmp_path / "providers"
        providers.mkdir()
        executable(providers / "ce", PROVIDER.format(value=self.value, flap=self.flap, counter=tmp_path / "n", ce=CE))
        self.action = executable(tmp_path / "action.sh", ACTION.format(out=self.out, hang=self.hang))
        self.config = tmp_path / "gris.yaml"
        self.config.write_text(
            "providers: [providers]\n"
            "sweep_interval: 0.05\n"
            "trigger_journal: firings.sqlite\n"
            "provider_defaults: {ttl: 0.2, keepto: 5, timelimit: 5, refresh: background}\n"
            + extra
            + "triggers:\n"
            + rules.replace("ACTION", str(self.action))
        )
        self.gris: GrisProcess | None = None

    def start(self) -> GrisProcess:
        self.gris = GrisProcess(["--config", str(self.config)])
        self.gris.start()
        return self.gris

    def log(self) -> str:
        return (self.gris.log if self.gris else "") + "\n--- actions ---\n" + self.lines_text()

    def lines_text(self) -> str:
        return self.out.read_text() if self.out.exists() else ""

    def lines(self, kind: str, trigger: str | None = None) -> list[list[str]]:
        out = []
        for line in self.lines_text().splitlines():
            words = line.split()
            if words and words[0] == kind and (trigger is None or words[1] == trigger):
                out.append(words)
        return out


@pytest.fixture
def stop_all() -> Any:
    started: list[Site] = []
    yield started.append
    for site in started:
        if site.gris is not None:
            site.gris.stop()
    for site in started:  # a hung action left by a kill -9 (its own process group)
        for words in site.lines("start"):
            try:
                os.killpg(int(words[5]), signal.SIGKILL)
            except (ProcessLookupError, PermissionError, ValueError):
                pass


def test_crossing_a_threshold_fires_exec_once_after_for_and_again_on_leave(tmp_path: Path, stop_all: Any) -> None:
    """Free CPUs falling to 1 fires the exec action once it held `for` (with the entry as LDIF on
    stdin and GRIDINFO_* set), and once more when it recovered: mail when a CE is almost full."""
    site = Site(tmp_path, """\
  - name: almost-full
    base: mds-vo-name=local,o=grid
    filter: (&(objectClass=GlueCE)(GlueCEStateFreeCPUs<=2))
    on: [enter, leave]
    for: 1
    actions:
      - exec: [ACTION]
        timelimit: 10
""")
    stop_all(site)
    site.start()
    site.value.write_text("1\n")
    [start] = until("enter fired", lambda: site.lines("start"), log=site.log)
    assert start[1:3] == ["almost-full", "enter"]
    assert f"[{CE}]" in " ".join(start)
    assert f"[dn: {CE[:40]}" in " ".join(start)  # the entry, as LDIF (folded at 76 columns), on stdin
    until("enter done", lambda: site.lines("done"), log=site.log)
    site.value.write_text("8\n")
    until("leave fired", lambda: len(site.lines("done")) == 2, log=site.log)
    assert [w[2] for w in site.lines("start")] == ["enter", "leave"]
    assert len({w[3] for w in site.lines("start")}) == 2  # two firings, two ids


def test_flapping_inside_for_fires_nothing_and_rate_limit_holds(tmp_path: Path, stop_all: Any) -> None:
    """A value flapping across the threshold on every provider run: the rule with `for: 30` fires
    nothing, the one with `rate_limit: 2 per hour` fires twice, while the witness (no `for`, no
    limit) sees every crossing."""
    site = Site(tmp_path, """\
  - name: steady
    filter: (GlueCEStateFreeCPUs<=2)
    on: [enter, leave]
    for: 30
    actions: [{exec: [ACTION]}]
  - name: limited
    filter: (GlueCEStateFreeCPUs<=2)
    rate_limit: {firings: 2, per: 3600}
    actions: [{exec: [ACTION]}]
  - name: witness
    filter: (GlueCEStateFreeCPUs<=2)
    actions: [{exec: [ACTION]}]
""")
    stop_all(site)
    site.flap.write_text("")
    site.start()
    until("the witness saw six crossings", lambda: len(site.lines("done", "witness")) >= 6, log=site.log)
    assert site.lines("start", "steady") == []
    assert len(site.lines("start", "limited")) == 2
    assert "over its rate_limit" in site.gris.log  # type: ignore[union-attr]


class _Recorder(BaseHTTPRequestHandler):
    posts: list[tuple[str, dict[str, Any]]] = []
    fail_first = 0

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if type(self).fail_first > 0:
            type(self).fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        type(self).posts.append((self.headers.get("Content-Type", ""), json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_an_http_action_posts_the_firing_as_json_and_retries_a_refusal(tmp_path: Path, stop_all: Any) -> None:
    """`http:` POSTs the firing (trigger, event, DN, id, the entry) to a real local server; a 503
    is retried after retry_delay."""
    _Recorder.posts = []
    _Recorder.fail_first = 1
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        site = Site(tmp_path, f"""\
  - name: to-broker
    filter: (GlueCEStateFreeCPUs<=2)
    actions:
      - http: http://127.0.0.1:{server.server_port}/hook
        timelimit: 5
        retry_delay: 0.2
""")
        stop_all(site)
        site.value.write_text("0\n")
        site.start()
        [(content_type, doc)] = until("the server got the JSON", lambda: list(_Recorder.posts), log=site.log)
        assert content_type == "application/json"
        assert (doc["trigger"], doc["event"], doc["dn"], doc["repeat"]) == ("to-broker", "enter", CE, 0)
        assert doc["entry"]["GlueCEStateFreeCPUs"] == ["0"]
        assert doc["ldif"].replace("\n ", "").startswith(f"dn: {CE}\n")  # LDIF, folded
        assert len(doc["id"]) == 32 and doc["time"].endswith("Z")
        assert "503" in until("the refusal logged", lambda: "answered HTTP 503" in site.gris.log and site.gris.log)  # type: ignore[union-attr]
    finally:
        server.shutdown()
        server.server_close()


def test_kill_9_during_a_firing_reruns_it_once_after_restart(tmp_path: Path, stop_all: Any) -> None:
    """The daemon killed (-9) while an action runs: after restart that firing runs again, once,
    with the same id; a third start runs it no more."""
    site = Site(tmp_path, """\
  - name: almost-full
    filter: (GlueCEStateFreeCPUs<=2)
    actions:
      - exec: [ACTION]
        timelimit: 120
""")
    stop_all(site)
    site.hang.write_text("")
    site.value.write_text("1\n")
    gris = site.start()
    [first] = until("the action started", lambda: site.lines("start"), log=site.log)
    firing_id = first[3]
    assert first[4] == "1"  # attempt 1
    assert gris.proc is not None
    gris.proc.kill()  # SIGKILL: no chance to mark anything
    gris.proc.wait(10)
    os.killpg(int(first[5]), signal.SIGKILL)  # the action it left behind (its own process group)
    site.hang.unlink()
    site.value.write_text("10\n")  # the condition no longer holds: only the journal can rerun it
    site.start()
    until("the firing ran again", lambda: any(w[3] == firing_id for w in site.lines("done")), log=site.log)
    assert [w[3:5] for w in site.lines("start")] == [[firing_id, "1"], [firing_id, "2"]]
    site.gris.stop()  # type: ignore[union-attr]
    site.start()
    until("the third start is serving", lambda: "watching" in site.gris.log, log=site.log)  # type: ignore[union-attr]
    assert "deliveries left pending" not in site.gris.log  # type: ignore[union-attr]
    assert [w[3] for w in site.lines("done")] == [firing_id]


def test_trigger_check_lists_what_a_rule_matches_on_a_live_gris(tmp_path: Path) -> None:
    """`gridinfo-trigger-check RULE.yaml --url ldap://...` searches the running server."""
    import subprocess
    import sys

    rule = tmp_path / "busy.yaml"
    rule.write_text("base: mds-vo-name=local,o=grid\nfilter: (GlueCEStateFreeCPUs<=10)\nfor: 60\nactions: [{log: warn}]\n")
    ldif = Path(__file__).resolve().parents[2] / "conf" / "ldif"
    with GrisProcess(["--ldif", str(ldif)]) as gris:
        done = subprocess.run([sys.executable, "-m", "gridinfo.cli.trigger_check", str(rule), "--url", gris.url],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"matches now on server {gris.url}: 1 entries; enter fires for each after 60 s more" in done.stdout
    assert "GlueCEUniqueID=ce.example.org:8443/cream-slurm-long,mds-vo-name=local,o=grid" in done.stdout


def test_clients_subscribe_to_alerts_with_persistent_search_and_sync(tmp_path: Path, stop_all: Any) -> None:
    """The L&B-style channel: an `ldap` action's alert reaches an ldap3 persistent search and an
    `ldapsearch -E sync=rp` on ou=alerts,o=infosys, with no client-side configuration."""
    import queue
    import shutil
    import subprocess

    from ldap3 import ASYNC_STREAM, Connection, Server

    site = Site(tmp_path, """\
  - name: almost-full
    filter: (&(objectClass=GlueCE)(GlueCEStateFreeCPUs<=2))
    on: [enter, leave]
    actions: [{ldap: true}]
""")
    stop_all(site)
    gris = site.start()
    connection = Connection(Server("127.0.0.1", port=gris.port), client_strategy=ASYNC_STREAM, auto_bind=True)
    search = connection.extend.standard.persistent_search(
        "ou=alerts,o=infosys", "(&(objectClass=GridinfoAlert)(GridinfoTriggerName=almost-full))",
        attributes=["GridinfoTriggerEvent", "GridinfoAlertSubject", "GridinfoAlertEntry"], streaming=False)
    assert shutil.which("ldapsearch")
    proc = subprocess.Popen(
        ["ldapsearch", "-x", "-o", "ldif-wrap=no", "-H", gris.url, "-b", "ou=alerts,o=infosys", "-E", "sync=rp/rid=001/2",
         "(GridinfoTriggerEvent=*)", "GridinfoTriggerEvent", "GridinfoAlertSubject"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True)  # type: ignore[union-attr]
    reader.start()
    printed: list[str] = []

    def read_until(text: str) -> None:
        end = time.monotonic() + 30
        while not any(text in line for line in printed):
            try:
                printed.append(lines.get(timeout=max(0.0, end - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"ldapsearch did not print {text!r}:\n{''.join(printed)}\n{site.log()[-3000:]}") from None

    try:
        read_until("refresh done, switching to persist stage")
        site.value.write_text("1\n")
        heard = []
        end = time.monotonic() + 30
        while len(heard) < 2 and time.monotonic() < end:
            if len(heard) == 1:
                site.value.write_text("9\n")
            change = search.next(block=True, timeout=1)
            if change:
                heard.append((change["changeType"], change["attributes"]["GridinfoTriggerEvent"],
                              change["attributes"]["GridinfoAlertSubject"]))
        assert heard == [("add", "enter", CE), ("add", "leave", CE)], site.log()[-3000:]
        read_until("GridinfoTriggerEvent: leave")
        assert proc.wait(timeout=30) == 0  # two changes in persist: ldapsearch cancels
        text = "".join(printed)
        assert f"GridinfoAlertSubject: {CE}" in text and "GridinfoTriggerEvent: enter" in text
    finally:
        search.stop()
        connection.unbind()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_hung_action_is_killed_at_its_timelimit_logged_and_retried(tmp_path: Path, stop_all: Any) -> None:
    """An exec action that hangs is killed with its process group at `timelimit`, the failure is
    logged, and the retry (which does not hang) completes: the server kept serving meanwhile."""
    site = Site(tmp_path, """\
  - name: almost-full
    filter: (GlueCEStateFreeCPUs<=2)
    actions:
      - exec: [ACTION]
        timelimit: 1
        retry_delay: 0.5
""")
    stop_all(site)
    site.hang.write_text("")
    site.value.write_text("1\n")
    gris = site.start()
    [first] = until("the action started", lambda: site.lines("start"), log=site.log)
    site.hang.unlink()
    until("the retry finished", lambda: site.lines("done"), log=site.log)
    assert [w[4] for w in site.lines("start")] == ["1", "2"]
    assert "killed after its timelimit of 1 s" in gris.log
    with pytest.raises(ProcessLookupError):
        os.killpg(int(first[5]), 0)  # the hung attempt's process group is gone


def test_a_giis_fires_on_a_pushed_childs_change(tmp_path: Path, stop_all: Any) -> None:
    """A rule at a GIIS watches what it holds: the GRIS below pushes its CE's change, the GIIS's rule
    fires with the entry's DN as the GIIS serves it."""
    site = Site(tmp_path, "  []\n")  # the GRIS: no rules of its own
    stop_all(site)
    gris = site.start()
    giis_config = tmp_path / "giis.yaml"
    giis_config.write_text(
        "name: site\n"
        f"children:\n  - url: {gris.url}/{SUFFIX}\n    timeout: 5\n"
        "triggers:\n"
        "  - name: site-almost-full\n"
        "    base: mds-vo-name=site,o=grid\n"
        "    filter: (&(objectClass=GlueCE)(GlueCEStateFreeCPUs<=2))\n"
        f"    actions:\n      - exec: [{site.action}]\n        timelimit: 10\n"
    )
    with GrisProcess(["--config", str(giis_config)], module="gridinfo.cli.giis") as giis:
        until("the GIIS following the GRIS", lambda: "following its change stream" in giis.log, log=lambda: giis.log)
        site.value.write_text("1\n")
        [start] = until("the GIIS's rule fired", lambda: site.lines("start", "site-almost-full"), log=lambda: giis.log)
        assert start[2] == "enter"
        assert "[GlueCEUniqueID=ce1.example.org:2119/jobmanager-pbs-long,mds-vo-name=site,o=grid]" in " ".join(start)
