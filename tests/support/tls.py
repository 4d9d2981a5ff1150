"""A test certificate authority, made by the suite with ``cryptography``'s x509 builder.

``make_test_pki(folder)`` writes PEM files: ``ca.pem``; ``server.pem``/``server-key.pem`` for
127.0.0.1 and localhost (IP and DNS subject alternative names); ``client.pem``/``client-key.pem``
with the subject :data:`CLIENT_SUBJECT`; and ``other-ca.pem``, a CA that signed none of them.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: The client certificate's subject as the server reports it (RFC 4514, most specific first).
CLIENT_SUBJECT = "CN=gris.example.org,OU=hosts,O=gridinfo test"
#: The server certificate's subject (it is also a GRIS's client certificate when it registers).
SERVER_SUBJECT = "CN=localhost,O=gridinfo test"


@dataclass(frozen=True)
class PKI:
    ca: str
    other_ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str


def _name(*parts: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in parts])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> str:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)
    return str(path)


def _write_cert(path: Path, cert: x509.Certificate) -> str:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


def _ca(common_name: str) -> tuple[x509.Name, ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name((NameOID.ORGANIZATION_NAME, "gridinfo test"), (NameOID.COMMON_NAME, common_name))
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return name, key, cert


def _leaf(
    ca_name: x509.Name,
    ca_key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    usage: list[x509.ObjectIdentifier],
    names: list[x509.GeneralName],
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def make_test_pki(folder: str | Path) -> PKI:
    """Write a CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    ca_name, ca_key, ca_cert = _ca("gridinfo test CA")
    _, _, other_cert = _ca("another CA")
    server_key, server_cert = _leaf(
        ca_name,
        ca_key,
        _name((NameOID.ORGANIZATION_NAME, "gridinfo test"), (NameOID.COMMON_NAME, "localhost")),
        # as grid host certificates: a server's, also presented as a client (registrations)
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client_key, client_cert = _leaf(
        ca_name,
        ca_key,
        _name(
            (NameOID.ORGANIZATION_NAME, "gridinfo test"),
            (NameOID.ORGANIZATIONAL_UNIT_NAME, "hosts"),
            (NameOID.COMMON_NAME, "gris.example.org"),
        ),
        [ExtendedKeyUsageOID.CLIENT_AUTH],
        [],
    )
    return PKI(
        ca=_write_cert(out / "ca.pem", ca_cert),
        other_ca=_write_cert(out / "other-ca.pem", other_cert),
        server_cert=_write_cert(out / "server.pem", server_cert),
        server_key=_write_key(out / "server-key.pem", server_key),
        client_cert=_write_cert(out / "client.pem", client_cert),
        client_key=_write_key(out / "client-key.pem", client_key),
    )
