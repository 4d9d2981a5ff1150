"""TLS for the LDAP edge: the server's context (StartTLS, client certificates) and the clients'.

The ``tls:`` section of gris.yaml / giis.yaml (:class:`gridinfo.config.TLSConfig`) names PEM
files: the server's ``certificate`` and ``key``, and the ``ca`` whose certificates are trusted,
both to verify client certificates (``client_certificates: optional|required``) and, in the
clients we ship, to verify the servers we connect to (host name or IP address included).

A client certificate's subject becomes the connection's identity for SASL EXTERNAL, written as
an RFC 4514 string (:func:`subject_dn`), so policies and ACLs name it like any bind DN.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.internet import ssl
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, ISSLTransport

from gridinfo.errors import ConfigError

START_TLS_OID = "1.3.6.1.4.1.1466.20037"

_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def read_certificates(path: str) -> list[ssl.Certificate]:
    """Every certificate in a PEM file (a CA bundle may hold several)."""
    data = Path(path).read_bytes()
    blocks = _PEM_CERTIFICATE.findall(data)
    if not blocks:
        raise ConfigError(f"tls: {path} holds no PEM certificate")
    return [ssl.Certificate.loadPEM(block) for block in blocks]


def server_context(certificate: str, key: str, ca: str = "", client_certificates: str = "none") -> ssl.CertificateOptions:
    """The server's context factory: our certificate and key; client certificates per policy.

    ``optional`` asks for a client certificate and verifies it against ``ca`` when one is sent;
    ``required`` refuses the handshake of a client without one.
    """
    try:
        chain = read_certificates(certificate)
        private = ssl.PrivateCertificate.loadPEM(chain[0].dumpPEM() + Path(key).read_bytes())
        ca_certs = [c.original for c in read_certificates(ca)] if ca else []
    except ConfigError:
        raise
    except OSError as e:
        raise ConfigError(f"tls: cannot read {e.filename}: {e.strerror}") from None
    except Exception as e:  # pyOpenSSL's errors: a bad PEM, a key that is not the certificate's
        raise ConfigError(f"tls: cannot load the certificate or key: {e}") from None
    verify = client_certificates != "none"
    options: dict[str, Any] = {}
    if verify:
        options = {"verify": True, "caCerts": ca_certs, "requireCertificate": client_certificates == "required"}
    return ssl.CertificateOptions(
        privateKey=private.privateKey.original,
        certificate=private.original,
        extraCertChain=[c.original for c in chain[1:]],
        **options,
    )


def client_context(host: str, ca: str, certificate: str = "", key: str = "") -> IOpenSSLClientConnectionCreator:
    """A client context verifying the server against ``ca`` and ``host`` (a name or an IP
    address); with ``certificate`` and ``key`` it also presents a client certificate."""
    trust = ssl.trustRootFromCertificates(read_certificates(ca)) if ca else ssl.platformTrust()
    client_certificate = None
    if certificate and key:
        client_certificate = ssl.PrivateCertificate.loadPEM(Path(certificate).read_bytes() + Path(key).read_bytes())
    return ssl.optionsForClientTLS(host.strip("[]"), trustRoot=trust, clientCertificate=client_certificate)


@dataclass(frozen=True)
class ClientTLS:
    """How our clients (registrar, GIIS -> child) use TLS: the CA that verifies servers, and
    the certificate and key they present (a host certificate, for SASL EXTERNAL).

    With a ``ca``, a plain ``ldap://`` connection starts TLS (StartTLS) before anything else;
    ``ldaps://`` is TLS from the start, verified against ``ca`` or, without one, the system's.
    """

    ca: str = ""
    certificate: str = ""
    key: str = ""

    @property
    def start_tls(self) -> bool:
        return bool(self.ca)

    def context(self, host: str) -> IOpenSSLClientConnectionCreator:
        return client_context(host, self.ca, self.certificate, self.key)


def under_tls(transport: Any) -> bool:
    """Whether a connection's bytes already travel under TLS (LDAPS, or after StartTLS)."""
    return ISSLTransport.providedBy(transport)


def subject_dn(certificate: Any) -> str:
    """A pyOpenSSL peer certificate's subject as an RFC 4514 string (most specific RDN first)."""
    return str(certificate.to_cryptography().subject.rfc4514_string())


def peer_subject(transport: Any) -> str:
    """The verified client certificate's subject on a TLS connection, or ''."""
    if not under_tls(transport):
        return ""
    get = getattr(transport, "getPeerCertificate", None)
    certificate = get() if get is not None else None
    return subject_dn(certificate) if certificate is not None else ""
