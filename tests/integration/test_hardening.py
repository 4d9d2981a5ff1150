"""Attacks on a real ``gris`` over loopback sockets: the server keeps serving everyone else.

Each test reproduces an attack from the hardening issue with raw sockets (the attacker does
not use a polite client library) and then checks, with ldap3 as a user would, that a valid
client is still answered.  Bounds are on what the server does (slots freed, bytes held,
requests answered), never tight wall-clock limits.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import ldap3
import psutil
import pytest
from ldaptor.protocols import pureldap

from tests.support.gris import GrisProcess
from tests.support.ports import LOOPBACK

ENTRIES = 1500  # more than one streamed chunk (512 entries)


def _site_ldif(path: Path, count: int = ENTRIES) -> Path:
    lines = ["dn: o=grid\nobjectClass: organization\no: grid\n", "dn: mds-vo-name=local,o=grid\nobjectClass: MdsVo\nMds-Vo-name: local\n"]
    for i in range(count):
        ce = f"ce{i:05d}.example.org:8443/cream-pbs-q"
        lines.append(
            f"dn: GlueCEUniqueID={ce},mds-vo-name=local,o=grid\n"
            "objectClass: GlueCETop\nobjectClass: GlueCE\nobjectClass: GlueCEState\n"
            f"GlueCEUniqueID: {ce}\nGlueCEName: q{i}\nGlueCEStateFreeCPUs: {i % 97}\n"
            f"GlueCEInfoHostName: ce{i:05d}.example.org\n"
        )
    path.write_text("\n".join(lines))
    return path


def _pdu(message_id: int, op: object) -> bytes:
    return pureldap.LDAPMessage(op, id=message_id).toWire()  # type: ignore[no-any-return]


def _search_all(message_id: int = 1) -> bytes:
    return _pdu(
        message_id,
        pureldap.LDAPSearchRequest(
            baseObject=b"o=grid", scope=pureldap.LDAP_SCOPE_wholeSubtree, filter=pureldap.LDAPFilter_present(b"objectClass")
        ),
    )


UNBIND = pureldap.LDAPMessage(pureldap.LDAPUnbindRequest(), id=2).toWire()


def _config(tmp: Path, ldif: Path, **limits: object) -> Path:
    lines = [f"ldif: [{ldif}]", "providers: []", "limits:"]
    lines += [f"  {key}: {value}" for key, value in limits.items()]
    path = tmp / "gris.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _one_entry_search(gris: GrisProcess) -> ldap3.Connection:
    conn = ldap3.Connection(ldap3.Server(gris.url, connect_timeout=10), auto_bind=True, receive_timeout=20)
    ok = conn.search("mds-vo-name=local,o=grid", "(GlueCEUniqueID=ce00007.example.org:8443/cream-pbs-q)", attributes=["GlueCEName"])
    assert ok, conn.result
    assert [e.GlueCEName.value for e in conn.entries] == ["q7"]
    return conn


def _read_at_least(s: socket.socket, count: int) -> None:
    got = 0
    while got < count:
        data = s.recv(65536)
        if not data:
            return
        got += len(data)


def _served(gris: GrisProcess) -> object:
    """A predicate: a new client's one-entry search is answered (not refused busy)."""

    def attempt() -> bool:
        try:
            _one_entry_search(gris).unbind()
        except ldap3.core.exceptions.LDAPException:
            return False
        return True

    return attempt


def _open_files(gris: GrisProcess) -> int:
    """File descriptors the gris process holds (a leaked connection keeps its socket open)."""
    assert gris.proc is not None
    return psutil.Process(gris.proc.pid).num_fds()


@pytest.fixture(scope="module")
def gris(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrisProcess]:
    tmp = tmp_path_factory.mktemp("hardening")
    config = _config(tmp, _site_ldif(tmp / "site.ldif"), max_connections=16, idle_timeout=300)
    with GrisProcess(["--config", str(config)]) as g:
        g.baseline_files = _open_files(g)  # type: ignore[attr-defined]
        yield g


def _wait_until(predicate: object, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_unbind_during_streamed_result_frees_the_connection_slot(gris: GrisProcess) -> None:
    """A client that asks for everything and unbinds in the same write, then closes while the
    answer flows, gives its slot back: 40 such clients with max_connections 16, and a new
    client is still answered (not busy)."""
    for _ in range(40):
        with socket.create_connection((LOOPBACK, gris.port)) as s:
            s.sendall(_search_all() + UNBIND)
            _read_at_least(s, 100_000)  # the answer is flowing: close while the rest is in flight
    assert _wait_until(lambda: _open_files(gris) <= gris.baseline_files), f"{_open_files(gris)} files held"
    _one_entry_search(gris).unbind()


def test_protocol_error_during_streamed_result_frees_the_slot(gris: GrisProcess) -> None:
    """A garbage PDU after a large search (notice of disconnection) does not leave the slot held."""
    for _ in range(40):
        with socket.create_connection((LOOPBACK, gris.port)) as s:
            s.sendall(_search_all() + b"\x30\x84\xff\xff\xff\xff")
            _read_at_least(s, 100_000)
    assert _wait_until(lambda: _open_files(gris) <= gris.baseline_files), f"{_open_files(gris)} files held"
    _one_entry_search(gris).unbind()


def test_client_that_never_reads_a_large_result_and_unbinds_is_closed(gris: GrisProcess) -> None:
    """A client that keeps its socket open but never reads, after asking for everything and
    unbinding, does not hold a slot forever: the server aborts the connection it cannot flush."""
    held = []
    for _ in range(20):
        s = socket.create_connection((LOOPBACK, gris.port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(_search_all() + UNBIND)
        held.append(s)
    try:
        # More such clients than max_connections: the server must still answer a new one.
        assert _wait_until(lambda: _open_files(gris) <= gris.baseline_files, timeout=30), "slots still held"
        assert _wait_until(_served(gris), timeout=30), "a new client is still refused"
    finally:
        for s in held:
            s.close()


def test_failed_binds_are_counted_under_o_infosys(gris: GrisProcess) -> None:
    """Password guessing is visible where operators look: GridinfoFailedBinds on the server's
    status entry under o=infosys counts refused simple binds (and refused connections too)."""
    conn = ldap3.Connection(ldap3.Server(gris.url), user="cn=admin,o=grid", password="guess", receive_timeout=30)
    assert not conn.bind()
    assert conn.result["result"] == 49
    reader = ldap3.Connection(ldap3.Server(gris.url), auto_bind=True)
    assert reader.search("o=infosys", "(objectClass=GridinfoServerStatus)", attributes=["GridinfoFailedBinds", "GridinfoConnections", "GridinfoRefusedConnections"])
    (entry,) = reader.entries
    assert int(entry.GridinfoFailedBinds.value) >= 1
    assert int(entry.GridinfoConnections.value) >= 1
    assert int(entry.GridinfoRefusedConnections.value) >= 0
