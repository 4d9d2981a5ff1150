"""Pushed children through real processes: GRIS -> site GIIS -> top GIIS over change streams.

Each GIIS follows its child's RFC 4533 stream (the child advertises it in its root DSE), holds
what it sends, and is itself a stream provider of everything it holds, so a provider's change
travels up without anyone polling and a client subscribed at the top hears it.  A child that
offers no stream (a plain slapd) is forwarded to as before, and a sync search covering it is
refused, naming it.  Waits are for real processes, bounded by deadlines.
"""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gridinfo_dev.daemon import wait_for
from tests.integration.test_change_streams import CE_FILTER, DEADLINE, Site, free_cpus, site  # noqa: F401 (a fixture)
from tests.support.gris import GrisProcess
from tests.support.slapd import Slapd, ldapmodify


class Hierarchy:
    """A GRIS whose provider reads a data file, a site GIIS with it as a static child, a top GIIS
    with the site as a static child; all real processes."""

    def __init__(self, folder: Path, site: Site):
        self.folder = folder
        self.site = site
        self.giis: list[GrisProcess] = []

    def start_giis(self, name: str, child_url: str, extra: str = "") -> GrisProcess:
        config = self.folder / f"{name}.yaml"
        config.write_text(f"name: {name}\nchildren:\n  - url: {child_url}\n    timeout: 5\n{extra}")
        giis = GrisProcess(["--config", str(config)], module="gridinfo.cli.giis")
        giis.start()
        self.giis.append(giis)
        return giis

    def stop(self) -> None:
        for g in reversed(self.giis):
            g.stop()


@pytest.fixture
def hierarchy(tmp_path: Path, site: Site) -> Iterator[Hierarchy]:
    """``site`` (test_change_streams' running GRIS) with the GIISes the test starts above it."""
    h = Hierarchy(tmp_path, site)
    try:
        yield h
    finally:
        h.stop()


def sync_search(url: str, base: str, mode: str = "sync=ro", flt: str = CE_FILTER) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ldapsearch", "-x", "-o", "ldif-wrap=no", "-H", url, "-b", base, "-E", mode, flt,
                           "GlueCEStateFreeCPUs"], capture_output=True, text=True, timeout=30)


