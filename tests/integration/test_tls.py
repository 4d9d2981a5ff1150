"""TLS against a real ``gris`` process: StartTLS and LDAPS with OpenLDAP's tools, ldap3 and
python-ldap, certificates from a test CA the suite makes (tests/support/tls.py)."""

from __future__ import annotations

import os
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ldap
import ldap3
import pytest

from tests.support.gris import GrisProcess
from tests.support.ports import LOOPBACK
from tests.support.tls import PKI, make_test_pki

REPO = Path(__file__).resolve().parents[2]
START_TLS = "1.3.6.1.4.1.1466.20037"
ADMIN, ADMIN_PASSWORD = "cn=admin,o=grid", "secret"


@dataclass
class TLSGris:
    gris: GrisProcess
    pki: PKI
    ldaps_port: int

    @property
    def url(self) -> str:
        return self.gris.url

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://{LOOPBACK}:{self.ldaps_port}"


def write_tls_config(folder: Path, pki: PKI, *extra: str) -> Path:
    path = folder / "gris.yaml"
    path.write_text(
        "\n".join(
            [
                "tls:",
                f"  certificate: {pki.server_cert}",
                f"  key: {pki.server_key}",
                f"  ca: {pki.ca}",
                "  client_certificates: optional",
                "credentials:",
                f'  "{ADMIN}": {ADMIN_PASSWORD}',
                *extra,
            ]
        )
        + "\n"
    )
    return path


@pytest.fixture(scope="module")
def tls_gris(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSGris]:
    folder = tmp_path_factory.mktemp("tls-gris")
    pki = make_test_pki(folder / "pki")
    config = write_tls_config(folder, pki)
    ldaps = f"ssl:0:interface={LOOPBACK}:privateKey={pki.server_key}:certKey={pki.server_cert}"
    with GrisProcess(["--config", str(config), "--listen", ldaps, "--ldif", str(REPO / "conf" / "ldif")]) as gris:
        yield TLSGris(gris, pki, gris.listening_port("ssl:"))


def openldap(tool: str, pki: PKI, *args: str, client_cert: bool = False) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LDAPTLS_CACERT=pki.ca, LDAPTLS_REQCERT="demand")
    env.pop("LDAPTLS_CERT", None)
    env.pop("LDAPTLS_KEY", None)
    if client_cert:
        env.update(LDAPTLS_CERT=pki.client_cert, LDAPTLS_KEY=pki.client_key)
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=30, env=env)


def test_ldapsearch_start_tls(tls_gris: TLSGris) -> None:
    """`ldapsearch -ZZ` (StartTLS required, server certificate verified against the CA
    named by LDAPTLS_CACERT) searches the GRIS; the root DSE advertises StartTLS."""
    out = openldap("ldapsearch", tls_gris.pki, "-x", "-ZZ", "-LLL", "-H", tls_gris.url, "-b", "", "-s", "base",
                   "supportedExtension")
    assert out.returncode == 0, out.stderr
    assert f"supportedExtension: {START_TLS}" in out.stdout
    out = openldap("ldapsearch", tls_gris.pki, "-x", "-ZZ", "-LLL", "-H", tls_gris.url, "-b", "o=grid", "dn")
    assert out.returncode == 0, out.stderr
    assert "mds-vo-name=local,o=grid" in out.stdout.lower()
    assert "now under TLS" in tls_gris.gris.log


def test_ldapsearch_ldaps(tls_gris: TLSGris) -> None:
    """An `ssl:` listener endpoint serves ldaps:// (TLS from the first byte)."""
    out = openldap("ldapsearch", tls_gris.pki, "-x", "-LLL", "-H", tls_gris.ldaps_url, "-b", "o=grid", "dn")
    assert out.returncode == 0, out.stderr
    assert "mds-vo-name=local,o=grid" in out.stdout.lower()


def test_ldapsearch_refuses_a_server_the_ca_did_not_sign(tls_gris: TLSGris) -> None:
    """Verification is real: trusting another CA, `ldapsearch -ZZ` fails the handshake."""
    env_pki = PKI(tls_gris.pki.other_ca, tls_gris.pki.other_ca, "", "", "", "")
    out = openldap("ldapsearch", env_pki, "-x", "-ZZ", "-H", tls_gris.url, "-b", "", "-s", "base")
    assert out.returncode != 0
    out = openldap("ldapsearch", env_pki, "-x", "-H", tls_gris.ldaps_url, "-b", "", "-s", "base")
    assert out.returncode != 0


def _ldap3_tls(pki: PKI) -> ldap3.Tls:
    return ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=pki.ca)


def test_ldap3_start_tls_and_ldaps(tls_gris: TLSGris) -> None:
    """ldap3 with Tls(validate=CERT_REQUIRED, ca_certs_file=CA): StartTLS on the plain port
    and use_ssl on the LDAPS port both search, and a password bind works under TLS."""
    server = ldap3.Server(LOOPBACK, port=tls_gris.gris.port, tls=_ldap3_tls(tls_gris.pki), get_info=ldap3.NONE)
    conn = ldap3.Connection(server, ADMIN, ADMIN_PASSWORD)
    conn.open()
    assert conn.start_tls()
    assert conn.bind(), conn.result
    assert conn.search("o=grid", "(objectClass=*)", search_scope=ldap3.BASE)
    assert conn.extend.standard.who_am_i() == f"dn:{ADMIN}"
    conn.unbind()
    server = ldap3.Server(LOOPBACK, port=tls_gris.ldaps_port, use_ssl=True, tls=_ldap3_tls(tls_gris.pki),
                          get_info=ldap3.NONE)
    conn = ldap3.Connection(server, auto_bind=True)
    assert conn.search("o=grid", "(objectClass=*)", search_scope=ldap3.BASE)
    conn.unbind()


def test_python_ldap_start_tls_and_ldaps(tls_gris: TLSGris) -> None:
    """python-ldap (libldap underneath) with the CA set: start_tls_s() then a password bind,
    and an ldaps:// URL; both search the GRIS."""
    for url, start_tls in ((tls_gris.url, True), (tls_gris.ldaps_url, False)):
        conn = ldap.initialize(url)
        conn.set_option(ldap.OPT_X_TLS_CACERTFILE, tls_gris.pki.ca)
        conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
        conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, 10)
        if start_tls:
            conn.start_tls_s()
            conn.simple_bind_s(ADMIN, ADMIN_PASSWORD)
            assert conn.whoami_s() == f"dn:{ADMIN}"
        results = conn.search_s("o=grid", ldap.SCOPE_BASE, "(objectClass=*)")
        assert [dn for dn, _ in results] == ["o=grid"]
        conn.unbind_s()


def test_password_bind_in_the_clear_is_refused_with_code_13(tls_gris: TLSGris) -> None:
    """With TLS configured, `ldapwhoami -x -D DN -w PASSWORD` without -ZZ gets
    confidentialityRequired (13) and a message saying what to do; with -ZZ it binds."""
    out = openldap("ldapwhoami", tls_gris.pki, "-x", "-H", tls_gris.url, "-D", ADMIN, "-w", ADMIN_PASSWORD)
    assert out.returncode == 13, out.stderr
    assert "Confidentiality required" in out.stderr and "StartTLS" in out.stderr
    out = openldap("ldapwhoami", tls_gris.pki, "-x", "-ZZ", "-H", tls_gris.url, "-D", ADMIN, "-w", ADMIN_PASSWORD)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"dn:{ADMIN}"
