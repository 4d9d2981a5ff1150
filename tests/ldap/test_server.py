"""The LDAP server protocol in memory: every operation, every limit, malformed input.

Requests are encoded with ldaptor's pureldap (an independent encoder) and responses decoded
with it too, so these tests check what a client library sees.
"""

from __future__ import annotations

from typing import Any

from ldaptor.protocols import pureber
from ldaptor.protocols import pureldap as L
from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from gridinfo import ber
from gridinfo.errors import ResultCode
from gridinfo.ldap.server import LDAPServerFactory, ServerLimits
from tests.support.serve_fixture import DictBackend, sample_entries

PAGED = "1.2.840.113556.1.4.319"
NOTICE = "1.3.6.1.4.1.1466.20036"
WHO_AM_I = "1.3.6.1.4.1.4203.1.11.3"

_DECODER = L.LDAPBERDecoderContext_TopLevel(
    inherit=L.LDAPBERDecoderContext_LDAPMessage(
        fallback=L.LDAPBERDecoderContext(fallback=pureber.BERDecoderContext()),
        inherit=L.LDAPBERDecoderContext(fallback=pureber.BERDecoderContext()),
    )
)


class CountingTransport(StringTransport):
    """A StringTransport that also counts write calls (results should be one write)."""

    def __init__(self, port: int) -> None:
        super().__init__(peerAddress=IPv4Address("TCP", "192.0.2.1", port))
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        super().write(data)


