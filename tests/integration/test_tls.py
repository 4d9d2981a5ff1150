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


def test_ldapsearch_with_required_starttls_verifies_the_server_and_searches(tls_gris: TLSGris) -> None:
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


def test_an_ssl_listener_serves_ldaps_from_the_first_byte(tls_gris: TLSGris) -> None:
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


@pytest.fixture(scope="module")
def vm_gris(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSGris]:
    """A GRIS logging VM events, with TLS: the cloud source binds with a password, the
    hypervisor source is the client certificate's subject (SASL EXTERNAL)."""
    from tests.support.tls import CLIENT_SUBJECT

    folder = tmp_path_factory.mktemp("tls-vm-gris")
    pki = make_test_pki(folder / "pki")
    config = write_tls_config(
        folder, pki, '  "cn=cloud,o=grid": cloudpw', "vm:", "  enabled: true", "  journal: journal.sqlite",
        "  sources:", '    "cn=cloud,o=grid": cloud', f'    "{CLIENT_SUBJECT}": hypervisor',
    )
    ldaps = f"ssl:0:interface={LOOPBACK}:privateKey={pki.server_key}:certKey={pki.server_cert}"
    with GrisProcess(["--config", str(config), "--listen", ldaps]) as gris:
        yield TLSGris(gris, pki, gris.listening_port("ssl:"))


