"""StartTLS, plain-password refusal and SASL EXTERNAL in memory, on a transport double.

``StringTransport`` cannot start TLS, so :class:`TLSCapableTransport` records the switch: the
bytes written before it (which must hold the success response, in the clear), the context
factory passed, and from then on it says it is an ``ISSLTransport`` with an optional peer
certificate.  The real handshake is tested over sockets in tests/integration/test_tls.py.
"""

from __future__ import annotations

from typing import Any

from ldaptor.protocols import pureldap as L
from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import ISSLTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import directlyProvides

from gridinfo.errors import ResultCode
from gridinfo.ldap.server import LDAPServerFactory, ServerLimits
from tests.ldap.test_server import Client, CountingTransport
from tests.support.serve_fixture import DictBackend, sample_entries

START_TLS = "1.3.6.1.4.1.1466.20037"
CONTEXT = object()  # stands for a Twisted context factory: the double never uses it


class TLSCapableTransport(CountingTransport):
    """A StringTransport with ``startTLS``: records the switch and then reports TLS."""

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.started_with: Any = None
        self.written_before_tls = b""
        self.peer_certificate: Any = None

    def startTLS(self, context: Any, normal: bool = True) -> None:
        self.started_with = context
        self.written_before_tls = self.value()
        directlyProvides(self, ISSLTransport)

    def getPeerCertificate(self) -> Any:
        return self.peer_certificate


class TLSClient(Client):
    transport: TLSCapableTransport  # type: ignore[assignment]

    def __init__(self, factory: LDAPServerFactory, port: int = 40000) -> None:
        self.protocol = factory.buildProtocol(IPv4Address("TCP", "192.0.2.1", port))
        self.transport = TLSCapableTransport(port)
        self.protocol.makeConnection(self.transport)
        self.next_id = 1

    def start_tls(self) -> Any:
        self.send(L.LDAPExtendedRequest(requestName=START_TLS))
        (response,) = self.responses()
        return response.value

    def bind(self, dn: str, password: bytes) -> Any:
        self.send(L.LDAPBindRequest(version=3, dn=dn, auth=password))
        (response,) = self.responses()
        return response.value


class _Subject:
    """What the server reads from a pyOpenSSL peer certificate: ``to_cryptography().subject``."""

    def __init__(self, rfc4514: str) -> None:
        self.subject = self
        self._text = rfc4514

    def to_cryptography(self) -> _Subject:
        return self

    def rfc4514_string(self) -> str:
        return self._text


class TLSServerCase(SynchronousTestCase):
    def make(self, context: Any = CONTEXT, allow_plain_passwords: bool = False, **kw: Any) -> LDAPServerFactory:
        self.clock = task.Clock()
        self.backend = DictBackend(sample_entries(), accept_adds=True)
        return LDAPServerFactory(
            self.backend,
            reactor=self.clock,
            limits=ServerLimits(bind_failure_delay=0),
            credentials={"cn=admin,o=grid": "secret"},
            vendor_version="9.9",
            tls_context=context,
            allow_plain_passwords=allow_plain_passwords,
            **kw,
        )

    def root_dse(self, factory: LDAPServerFactory) -> dict[str, list[bytes]]:
        client = TLSClient(factory)
        entry, _done = client.search(base="", scope=0, attributes=["+"])
        return {(n.decode() if isinstance(n, bytes) else n): list(v) for n, v in entry.value.attributes}


