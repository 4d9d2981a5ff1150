"""The static LDIF snapshot: a restart with unchanged LDIF reads it; anything else parses again.

In-process tests load trees with ``make_gris_tree`` and capture gridinfo's log; the last test
runs real ``gris`` processes and compares full dumps over a socket with ldapsearch.
"""

from __future__ import annotations

import errno
import os
import queue
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from gridinfo.config import GRISConfig
from gridinfo.directory.entry import Entry
from gridinfo.directory.tree import DirectoryTree
from gridinfo.gris import snapshot_writer
from gridinfo.service import make_gris_tree
from tests.support.gris import GrisProcess

LDIF = """\
dn: o=grid
objectClass: organization
o: grid
description:: w6lsw6hzIGV0IGNsYWlyZXM=

dn: mds-vo-name=local,o=grid
objectClass: MdsVo
Mds-Vo-name: local

dn: GlueSiteUniqueID=site-a,mds-vo-name=local,o=grid
objectClass: GlueTop
objectClass: GlueSite
GlueSiteUniqueID: site-a
GlueSiteName: Site A

dn: GlueCEUniqueID=ce1.example.org:2119/jobmanager-pbs-ops,mds-vo-name=local,o=grid
objectClass: GlueCETop
objectClass: GlueCE
objectClass: GlueSchemaVersion
objectClass: GlueCEAccessControlBase
GlueCEUniqueID: ce1.example.org:2119/jobmanager-pbs-ops
GlueCEName: ops
GlueCEAccessControlBaseRule: VO:ops
GlueCEAccessControlBaseRule: VO:dteam
GlueSchemaVersionMajor: 1
GlueSchemaVersionMinor: 3

dn: GlueSiteUniqueID=bad,mds-vo-name=local,o=grid
objectClass: GlueSite
GlueSiteName: no unique id

"""


def _config(tmp_path: Path) -> GRISConfig:
    data = tmp_path / "ldif"
    if not data.exists():
        data.mkdir()
        (data / "site.ldif").write_text(LDIF)
    return GRISConfig(ldif=(str(data),), ldif_snapshot=str(tmp_path / "cache"), index=("GlueCEUniqueID",))


def _snapshot(tmp_path: Path) -> Path:
    (path,) = (tmp_path / "cache").glob("*.snapshot")
    return path


def _state(tree: DirectoryTree) -> list[tuple[str, str, bytes, tuple[tuple[bytes, ...], ...], str, frozenset[str]]]:
    return [(e.dn, e.key, e.encoded, e.values, e.source, e.object_classes) for e in tree.entries.values()]


def _same_search_answers(a: DirectoryTree, b: DirectoryTree) -> None:
    from gridinfo.directory import filters as F
    from gridinfo.directory.query import Scope, SearchRequest

    for flt in (F.Equality("GlueCEUniqueID", b"CE1.example.org:2119/jobmanager-pbs-ops"),
                F.Equality("objectClass", b"GlueTop"), F.Present("objectClass")):
        req = SearchRequest(base="o=grid", scope=Scope.SUB, filter=flt, attributes=("GlueCEName", "objectClass"))
        ra, rb = a.search(req), b.search(req)
        assert ra.entries == rb.entries and ra.entries


def test_restart_reads_the_snapshot_and_serves_the_same_entries(tmp_path, logged):
    first = make_gris_tree(_config(tmp_path))
    assert any("wrote LDIF snapshot" in line for line in logged)
    assert any("breaks the schema" in line for line in logged)  # the refused record
    logged.clear()
    again = make_gris_tree(_config(tmp_path))
    assert any("loaded 4 entries from LDIF snapshot" in line for line in logged), logged
    assert not any("loaded 4 entries from " + str(tmp_path / "ldif") in line for line in logged)
    assert any("breaks the schema" in line for line in logged)  # logged again, as a parse would
    assert _state(first) == _state(again)
    assert first.eq_indexes == again.eq_indexes
    assert first.oc_index == again.oc_index
    _same_search_answers(first, again)


def _rejected_then_parsed(tmp_path: Path, logged: list[str], why: str) -> DirectoryTree:
    logged.clear()
    tree = make_gris_tree(_config(tmp_path))
    assert any("not used, parsing the LDIF files" in line and why in line for line in logged), logged
    assert any("loaded 4 entries from" in line and "site.ldif" in line for line in logged), logged
    return tree


