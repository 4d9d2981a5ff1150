"""Our schema files against OpenLDAP itself: slaptest parses them, and a real slapd judges entries as check_entry does."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from gridinfo.directory.schema import default_schema
from tests.directory.test_schema import GLUE_CE, OURS, REGISTRATION, VM, write

SLAPTEST = "/usr/sbin/slaptest"
SLAPD = "/usr/sbin/slapd"


def _ldif(dn: str, attrs: dict[str, list[bytes]]) -> str:
    lines = [f"dn: {dn}"]
    for name, values in attrs.items():
        lines += [f"{name}: {v.decode()}" for v in values]
    return "\n".join(lines) + "\n"


@pytest.mark.slapd
def test_slapd_accepts_our_schema_files(tmp_path):
    """slapd's own parser reads our four files: they are valid OpenLDAP schema."""
    conf = write(tmp_path, "slapd.conf", "".join(f"include {p}\n" for p in OURS))
    result = subprocess.run([SLAPTEST, "-u", "-f", str(conf)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.slapd
def test_slaptest_fails_on_a_broken_file(tmp_path):
    """The slaptest check above really checks (a bad SUP is refused)."""
    bad = write(tmp_path, "bad.schema", "attributetype ( 1.2.3.4.5 NAME 'x' SUP noSuchThing )\n")
    conf = write(tmp_path, "slapd.conf", "".join(f"include {p}\n" for p in OURS + [bad]))
    result = subprocess.run([SLAPTEST, "-u", "-f", str(conf)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0


@pytest.fixture
def slapd():
    """A throw-away slapd with our four schema files, listening on a private Unix socket."""
    tmp = Path(tempfile.mkdtemp(prefix="gis", dir="/tmp"))
    (tmp / "db").mkdir()
    conf = tmp / "slapd.conf"
    conf.write_text(
        "".join(f"include {p}\n" for p in OURS)
        + f'pidfile {tmp}/slapd.pid\ndatabase ldif\nsuffix "o=grid"\ndirectory {tmp}/db\n'
        + 'rootdn "cn=admin,o=grid"\nrootpw secret\n'
    )
    url = "ldapi://" + urllib.parse.quote(str(tmp / "s"), safe="")
    # -d 256 keeps slapd in the foreground and logging to stderr (-d 0 logs to syslog only)
    proc = subprocess.Popen([SLAPD, "-f", str(conf), "-h", url, "-d", "256"], stderr=subprocess.PIPE, text=True)
    killer = threading.Timer(30, proc.kill)
    killer.start()
    started = False
    try:
        for line in proc.stderr:  # slapd prints "slapd starting" once it listens
            if "slapd starting" in line:
                started = True
                break
    finally:
        killer.cancel()
        if not started:
            proc.kill()
            proc.wait()
            shutil.rmtree(tmp, ignore_errors=True)
    assert started, f"slapd did not start (exit {proc.returncode})"
    # "slapd starting" can come a moment before the ldapi listener accepts: wait until it does
    _wait_for_unix_socket(tmp / "s", proc)
    # keep reading slapd's log so that a full pipe never blocks it
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()

    def add(ldif: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ldapadd", "-x", "-H", url, "-D", "cn=admin,o=grid", "-w", "secret"],
            input=ldif,
            capture_output=True,
            text=True,
            timeout=30,
        )

    base = add("dn: o=grid\nobjectClass: organization\no: grid\n\n"
               "dn: Mds-Vo-name=local,o=grid\nobjectClass: Mds\nMds-Vo-name: local\n")
    assert base.returncode == 0, base.stderr
    try:
        yield add
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.slapd
def test_check_entry_agrees_with_slapd(slapd):
    """What check_entry accepts, slapd accepts; what it refuses, slapd refuses too."""
    schema = default_schema()
    cases = [
        ("Mds-Vo-Op-name=register,Mds-Vo-name=local,o=grid", REGISTRATION),
        ("GlueCEUniqueID=ce1,Mds-Vo-name=local,o=grid", dict(GLUE_CE, GlueCEUniqueID=[b"ce1"])),
        ("GridinfoVMID=vm1,Mds-Vo-name=local,o=grid", VM),
        ("GridinfoVMID=vm2,o=grid", dict(VM, GridinfoVMID=[b"vm2"], GridinfoVMVCPUs=[b"02"])),
        ("GridinfoVMID=vm3,o=grid", dict(VM, GridinfoVMID=[b"vm3"], GridinfoVMVCPUs=[b"-0"])),
        ("GridinfoVMID=vm4,o=grid", dict(VM, GridinfoVMID=[b"vm4"], GridinfoVMMemory=[b"1", b"2"])),
        ("GridinfoVMID=vm5,o=grid", dict(VM, GridinfoVMID=[b"vm5"], cn=[b"x"])),
        ("GridinfoVMID=vm6,o=grid", dict(VM, GridinfoVMID=[b"vm6"], **{"Mds-validfrom": [b"not a time"]})),
        # (slapd adds missing RDN values itself, so the DN here is not the missing attribute)
        ("GlueCEInfoTotalCPUs=1,o=grid", {"objectClass": [b"GlueCE"], "GlueCEInfoTotalCPUs": [b"1"]}),
        ("GridinfoPathID=p1,o=grid", {"objectClass": [b"GridinfoNetworkPath"], "GridinfoPathID": [b"p1"],
                                      "GridinfoPathMeasured": [b"2024010112Z"], "GridinfoPathRTTAvg": [b"-1"]}),
        ("GridinfoPathID=p2,o=grid", {"objectClass": [b"GridinfoNetworkPath"], "GridinfoPathID": [b"p2"],
                                      "GridinfoPathMeasured": [b"20240101120000"]}),
    ]
    for dn, attrs in cases:
        ours = schema.check_entry(attrs)
        theirs = slapd(_ldif(dn, attrs))
        assert (ours == []) == (theirs.returncode == 0), (dn, ours, theirs.stderr)


def _wait_for_unix_socket(path: Path, proc: subprocess.Popen[str], timeout: float = 10.0) -> None:
    """Return once ``path`` accepts a connection; fail if slapd exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(path))
                return
            except OSError:
                pass
        assert proc.poll() is None, f"slapd exited (status {proc.returncode}) before listening on {path}"
        assert time.monotonic() < deadline, f"slapd did not listen on {path} within {timeout} s"
        time.sleep(0.02)