class StartTLSTests(TLSServerCase):

    def test_start_tls_answers_in_the_clear_then_switches(self) -> None:
        """ldapsearch -ZZ: the success response (naming StartTLS) goes out before the TLS
        handshake, with the configured context; the connection is then under TLS and
        searches work as before."""
        client = TLSClient(self.make())
        client.send(L.LDAPExtendedRequest(requestName=START_TLS))
        self.assertIs(client.transport.started_with, CONTEXT)
        self.assertTrue(client.transport.written_before_tls)
        (response,) = client.responses()
        self.assertEqual(response.value.resultCode, ResultCode.SUCCESS)
        self.assertEqual(response.value.responseName, START_TLS.encode())
        self.assertTrue(client.protocol.tls)
        self.assertEqual(client.search()[-1].value.resultCode, 0)

    def test_start_tls_is_refused_without_tls_configured(self) -> None:
        """A server without a tls section answers StartTLS with unavailable and a reason, and
        does not advertise it; the connection stays usable in the clear."""
        factory = self.make(context=None)
        client = TLSClient(factory)
        response = client.start_tls()
        self.assertEqual(response.resultCode, ResultCode.UNAVAILABLE)
        self.assertIn(b"no TLS configured", response.errorMessage)
        self.assertIsNone(client.transport.started_with)
        self.assertNotIn(START_TLS.encode(), self.root_dse(factory)["supportedExtension"])
        self.assertEqual(client.search()[-1].value.resultCode, 0)

    def test_root_dse_advertises_start_tls_and_external_when_configured(self) -> None:
        """Clients discover StartTLS in supportedExtension (and SASL EXTERNAL when client
        certificates are asked for) only when the server has TLS configured."""
        self.assertIn(START_TLS.encode(), self.root_dse(self.make())["supportedExtension"])
        self.assertNotIn("supportedSASLMechanisms", self.root_dse(self.make()))
        dse = self.root_dse(self.make(client_certificates=True))
        self.assertEqual(dse["supportedSASLMechanisms"], [b"EXTERNAL"])

    def test_second_start_tls_is_refused(self) -> None:
        """StartTLS on a connection already under TLS (or LDAPS) gives operationsError."""
        client = TLSClient(self.make())
        client.start_tls()
        client.transport.started_with = None
        response = client.start_tls()
        self.assertEqual(response.resultCode, ResultCode.OPERATIONS_ERROR)
        self.assertIn(b"already established", response.errorMessage)
        self.assertIsNone(client.transport.started_with)

    def test_start_tls_with_operations_outstanding_is_refused(self) -> None:
        """While an operation is still in progress StartTLS gives operationsError, the
        connection stays in the clear and the operation's answer still arrives."""
        factory = self.make()
        self.backend.deferred = True
        client = TLSClient(factory)
        client.send(L.LDAPCompareRequest(entry="o=grid", ava=L.LDAPAttributeValueAssertion(
            L.LDAPAttributeDescription("o"), L.LDAPAssertionValue("grid"))))
        self.assertEqual(client.responses(), [])
        response = client.start_tls()
        self.assertEqual(response.resultCode, ResultCode.OPERATIONS_ERROR)
        self.assertIn(b"outstanding", response.errorMessage)
        self.assertIsNone(client.transport.started_with)
        self.backend.release()
        (compared,) = client.responses()
        self.assertIn(compared.value.resultCode, (ResultCode.COMPARE_TRUE, ResultCode.COMPARE_FALSE))

    def test_bytes_after_start_tls_request_are_a_protocol_error(self) -> None:
        """A client that sends more before the StartTLS response is disconnected (RFC 4511
        4.14.1), never switched with cleartext requests queued behind."""
        client = TLSClient(self.make())
        request = L.LDAPMessage(L.LDAPExtendedRequest(requestName=START_TLS), id=1).toWire()
        search = L.LDAPMessage(L.LDAPSearchRequest(baseObject="", scope=0, filter=L.LDAPFilter_present("objectClass")), id=2)
        client.raw(request + search.toWire())
        self.assertIsNone(client.transport.started_with)
        self.assertTrue(client.closed)


class PlainPasswordTests(TLSServerCase):
    def test_password_bind_in_the_clear_is_refused(self) -> None:
        """With TLS configured, a simple bind with a password before StartTLS gets
        confidentialityRequired (13) with a message, and the client stays anonymous; after
        StartTLS the same bind succeeds."""
        client = TLSClient(self.make())
        response = client.bind("cn=admin,o=grid", b"secret")
        self.assertEqual(response.resultCode, ResultCode.CONFIDENTIALITY_REQUIRED)
        self.assertIn(b"TLS", response.errorMessage)
        client.search()
        self.assertEqual(self.backend.requests[-1].bind_dn, "")
        client.start_tls()
        self.assertEqual(client.bind("cn=admin,o=grid", b"secret").resultCode, ResultCode.SUCCESS)

    def test_plain_passwords_allowed_by_config_or_without_tls(self) -> None:
        """allow_plain_passwords: true (closed networks), or no TLS configured at all, keeps
        simple binds in the clear working; anonymous binds always work."""
        for factory in (self.make(allow_plain_passwords=True), self.make(context=None)):
            client = TLSClient(factory)
            self.assertEqual(client.bind("cn=admin,o=grid", b"secret").resultCode, ResultCode.SUCCESS)
        self.assertEqual(TLSClient(self.make()).bind("", b"").resultCode, ResultCode.SUCCESS)

    def test_refused_cleartext_bind_does_not_reveal_the_password_check(self) -> None:
        """A refused cleartext bind says nothing about the password: a wrong one gets the
        same code 13 as the right one, and no failure is counted against the DN."""
        factory = self.make()
        client = TLSClient(factory)
        self.assertEqual(client.bind("cn=admin,o=grid", b"wrong").resultCode, ResultCode.CONFIDENTIALITY_REQUIRED)
        self.assertEqual(factory.stats["failed_binds"], 0)