def test_a_changed_ldif_file_makes_the_snapshot_stale(tmp_path, logged):
    make_gris_tree(_config(tmp_path))
    ldif = tmp_path / "ldif" / "site.ldif"
    ldif.write_text(LDIF.replace("GlueSiteName: Site A", "GlueSiteName: Site B"))
    tree = _rejected_then_parsed(tmp_path, logged, "stale: LDIF file")
    assert tree.lookup("GlueSiteUniqueID=site-a,mds-vo-name=local,o=grid").get("gluesitename") == [b"Site B"]
    # and the snapshot written then is used by the next start
    logged.clear()
    make_gris_tree(_config(tmp_path))
    assert any("from LDIF snapshot" in line for line in logged)


def test_same_size_and_mtime_but_other_content_is_stale(tmp_path, logged):
    make_gris_tree(_config(tmp_path))
    ldif = tmp_path / "ldif" / "site.ldif"
    st = ldif.stat()
    ldif.write_text(LDIF.replace("Site A", "Site Z"))
    os.utime(ldif, ns=(st.st_atime_ns, st.st_mtime_ns))
    tree = _rejected_then_parsed(tmp_path, logged, "stale: LDIF file")
    assert tree.lookup("GlueSiteUniqueID=site-a,mds-vo-name=local,o=grid").get("gluesitename") == [b"Site Z"]


def test_a_truncated_snapshot_is_not_used(tmp_path, logged):
    first = make_gris_tree(_config(tmp_path))
    snap = _snapshot(tmp_path)
    data = snap.read_bytes()
    snap.write_bytes(data[: len(data) - 100])
    tree = _rejected_then_parsed(tmp_path, logged, "truncated or modified")
    assert _state(tree) == _state(first)
    snap.write_bytes(data[:30])
    _rejected_then_parsed(tmp_path, logged, "truncated")


def test_a_tampered_snapshot_is_not_used(tmp_path, logged):
    first = make_gris_tree(_config(tmp_path))
    snap = _snapshot(tmp_path)
    data = snap.read_bytes()
    at = data.index(b"Site A")
    snap.write_bytes(data[:at] + b"Site X" + data[at + 6 :])
    tree = _rejected_then_parsed(tmp_path, logged, "does not match its digest")
    assert _state(tree) == _state(first)
    assert b"Site X" not in b"".join(e.encoded for e in tree.entries.values())


def test_garbage_in_place_of_a_snapshot_is_not_used(tmp_path, logged):
    make_gris_tree(_config(tmp_path))
    _snapshot(tmp_path).write_bytes(b"\x00garbage" * 100)
    _rejected_then_parsed(tmp_path, logged, "not a gridinfo LDIF snapshot")


def test_another_schema_makes_the_snapshot_stale(tmp_path, logged):
    make_gris_tree(_config(tmp_path))
    extra = tmp_path / "extra.schema"
    extra.write_text("attributetype ( 1.3.6.1.4.1.99999.1 NAME 'snapshotTestAttr' "
                     "EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\n")
    logged.clear()
    config = _config(tmp_path)
    from dataclasses import replace

    make_gris_tree(replace(config, schema=(str(extra),)))
    assert any("stale: schema differs" in line for line in logged), logged


def test_no_snapshot_folder_means_no_snapshot(tmp_path, logged):
    from dataclasses import replace

    tree = make_gris_tree(replace(_config(tmp_path), ldif_snapshot=""))
    assert len(tree) == 6
    assert not (tmp_path / "cache").exists()
    assert not any("LDIF snapshot" in line for line in logged)


def test_restored_entries_keep_their_encoding_and_offsets(tmp_path):
    first = make_gris_tree(_config(tmp_path))
    again = make_gris_tree(_config(tmp_path))
    for e in again.entries.values():
        assert isinstance(e, Entry)
        old = first.entries[e.key]
        assert list(e.ends) == list(old.ends)
        assert e.encode_selected(["gluesitename", "objectclass"]) == old.encode_selected(["gluesitename", "objectclass"])


@pytest.mark.skipif(shutil.which("ldapsearch") is None, reason="needs ldapsearch (ldap-utils)")
def test_full_dump_from_a_snapshot_equals_the_dump_from_ldif(tmp_path):
    """Real gris processes, real ldapsearch: the restart from the snapshot serves the same entries."""
    config = tmp_path / "gris.yaml"
    config.write_text(f"ldif_snapshot: {tmp_path / 'cache'}\nindex: [GlueCEUniqueID]\n")
    data = tmp_path / "ldif"
    data.mkdir()
    (data / "site.ldif").write_text(LDIF)
    args = ["--config", str(config), "--ldif", str(data)]

    def dump(url: str) -> bytes:
        return subprocess.run(
            ["ldapsearch", "-x", "-H", url, "-b", "o=grid", "-LLL", "-o", "ldif-wrap=no"],
            check=True, capture_output=True, timeout=60,
        ).stdout

    with GrisProcess(args) as gris:
        from_ldif = dump(gris.url)  # served before the snapshot is known to be written
        assert "writing LDIF snapshot" in gris.log and "serving meanwhile" in gris.log
        for _ in range(600):  # the forked writer's outcome, logged when it exits: at most 60 s
            if "wrote LDIF snapshot" in gris.log:
                break
            time.sleep(0.1)
        assert "wrote LDIF snapshot" in gris.log and "in process" in gris.log, gris.log
    with GrisProcess(args) as gris:
        from_snapshot = dump(gris.url)
        assert "from LDIF snapshot" in gris.log
        assert "breaks the schema" in gris.log
    assert from_ldif.count(b"\ndn: ") + from_ldif.startswith(b"dn: ") == 4
    assert from_snapshot == from_ldif


