"""A large static LDIF file read in two parts, the second by a forked worker sending what it
builds in pieces: the tree and the refused records (file:line) are the one-piece load's.

The size threshold and the piece size are lowered so that small files are split, and the
worker's part comes in many pieces; the worker is a real process.
"""

from __future__ import annotations

import errno
import gc
import os
import re
import signal
from pathlib import Path

import pytest

from gridinfo.config import GRISConfig
from gridinfo.gris import parallel_load
from gridinfo.service import make_gris_tree


def _ldif(n: int, crlf: bool = False) -> str:
    parts = ["version: 1\n\ndn: o=grid\nobjectClass: organization\no: grid\n\n"
             "dn: mds-vo-name=local,o=grid\nobjectClass: MdsVo\nMds-Vo-name: local\n\n"]
    for i in range(n):
        dn = f"GlueCEUniqueID=ce{i}.example.org:2119/jobmanager-pbs-q,mds-vo-name=local,o=grid"
        if i % 97 == 13:
            parts.append(f"# a comment before a record\ndn: GlueSiteUniqueID=bad{i},mds-vo-name=local,o=grid\n"
                         "objectClass: GlueSite\nGlueSiteName: no unique id\n\n")  # refused: schema
        if i % 89 == 7:
            parts.append(f"dn: cn=broken{i},o=grid\nthis line has no colon\n\n")  # refused: syntax
        parts.append(
            f"dn: {dn}\nobjectClass: GlueCETop\nobjectClass: GlueCE\nGlueCEUniqueID: ce{i}.example.org:2119/jobmanager-pbs-q\n"
            f"GlueCEName: queue {i} with a name long enough to be folded over two\n  lines by a writer\n\n"
        )
    # the first CE again, changed: the later version is the one kept
    parts.append("dn: GlueCEUniqueID=ce0.example.org:2119/jobmanager-pbs-q,mds-vo-name=local,o=grid\n"
                 "objectClass: GlueCETop\nobjectClass: GlueCE\nGlueCEUniqueID: ce0.example.org:2119/jobmanager-pbs-q\n"
                 "GlueCEName: given again\n")
    text = "".join(parts)
    return text.replace("\n", "\r\n") if crlf else text


def _load(tmp_path: Path, text: str, name: str):
    """The tree of ``text`` in tmp_path/ldif/site.ldif (written once; ``name`` tells the loads apart in logs)."""
    folder = tmp_path / "ldif"
    if not folder.exists():
        folder.mkdir()
        (folder / "site.ldif").write_text(text, newline="")
    # indexes that most entries have, one that few have, and one that the replaced entry's
    # versions hold different values of: the worker's index values must give the same indexes
    return make_gris_tree(GRISConfig(ldif=(str(folder),), index=("GlueCEUniqueID", "GlueCEName", "Mds-Vo-name"),
                                     glue2_suffix=""))