class Persist:
    """``ldapsearch -E sync=rp`` running in the background; lines read as they come.

    No response limit: a child's entries may come in the refresh or, when the GIIS subscribed to
    that child only just before, as adds after it; the change a test waits for comes after both.
    """

    def __init__(self, url: str, base: str):
        self.proc = subprocess.Popen(
            ["ldapsearch", "-x", "-o", "ldif-wrap=no", "-H", url, "-b", base, "-E", "sync=rp/rid=002", CE_FILTER,
             "GlueCEStateFreeCPUs"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        out = self.proc.stdout
        assert out is not None
        threading.Thread(target=lambda: [self.lines.put(line) for line in out], daemon=True).start()

    def read_until(self, text: str) -> None:
        end = time.monotonic() + DEADLINE
        while not any(text in line for line in self.seen):
            try:
                self.seen.append(self.lines.get(timeout=max(0.0, end - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"ldapsearch did not print {text!r}; it printed:\n{''.join(self.seen)}") from None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def test_a_provider_change_is_pushed_to_the_top_of_three_levels(hierarchy: Hierarchy) -> None:
    """GRIS -> site -> top, all pushed: ``ldapsearch -E sync=rp`` at the top prints the GRIS
    provider's change (a sync search is only possible where everything below is held: it proves
    both levels follow their child's stream)."""
    site = hierarchy.start_giis("site", f"{hierarchy.site.url}/mds-vo-name=local,o=grid")
    top = hierarchy.start_giis("top", f"{site.url}/mds-vo-name=site,o=grid")
    wait_for("the CEs at the top", lambda: free_cpus(top.url) == {"ce1": "1", "ce2": "2"}, DEADLINE)
    listener = Persist(top.url, "mds-vo-name=top,o=grid")
    try:
        listener.read_until("refresh done, switching to persist stage")
        hierarchy.site.set({"ce1": 42, "ce2": 2})
        listener.read_until("GlueCEStateFreeCPUs: 42")
        out = "".join(listener.seen)
        assert "dn: GlueCEUniqueID=ce1,mds-vo-name=site,mds-vo-name=top,o=grid" in out
    finally:
        listener.close()
    assert "following its change stream" in site.log and "following its change stream" in top.log


def test_a_gris_registered_with_a_giis_is_followed(tmp_path: Path, hierarchy: Hierarchy) -> None:
    """A registered child is subscribed to as a static one is: the GIIS's own stream hears a change."""
    config = tmp_path / "reg.yaml"
    config.write_text("name: reg\n")
    with GrisProcess(["--config", str(config)], module="gridinfo.cli.giis") as giis:
        with GrisProcess(["--config", str(hierarchy.site.config), "--register",
                          f"{giis.url}/mds-vo-name=reg,o=grid"]) as gris:
            wait_for("the registered CEs", lambda: free_cpus(giis.url).get("ce1") == "1", DEADLINE)
            listener = Persist(giis.url, "mds-vo-name=reg,o=grid")
            try:
                listener.read_until("refresh done, switching to persist stage")
                hierarchy.site.set({"ce1": 7, "ce2": 2})
                listener.read_until("GlueCEStateFreeCPUs: 7")
            finally:
                listener.close()
            assert gris.port and "following its change stream" in giis.log


@pytest.mark.slapd
def test_a_slapd_child_without_a_stream_is_forwarded_and_a_sync_search_over_it_is_refused(tmp_path: Path) -> None:
    """A plain slapd offers no Sync Request control: it is asked per search as before; a sync search
    at the GIIS whose base covers it is refused with unwillingToPerform naming it, and one that
    does not cover it works."""
    ldif = (b"dn: o=grid\nobjectClass: organization\no: grid\n\n"
            b"dn: Mds-Vo-name=resource,o=grid\nobjectClass: MdsVo\nMds-Vo-name: resource\n\n"
            b"dn: GlueCEUniqueID=slapd-ce,Mds-Vo-name=resource,o=grid\nobjectClass: GlueCETop\nobjectClass: GlueCE\n"
            b"objectClass: GlueCEState\nGlueCEUniqueID: slapd-ce\nGlueCEStateFreeCPUs: 5\n\n")
    with Slapd(ldif) as slapd:
        config = tmp_path / "site.yaml"
        config.write_text(f"name: site\nchildren:\n  - url: {slapd.url}Mds-Vo-name=resource,o=grid\n    timeout: 5\n")
        with GrisProcess(["--config", str(config)], module="gridinfo.cli.giis") as giis:
            wait_for("the slapd CE through the GIIS", lambda: free_cpus(giis.url) == {"slapd-ce": "5"}, DEADLINE)
            refused = sync_search(giis.url, "mds-vo-name=site,o=grid")
            assert refused.returncode == 53, refused.stdout + refused.stderr
            assert "cannot be streamed" in refused.stdout + refused.stderr and slapd.url in refused.stdout + refused.stderr
            fine = sync_search(giis.url, "o=infosys", flt="(objectClass=*)")
            assert fine.returncode == 0, fine.stdout + fine.stderr
            assert "has no change stream for us" in giis.log


@pytest.mark.slapd
def test_a_stock_slapd_syncrepl_consumer_replicates_a_giis_and_follows_it(hierarchy: Hierarchy) -> None:
    """slapd as a refreshAndPersist consumer of a GIIS: its whole tree (own entries and the pushed
    GRIS's), then a provider's change, arrive at the replica."""
    site = hierarchy.start_giis("site", f"{hierarchy.site.url}/mds-vo-name=local,o=grid")
    wait_for("the CEs at the site", lambda: free_cpus(site.url) == {"ce1": "1", "ce2": "2"}, DEADLINE)
    with Slapd.replica_of(site.url) as replica:
        wait_for("the first copy", lambda: free_cpus(replica.url) == {"ce1": "1", "ce2": "2"}, DEADLINE)
        out = subprocess.run(["ldapsearch", "-x", "-LLL", "-H", replica.url, "-b", "o=grid", "(objectClass=*)", "1.1"],
                             capture_output=True, text=True, timeout=30).stdout
        dns = {line[4:].lower() for line in out.splitlines() if line.startswith("dn: ")}
        assert {"o=grid", "mds-vo-name=site,o=grid"} <= dns
        hierarchy.site.set({"ce1": 11, "ce3": 3})
        wait_for("the changes at the replica", lambda: free_cpus(replica.url) == {"ce1": "11", "ce3": "3"}, DEADLINE)


@pytest.mark.slapd
def test_a_slapd_with_syncprov_is_followed_like_a_gridinfo_child(tmp_path: Path) -> None:
    """A BDII-style slapd with the syncprov overlay advertises the stream: the GIIS follows it, and an
    ldapmodify at the slapd reaches a sync subscriber at the GIIS."""
    ldif = (b"dn: o=grid\nobjectClass: organization\no: grid\n\n"
            b"dn: Mds-Vo-name=resource,o=grid\nobjectClass: MdsVo\nMds-Vo-name: resource\n\n"
            b"dn: GlueCEUniqueID=slapd-ce,Mds-Vo-name=resource,o=grid\nobjectClass: GlueCETop\nobjectClass: GlueCE\n"
            b"objectClass: GlueCEState\nGlueCEUniqueID: slapd-ce\nGlueCEStateFreeCPUs: 5\n\n")
    with Slapd.syncprov(ldif) as slapd:
        config = tmp_path / "site.yaml"
        config.write_text(f"name: site\nchildren:\n  - url: {slapd.url}Mds-Vo-name=resource,o=grid\n    timeout: 5\n")
        with GrisProcess(["--config", str(config)], module="gridinfo.cli.giis") as giis:
            wait_for("the slapd CE through the GIIS", lambda: free_cpus(giis.url) == {"slapd-ce": "5"}, DEADLINE)
            listener = Persist(giis.url, "mds-vo-name=site,o=grid")
            try:
                listener.read_until("refresh done, switching to persist stage")
                ldapmodify(slapd, "dn: GlueCEUniqueID=slapd-ce,Mds-Vo-name=resource,o=grid\nchangetype: modify\n"
                                  "replace: GlueCEStateFreeCPUs\nGlueCEStateFreeCPUs: 17\n")
                listener.read_until("GlueCEStateFreeCPUs: 17")
            finally:
                listener.close()
            assert "following its change stream" in giis.log