class SASLExternalTests(TLSServerCase):
    def external(self, client: TLSClient, authzid: bytes | None = None) -> Any:
        client.send(L.LDAPBindRequest(dn="", auth=("EXTERNAL", authzid), sasl=True))
        (response,) = client.responses()
        return response.value

    def test_external_binds_as_the_certificate_subject(self) -> None:
        """Under TLS with a verified client certificate, SASL EXTERNAL binds as its subject
        DN (RFC 4514); Who am I? says so and searches and adds carry it (policies and ACLs
        compare it like any bind DN)."""
        client = TLSClient(self.make(client_certificates=True))
        client.start_tls()
        client.transport.peer_certificate = _Subject("CN=gris.example.org,OU=hosts,O=grid")
        self.assertEqual(self.external(client).resultCode, ResultCode.SUCCESS)
        client.send(L.LDAPExtendedRequest(requestName="1.3.6.1.4.1.4203.1.11.3"))
        (who,) = client.responses()
        self.assertEqual(who.value.response, b"dn:CN=gris.example.org,OU=hosts,O=grid")
        client.send(L.LDAPAddRequest(entry="cn=x,o=grid", attributes=[]))
        self.assertEqual(self.backend.added[-1][2], "CN=gris.example.org,OU=hosts,O=grid")

    def test_external_needs_tls_and_a_certificate(self) -> None:
        """EXTERNAL in the clear, or under TLS without a client certificate, is refused with
        inappropriateAuthentication and a reason; the client stays anonymous."""
        client = TLSClient(self.make(client_certificates=True))
        response = self.external(client)
        self.assertEqual(response.resultCode, ResultCode.INAPPROPRIATE_AUTHENTICATION)
        self.assertIn(b"no TLS", response.errorMessage)
        client.start_tls()
        response = self.external(client)
        self.assertEqual(response.resultCode, ResultCode.INAPPROPRIATE_AUTHENTICATION)
        self.assertIn(b"no client certificate", response.errorMessage)
        self.assertEqual(client.protocol.bind_dn, "")

    def test_external_authorization_identity_must_be_the_subject(self) -> None:
        """An authzid naming the certificate's own DN is accepted; any other identity is
        refused (no proxy authorization)."""
        client = TLSClient(self.make(client_certificates=True))
        client.start_tls()
        client.transport.peer_certificate = _Subject("CN=a,O=grid")
        self.assertEqual(self.external(client, b"dn:cn=A, o=grid").resultCode, ResultCode.SUCCESS)
        response = self.external(client, b"dn:cn=admin,o=grid")
        self.assertEqual(response.resultCode, ResultCode.INSUFFICIENT_ACCESS_RIGHTS)
        self.assertEqual(client.protocol.bind_dn, "")


class StoredPasswordTests(TLSServerCase):
    def test_ssha_hashed_credentials_bind_with_the_right_password_only(self) -> None:
        """credentials may hold {SSHA} hashes (slappasswd's format): the right password binds,
        a wrong one gets invalidCredentials."""
        from gridinfo.ldap.passwords import ssha

        factory = self.make(context=None)
        factory.credentials["cn=hashed,o=grid"] = ssha("pa55")
        client = TLSClient(factory)
        self.assertEqual(client.bind("cn=hashed,o=grid", b"pa55").resultCode, ResultCode.SUCCESS)
        self.assertEqual(client.bind("cn=hashed,o=grid", b"pa56").resultCode, ResultCode.INVALID_CREDENTIALS)

    def test_a_hash_made_by_slappasswd_is_understood(self) -> None:
        """A hash made by OpenLDAP's slappasswd is understood."""
        import subprocess

        from gridinfo.ldap.passwords import matches

        out = subprocess.run(["slappasswd", "-h", "{SSHA}", "-s", "grid secret"], capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        stored = out.stdout.strip()
        self.assertTrue(matches(stored, b"grid secret"))
        self.assertFalse(matches(stored, b"grid secreT"))