def _forked_load(tmp_path: Path, **kw) -> tuple[DirectoryTree, str]:
    """make_gris_tree with the daemons' forked writer; the child's outcome is logged here, as
    the reactor thread would log it, once it has come back (at most 60 s)."""
    outcomes: queue.Queue = queue.Queue()
    tree = make_gris_tree(_config(tmp_path), snapshot_writer=snapshot_writer.forked(
        lambda f, *a: outcomes.put((f, a)), **kw))
    f, a = outcomes.get(timeout=60)
    f(*a)
    return tree, a[-1]


def test_a_forked_child_writes_the_snapshot_the_restart_reads(tmp_path, logged):
    """The load returns before the snapshot exists; a child writes it and the outcome is logged
    (path, entries, bytes, its process); a restart then reads it, entry for entry."""
    first, outcome = _forked_load(tmp_path)
    assert outcome.startswith("ok ")
    assert any("writing LDIF snapshot" in line and "serving meanwhile" in line for line in logged), logged
    assert any("wrote LDIF snapshot" in line and "(4 entries" in line and "in process" in line for line in logged), logged
    logged.clear()
    again = make_gris_tree(_config(tmp_path))
    assert any("loaded 4 entries from LDIF snapshot" in line for line in logged), logged
    assert _state(first) == _state(again)


def test_a_writer_that_cannot_write_is_logged_and_the_tree_is_whole(tmp_path, logged):
    """The snapshot folder cannot be made (a file is in its place): the child reports why, the
    parent logs it as an error, and the tree it serves has every entry."""
    (tmp_path / "cache").write_text("not a folder")
    tree, outcome = _forked_load(tmp_path)
    assert outcome.startswith("error ")
    assert any("LDIF snapshot not written to" in line for line in logged), logged
    assert len(tree.entries) >= 4


def test_when_fork_fails_the_snapshot_is_written_before_serving(tmp_path, logged):
    """No fork (EAGAIN: the process limit): a warning, and the snapshot is written in process."""

    def no_fork() -> int:
        raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))

    make_gris_tree(_config(tmp_path), snapshot_writer=snapshot_writer.forked(lambda f, *a: f(*a), fork=no_fork))
    assert any("cannot fork a writer" in line for line in logged), logged
    assert any("wrote LDIF snapshot" in line for line in logged), logged
    assert _snapshot(tmp_path).exists()


@pytest.mark.parametrize("forked", [False, True], ids=["here", "forked"])
def test_an_ldif_file_changed_after_it_was_read_gets_no_snapshot(tmp_path, logged, forked):
    """A first start takes the files' digests after the load, in the writer: a file changed
    since it was read (here, between the read and the writer) gets no snapshot, and the next
    start parses the LDIF again, its new content with it."""
    def change_then(writer):
        def write(where, key_of, entries, errors):
            site = tmp_path / "ldif" / "site.ldif"
            site.write_text(LDIF.replace("Site A", "Site A, renamed"))
            os.utime(site, ns=(site.stat().st_mtime_ns + 10**9, site.stat().st_mtime_ns + 10**9))
            writer(where, key_of, entries, errors)
        return write

    outcomes: queue.Queue = queue.Queue()
    writer = snapshot_writer.forked(lambda f, *a: outcomes.put((f, a))) if forked else snapshot_writer.write_here
    first = make_gris_tree(_config(tmp_path), snapshot_writer=change_then(writer))
    if forked:
        f, a = outcomes.get(timeout=60)
        f(*a)
        assert a[-1] == "changed"
    assert any("LDIF snapshot not written: an LDIF file changed while it was read" in line for line in logged), logged
    assert not list((tmp_path / "cache").glob("*.snapshot"))
    assert first.lookup("GlueSiteUniqueID=site-a,mds-vo-name=local,o=grid").get("gluesitename") == [b"Site A"]
    again = make_gris_tree(_config(tmp_path))
    assert again.lookup("GlueSiteUniqueID=site-a,mds-vo-name=local,o=grid").get("gluesitename") == [b"Site A, renamed"]