class Client:
    """One in-memory connection to a server factory."""

    def __init__(self, factory: LDAPServerFactory, port: int = 40000) -> None:
        self.protocol = factory.buildProtocol(IPv4Address("TCP", "192.0.2.1", port))
        self.transport = CountingTransport(port)
        self.protocol.makeConnection(self.transport)
        self.next_id = 1

    def send(self, op: Any, controls: list[tuple[str, bool, bytes | None]] | None = None, message_id: int | None = None) -> int:
        if message_id is None:
            message_id = self.next_id
            self.next_id += 1
        self.protocol.dataReceived(L.LDAPMessage(op, id=message_id, controls=controls).toWire())
        return message_id

    def raw(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def responses(self) -> list[Any]:
        data = self.transport.value()
        self.transport.clear()
        return pureber.berDecodeMultiple(data, _DECODER)

    @property
    def closed(self) -> bool:
        return bool(self.transport.disconnecting)

    def search(self, base: str = "o=grid", scope: int = 2, flt: Any = None, attributes: list[str] | None = None,
               size_limit: int = 0, time_limit: int = 0, controls: Any = None) -> list[Any]:
        request = L.LDAPSearchRequest(
            baseObject=base,
            scope=scope,
            sizeLimit=size_limit,
            timeLimit=time_limit,
            filter=flt if flt is not None else L.LDAPFilter_present("objectClass"),
            attributes=attributes or [],
        )
        self.send(request, controls=controls)
        return self.responses()


def _paged(size: int, cookie: bytes = b"", critical: bool = False) -> list[tuple[str, bool, bytes | None]]:
    return [(PAGED, critical, ber.sequence([ber.integer(size), ber.octet_string(cookie)]))]


def _paged_response(message: Any) -> tuple[int, bytes]:
    (oid, _critical, value), = message.controls
    assert oid in (PAGED, PAGED.encode())
    seq = pureber.berDecodeObject(pureber.BERDecoderContext(), value)[0]
    return seq[0].value, seq[1].value


def _attributes(entry: Any) -> dict[str, list[bytes]]:
    return {name.decode() if isinstance(name, bytes) else name: list(values) for name, values in entry.attributes}


class ServerTestCase(SynchronousTestCase):
    def make(self, backend: DictBackend | None = None, **limits: Any) -> LDAPServerFactory:
        self.clock = task.Clock()
        self.backend = backend or DictBackend(sample_entries())
        return LDAPServerFactory(
            self.backend,
            reactor=self.clock,
            limits=ServerLimits(**limits),
            credentials={"CN=Admin, O=Grid": "secret"},
            vendor_version="9.9",
        )

    def client(self, backend: DictBackend | None = None, **limits: Any) -> Client:
        self.factory = self.make(backend, **limits)
        return Client(self.factory)


class BindTests(ServerTestCase):
    def bind(self, client: Client, dn: str, password: bytes, version: int = 3) -> Any:
        client.send(L.LDAPBindRequest(version=version, dn=dn, auth=password))
        (response,) = client.responses()
        return response.value

    def test_an_anonymous_bind_succeeds_in_v3_and_v2(self) -> None:
        """ldapsearch -x (anonymous, v3 or v2) binds successfully."""
        client = self.client()
        self.assertEqual(self.bind(client, "", b"").resultCode, 0)
        self.assertEqual(self.bind(client, "", b"", version=2).resultCode, 0)

    def test_simple_bind_with_configured_credentials(self) -> None:
        """A configured DN/password binds (DN compared normalised); searches and adds carry it."""
        client = self.client(DictBackend(sample_entries(), accept_adds=True))
        self.assertEqual(self.bind(client, "cn=admin ,o=grid", b"secret").resultCode, 0)
        client.search()
        self.assertEqual(self.backend.requests[-1].bind_dn, "cn=admin ,o=grid")
        client.send(L.LDAPAddRequest(entry="cn=x,o=grid", attributes=[]))
        self.assertEqual(self.backend.added[-1][2], "cn=admin ,o=grid")

    def test_wrong_password_or_unknown_dn(self) -> None:
        """A bad password or an unknown DN gives invalidCredentials and leaves the client anonymous."""
        client = self.client(bind_failure_delay=0)
        self.bind(client, "cn=admin,o=grid", b"secret")
        for dn, password in (("cn=admin,o=grid", b"wrong"), ("cn=nobody,o=grid", b"secret")):
            response = self.bind(client, dn, password)
            self.assertEqual(response.resultCode, ResultCode.INVALID_CREDENTIALS)
            self.assertEqual(response.errorMessage, b"invalid credentials for DN")
        client.search()
        self.assertEqual(self.backend.requests[-1].bind_dn, "")

    def test_failed_binds_slow_down_later_binds_of_that_dn_and_address(self) -> None:
        """After wrong passwords, the next bind of that DN (or from that address) is judged only
        after an exponential, capped delay on the server's clock; the right password waits as
        long as a wrong one, the failures are logged at warn with counts and counted."""
        client = self.client(bind_failure_delay=1.0, bind_failure_max_delay=4.0)
        with capturedLogs() as events:
            self.assertEqual(self.bind(client, "cn=admin,o=grid", b"wrong").resultCode, ResultCode.INVALID_CREDENTIALS)
        self.assertEqual(events[-1]["log_level"].name, "warn")
        self.assertEqual((events[-1]["dn_failures"], events[-1]["address_failures"]), (1, 1))
        for expected_delay in (1.0, 2.0, 4.0, 4.0):
            client.send(L.LDAPBindRequest(version=3, dn="cn=admin,o=grid", auth=b"wrong"))
            self.clock.advance(expected_delay - 0.01)
            self.assertEqual(client.responses(), [])
            self.clock.advance(0.01)
            (response,) = client.responses()
            self.assertEqual(response.value.resultCode, ResultCode.INVALID_CREDENTIALS)
        # The right password from another address: the DN's delay still applies (4 s).
        other = Client(self.factory, port=40001)
        other.send(L.LDAPBindRequest(version=3, dn="cn=admin,o=grid", auth=b"secret"))
        self.clock.advance(3.9)
        self.assertEqual(other.responses(), [])
        self.clock.advance(0.1)
        (response,) = other.responses()
        self.assertEqual(response.value.resultCode, ResultCode.SUCCESS)
        self.assertEqual(self.factory.stats["failed_binds"], 5)
        # Success forgot the DN; failures are also forgotten after a quiet period.
        self.clock.advance(601)
        self.assertEqual(self.bind(Client(self.factory), "cn=admin,o=grid", b"secret").resultCode, ResultCode.SUCCESS)

    def test_disconnect_during_a_delayed_bind_leaves_nothing_behind(self) -> None:
        """A guesser that hangs up while its bind is delayed costs nothing more: the delayed
        call is cancelled with the connection."""
        client = self.client(bind_failure_delay=1.0)
        self.bind(client, "cn=admin,o=grid", b"wrong")
        client.send(L.LDAPBindRequest(version=3, dn="cn=admin,o=grid", auth=b"wrong"))
        self.assertEqual(len(self.clock.getDelayedCalls()), 2)  # idle timer + delayed bind
        client.protocol.connectionLost()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_dn_without_password_is_refused(self) -> None:
        """An unauthenticated bind (DN, no password) is refused as OpenLDAP does."""
        response = self.bind(self.client(), "cn=admin,o=grid", b"")
        self.assertEqual(response.resultCode, ResultCode.UNWILLING_TO_PERFORM)
        self.assertEqual(response.errorMessage, b"unauthenticated bind (DN with no password) disallowed")

    def test_sasl_and_bad_versions(self) -> None:
        """SASL other than EXTERNAL gives authMethodNotSupported (EXTERNAL: tests/ldap/test_tls.py);
        LDAP versions other than 2 and 3 protocolError."""
        client = self.client()
        client.send(L.LDAPBindRequest(dn="", auth=("GSSAPI", None), sasl=True))
        self.assertEqual(client.responses()[0].value.resultCode, ResultCode.AUTH_METHOD_NOT_SUPPORTED)
        self.assertEqual(self.bind(client, "", b"", version=4).resultCode, ResultCode.PROTOCOL_ERROR)
        self.assertFalse(client.closed)

    def test_who_am_i_reports_the_bound_dn_or_empty_when_anonymous(self) -> None:
        """The Who am I? extended operation reports the bound DN (empty when anonymous)."""
        client = self.client()
        client.send(L.LDAPExtendedRequest(requestName=WHO_AM_I))
        (response,) = client.responses()
        self.assertEqual((response.value.resultCode, response.value.response), (0, b""))
        self.bind(client, "cn=admin,o=grid", b"secret")
        client.send(L.LDAPExtendedRequest(requestName=WHO_AM_I))
        self.assertEqual(client.responses()[0].value.response, b"dn:cn=admin,o=grid")

    def test_an_unsupported_extended_operation_is_answered_protocol_error(self) -> None:
        """An unsupported extended operation (Password Modify here) is answered protocolError, not
        dropped.  (StartTLS without TLS configured: tests/ldap/test_tls.py.)"""
        client = self.client()
        client.send(L.LDAPExtendedRequest(requestName="1.3.6.1.4.1.4203.1.11.1"))
        (response,) = client.responses()
        self.assertIsInstance(response.value, L.LDAPExtendedResponse)
        self.assertEqual(response.value.resultCode, ResultCode.PROTOCOL_ERROR)
        self.assertFalse(client.closed)


class SearchTests(ServerTestCase):
    def test_the_root_dse_lists_contexts_version_controls_extensions_and_vendor(self) -> None:
        """The root DSE lists naming contexts, version, controls, extensions and the vendor."""
        client = self.client()
        entry, done = client.search(base="", scope=0, attributes=["+"])
        self.assertEqual(done.value.resultCode, 0)
        attributes = _attributes(entry.value)
        self.assertEqual(attributes["namingContexts"], [b"o=grid"])
        self.assertEqual(attributes["supportedLDAPVersion"], [b"3"])
        self.assertEqual(attributes["subschemaSubentry"], [b"cn=Subschema"])
        self.assertEqual(attributes["supportedControl"], [PAGED.encode()])
        self.assertEqual(attributes["supportedExtension"], [WHO_AM_I.encode()])
        self.assertEqual(attributes["vendorName"], [b"gridinfo"])
        self.assertEqual(attributes["vendorVersion"], [b"9.9"])
        self.assertNotIn("objectClass", attributes)

    def test_root_dse_default_attributes_and_filters(self) -> None:
        """Without selectors only objectClass is returned; a filter that does not match returns nothing."""
        client = self.client()
        entry, _ = client.search(base="", scope=0)
        self.assertEqual(_attributes(entry.value), {"objectClass": [b"top"]})
        entry, _ = client.search(base="", scope=0, attributes=["namingcontexts"])
        self.assertEqual(list(_attributes(entry.value)), ["namingContexts"])
        (done,) = client.search(
            base="", scope=0, flt=L.LDAPFilter_equalityMatch(
                attributeDesc=L.LDAPAttributeDescription("objectClass"), assertionValue=L.LDAPAttributeValue("person")
            )
        )
        self.assertEqual(done.value.resultCode, 0)
        self.assertEqual(self.backend.requests, [])

    def test_the_subschema_entry_publishes_schema_syntaxes_and_matching_rules(self) -> None:
        """cn=Subschema publishes the backend schema's definitions plus syntaxes and matching rules."""
        client = self.client()
        entry, done = client.search(
            base="CN=subschema", scope=0, attributes=["attributeTypes", "objectClasses", "ldapSyntaxes", "matchingRules"]
        )
        attributes = _attributes(entry.value)
        self.assertEqual(
            attributes["attributeTypes"], [a.definition().encode() for a in self.backend.schema.attribute_types()]
        )
        self.assertEqual(
            attributes["objectClasses"], [c.definition().encode() for c in self.backend.schema.object_classes()]
        )
        self.assertIn(b"( 1.3.6.1.4.1.1466.115.121.1.27 DESC 'INTEGER' )", attributes["ldapSyntaxes"])
        self.assertIn(b"( 2.5.13.14 NAME 'integerMatch' SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 )", attributes["matchingRules"])
        self.assertEqual(entry.value.objectName, b"cn=Subschema")

    def test_search_goes_to_backend_and_is_written_at_once(self) -> None:
        """A search returns the backend's entries and the final result in one transport write."""
        client = self.client()
        writes = client.transport.writes
        responses = client.search(attributes=["GlueCEName"])
        self.assertEqual(client.transport.writes, writes + 1)
        self.assertEqual(len(responses), 8)
        self.assertTrue(all(r.id == 1 for r in responses))
        self.assertEqual(responses[-1].value.resultCode, 0)
        names = [r.value.objectName for r in responses[:-1]]
        self.assertIn(b"GlueCEUniqueID=ce3.example.org:8443/cream-pbs-q3,mds-vo-name=local,o=grid", names)
        request = self.backend.requests[-1]
        self.assertEqual((request.base, request.attributes), ("o=grid", ("GlueCEName",)))

    def test_entries_are_framed_like_ldap_message(self) -> None:
        """Each entry goes out as ber.ldap_message(id, entry), then the SearchResultDone."""
        client = self.client()
        request = L.LDAPSearchRequest(baseObject="mds-vo-name=local,o=grid", scope=1, filter=L.LDAPFilter_present("objectClass"))
        client.send(request, message_id=300)
        expected_entries = self.backend.search(self.backend.requests[-1]).entries
        done = ber.ldap_result(0x65, 0)
        expected = b"".join(ber.ldap_message(300, e) for e in expected_entries) + ber.ldap_message(300, done)
        self.assertEqual(client.transport.value(), expected)

    def test_many_entries_are_framed_like_ldap_message(self) -> None:
        """An answer of more entries than a lookup has (laid out in bulk), short and long-form
        lengths and one entry past the server's table of message headers (8 KiB), with a
        long-form message ID: byte for byte what ber.ldap_message gives, entry by entry."""
        entries = sample_entries()
        for i in range(40):
            entries[f"cn=many{i},o=grid"] = {"objectClass": ["device"], "cn": [f"many{i}"],
                                             "description": ["d" * (9000 if i == 17 else 30 + 9 * i)]}
        backend = DictBackend(entries)
        client = self.client(backend)
        request = L.LDAPSearchRequest(baseObject="o=grid", scope=2, filter=L.LDAPFilter_present("objectClass"))
        client.send(request, message_id=70000)
        expected_entries = backend.search(backend.requests[-1]).entries
        self.assertGreater(len(expected_entries), 40)
        done = ber.ldap_result(0x65, 0)
        expected = b"".join(ber.ldap_message(70000, e) for e in expected_entries) + ber.ldap_message(70000, done)
        self.assertEqual(client.transport.value(), expected)

    def test_large_message_ids_and_entries(self) -> None:
        """Entries over 127 bytes and message IDs over 127 get correct long-form headers."""
        entries = sample_entries()
        entries["o=grid"]["description"] = ["x" * 400]
        client = self.client(DictBackend(entries))
        request = L.LDAPSearchRequest(baseObject="o=grid", scope=0, filter=L.LDAPFilter_present("objectClass"))
        client.send(request, message_id=70000)
        entry, done = client.responses()
        self.assertEqual((entry.id, done.id), (70000, 70000))
        self.assertEqual(_attributes(entry.value)["description"], [b"x" * 400])

    def test_size_and_time_limits_take_the_smaller(self) -> None:
        """The client's sizeLimit/timeLimit apply unless the server's cap is smaller (0 = none)."""
        client = self.client(default_size_limit=3, default_time_limit=120)
        cases = [(0, 0, 3, 120.0), (2, 30, 2, 30.0), (10, 500, 3, 120.0)]
        for client_size, client_time, size, time in cases:
            client.search(size_limit=client_size, time_limit=client_time)
            request = self.backend.requests[-1]
            self.assertEqual((request.size_limit, request.time_limit), (size, time))
        client = self.client(default_size_limit=0, default_time_limit=0)
        client.search(size_limit=5, time_limit=7)
        self.assertEqual((self.backend.requests[-1].size_limit, self.backend.requests[-1].time_limit), (5, 7.0))

    def test_size_limit_exceeded_passes_through(self) -> None:
        """sizeLimitExceeded comes back with the entries found so far."""
        responses = self.client().search(size_limit=2)
        self.assertEqual(len(responses), 3)
        self.assertEqual(responses[-1].value.resultCode, ResultCode.SIZE_LIMIT_EXCEEDED)

    def test_backend_ldap_error_becomes_result(self) -> None:
        """An LDAPError from the backend is the search result, with its message and matched DN."""
        (done,) = self.client().search(base="cn=missing,o=grid")
        self.assertEqual(done.value.resultCode, ResultCode.NO_SUCH_OBJECT)
        self.assertEqual(done.value.errorMessage, b"no entry cn=missing,o=grid")
        self.assertEqual(done.value.matchedDN, b"o=grid")

    def test_backend_bug_is_logged_and_answered_other(self) -> None:
        """A bug in a backend is logged with its traceback, answered 'other', and the connection lives on."""
        client = self.client()
        with capturedLogs() as events:
            (done,) = client.search(base="cn=bug")
        self.assertEqual(done.value.resultCode, ResultCode.OTHER)
        self.assertEqual(done.value.errorMessage, b"internal error")
        failures = [e for e in events if "log_failure" in e]
        self.assertEqual(len(failures), 1)
        self.assertIsInstance(failures[0]["log_failure"].value, RuntimeError)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(len(client.search()), 8)

    def test_an_unknown_critical_control_fails_and_a_noncritical_one_is_ignored(self) -> None:
        """An unknown critical control fails the operation; an unknown non-critical one is ignored."""
        client = self.client()
        (done,) = client.search(controls=[("1.2.3.4", True, None)])
        self.assertEqual(done.value.resultCode, ResultCode.UNAVAILABLE_CRITICAL_EXTENSION)
        self.assertEqual(len(client.search(controls=[("1.2.3.4", False, None)])), 8)
        client.send(L.LDAPCompareRequest(
            entry="o=grid", ava=L.LDAPAttributeValueAssertion(L.BEROctetString("o"), L.BEROctetString("grid"))
        ), controls=[("1.2.3.4", True, None)])
        self.assertEqual(client.responses()[0].value.resultCode, ResultCode.UNAVAILABLE_CRITICAL_EXTENSION)


class PagedResultsTests(ServerTestCase):
    def test_pages_until_the_end(self) -> None:
        """Paged results return `size` entries per page with a cookie, the last page an empty cookie."""
        client = self.client()
        first = client.search(controls=_paged(3))
        self.assertEqual(len(first), 4)
        total, cookie = _paged_response(first[-1])
        self.assertEqual(total, 7)
        self.assertTrue(cookie)
        second = client.search(controls=_paged(3, cookie))
        _, cookie2 = _paged_response(second[-1])
        third = client.search(controls=_paged(3, cookie2))
        self.assertEqual(len(second), 4)
        self.assertEqual(len(third), 2)
        self.assertEqual(_paged_response(third[-1])[1], b"")
        names = [m.value.objectName for m in first[:-1] + second[:-1] + third[:-1]]
        self.assertEqual(len(set(names)), 7)
        self.assertEqual(len(self.backend.requests), 1)

    def test_paged_root_dse_and_small_results(self) -> None:
        """A paged search that fits in one page ends with an empty cookie."""
        client = self.client()
        entry, done = client.search(base="", scope=0, controls=_paged(10))
        self.assertEqual(_paged_response(done), (1, b""))

    def test_size_zero_abandons_and_cookie_is_then_unknown(self) -> None:
        """A size of 0 with a cookie ends the paged search; the cookie is then unknown."""
        client = self.client()
        _, cookie = _paged_response(client.search(controls=_paged(2))[-1])
        (done,) = client.search(controls=_paged(0, cookie))
        self.assertEqual(done.value.resultCode, 0)
        (done,) = client.search(controls=_paged(2, cookie))
        self.assertEqual(done.value.resultCode, ResultCode.UNWILLING_TO_PERFORM)
        self.assertEqual(done.value.errorMessage, b"unknown paged results cookie")

    def test_cookie_for_another_search(self) -> None:
        """A cookie only continues the search it came from."""
        client = self.client()
        _, cookie = _paged_response(client.search(controls=_paged(2))[-1])
        (done,) = client.search(base="mds-vo-name=local,o=grid", controls=_paged(2, cookie))
        self.assertEqual(done.value.resultCode, ResultCode.UNWILLING_TO_PERFORM)

    def test_paged_sessions_are_bounded(self) -> None:
        """At most max_paged_sessions are kept per connection; the oldest is dropped."""
        client = self.client(max_paged_sessions=2)
        cookies = [_paged_response(client.search(controls=_paged(1))[-1])[1] for _ in range(3)]
        (done,) = client.search(controls=_paged(1, cookies[0]))
        self.assertEqual(done.value.errorMessage, b"unknown paged results cookie")
        self.assertEqual(len(client.search(controls=_paged(1, cookies[2]))), 2)

    def test_abandon_drops_paged_state(self) -> None:
        """Abandoning the search that returned a cookie forgets the cookie, and is not answered."""
        client = self.client()
        client.search(controls=_paged(2))
        cookie = _paged_response(client.search(controls=_paged(2, _paged_response(client.search(controls=_paged(2))[-1])[1]))[-1])[1]
        last_id = client.next_id - 1
        client.send(L.LDAPAbandonRequest(id=last_id))
        self.assertEqual(client.responses(), [])
        (done,) = client.search(controls=_paged(2, cookie))
        self.assertEqual(done.value.errorMessage, b"unknown paged results cookie")


class OtherOperationsTests(ServerTestCase):
    def compare(self, client: Client, dn: str, attribute: str, value: str) -> Any:
        client.send(L.LDAPCompareRequest(
            entry=dn, ava=L.LDAPAttributeValueAssertion(L.BEROctetString(attribute), L.BEROctetString(value))
        ))
        (response,) = client.responses()
        return response.value

    def test_compare_answers_true_false_or_the_backends_error(self) -> None:
        """Compare answers compareTrue / compareFalse, or the backend's error."""
        client = self.client()
        self.assertEqual(self.compare(client, "o=grid", "o", "GRID").resultCode, ResultCode.COMPARE_TRUE)
        self.assertEqual(self.compare(client, "o=grid", "o", "other").resultCode, ResultCode.COMPARE_FALSE)
        self.assertEqual(self.compare(client, "o=nowhere", "o", "x").resultCode, ResultCode.NO_SUCH_OBJECT)

    def test_add_goes_to_the_backend(self) -> None:
        """An add (a GIIS registration) reaches backend.add; a refusing backend's error is the result."""
        client = self.client(DictBackend(sample_entries(), accept_adds=True))
        attributes = [(L.LDAPAttributeDescription("Mds-Service-hn"), pureber.BERSet([L.LDAPAttributeValue("gris.example.org")]))]
        client.send(L.LDAPAddRequest(entry="Mds-Vo-Op-name=register,mds-vo-name=site,o=grid", attributes=attributes))
        self.assertEqual(client.responses()[0].value.resultCode, 0)
        self.assertEqual(
            self.backend.added,
            [("Mds-Vo-Op-name=register,mds-vo-name=site,o=grid", [("Mds-Service-hn", [b"gris.example.org"])], "")],
        )
        client = self.client()
        client.send(L.LDAPAddRequest(entry="cn=x,o=grid", attributes=attributes))
        (response,) = client.responses()
        self.assertEqual(response.value.resultCode, ResultCode.UNWILLING_TO_PERFORM)
        self.assertEqual(response.value.errorMessage, b"this GRIS does not accept registrations")

    def test_modify_delete_and_moddn_are_refused_with_a_reason(self) -> None:
        """Modify, delete and modDN are refused with a reason; a backend may word it."""
        client = self.client()
        ops = [
            (L.LDAPModifyRequest(object="o=grid", modification=[]), L.LDAPModifyResponse),
            (L.LDAPDelRequest(entry="o=grid"), L.LDAPDelResponse),
            (L.LDAPModifyDNRequest(entry="o=grid", newrdn="o=x", deleteoldrdn=True), L.LDAPModifyDNResponse),
        ]
        for op, response_class in ops:
            client.send(op)
            (response,) = client.responses()
            self.assertIsInstance(response.value, response_class)
            self.assertEqual(response.value.resultCode, ResultCode.UNWILLING_TO_PERFORM)
            self.assertEqual(response.value.errorMessage, b"gridinfo is read-only: data comes from information providers")
        backend = DictBackend(sample_entries())
        backend.write_refusal_message = "a GIIS only accepts registrations"
        client = self.client(backend)
        client.send(L.LDAPDelRequest(entry="o=grid"))
        self.assertEqual(client.responses()[0].value.errorMessage, b"a GIIS only accepts registrations")

    def test_unbind_closes_the_connection_and_later_bytes_are_ignored(self) -> None:
        """Unbind closes the connection; anything after it is ignored."""
        client = self.client()
        client.send(L.LDAPUnbindRequest())
        self.assertTrue(client.closed)
        client.search()
        self.assertEqual(self.backend.requests, [])


class DeferredBackendTests(ServerTestCase):
    def test_a_backend_answering_later_gets_its_answer_written_on_arrival(self) -> None:
        """A backend answering later (a GIIS forwarding) gets its answer written when it arrives."""
        client = self.client(DictBackend(sample_entries(), deferred=True))
        self.assertEqual(client.search(), [])
        self.backend.release()
        responses = client.responses()
        self.assertEqual(len(responses), 8)

    def test_outstanding_operations_are_bounded(self) -> None:
        """Past max_outstanding_ops pending operations, a new one is answered busy."""
        client = self.client(DictBackend(sample_entries(), deferred=True), max_outstanding_ops=2)
        client.search()
        client.search()
        (done,) = client.search()
        self.assertEqual(done.value.resultCode, ResultCode.BUSY)
        self.backend.release()
        self.assertEqual(len(client.responses()), 16)
        client.search()
        self.assertEqual(len(self.backend.waiting), 1)

    def test_an_abandoned_search_is_never_answered_even_if_the_backend_answers_later(self) -> None:
        """An abandoned search is never answered, even if the backend answers later."""
        client = self.client(DictBackend(sample_entries(), deferred=True))
        client.search()
        client.send(L.LDAPAbandonRequest(id=1))
        self.backend.release()
        self.assertEqual(client.responses(), [])

    def test_a_failed_deferred_gives_its_ldap_code_or_other(self) -> None:
        """A Deferred failing with an LDAPError gives that code; with anything else, 'other'."""
        from gridinfo.errors import TimeLimitExceeded

        client = self.client(DictBackend(sample_entries(), deferred=True))
        client.search()
        client.search()
        (d1, _), (d2, _) = self.backend.waiting
        d1.errback(TimeLimitExceeded("child gris.example.org did not answer in 20 s"))
        d2.errback(ZeroDivisionError())
        first, second = client.responses()
        self.assertEqual(first.value.resultCode, ResultCode.TIME_LIMIT_EXCEEDED)
        self.assertEqual(second.value.resultCode, ResultCode.OTHER)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_connection_lost_cancels_pending(self) -> None:
        """A client that goes away cancels its pending operations."""
        client = self.client(DictBackend(sample_entries(), deferred=True))
        client.search()
        (d, _), = self.backend.waiting
        client.protocol.connectionLost(None)  # type: ignore[arg-type]
        self.assertTrue(d.called)
        self.assertEqual(client.transport.value(), b"")

    def test_message_id_in_use(self) -> None:
        """A message ID reused while its operation is pending is a protocol error for the new op."""
        client = self.client(DictBackend(sample_entries(), deferred=True))
        client.search()
        client.send(L.LDAPSearchRequest(baseObject="o=grid"), message_id=1)
        (done,) = client.responses()
        self.assertEqual(done.value.resultCode, ResultCode.PROTOCOL_ERROR)


class LimitsTests(ServerTestCase):
    def notice(self, client: Client) -> Any:
        (message,) = client.responses()
        self.assertEqual(message.id, 0)
        self.assertIsInstance(message.value, L.LDAPExtendedResponse)
        self.assertEqual(message.value.responseName, NOTICE.encode())
        self.assertTrue(client.closed)
        return message.value

    def test_an_idle_connection_is_disconnected_after_idle_timeout_and_activity_resets_it(self) -> None:
        """An idle connection gets a Notice of Disconnection after idle_timeout; activity resets it."""
        client = self.client(idle_timeout=300)
        self.clock.advance(200)
        client.search()
        self.clock.advance(200)
        self.assertFalse(client.closed)
        self.clock.advance(100)
        notice = self.notice(client)
        self.assertEqual(notice.resultCode, ResultCode.UNAVAILABLE)

    def test_pending_operations_keep_a_connection_alive(self) -> None:
        """A connection waiting for a slow answer is not idle."""
        client = self.client(DictBackend(sample_entries(), deferred=True), idle_timeout=10)
        client.search()
        self.clock.advance(100)
        self.assertFalse(client.closed)
        self.backend.release()
        client.responses()
        self.clock.advance(10)
        self.notice(client)

    def test_idle_timeout_zero_never_disconnects(self) -> None:
        """idle_timeout 0 means connections never time out."""
        client = self.client(idle_timeout=0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(10**6)
        self.assertFalse(client.closed)

    def test_a_client_over_max_connections_gets_busy_and_a_freed_slot_is_reused(self) -> None:
        """Over max_connections a client gets a busy Notice of Disconnection; a freed slot is reused."""
        factory = self.make(max_connections=1)
        first = Client(factory, 1)
        second = Client(factory, 2)
        self.assertEqual(self.notice(second).resultCode, ResultCode.BUSY)
        second.protocol.connectionLost(None)  # type: ignore[arg-type]
        self.assertFalse(first.closed)
        first.protocol.connectionLost(None)  # type: ignore[arg-type]
        third = Client(factory, 3)
        self.assertEqual(len(third.search()), 8)
        self.assertEqual(factory.connections, 1)

    def test_a_pdu_announced_over_max_pdu_bytes_is_refused_before_its_body(self) -> None:
        """A PDU announced over max_pdu_bytes is refused before its body arrives."""
        client = self.client()
        with capturedLogs() as events:
            client.raw(b"\x30\x84\x7f\xff\xff\xff")
        notice = self.notice(client)
        self.assertEqual(notice.resultCode, ResultCode.PROTOCOL_ERROR)
        self.assertEqual(notice.errorMessage, b"PDU of 2147483653 bytes exceeds the 1048576-byte limit")
        self.assertTrue(any(e.get("peer") == "192.0.2.1:40000" and "exceeds" in e.get("problem", "") for e in events))
        client = self.client(max_pdu_bytes=100)
        client.raw(b"\x30\x88" + (2**62).to_bytes(8, "big"))
        self.assertIn(b"exceeds the 100-byte limit", self.notice(client).errorMessage)

    def test_malformed_input_closes_only_that_connection(self) -> None:
        """Garbage on one connection closes it with protocolError; another connection is served."""
        bad_inputs = [
            b"GET / HTTP/1.0\r\n\r\n",
            b"\x30\x80\x02\x01\x01\x42\x00\x00\x00",
            b"\x30\x05\x02\x01\x01\x7f\x00",
            b"\x30\x03\x02\x01\x01",
            ber.tlv(0x30, ber.integer(1) + ber.tlv(0x63, b"\x04\x00\x0a\x01\x00")),
        ]
        deep = ber.tlv(0x87, b"cn")
        for _ in range(150):
            deep = ber.tlv(0xA2, deep)
        bad_inputs.append(
            ber.tlv(0x30, ber.integer(1) + ber.tlv(0x63, ber.octet_string(b"") + b"\x0a\x01\x00\x0a\x01\x00\x02\x01\x00\x02\x01\x00\x01\x01\x00" + deep + b"\x30\x00"))
        )
        factory = self.make()
        good = Client(factory, 1)
        for data in bad_inputs:
            bad = Client(factory, 2)
            bad.raw(data)
            self.assertEqual(self.notice(bad).resultCode, ResultCode.PROTOCOL_ERROR, data)
            bad.raw(L.LDAPMessage(L.LDAPSearchRequest(baseObject="o=grid"), id=5).toWire())
            self.assertEqual(bad.transport.value(), b"")
            bad.protocol.connectionLost(None)  # type: ignore[arg-type]
        self.assertEqual(len(good.search()), 8)

    def test_messages_split_and_batched(self) -> None:
        """Messages split across reads at any byte, or several in one read, are all answered."""
        client = self.client()
        one = L.LDAPMessage(L.LDAPSearchRequest(baseObject="o=grid", scope=0), id=1).toWire()
        two = L.LDAPMessage(L.LDAPSearchRequest(baseObject="o=grid", scope=0, filter=L.LDAPFilter_equalityMatch(
            attributeDesc=L.LDAPAttributeDescription("description"), assertionValue=L.LDAPAttributeValue("d" * 200))), id=2).toWire()
        data = one + two + one
        for byte in range(len(data)):
            client.raw(data[byte:byte + 1])
        self.assertEqual([m.id for m in client.responses()], [1, 1, 2, 1, 1])
        client.raw(data)
        self.assertEqual([m.id for m in client.responses()], [1, 1, 2, 1, 1])
        client.raw(data[:5])
        client.raw(data[5:-3])
        client.raw(data[-3:])
        self.assertEqual([m.id for m in client.responses()], [1, 1, 2, 1, 1])
        self.assertEqual(len(client.protocol._buffer), 0)


class BufferedTransport(CountingTransport):
    """A transport that behaves as Twisted's TCP transport does towards a streaming producer:
    it pauses the producer when more than ``bufferSize`` bytes wait to be sent, and resumes it
    when :meth:`drain` (the client reading) empties the buffer."""

    bufferSize = 65536

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.producer_paused = False
        self.delivered = bytearray()

    def write(self, data: bytes) -> None:
        super().write(data)
        if self.producer is not None and self.streaming and len(self.io.getvalue()) > self.bufferSize:
            if not self.producer_paused:
                self.producer_paused = True
                self.producer.pauseProducing()

    def drain(self) -> None:
        """The client reads everything queued; a paused producer is resumed."""
        self.delivered += self.value()
        self.clear()
        if self.producer is not None and self.producer_paused:
            self.producer_paused = False
            self.producer.resumeProducing()


class SlowClient(Client):
    """A client whose transport applies backpressure."""

    def __init__(self, factory: LDAPServerFactory, port: int = 40000) -> None:
        self.protocol = factory.buildProtocol(IPv4Address("TCP", "192.0.2.1", port))
        self.transport = BufferedTransport(port)
        self.protocol.makeConnection(self.transport)
        self.next_id = 1

    def read_all(self) -> list[Any]:
        """Drain until the server has nothing more to send; the responses, in order."""
        while True:
            before = len(self.transport.delivered)
            self.transport.drain()
            if len(self.transport.delivered) == before and not self.transport.value():
                break
        data = bytes(self.transport.delivered)
        self.transport.delivered.clear()
        return pureber.berDecodeMultiple(data, _DECODER)


def _big_backend(n: int) -> DictBackend:
    entries: dict[str, dict[str, list[str]]] = {
        f"cn=e{i},o=grid": {"objectClass": ["top"], "cn": [f"e{i}"], "description": ["x" * 100]} for i in range(n)
    }
    entries["o=grid"] = {"objectClass": ["top", "organization"], "o": ["grid"]}
    return DictBackend(entries)


ALL = L.LDAPSearchRequest(baseObject="o=grid", scope=2, filter=L.LDAPFilter_present("objectClass"))
UNBIND = L.LDAPMessage(L.LDAPUnbindRequest(), id=99).toWire()


class StreamingTests(ServerTestCase):
    def slow_client(self, backend: DictBackend, **limits: Any) -> SlowClient:
        self.factory = self.make(backend, **limits)
        return SlowClient(self.factory)

    def test_large_result_streams_as_the_client_reads(self) -> None:
        """A full dump is written a chunk at a time as the client reads, all entries then the
        done, in order; the server never queues much more than its send buffer."""
        from gridinfo.ldap.server import STREAM_CHUNK_ENTRIES

        n = STREAM_CHUNK_ENTRIES * 3 + 7
        client = self.slow_client(_big_backend(n))
        self.assertIs(client.transport.producer, client.protocol)
        self.assertTrue(client.transport.streaming)
        client.send(ALL)
        queued = len(client.transport.value())
        self.assertLess(queued, client.transport.bufferSize + STREAM_CHUNK_ENTRIES * 200)
        responses = client.read_all()
        self.assertEqual(len(responses), n + 2)
        self.assertTrue(all(isinstance(r.value, L.LDAPSearchResultEntry) for r in responses[:-1]))
        self.assertEqual(responses[-1].value.resultCode, 0)

    def test_small_answers_queue_behind_a_stream(self) -> None:
        """A search sent while a stream is under way is answered after it, whole."""
        from gridinfo.ldap.server import STREAM_CHUNK_ENTRIES

        client = self.slow_client(_big_backend(STREAM_CHUNK_ENTRIES + 1))
        first = client.send(ALL)
        second = client.send(L.LDAPSearchRequest(baseObject="o=grid", scope=0, filter=L.LDAPFilter_present("objectClass")))
        ids = [r.id for r in client.read_all()]
        self.assertEqual(ids, [first] * (STREAM_CHUNK_ENTRIES + 3) + [second] * 2)

    def test_pipelining_client_that_never_reads_is_not_read_either(self) -> None:
        """40 pipelined 300-entry searches from a client that reads nothing: the server stops
        dispatching and stops reading once its send buffer is full, so it holds about one buffer
        of answers; when the client reads, every search is answered, in order."""
        client = self.slow_client(_big_backend(300))
        requests = b"".join(L.LDAPMessage(ALL, id=i).toWire() for i in range(1, 41))
        client.raw(requests)
        self.assertEqual(client.transport.producerState, "paused")  # reading stopped
        self.assertLess(len(self.backend.requests), 5)
        self.assertLess(len(client.transport.value()), 2 * 65536 + 300 * 200)
        responses = client.read_all()
        self.assertEqual(len(self.backend.requests), 40)
        done = [r.id for r in responses if isinstance(r.value, L.LDAPSearchResultDone)]
        self.assertEqual(done, list(range(1, 41)))
        self.assertEqual(client.transport.producerState, "producing")  # reading again

    def test_unbind_during_a_stream_closes_the_connection(self) -> None:
        """Search-everything + Unbind in one write: the server stops the stream, unregisters as
        producer (so the transport can finish closing) and closes; the slot is freed."""
        client = self.slow_client(_big_backend(2000))
        client.raw(L.LDAPMessage(ALL, id=1).toWire() + UNBIND)
        client.transport.drain()  # the client reads a little and then the Unbind is seen
        client.read_all()
        self.assertTrue(client.closed)
        self.assertIsNone(client.transport.producer)
        client.protocol.connectionLost()
        self.assertEqual(self.factory.connections, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_closing_connection_that_never_flushes_is_aborted(self) -> None:
        """A client that stops reading before the server's notice of disconnection could be
        sent is aborted after close_timeout, on the server's clock."""
        client = self.slow_client(_big_backend(2000), close_timeout=10)
        client.send(ALL)
        client.raw(b"\x30\x84\xff\xff\xff\xff")  # garbage: seen once the stream is out
        for _ in range(100):
            if client.closed:
                break
            client.transport.drain()  # the client reads the stream, then stops reading
        self.assertTrue(client.closed)
        self.assertIsNone(client.transport.producer)
        self.assertFalse(getattr(client.transport, "disconnected", False))
        self.clock.advance(10)
        self.assertTrue(client.transport.disconnected)  # abortConnection
        self.assertEqual(self.factory.stats["aborted_connections"], 1)

    def test_stream_to_a_client_that_reads_nothing_is_aborted_at_the_idle_timeout(self) -> None:
        """A connection whose client reads none of a large result for idle_timeout counts as idle:
        it is aborted, its slot freed."""
        client = self.slow_client(_big_backend(2000), idle_timeout=60)
        client.send(ALL)
        self.clock.advance(59)
        self.assertFalse(client.closed)
        self.clock.advance(1)
        self.assertTrue(client.transport.disconnected)

    def test_a_reading_client_is_not_idle(self) -> None:
        """A slow but reading client of a large result is not cut off by the idle timeout."""
        client = self.slow_client(_big_backend(3000), idle_timeout=60)
        client.send(ALL)
        for _ in range(4):
            self.clock.advance(50)
            client.transport.drain()
        self.assertFalse(client.closed)


class SlowRequestTests(ServerTestCase):
    def test_request_trickling_in_is_cut_at_the_request_timeout(self) -> None:
        """One byte every few seconds does not keep a connection forever: a request that has
        started must be whole within request_timeout, whatever the idle timer says."""
        client = self.client(request_timeout=30, idle_timeout=300)
        data = L.LDAPMessage(ALL, id=1).toWire()
        for byte in data[:12]:
            client.raw(bytes([byte]))
            self.clock.advance(2.9)
        self.clock.advance(30 - 12 * 2.9)
        (notice,) = client.responses()
        self.assertEqual(notice.value.resultCode, ResultCode.UNAVAILABLE)
        self.assertIn(b"request not complete within 30 s", notice.value.errorMessage)
        self.assertTrue(client.closed)

    def test_whole_requests_reset_the_request_deadline(self) -> None:
        """A client sending whole requests slowly is never cut by the request deadline."""
        client = self.client(request_timeout=30, idle_timeout=300)
        data = L.LDAPMessage(L.LDAPSearchRequest(baseObject="o=grid", scope=0, filter=L.LDAPFilter_present("objectClass")), id=1).toWire()
        for _ in range(5):
            client.raw(data[:5])
            self.clock.advance(20)
            client.raw(data[5:])
            self.clock.advance(20)
        self.assertFalse(client.closed)
        self.assertEqual(len(client.responses()), 10)


class AddressLimitTests(ServerTestCase):
    def test_one_address_cannot_take_every_slot(self) -> None:
        """Past max_connections_per_address, a further connection from that address is refused
        busy with the reason; other addresses are still served."""
        factory = self.make(max_connections_per_address=3)
        clients = [Client(factory, port=40000 + i) for i in range(3)]
        with capturedLogs() as events:
            refused = Client(factory, port=40010)
        (notice,) = refused.responses()
        self.assertEqual(notice.value.resultCode, ResultCode.BUSY)
        self.assertIn(b"too many connections from 192.0.2.1 (limit 3)", notice.value.errorMessage)
        self.assertTrue(any("refusing LDAP connection" in e["log_format"] for e in events))
        other = factory.buildProtocol(IPv4Address("TCP", "198.51.100.7", 5000))
        transport = CountingTransport(5000)
        transport.peerAddr = IPv4Address("TCP", "198.51.100.7", 5000)
        other.makeConnection(transport)
        self.assertFalse(transport.disconnecting)
        clients[0].protocol.connectionLost()
        again = Client(factory, port=40011)
        self.assertFalse(again.closed)
        self.assertEqual(factory.connections_by_address["192.0.2.1"], 3)
