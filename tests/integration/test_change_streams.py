"""Change streams through a real ``gris``: ldapsearch's sync modes, ldap3's persistent search, slapd's syncrepl.

The GRIS runs one provider, a shell script printing a CE per line of a data file, refreshed in
the background every second; a test changes the file and the change travels provider -> soft
state -> tree -> change stream -> client.  Waiting for that is waiting for real processes, so
every wait is bounded by a deadline and polls; nothing sleeps to wait for an expiry of ours.
"""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ldap3 import ASYNC_STREAM, Connection, Server

from gridinfo import ber
from gridinfo.directory.ldif import parse_ldif
from gridinfo.ldap import sync
from gridinfo_dev import loadgen
from gridinfo_dev.daemon import wait_for
from tests.support.gris import GrisProcess
from tests.support.ports import LOOPBACK
from tests.support.slapd import Slapd

REPO = Path(__file__).resolve().parents[2]
BASE = "mds-vo-name=local,o=grid"
CE_FILTER = "(objectClass=GlueCE)"
DEADLINE = 60.0

PROVIDER = """#!/bin/sh
# one GlueCE per line "name free-cpus" of the data file
while read name free; do
  printf 'dn: GlueCEUniqueID=%s,{base}\\nobjectClass: GlueCETop\\nobjectClass: GlueCE\\nobjectClass: GlueCEState\\n' "$name"
  printf 'GlueCEUniqueID: %s\\nGlueCEStateFreeCPUs: %s\\n\\n' "$name" "$free"
done < "{data}"
"""


class Site:
    """The data file the provider reads, and the GRIS serving it."""

    def __init__(self, folder: Path) -> None:
        self.data = folder / "ces.txt"
        providers = folder / "providers"
        providers.mkdir()
        script = providers / "ces"
        script.write_text(PROVIDER.format(base=BASE, data=self.data))
        script.chmod(0o755)
        self.config = folder / "gris.yaml"
        self.config.write_text(
            f"providers: [{providers}]\n"
            'glue2_suffix: ""\n'
            "provider:\n"
            "  ces: {ttl: 1, refresh: background}\n"
        )
        self.set({"ce1": 1, "ce2": 2})
        self.gris: GrisProcess | None = None

    def set(self, ces: dict[str, int]) -> None:
        tmp = self.data.with_suffix(".tmp")
        tmp.write_text("".join(f"{name} {free}\n" for name, free in ces.items()))
        os.replace(tmp, self.data)  # the provider never reads half a file

    @property
    def url(self) -> str:
        assert self.gris is not None
        return self.gris.url


def free_cpus(url: str) -> dict[str, str]:
    out = subprocess.run(["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", url, "-b", "o=grid", CE_FILTER,
                          "GlueCEUniqueID", "GlueCEStateFreeCPUs"], capture_output=True, timeout=30)
    rows = {}
    for rec in parse_ldif(out.stdout):
        attrs = {name.lower(): values[0].decode() for name, values in rec.attributes}
        rows[attrs["glueceuniqueid"]] = attrs.get("gluecestatefreecpus", "")
    return rows


def provider_runs(url: str) -> int:
    """How many times the GRIS has run the provider (its status entry under o=infosys)."""
    out = subprocess.run(["ldapsearch", "-x", "-LLL", "-H", url, "-b", "GridinfoProviderName=ces,o=infosys", "-s", "base",
                          "GridinfoProviderRuns"], capture_output=True, text=True, timeout=30)
    [line] = [line for line in out.stdout.splitlines() if line.startswith("GridinfoProviderRuns: ")]
    return int(line.split(": ", 1)[1])


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path)
    with GrisProcess(["--config", str(s.config)]) as gris:
        s.gris = gris
        wait_for("the provider's first run", lambda: free_cpus(gris.url) == {"ce1": "1", "ce2": "2"}, DEADLINE)
        yield s