def _split_with(monkeypatch, fork) -> None:
    """Every file split from here on, its worker started by ``fork``."""
    monkeypatch.setattr(parallel_load, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(parallel_load, "PIECE_BYTES", 16 << 10)
    real_read_in_two = parallel_load.read_in_two
    monkeypatch.setattr(parallel_load, "read_in_two", lambda *a, **kw: real_read_in_two(*a, fork=fork, **kw))


def _state(tree):
    return ([(e.key, e.encoded, e.source, e.object_classes) for e in tree.entries.values()],
            tree.eq_indexes, tree.oc_index, sorted(tree.children.items()))


def _refusals(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("refused LDIF record") or "loaded" in line]


@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
def test_two_halves_give_the_one_piece_tree_and_refusals(tmp_path, logged, monkeypatch, crlf):
    text = _ldif(1500, crlf=crlf)
    monkeypatch.setattr(parallel_load, "PARALLEL_MIN_BYTES", 1 << 40)
    whole = _load(tmp_path, text, "whole")
    one_piece_log = _refusals(logged)
    logged.clear()
    monkeypatch.setattr(parallel_load, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(parallel_load, "PIECE_BYTES", 16 << 10)  # the worker's ~200 KB in ~12 pieces
    sent = _count_pieces(monkeypatch)
    halves = _load(tmp_path, text, "halves")
    assert _state(halves) == _state(whole)
    assert sent() > 8
    assert any("site.ldif: read in two parts, from byte" in line for line in logged), logged
    # the same refusals, each with its file:line, in file order (the first part's, then the worker's)
    assert _refusals(logged) == one_piece_log
    refused_lines = [int(re.search(r"site\.ldif:(\d+):", line).group(1)) for line in one_piece_log if "refused" in line]
    assert refused_lines == sorted(refused_lines)
    assert len([line for line in one_piece_log if "breaks the schema" in line]) > 10
    assert any("line " in line and "colon" in line for line in one_piece_log)
    ce0 = halves.lookup("GlueCEUniqueID=ce0.example.org:2119/jobmanager-pbs-q,mds-vo-name=local,o=grid")
    assert b"given again" in ce0.encoded
    names = halves.eq_indexes["gluecename"]
    assert "given again" in names and not any(str(v).startswith("queue 0 ") for v in names)
    assert len(names) == 1500 and len(halves.eq_indexes["mds-vo-name"]) == 1


def _count_pieces(monkeypatch):
    """How many pieces workers have sent, from here on (counted here as they arrive)."""
    counted = []
    real_unpack = parallel_load.unpack

    def unpack(payload):
        counted.append(len(payload))
        return real_unpack(payload)

    monkeypatch.setattr(parallel_load, "unpack", unpack)
    return lambda: len(counted)


@pytest.mark.parametrize("how", ["exit", "kill", "garbled"])
def test_a_worker_that_fails_midway_leaves_the_rest_to_this_process(tmp_path, logged, monkeypatch, how):
    """After its third piece the worker exits, is killed, or sends a fourth that cannot be read
    (and is stopped): a warning, the rest is read here from where the last good piece ended,
    and the tree and refusals are the one-piece load's."""
    text = _ldif(1500)
    monkeypatch.setattr(parallel_load, "PARALLEL_MIN_BYTES", 1 << 40)
    whole = _load(tmp_path, text, "whole")
    one_piece_log = _refusals(logged)
    _split_with(monkeypatch, os.fork)
    real_pack = parallel_load.pack
    packed = []

    def pack(entries, refused):  # runs in the worker: the monkeypatched module is forked with it
        if len(packed) == 3:
            if how == "exit":
                os._exit(0)
            if how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            return b"\x00 not what pack writes"
        packed.append(len(entries))
        return real_pack(entries, refused)

    monkeypatch.setattr(parallel_load, "pack", pack)
    sent = _count_pieces(monkeypatch)
    logged.clear()
    halves = _load(tmp_path, text, "halves")
    if how == "garbled":
        assert sent() == 4
        warning = [line for line in logged if "cannot be read" in line]
        assert len(warning) == 1 and "; reading the rest here from byte " in warning[0], logged
    else:
        assert sent() == 3
        why = "exit status 0 before its last piece" if how == "exit" else "killed by signal 9"
        warning = [line for line in logged if "did not finish" in line]
        assert len(warning) == 1 and f"({why}); reading it here from byte " in warning[0], logged
    resumed_at = int(re.search(r"from byte (\d+)", warning[0]).group(1))
    assert text.encode()[resumed_at - 2 : resumed_at] == b"\n\n"
    assert resumed_at > len(text) * parallel_load.SHARE_HERE + 3 * (16 << 10)
    assert _state(halves) == _state(whole)
    assert _refusals(logged) == one_piece_log


def test_a_worker_that_dies_leaves_its_half_to_this_process(tmp_path, logged, monkeypatch):
    """The worker exits without a report (as if killed): a warning, and the second half is read
    here; the tree is the one-piece load's."""
    text = _ldif(600)
    monkeypatch.setattr(parallel_load, "PARALLEL_MIN_BYTES", 1 << 40)
    whole = _load(tmp_path, text, "whole")

    def dying_fork() -> int:
        pid = os.fork()
        if pid == 0:
            os._exit(3)
        return pid

    _split_with(monkeypatch, dying_fork)
    logged.clear()
    halves = _load(tmp_path, text, "halves")
    assert any("did not finish (exit status 3); reading it here from byte" in line for line in logged), logged
    assert _state(halves) == _state(whole)


def test_without_fork_the_file_is_read_in_one_piece(tmp_path, logged, monkeypatch):
    text = _ldif(300)
    monkeypatch.setattr(parallel_load, "PARALLEL_MIN_BYTES", 1 << 40)
    whole = _load(tmp_path, text, "whole")

    def no_fork() -> int:
        raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))

    _split_with(monkeypatch, no_fork)
    logged.clear()
    assert _state(_load(tmp_path, text, "halves")) == _state(whole)
    assert any("read in one piece, no worker" in line for line in logged), logged