def log_event_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    import sys

    password = tmp_path / "cloud.pw"
    password.write_text("cloudpw\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for name in ("GRIDINFO_EVENT_CA", "GRIDINFO_EVENT_CERT", "GRIDINFO_EVENT_KEY", "GRIDINFO_EVENT_SERVER"):
        env.pop(name, None)
    command = [sys.executable, "-m", "gridinfo.cli.log_event", "--spool", str(tmp_path / "spool.sqlite"), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)


def vm_state(gris: TLSGris, vm: str) -> str:
    out = openldap("ldapsearch", gris.pki, "-x", "-ZZ", "-LLL", "-H", gris.url, "-b", "o=grid",
                   f"(GridinfoVMID={vm})", "GridinfoVMState")
    assert out.returncode == 0, out.stderr
    states = [line.split(": ", 1)[1] for line in out.stdout.splitlines() if line.startswith("GridinfoVMState:")]
    return states[0] if states else ""


def test_log_event_with_a_password_uses_start_tls(vm_gris: TLSGris, tmp_path: Path) -> None:
    """gridinfo-log-event --ca CA: StartTLS, then the password bind, and the event is
    delivered; without --ca the GRIS refuses the cleartext password (13) and the event
    waits safely in the spool, and --flush with --ca delivers it."""
    login = ["--server", vm_gris.url, "--bind-dn", "cn=cloud,o=grid", "--password-file", str(tmp_path / "cloud.pw")]
    out = log_event_cli(tmp_path, "Register", "--source", "cloud", "--vm", "tls-vm-1", *login,
                        "--attr", "owner=alice")
    assert out.returncode == 0, out.stderr
    assert "Confidentiality" in out.stderr or "confidentiality" in out.stderr, out.stderr
    assert "1 event(s) kept in the spool" in out.stderr
    out = log_event_cli(tmp_path, "--flush", *login, "--ca", vm_gris.pki.ca)
    assert out.returncode == 0 and not out.stderr, out.stderr
    assert vm_state(vm_gris, "tls-vm-1") != ""
    out = log_event_cli(tmp_path, "Create", "--source", "cloud", "--vm", "tls-vm-2", *login, "--ca", vm_gris.pki.ca)
    assert out.returncode == 0 and not out.stderr, out.stderr
    assert vm_state(vm_gris, "tls-vm-2") != ""


def test_log_event_over_ldaps_with_the_api(vm_gris: TLSGris, tmp_path: Path) -> None:
    """gridinfo.vm.log_event to an ldaps:// URL with the CA delivers; trusting another CA
    it does not (the event stays in the spool)."""
    from gridinfo.vm.client import EventTLS, log_event

    spool = tmp_path / "api-spool.sqlite"
    kw: dict[str, object] = dict(server=vm_gris.ldaps_url, bind_dn="cn=cloud,o=grid", password="cloudpw", spool=spool)
    report = log_event("Create", source="cloud", vm_id="tls-vm-3", tls=EventTLS(ca=vm_gris.pki.other_ca), **kw)  # type: ignore[arg-type]
    assert report.error and report.pending == 1
    report = log_event("Create", source="cloud", vm_id="tls-vm-4", tls=EventTLS(ca=vm_gris.pki.ca), **kw)  # type: ignore[arg-type]
    assert report.complete, report.error
    assert vm_state(vm_gris, "tls-vm-3") and vm_state(vm_gris, "tls-vm-4")


def test_sasl_external_with_a_client_certificate(tls_gris: TLSGris) -> None:
    """`ldapwhoami -Y EXTERNAL -ZZ` with LDAPTLS_CERT/LDAPTLS_KEY binds as the certificate's
    subject DN.  (Without a certificate libldap does not even try.)"""
    from tests.support.tls import CLIENT_SUBJECT

    out = openldap("ldapwhoami", tls_gris.pki, "-Y", "EXTERNAL", "-ZZ", "-H", tls_gris.url, client_cert=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"dn:{CLIENT_SUBJECT}"


def test_ldap3_with_a_client_certificate_binds_with_sasl_external(tls_gris: TLSGris) -> None:
    """ldap3 with a client certificate in Tls(...) and sasl_mechanism=EXTERNAL after
    StartTLS binds as the certificate's subject; without a certificate the bind is refused
    with inappropriateAuthentication (48)."""
    from tests.support.tls import CLIENT_SUBJECT

    pki = tls_gris.pki
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=pki.ca, local_certificate_file=pki.client_cert,
                    local_private_key_file=pki.client_key)
    server = ldap3.Server(LOOPBACK, port=tls_gris.gris.port, tls=tls, get_info=ldap3.NONE)
    conn = ldap3.Connection(server, authentication=ldap3.SASL, sasl_mechanism=ldap3.EXTERNAL)
    conn.open()
    assert conn.start_tls()
    assert conn.bind(), conn.result
    assert conn.extend.standard.who_am_i() == f"dn:{CLIENT_SUBJECT}"
    conn.unbind()
    server = ldap3.Server(LOOPBACK, port=tls_gris.gris.port, tls=_ldap3_tls(pki), get_info=ldap3.NONE)
    conn = ldap3.Connection(server, authentication=ldap3.SASL, sasl_mechanism=ldap3.EXTERNAL)
    conn.open()
    assert conn.start_tls()
    assert not conn.bind()
    assert conn.result["result"] == 48 and "client certificate" in conn.result["message"]
    conn.unbind()


def test_log_event_with_a_client_certificate(vm_gris: TLSGris, tmp_path: Path) -> None:
    """gridinfo-log-event --ca --cert --key and no --bind-dn: SASL EXTERNAL binds as the
    certificate's subject, which vm.sources maps to the hypervisor source; the event is
    delivered without any password."""
    out = log_event_cli(tmp_path, "Running", "--source", "hypervisor", "--vm", "tls-vm-5", "--server", vm_gris.url,
                        "--ca", vm_gris.pki.ca, "--cert", vm_gris.pki.client_cert, "--key", vm_gris.pki.client_key,
                        "--attr", "physical_host=h1")
    assert out.returncode == 0 and not out.stderr, out.stderr
    assert vm_state(vm_gris, "tls-vm-5") == "Running"
    # the same certificate may not speak for another source
    out = log_event_cli(tmp_path, "Create", "--source", "cloud", "--vm", "tls-vm-6", "--server", vm_gris.url,
                        "--ca", vm_gris.pki.ca, "--cert", vm_gris.pki.client_cert, "--key", vm_gris.pki.client_key)
    assert out.returncode == 1 and "refused (50)" in out.stderr, out.stderr