def ldapsearch_sync(url: str, mode: str, *extra: str) -> str:
    out = subprocess.run(["ldapsearch", "-x", "-o", "ldif-wrap=no", "-H", url, "-b", "o=grid", "-E", mode, CE_FILTER,
                          "GlueCEStateFreeCPUs", *extra], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout


def cookie_of(output: str) -> str:
    [line] = [line for line in output.splitlines() if line.startswith("# cookie: ")]
    return line.removeprefix("# cookie: ")


def test_ldapsearch_sync_ro_gets_the_tree_and_a_resumed_search_only_what_changed(site: Site) -> None:
    """``-E sync=ro``: the entries and a Sync Done cookie; ``sync=ro/<cookie>`` afterwards: the changes only."""
    first = ldapsearch_sync(site.url, "sync=ro/rid=001")
    assert first.count("\ndn: ") == 2 and "result: 0 Success" in first
    assert "# SyncDone control refreshDeletes=0" in first
    cookie = cookie_of(first)
    assert cookie.startswith("rid=001,csn=")
    site.set({"ce1": 7, "ce2": 2, "ce3": 3})
    wait_for("the provider's change", lambda: free_cpus(site.url).get("ce3") == "3")
    again = ldapsearch_sync(site.url, f"sync=ro/{cookie}")
    dns = [line for line in again.splitlines() if line.startswith("dn: ")]
    assert sorted(dns) == [f"dn: GlueCEUniqueID=ce1,{BASE}", f"dn: GlueCEUniqueID=ce3,{BASE}"]  # ce2 unchanged
    assert "# SyncDone control refreshDeletes=1" in again
    site.set({"ce1": 7, "ce3": 3})
    wait_for("ce2 removed", lambda: "ce2" not in free_cpus(site.url))
    last = ldapsearch_sync(site.url, f"sync=ro/{cookie_of(again)}")
    assert [line for line in last.splitlines() if line.startswith("dn: ")] == [f"dn: GlueCEUniqueID=ce2,{BASE}"]
    assert "deleted" in last  # ldapsearch prints the Sync State of a delete


def test_ldapsearch_sync_rp_prints_a_provider_change_while_it_waits_and_cancel_ends_it(site: Site) -> None:
    """``-E sync=rp/rid=001/1``: refresh, persist, the provider's change printed; after one change it sends Cancel."""
    proc = subprocess.Popen(
        ["ldapsearch", "-x", "-o", "ldif-wrap=no", "-H", site.url, "-b", "o=grid", "-E", "sync=rp/rid=001/1", CE_FILTER,
         "GlueCEStateFreeCPUs"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True)  # type: ignore[union-attr]
    reader.start()
    seen: list[str] = []

    def read_until(text: str) -> None:
        end = time.monotonic() + DEADLINE
        while not any(text in line for line in seen):
            try:
                seen.append(lines.get(timeout=max(0.0, end - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"ldapsearch did not print {text!r}; it printed:\n{''.join(seen)}") from None

    try:
        read_until("refresh done, switching to persist stage")
        site.set({"ce1": 42, "ce2": 2})
        read_until("GlueCEStateFreeCPUs: 42")
        assert proc.wait(timeout=DEADLINE) == 0  # one change in persist: ldapsearch cancels, we answer
        reader.join(timeout=DEADLINE)
        while not lines.empty():
            seen.append(lines.get())
        out = "".join(seen)
        assert "result: 118 Cancelled" in out and "extended result response" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ldap3_persistent_search_hears_add_modify_and_delete(site: Site) -> None:
    """ldap3's ``persistent_search`` (changes only, with notifications) over a real socket."""
    connection = Connection(Server(LOOPBACK, port=site.gris.port), client_strategy=ASYNC_STREAM, auto_bind=True)  # type: ignore[union-attr]
    search = connection.extend.standard.persistent_search("o=grid", CE_FILTER, attributes=["GlueCEStateFreeCPUs"],
                                                          streaming=False)
    try:
        site.set({"ce1": 9, "ce3": 3})  # ce1 modified, ce2 removed, ce3 added
        heard: dict[str, str] = {}
        end = time.monotonic() + DEADLINE
        while len(heard) < 3 and time.monotonic() < end:
            change = search.next(block=True, timeout=1)
            if change:
                heard[change["dn"].split(",")[0]] = change["changeType"]
        assert heard == {"GlueCEUniqueID=ce1": "modify", "GlueCEUniqueID=ce2": "delete", "GlueCEUniqueID=ce3": "add"}
    finally:
        search.stop()
        connection.unbind()


def test_a_refresh_that_changes_nothing_sends_nothing(site: Site) -> None:
    """Many provider runs with the same output: a subscriber hears nothing, then exactly the one change."""
    connection = Connection(Server(LOOPBACK, port=site.gris.port), client_strategy=ASYNC_STREAM, auto_bind=True)  # type: ignore[union-attr]
    search = connection.extend.standard.persistent_search("o=grid", CE_FILTER, streaming=False)
    try:
        runs = provider_runs(site.url)
        wait_for("three more provider runs", lambda: provider_runs(site.url) >= runs + 3)
        assert search.next(block=False) is None
        site.set({"ce1": 5, "ce2": 2})
        change = None
        end = time.monotonic() + DEADLINE
        while change is None and time.monotonic() < end:
            change = search.next(block=True, timeout=1)
        assert change is not None and change["changeType"] == "modify" and change["dn"].startswith("GlueCEUniqueID=ce1,")
    finally:
        search.stop()
        connection.unbind()


@pytest.mark.slapd
def test_a_stock_slapd_syncrepl_consumer_replicates_the_gris_and_follows_it(site: Site) -> None:
    """slapd as a refreshAndPersist consumer of gridinfo: a full copy, then adds, modifies and deletes."""
    with Slapd.replica_of(site.url) as replica:
        wait_for("the first copy", lambda: free_cpus(replica.url) == {"ce1": "1", "ce2": "2"})
        site.set({"ce1": 11, "ce3": 3})
        wait_for("the changes at the replica", lambda: free_cpus(replica.url) == {"ce1": "11", "ce3": "3"})


def gris_status(url: str) -> dict[str, str]:
    out = subprocess.run(["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", url, "-b", "o=infosys",
                          "(objectClass=GridinfoServerStatus)", "GridinfoChangeStreams", "GridinfoConnections"],
                         capture_output=True, text=True, timeout=30)
    return dict(line.split(": ", 1) for line in out.stdout.splitlines() if ": " in line and not line.startswith("dn"))


def test_ten_thousand_subscriptions_opened_and_dropped_leave_no_leak(tmp_path: Path) -> None:
    """100 connections x 100 ``refreshAndPersist`` searches, then every socket closed, twice: the
    open-streams gauge goes back to 0 and the second round leaves RSS where the first left it."""
    config = tmp_path / "gris.yaml"
    config.write_text("limits:\n  max_outstanding_ops: 128\n")
    value = ber.sequence([ber.integer(sync.REFRESH_AND_PERSIST, tag=ber.ENUMERATED)])
    controls = sync.controls(sync.control(sync.SYNC_REQUEST_OID, value, critical=True))
    batch = b"".join(loadgen.search_request(i + 1, "o=grid", loadgen.SCOPE_SUB, "(objectClass=GlueCE)", controls=controls)
                     for i in range(100))
    with GrisProcess(["--config", str(config), "--ldif", str(REPO / "conf" / "ldif")]) as gris:
        assert gris.proc is not None
        rss: list[int] = []
        for _ in range(2):
            sockets = []
            for _ in range(100):
                s = socket.create_connection((LOOPBACK, gris.port))
                s.sendall(batch)
                sockets.append(s)
            wait_for("10,000 streams open", lambda: gris_status(gris.url).get("GridinfoChangeStreams") == "10000", DEADLINE)
            for s in sockets:
                s.close()
            wait_for("every stream gone", lambda: gris_status(gris.url).get("GridinfoChangeStreams") == "0", DEADLINE)
            rss.append(loadgen.process_rss_bytes(gris.proc.pid))
        assert rss[1] - rss[0] < 8 << 20, [r >> 20 for r in rss]  # MiB: the second round keeps nothing
