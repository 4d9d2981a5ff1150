"""The connection life under TLS: streamed results, backpressure and closing still work when
the transport is TLS (LDAPS, or switched by StartTLS), on a real ``gris``."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
from collections.abc import Iterator

import pytest

from tests.integration.test_hardening import ENTRIES, UNBIND, _config, _one_entry_search, _open_files, _read_at_least, \
    _search_all, _served, _site_ldif, _wait_until
from tests.support.gris import GrisProcess
from tests.support.ports import LOOPBACK
from tests.support.tls import PKI, make_test_pki


@pytest.fixture(scope="module")
def tls_gris(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GrisProcess, PKI, int]]:
    tmp = tmp_path_factory.mktemp("tls-hardening")
    pki = make_test_pki(tmp / "pki")
    config = _config(tmp, _site_ldif(tmp / "site.ldif"), max_connections=16, idle_timeout=300)
    with config.open("a") as f:
        f.write(f"tls:\n  certificate: {pki.server_cert}\n  key: {pki.server_key}\n  ca: {pki.ca}\n")
    ldaps = f"ssl:0:interface={LOOPBACK}:privateKey={pki.server_key}:certKey={pki.server_cert}"
    with GrisProcess(["--config", str(config), "--listen", ldaps]) as g:
        g.baseline_files = _open_files(g)  # type: ignore[attr-defined]
        yield g, pki, g.listening_port("ssl:")


def _tls_socket(pki: PKI, port: int, rcvbuf: int = 0) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=pki.ca)
    raw = socket.create_connection((LOOPBACK, port))
    if rcvbuf:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    return context.wrap_socket(raw, server_hostname=LOOPBACK)


def test_full_dump_streams_over_start_tls(tls_gris: tuple[GrisProcess, PKI, int]) -> None:
    """`ldapsearch -ZZ` of everything (several streamed chunks) returns every entry: the
    protocol stays the transport's producer across the switch to TLS."""
    gris, pki, _ = tls_gris
    env = dict(os.environ, LDAPTLS_CACERT=pki.ca, LDAPTLS_REQCERT="demand")
    out = subprocess.run(["ldapsearch", "-x", "-ZZ", "-LLL", "-H", gris.url, "-b", "o=grid", "dn"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("dn: GlueCEUniqueID=") == ENTRIES


def test_unbind_during_streamed_result_over_ldaps_frees_the_slot(tls_gris: tuple[GrisProcess, PKI, int]) -> None:
    """Over LDAPS, 40 clients that ask for everything, unbind in the same write and close while
    the answer flows (max_connections 16) give their slots back; a new client is answered."""
    gris, pki, port = tls_gris
    for _ in range(40):
        with _tls_socket(pki, port) as s:
            s.sendall(_search_all() + UNBIND)
            _read_at_least(s, 100_000)
    assert _wait_until(lambda: _open_files(gris) <= gris.baseline_files), f"{_open_files(gris)} files held"  # type: ignore[attr-defined]
    _one_entry_search(gris).unbind()


def test_client_that_never_reads_over_ldaps_is_closed(tls_gris: tuple[GrisProcess, PKI, int]) -> None:
    """Over LDAPS, clients that ask for everything, unbind and never read do not hold their
    slots: the server aborts what it cannot flush and keeps answering others."""
    gris, pki, port = tls_gris
    held = []
    for _ in range(20):
        s = _tls_socket(pki, port, rcvbuf=4096)
        s.sendall(_search_all() + UNBIND)
        held.append(s)
    try:
        assert _wait_until(lambda: _open_files(gris) <= gris.baseline_files, timeout=30), "slots still held"  # type: ignore[attr-defined]
        assert _wait_until(_served(gris), timeout=30), "a new client is still refused"
    finally:
        for s in held:
            s.close()