def test_the_cut_is_at_a_record_boundary_or_nowhere(tmp_path):
    path = tmp_path / "a.ldif"
    path.write_bytes(b"dn: o=grid\no: grid\n\n" * 1000)
    offset = parallel_load.split_point(path, path.stat().st_size)
    assert offset is not None and path.read_bytes()[offset - 2 : offset + 4] == b"\n\ndn: "
    assert parallel_load.line_at(path, offset) == path.read_bytes()[:offset].count(b"\n") + 1
    one = tmp_path / "one.ldif"
    one.write_bytes(b"dn: o=grid\n" + b"description: x\n" * 200_000)  # one record, no blank line
    assert parallel_load.split_point(one, one.stat().st_size) is None


@pytest.mark.parametrize("split", [False, True], ids=["one-piece", "two-parts"])
def test_a_load_makes_no_reference_cycles(tmp_path, monkeypatch, split):
    """What the load leaves behind, refused records included, is freed by reference counting:
    freezing the heap after a load (instead of letting the collector walk it) keeps no garbage."""
    monkeypatch.setattr(parallel_load, "PARALLEL_MIN_BYTES", 0 if split else 1 << 40)
    monkeypatch.setattr(gc, "freeze", lambda: None)  # so that garbage would stay collectable
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        tree = _load(tmp_path, _ldif(1500), "load")
        gc.collect()
        garbage = list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was_enabled:
            gc.enable()
    assert len(tree.entries) > 1500
    assert garbage == []


def test_a_failure_while_adding_the_workers_entries_stops_and_reaps_it(tmp_path, monkeypatch):
    """This process fails adding a piece's entry: the error comes out, and the worker is killed
    and waited for (no orphan left building, no zombie)."""
    from gridinfo.directory.schema import default_schema
    from gridinfo.directory.tree import DirectoryTree
    from gridinfo.gris import forked

    _split_with(monkeypatch, os.fork)
    started = []
    real_start = forked.start_streaming

    def start_streaming(work, fork=os.fork):
        child = real_start(work, fork=fork)
        started.append(child)
        return child

    monkeypatch.setattr(forked, "start_streaming", start_streaming)
    text = _ldif(1500)
    folder = tmp_path / "ldif"
    folder.mkdir()
    (folder / "site.ldif").write_text(text)
    calls = []

    def add(entry):
        calls.append(entry)
        if len(calls) == 1200:  # past this process's own ~35%: an entry from a piece
            raise MemoryError("no room for this entry")

    tree = DirectoryTree(default_schema())
    with pytest.raises(MemoryError):
        parallel_load.read_in_two(folder / "site.ldif", "site.ldif", parallel_load.LDIFLimits(),
                                  lambda rec: tree.build(rec.dn, rec.attributes, source="site.ldif"), add, lambda err: None)
    [child] = started
    with pytest.raises(ChildProcessError):
        os.waitpid(child.pid, os.WNOHANG)



def test_a_child_whose_reader_is_gone_leaves_quietly(capfd):
    """A forked child that sends after its parent stopped reading (the parent exited: a gris
    that could not listen) exits with status 1 and writes no traceback into the daemon's log."""
    from gridinfo.gris import forked

    go_read, go_write = os.pipe()

    def work(send):
        os.read(go_read, 1)  # sends only once the parent's end is closed
        send(b"x" * 10)

    child = forked.start_streaming(work)
    os.close(go_read)
    os.close(child._notices)  # what an exiting parent does to its end
    child._notices = -1
    os.write(go_write, b"!")
    os.close(go_write)
    assert child.ended() == "exit status 1"
    assert "Traceback" not in capfd.readouterr().err
