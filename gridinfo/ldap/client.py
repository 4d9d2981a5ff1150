"""A small downstream LDAP client: forwarding searches to children and sending registrations.

Why one module: the request encoders, the URL type and the client protocol (collected requests
and streaming searches share its framing and message-ID table) form one small client that the
GIIS, the registrar and the sync consumer use as a whole.

Theory of operation
-------------------
One :class:`LDAPClient` per remote server keeps at most one TCP connection and multiplexes
requests over it by message ID (a GIIS asks the same child again and again: connection reuse
matters more than anything else).  The connection is made on first use, put under TLS when
asked (``ldaps``: from the first byte; ``tls`` with a CA: StartTLS, the server's certificate
verified against the CA and the host name or address), bound (simple) when credentials are
given, and made again after it is lost.  A StartTLS refusal or a failed verification fails
the requests waiting for the connection: nothing is ever sent in the clear instead.  Every request has a timeout driven by
the injected reactor; on timeout the request is abandoned on the wire and its Deferred fails
with :class:`RequestTimeout`.  A connect that takes longer than ``connect_timeout`` fails the
requests waiting for it with :class:`ConnectFailed`.

Responses are framed with bounded buffers (``max_pdu_bytes`` per message, a ``bytearray``
consumed without quadratic slicing).  A ``SearchResultEntry`` is *not* decoded: it is kept as
the encoded protocol op, exactly what a gridinfo server sends on, so a GIIS renames an entry
by replacing its DN (:func:`rename_entry`) and never touches the attributes.
:func:`decode_entry` decodes one fully where that is needed (mirror mode, stale marking).

A peer that sends something that is not LDAP (:class:`PeerProtocolError`) loses the
connection; every request on it fails with that error.

Streaming searches
------------------
:meth:`LDAPClient.stream` sends a search (with request controls, e.g. RFC 4533's Sync Request)
whose answer is not collected: each SearchResultEntry, SearchResultReference and
IntermediateResponse is handed to a callback as a :class:`StreamMessage` the moment it is
framed (its response controls decoded), and the :class:`SearchStream`'s ``result`` Deferred
fires with the SearchResultDone (code, message, controls).  There is no overall timeout and no
accumulation (``max_pdu_bytes`` still bounds each message).  It ends with ConnectionLost or
PeerProtocolError like any request; :meth:`SearchStream.cancel` sends RFC 3909 Cancel (the
server then ends the search, usually with ``canceled`` 118) and falls back to Abandon when the
server refuses or does not answer; a callback that raises ends the stream the same way (abandoned
on the wire, ``result`` failing with what it raised) and leaves the connection and its other
requests alone.  Streams live in their own table, so the ordinary request path costs one more
dictionary miss for stream messages only.
"""

from __future__ import annotations

import ipaddress

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, cast
from urllib.parse import unquote, urlsplit

from twisted.internet import defer
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IOpenSSLClientConnectionCreator,
    IReactorTCP,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from gridinfo import ber
from gridinfo.directory import filters as F
from gridinfo.errors import GridinfoError, LDAPError, ProtocolError, ResultCode
from gridinfo.ldap import sync
from gridinfo.ldap.wire import Control

if TYPE_CHECKING:
    from gridinfo.ldap.tls import ClientTLS

log = Logger(namespace=__name__)  # named here: a compiled module has no frame to name it from

DEFAULT_PORT = 389
DEFAULT_LDAPS_PORT = 636
START_TLS_OID = "1.3.6.1.4.1.1466.20037"
#: RFC 3909 result code of a cancelled operation
CANCELED = 118


class ClientError(GridinfoError):
    """Talking to a remote LDAP server failed (not an LDAP result: the exchange itself)."""


class ConnectFailed(ClientError):
    """The TCP connection could not be made (refused, unreachable, connect timeout)."""


class RequestTimeout(ClientError):
    """No complete answer within the request's timeout."""


class ConnectionLost(ClientError):
    """The connection closed while a request was in progress."""


class PeerProtocolError(ClientError):
    """The peer sent something that is not valid LDAP (its fault, not ours)."""


class ResponseTooLarge(PeerProtocolError):
    """A response message or an answer over the client's limits."""


# ---------------------------------------------------------------------------------------------
# LDAP URLs


@dataclass(frozen=True)
class LDAPURL:
    """``ldap://host:port/base`` or ``ldaps://...`` (RFC 4516; attributes, scope and filter
    parts are ignored)."""

    host: str
    port: int
    base: str = ""
    ldaps: bool = False

    @classmethod
    def parse(cls, url: str, default_port: int = DEFAULT_PORT) -> LDAPURL:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme not in ("ldap", "ldaps"):
            raise ValueError(f"{url!r} is not an ldap:// or ldaps:// URL")
        host = parts.hostname
        if not host:
            raise ValueError(f"{url!r} names no host")
        try:
            port = parts.port or (DEFAULT_LDAPS_PORT if scheme == "ldaps" else default_port)
        except ValueError:
            raise ValueError(f"{url!r} has a bad port") from None
        base = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
        return cls(host, port, base, scheme == "ldaps")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'ldaps' if self.ldaps else 'ldap'}://{host}:{self.port}/{self.base}"


# ---------------------------------------------------------------------------------------------
# Encoding requests


def encode_filter(f: F.Filter) -> bytes:
    """BER encoding of a filter (RFC 4511, section 4.5.1)."""
    os_ = ber.octet_string
    if isinstance(f, F.And):
        return ber.tlv(ber.FILTER_AND, b"".join(encode_filter(x) for x in f.filters))
    if isinstance(f, F.Or):
        return ber.tlv(ber.FILTER_OR, b"".join(encode_filter(x) for x in f.filters))
    if isinstance(f, F.Not):
        return ber.tlv(ber.FILTER_NOT, encode_filter(f.filter))
    if isinstance(f, F.Equality):
        return ber.tlv(ber.FILTER_EQUALITY, os_(f.attribute.encode()) + os_(f.value))
    if isinstance(f, F.Substrings):
        parts = []
        if f.initial is not None:
            parts.append(ber.tlv(ber.SUBSTRING_INITIAL, f.initial))
        parts += [ber.tlv(ber.SUBSTRING_ANY, a) for a in f.any]
        if f.final is not None:
            parts.append(ber.tlv(ber.SUBSTRING_FINAL, f.final))
        return ber.tlv(ber.FILTER_SUBSTRINGS, os_(f.attribute.encode()) + ber.sequence(parts))
    if isinstance(f, F.GreaterOrEqual):
        return ber.tlv(ber.FILTER_GREATER_OR_EQUAL, os_(f.attribute.encode()) + os_(f.value))
    if isinstance(f, F.LessOrEqual):
        return ber.tlv(ber.FILTER_LESS_OR_EQUAL, os_(f.attribute.encode()) + os_(f.value))
    if isinstance(f, F.Present):
        return ber.tlv(ber.FILTER_PRESENT, f.attribute.encode())
    if isinstance(f, F.Approx):
        return ber.tlv(ber.FILTER_APPROX, os_(f.attribute.encode()) + os_(f.value))
    if isinstance(f, F.Extensible):
        body = b""
        if f.matching_rule:
            body += ber.tlv(ber.MATCHING_RULE, f.matching_rule.encode())
        if f.attribute:
            body += ber.tlv(ber.MATCH_TYPE, f.attribute.encode())
        body += ber.tlv(ber.MATCH_VALUE, f.value)
        if f.dn_attributes:
            body += ber.tlv(ber.DN_ATTRIBUTES, b"\xff")
        return ber.tlv(ber.FILTER_EXTENSIBLE, body)
    raise TypeError(f"not a filter: {f!r}")


def search_request(
    base: str,
    scope: int,
    filter: F.Filter,
    attributes: Sequence[str] = (),
    size_limit: int = 0,
    time_limit: int = 0,
    types_only: bool = False,
) -> bytes:
    body = (
        ber.octet_string(base.encode("utf-8"))
        + ber.integer(int(scope), ber.ENUMERATED)
        + ber.integer(0, ber.ENUMERATED)
        + ber.integer(size_limit)
        + ber.integer(time_limit)
        + ber.tlv(ber.BOOLEAN, b"\xff" if types_only else b"\x00")
        + encode_filter(filter)
        + ber.sequence(ber.octet_string(a.encode("utf-8")) for a in attributes)
    )
    return ber.tlv(ber.APP_SEARCH_REQUEST, body)


def add_request(dn: str, attributes: Iterable[tuple[str, Sequence[bytes]]]) -> bytes:
    attrs = ber.sequence(
        ber.sequence([ber.octet_string(name.encode("utf-8")), ber.sequence((ber.octet_string(v) for v in vals), ber.SET)])
        for name, vals in attributes
    )
    return ber.tlv(ber.APP_ADD_REQUEST, ber.octet_string(dn.encode("utf-8")) + attrs)


def sasl_external_bind_request() -> bytes:
    """A SASL EXTERNAL bind (no authorization identity: the server takes the certificate's)."""
    credentials = ber.tlv(ber.AUTH_SASL, ber.octet_string(b"EXTERNAL"))
    return ber.tlv(ber.APP_BIND_REQUEST, ber.integer(3) + ber.octet_string(b"") + credentials)


def extended_request(name: str, value: bytes | None = None) -> bytes:
    body = ber.tlv(ber.EXTENDED_REQUEST_NAME, name.encode("ascii"))
    if value is not None:
        body += ber.tlv(ber.EXTENDED_REQUEST_VALUE, value)
    return ber.tlv(ber.APP_EXTENDED_REQUEST, body)


def bind_request(dn: str, password: str) -> bytes:
    return ber.tlv(
        ber.APP_BIND_REQUEST, ber.integer(3) + ber.octet_string(dn.encode("utf-8")) + ber.tlv(ber.AUTH_SIMPLE, password.encode("utf-8"))
    )


# ---------------------------------------------------------------------------------------------
# Decoding responses


# The element reader is gridinfo.ber's; what it raises (ProtocolError) is the peer's fault here,
# so each entry point below turns it into PeerProtocolError.


def entry_dn(op: bytes) -> str:
    """The DN of an encoded SearchResultEntry."""
    read = ber.read_header
    try:
        _, start, end = read(op, 0, len(op), "SearchResultEntry")
        tag, s, e = read(op, start, end, "objectName")
    except ProtocolError as e:
        raise PeerProtocolError(e.message) from None
    if tag != ber.OCTET_STRING:
        raise PeerProtocolError("SearchResultEntry without an objectName")
    return op[s:e].decode("utf-8", "replace")


def rename_entry(op: bytes, dn: str) -> bytes:
    """The same SearchResultEntry under another DN; the attributes are copied as bytes."""
    read = ber.read_header
    try:
        _, start, end = read(op, 0, len(op), "SearchResultEntry")
        _, _, dn_end = read(op, start, end, "objectName")
    except ProtocolError as e:
        raise PeerProtocolError(e.message) from None
    return ber.tlv(ber.APP_SEARCH_RESULT_ENTRY, ber.octet_string(dn.encode("utf-8")) + op[dn_end:end])


def decode_entry(op: bytes) -> tuple[str, list[tuple[str, list[bytes]]]]:
    """(DN, [(attribute, [values])]) of an encoded SearchResultEntry."""
    read = ber.read_header
    out: list[tuple[str, list[bytes]]] = []
    try:
        _, start, end = read(op, 0, len(op), "SearchResultEntry")
        tag, s, e = read(op, start, end, "objectName")
        dn = op[s:e].decode("utf-8", "replace")
        tag, s, attrs_end = read(op, e, end, "attributes")
        pos = s
        while pos < attrs_end:
            _, a_start, a_end = read(op, pos, attrs_end, "PartialAttribute")
            _, ns, ne = read(op, a_start, a_end, "attribute type")
            name = op[ns:ne].decode("utf-8", "replace")
            _, vs, ve = read(op, ne, a_end, "attribute values")
            values = []
            vpos = vs
            while vpos < ve:
                _, xs, xe = read(op, vpos, ve, "attribute value")
                values.append(op[xs:xe])
                vpos = xe
            out.append((name, values))
            pos = a_end
    except ProtocolError as e:
        raise PeerProtocolError(e.message) from None
    return dn, out


@dataclass
class ClientResult:
    """An LDAPResult received: code, matched DN, message (and the entries of a search)."""

    code: int = 0
    matched_dn: str = ""
    message: str = ""
    entries: list[bytes] = field(default_factory=list)
    references: list[bytes] = field(default_factory=list)
    #: the response controls of the final message (streaming searches only)
    controls: tuple[Control, ...] = ()

    def raise_for_code(self, *ok: int) -> ClientResult:
        """Raise the result as an LDAPError unless its code is success or one of ``ok``."""
        if self.code == 0 or self.code in ok:
            return self
        try:
            code = ResultCode(self.code)
        except ValueError:
            code = ResultCode.OTHER
        raise LDAPError(self.message or code.name, self.matched_dn, code=code)


def _decode_result(data: bytes, start: int, end: int) -> ClientResult:
    """The LDAPResult in ``data[start:end]``; raises ProtocolError (the caller converts)."""
    read = ber.read_header
    tag, s, e = read(data, start, end, "resultCode")
    code = int.from_bytes(data[s:e], "big", signed=True) if e > s else 0
    _, s, e = read(data, e, end, "matchedDN")
    matched = data[s:e].decode("utf-8", "replace")
    _, s, e = read(data, e, end, "diagnosticMessage")
    message = data[s:e].decode("utf-8", "replace")
    return ClientResult(code, matched, message)


def decode_controls(data: bytes, pos: int, end: int) -> tuple[Control, ...]:
    """The ``[0] Controls`` of an LDAPMessage that follow its protocolOp at ``data[pos:end]``
    (nothing there: no controls); raises ProtocolError (the caller converts)."""
    if pos >= end:
        return ()
    read = ber.read_header
    tag, s, e = read(data, pos, end, "controls")
    if tag != ber.CONTROLS:
        raise ProtocolError(f"unexpected element (tag 0x{tag:02x}) after the protocolOp")
    out = []
    while s < e:
        tag, c_start, c_end = read(data, s, e, "control")
        if tag != ber.SEQUENCE:
            raise ProtocolError(f"control is tag 0x{tag:02x}, not a SEQUENCE")
        tag, o_start, q = read(data, c_start, c_end, "controlType")
        if tag != ber.OCTET_STRING:
            raise ProtocolError("control without a controlType")
        oid = data[o_start:q].decode("ascii", "replace")
        critical = False
        value: bytes | None = None
        if q < c_end and data[q] == ber.BOOLEAN:
            _, b_start, q = read(data, q, c_end, "criticality")
            critical = q > b_start and data[b_start] != 0
        if q < c_end:
            tag, v_start, q = read(data, q, c_end, "controlValue")
            if tag != ber.OCTET_STRING:
                raise ProtocolError(f"controlValue of {oid} is tag 0x{tag:02x}, not an OCTET STRING")
            value = data[v_start:q]
        if q != c_end:
            raise ProtocolError(f"{c_end - q} unexpected bytes at the end of control {oid}")
        out.append(Control(oid, critical, value))
        s = c_end
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# Streaming searches


class StreamMessage(NamedTuple):
    """One message of a streaming search, as it arrived.

    ``tag`` is the protocolOp's (APP_SEARCH_RESULT_ENTRY, APP_SEARCH_RESULT_REFERENCE or
    APP_INTERMEDIATE_RESPONSE); ``op`` the encoded protocolOp (an entry exactly as
    :func:`decode_entry` and :func:`entry_dn` take it); ``name`` and ``value`` an
    IntermediateResponse's responseName and responseValue.
    """

    tag: int
    op: bytes
    controls: tuple[Control, ...] = ()
    name: str | None = None
    value: bytes | None = None

    def control(self, oid: str) -> Control | None:
        """The response control ``oid``, if the message carries it."""
        for c in self.controls:
            if c.oid == oid:
                return c
        return None


class SearchStream:
    """A streaming search in progress: ``result`` fires with its SearchResultDone.

    Made by :meth:`LDAPClient.stream`; the messages before the end go to ``on_message``.
    """

    def __init__(self, on_message: Callable[[StreamMessage], None], peer: str = "?"):
        self.on_message = on_message
        self.peer = peer
        self.result: defer.Deferred[ClientResult] = defer.Deferred()
        self.protocol: LDAPClientProtocol | None = None
        self.message_id: int | None = None
        self.done = False
        self._cancelled = False

    def cancel(self, timeout: float = 30.0) -> None:
        """Ask the server to end the search (RFC 3909 Cancel); Abandon if it refuses or is silent.

        ``result`` then fires: with the server's SearchResultDone (``canceled``, 118), or, when
        the search had to be abandoned or was never sent, with a local result of code 118 whose
        message says so.
        """
        if self.done or self._cancelled:
            return
        self._cancelled = True
        protocol, message_id = self.protocol, self.message_id
        if protocol is None or message_id is None:
            return  # not sent yet: it will not be (see LDAPClient.stream)
        if not protocol.connected:
            return  # the connection is going: its loss ends the stream
        answer = protocol.request(
            extended_request(sync.CANCEL_OID, sync.cancel_request_value(message_id)), timeout
        )

        def answered(r: ClientResult) -> None:
            if r.code != 0 and not self.done:
                self.abandon(f"abandoned: the server answered Cancel with {r.code} {r.message}".rstrip())

        def failed(f: Failure) -> None:
            if not self.done:
                self.abandon(f"abandoned: Cancel got no answer ({f.getErrorMessage()})")

        answer.addCallbacks(answered, failed)

    def abandon(self, message: str = "abandoned") -> None:
        """Abandon the search on the wire; ``result`` fires with a local 118 and ``message``."""
        if self.done:
            return
        if self.protocol is not None and self.message_id is not None:
            self.protocol.end_stream(self, abandon=True)
        self._finish(ClientResult(CANCELED, "", message))

    def _finish(self, result: ClientResult) -> None:
        if not self.done:
            self.done = True
            self.result.callback(result)

    def _fail(self, failure: Failure | Exception) -> None:
        if not self.done:
            self.done = True
            self.result.errback(failure)


# ---------------------------------------------------------------------------------------------
# The protocol


@dataclass
class _Pending:
    deferred: defer.Deferred[ClientResult]
    result: ClientResult
    timer: IDelayedCall | None
    max_entries: int
    size: int = 0


class LDAPClientProtocol(Protocol):
    """Sends requests and routes responses to them by message ID."""

    def __init__(self, reactor: IReactorTime, max_pdu_bytes: int = 16 << 20, max_answer_bytes: int = 256 << 20):
        self.reactor = reactor
        self.max_pdu_bytes = max_pdu_bytes
        self.max_answer_bytes = max_answer_bytes
        self._buf = bytearray()
        self._next_id = 1
        self._pending: dict[int, _Pending] = {}
        self._streams: dict[int, SearchStream] = {}
        self.connected = False
        #: the reactor time of the last bytes received (liveness probes look at it)
        self.last_received = reactor.seconds()
        self.on_lost: Callable[[LDAPClientProtocol], None] | None = None

    def connectionMade(self) -> None:
        self.connected = True

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.connected = False
        pending, self._pending = self._pending, {}
        error = ConnectionLost(f"connection lost: {reason.getErrorMessage()}")
        for p in pending.values():
            if p.timer is not None and p.timer.active():
                p.timer.cancel()
            p.deferred.errback(error)
        streams, self._streams = self._streams, {}
        for stream in streams.values():
            stream._fail(ConnectionLost(f"connection to {stream.peer} lost: {reason.getErrorMessage()}"))
        if self.on_lost is not None:
            self.on_lost(self)

    # -- sending ----------------------------------------------------------------------------------

    def request(
        self, op: bytes, timeout: float, *, max_entries: int = 0, expects_response: bool = True, controls: bytes = b""
    ) -> defer.Deferred[ClientResult]:
        """Send ``op`` (with ``controls``, an encoded ``[0] Controls``) and collect its answer."""
        message_id = self._next_id
        self._next_id = self._next_id + 1 if self._next_id < 2**31 - 1 else 1
        d: defer.Deferred[ClientResult] = defer.Deferred()
        assert self.transport is not None
        self.transport.write(ber.ldap_message(message_id, op, controls))
        if not expects_response:
            d.callback(ClientResult())
            return d
        timer = self.reactor.callLater(timeout, self._timed_out, message_id, timeout) if timeout else None
        self._pending[message_id] = _Pending(d, ClientResult(), timer, max_entries)
        return d

    def start_stream(self, op: bytes, stream: SearchStream, controls: bytes = b"") -> None:
        """Send the search ``op`` whose messages go to ``stream`` (see :class:`SearchStream`)."""
        message_id = self._next_id
        self._next_id = self._next_id + 1 if self._next_id < 2**31 - 1 else 1
        stream.protocol, stream.message_id = self, message_id
        self._streams[message_id] = stream
        assert self.transport is not None
        self.transport.write(ber.ldap_message(message_id, op, controls))

    def end_stream(self, stream: SearchStream, abandon: bool) -> None:
        """Forget ``stream`` (Abandon it on the wire if asked); its Deferred is the caller's."""
        if stream.message_id is None or self._streams.pop(stream.message_id, None) is None:
            return
        if abandon and self.connected and self.transport is not None:
            self.transport.write(ber.ldap_message(self._next_id, ber.integer(stream.message_id, ber.APP_ABANDON_REQUEST)))
            self._next_id += 1

    def _timed_out(self, message_id: int, timeout: float) -> None:
        p = self._pending.pop(message_id, None)
        if p is None:
            return
        if self.connected and self.transport is not None:
            self.transport.write(ber.ldap_message(self._next_id, ber.integer(message_id, ber.APP_ABANDON_REQUEST)))
            self._next_id += 1
        p.deferred.errback(RequestTimeout(f"no answer within {timeout:g} s"))

    def close(self) -> None:
        if self.connected and self.transport is not None:
            self.transport.write(ber.ldap_message(self._next_id, bytes((ber.APP_UNBIND_REQUEST, 0))))
            self.transport.loseConnection()

    # -- receiving --------------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        self.last_received = self.reactor.seconds()
        buf = self._buf
        buf += data
        pos = 0
        end = len(buf)
        read_pdu_header = ber.read_pdu_header
        try:
            while (header := read_pdu_header(buf, pos, end)) is not None:
                head, length = header
                if length > self.max_pdu_bytes:
                    raise ResponseTooLarge(f"response message of {length} bytes exceeds {self.max_pdu_bytes}")
                if end - pos < head + length:
                    break
                self._message(bytes(buf[pos + head : pos + head + length]))
                pos += head + length
        except (PeerProtocolError, ProtocolError) as e:
            error = e if isinstance(e, PeerProtocolError) else PeerProtocolError(e.message)
            log.warn("dropping connection to {peer}: {error}", peer=self._peer(), error=str(error))
            del buf[:]
            self._fail_all(error)
            if self.transport is not None:
                self.transport.abortConnection()  # type: ignore[attr-defined]  # ITCPTransport
            return
        if pos:
            del buf[:pos]

    def _peer(self) -> str:
        try:
            return str(self.transport.getPeer())  # type: ignore[union-attr]
        except Exception:
            return "?"

    def _fail_all(self, error: Exception) -> None:
        pending, self._pending = self._pending, {}
        for p in pending.values():
            if p.timer is not None and p.timer.active():
                p.timer.cancel()
            p.deferred.errback(error)
        streams, self._streams = self._streams, {}
        for stream in streams.values():
            stream._fail(error)

    def _message(self, data: bytes) -> None:
        """Route one LDAPMessage's content; raises PeerProtocolError or ProtocolError if bad."""
        read = ber.read_header
        end = len(data)
        tag, s, e = read(data, 0, end, "messageID")
        if tag != ber.INTEGER:
            raise PeerProtocolError("LDAPMessage without a message ID")
        message_id = int.from_bytes(data[s:e], "big")
        op_tag, op_start, op_end = read(data, e, end, "protocolOp")
        if message_id == 0:
            if op_tag == ber.APP_EXTENDED_RESPONSE:
                r = _decode_result(data, op_start, op_end)
                raise PeerProtocolError(f"notice of disconnection: {r.message or r.code}")
            return
        p = self._pending.get(message_id)
        if p is None:
            stream = self._streams.get(message_id)
            if stream is not None:
                self._stream_message(stream, data, op_tag, e, op_start, op_end)
            return  # else an answer to an abandoned request
        if op_tag == ber.APP_SEARCH_RESULT_ENTRY:
            p.size += op_end - e
            if p.size > self.max_answer_bytes or (p.max_entries and len(p.result.entries) >= p.max_entries):
                self._finish(message_id, error=ResponseTooLarge(
                    f"answer over the client's limit ({p.max_entries} entries / {self.max_answer_bytes} bytes)"
                ))
                return
            p.result.entries.append(data[e:op_end])
        elif op_tag == ber.APP_SEARCH_RESULT_REFERENCE:
            p.result.references.append(data[e:op_end])
        else:
            r = _decode_result(data, op_start, op_end)
            p.result.code, p.result.matched_dn, p.result.message = r.code, r.matched_dn, r.message
            self._finish(message_id)

    def _stream_message(self, stream: SearchStream, data: bytes, op_tag: int, op_pos: int, op_start: int, op_end: int) -> None:
        """Hand one message of a streaming search on; raises ProtocolError if it is not LDAP."""
        controls = decode_controls(data, op_end, len(data))
        if op_tag == ber.APP_SEARCH_RESULT_DONE:
            r = _decode_result(data, op_start, op_end)
            r.controls = controls
            self.end_stream(stream, abandon=False)
            stream._finish(r)
            return
        if op_tag in (ber.APP_SEARCH_RESULT_ENTRY, ber.APP_SEARCH_RESULT_REFERENCE):
            message = StreamMessage(op_tag, data[op_pos:op_end], controls)
        elif op_tag == ber.APP_INTERMEDIATE_RESPONSE:
            name: str | None = None
            value: bytes | None = None
            read = ber.read_header
            pos = op_start
            while pos < op_end:
                tag, s, pos = read(data, pos, op_end, "IntermediateResponse part")
                if tag == 0x80:
                    name = data[s:pos].decode("ascii", "replace")
                elif tag == 0x81:
                    value = data[s:pos]
                else:
                    raise ProtocolError(f"IntermediateResponse part with tag 0x{tag:02x}")
            message = StreamMessage(op_tag, data[op_pos:op_end], controls, name, value)
        else:
            raise PeerProtocolError(f"a search answered with protocolOp tag 0x{op_tag:02x}")
        try:
            stream.on_message(message)
        except Exception as e:  # the callback's verdict on the message: end this stream only
            if not stream.done:
                self.end_stream(stream, abandon=True)
                stream._fail(e)

    def _finish(self, message_id: int, error: Exception | None = None) -> None:
        p = self._pending.pop(message_id)
        if p.timer is not None and p.timer.active():
            p.timer.cancel()
        if error is None:
            p.deferred.callback(p.result)
        else:
            if self.connected and self.transport is not None:
                self.transport.write(ber.ldap_message(self._next_id, ber.integer(message_id, ber.APP_ABANDON_REQUEST)))
                self._next_id += 1
            p.deferred.errback(error)


class _ClientFactory(Factory):
    noisy = False

    def __init__(self, make: Callable[[], LDAPClientProtocol]):
        self.make = make

    def buildProtocol(self, addr: IAddress | None) -> LDAPClientProtocol:
        p = self.make()
        p.factory = self
        return p


# ---------------------------------------------------------------------------------------------
# The client


class LDAPClient:
    """One remote LDAP server: a reused connection, requests with timeouts."""

    def __init__(
        self,
        reactor: IReactorTime,
        host: str,
        port: int,
        *,
        connect_timeout: float = 10.0,
        bind_dn: str = "",
        password: str = "",
        max_pdu_bytes: int = 16 << 20,
        max_answer_bytes: int = 256 << 20,
        endpoint: IStreamClientEndpoint | None = None,
        tls: ClientTLS | None = None,
        ldaps: bool = False,
        sasl_external: bool = False,
    ):
        """``tls`` is a :class:`gridinfo.ldap.tls.ClientTLS` (CA, client certificate): with its
        CA set the connection starts TLS before anything else; ``ldaps`` is TLS from the start.
        ``sasl_external`` binds with SASL EXTERNAL (the client certificate's subject) instead
        of ``bind_dn``/``password``.  ``reactor`` also provides IReactorTCP unless ``endpoint``
        is given."""
        self.reactor = reactor
        self.sasl_external = sasl_external
        self.tls = tls
        self.ldaps = ldaps
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self.bind_dn = bind_dn
        self.password = password
        self.max_pdu_bytes = max_pdu_bytes
        self.max_answer_bytes = max_answer_bytes
        self._endpoint = endpoint
        self._protocol: LDAPClientProtocol | None = None
        self._connecting: defer.Deferred[LDAPClientProtocol] | None = None
        self._waiting: list[defer.Deferred[LDAPClientProtocol]] = []
        self.connects = 0

    @classmethod
    def from_url(cls, reactor: IReactorTime, url: str | LDAPURL, **kw: Any) -> LDAPClient:
        parsed = LDAPURL.parse(url) if isinstance(url, str) else url
        kw.setdefault("ldaps", parsed.ldaps)
        return cls(reactor, parsed.host, parsed.port, **kw)

    def _tls_context(self) -> IOpenSSLClientConnectionCreator:
        from gridinfo.ldap.tls import ClientTLS

        return (self.tls or ClientTLS()).context(self.host)

    def __repr__(self) -> str:
        return f"LDAPClient({self.host}:{self.port})"

    # -- connection -------------------------------------------------------------------------------

    def _connection(self) -> defer.Deferred[LDAPClientProtocol]:
        """The live protocol, connecting (and binding) first when there is none."""
        protocol = self._protocol
        if protocol is not None and protocol.connected and not getattr(protocol.transport, "disconnecting", False):
            return defer.succeed(protocol)
        d: defer.Deferred[LDAPClientProtocol] = defer.Deferred()
        self._waiting.append(d)
        if self._connecting is None:
            self._connect()
        return d

    def _connect(self) -> None:
        endpoint = self._endpoint or _endpoint_for(cast(IReactorTCP, self.reactor), self.host, self.port, self.connect_timeout)
        start_tls = False
        try:
            if self.ldaps:
                endpoint = wrapClientTLS(self._tls_context(), endpoint)
            elif self.tls is not None and self.tls.start_tls:
                start_tls = True
                tls_context = self._tls_context()
        except Exception as e:  # an unreadable CA or client certificate
            self._fail_waiting(Failure(ConnectFailed(f"cannot use TLS with {self.host}:{self.port}: {e}")))
            return
        factory = _ClientFactory(lambda: LDAPClientProtocol(self.reactor, self.max_pdu_bytes, self.max_answer_bytes))
        self.connects += 1
        attempt = cast("defer.Deferred[LDAPClientProtocol]", endpoint.connect(factory))  # the factory's protocol
        self._connecting = attempt
        # the endpoint's own timeout only covers TCP; bound the whole attempt by our clock too
        timer = self.reactor.callLater(self.connect_timeout, attempt.cancel)

        def secured(protocol: LDAPClientProtocol) -> Any:
            protocol.on_lost = self._lost
            if not start_tls:
                return protocol
            answer = protocol.request(extended_request(START_TLS_OID), self.connect_timeout)

            def switch(result: ClientResult) -> LDAPClientProtocol:
                if result.code != 0:
                    protocol.close()
                    raise ConnectFailed(
                        f"{self.host}:{self.port} refused StartTLS ({result.code}): {result.message or 'no reason'}"
                    )
                assert protocol.transport is not None
                protocol.transport.startTLS(tls_context)  # type: ignore[attr-defined]  # ITLSTransport
                return protocol

            return answer.addCallback(switch)

        def connected(protocol: LDAPClientProtocol) -> Any:
            if self.sasl_external:
                request = sasl_external_bind_request()
            elif self.bind_dn:
                request = bind_request(self.bind_dn, self.password)
            else:
                return protocol
            bound = protocol.request(request, self.connect_timeout)

            def check(result: ClientResult) -> LDAPClientProtocol:
                result.raise_for_code()
                return protocol

            def unbound(f: Failure) -> Failure:
                protocol.close()
                return f

            return bound.addCallback(check).addErrback(unbound)

        def done(result: Any) -> None:
            if timer.active():
                timer.cancel()
            self._connecting = None
            if isinstance(result, Failure):
                err = result.value
                if isinstance(err, (LDAPError, ClientError)):
                    failure = result
                elif isinstance(err, defer.CancelledError):
                    failure = Failure(ConnectFailed(f"cannot connect to {self.host}:{self.port}: no connection within {self.connect_timeout:g} s"))
                else:
                    failure = Failure(ConnectFailed(f"cannot connect to {self.host}:{self.port}: {result.getErrorMessage()}"))
                self._fail_waiting(failure)
                return
            self._protocol = result
            waiting, self._waiting = self._waiting, []
            for w in waiting:
                w.callback(result)

        attempt.addCallback(secured).addCallback(connected).addBoth(done)

    def _fail_waiting(self, failure: Failure) -> None:
        waiting, self._waiting = self._waiting, []
        for w in waiting:
            w.errback(failure)

    def _lost(self, protocol: LDAPClientProtocol) -> None:
        if self._protocol is protocol:
            self._protocol = None

    def close(self) -> None:
        """Unbind and close the connection (requests in flight fail with ConnectionLost)."""
        if self._protocol is not None:
            self._protocol.close()
            self._protocol = None
        if self._connecting is not None:
            self._connecting.cancel()

    # -- operations -------------------------------------------------------------------------------

    def _send(self, op: bytes, timeout: float, max_entries: int = 0) -> defer.Deferred[ClientResult]:
        """Send ``op`` once connected; ``timeout`` covers the connect as well as the answer."""
        started = self.reactor.seconds()
        conn = self._connection()

        def send(protocol: LDAPClientProtocol) -> defer.Deferred[ClientResult]:
            left = timeout - (self.reactor.seconds() - started) if timeout else 0
            if timeout and left <= 0:
                raise RequestTimeout(f"no answer within {timeout:g} s (connecting took it all)")
            return protocol.request(op, left, max_entries=max_entries)

        return conn.addCallback(send)

    def search(
        self,
        base: str,
        scope: int,
        filter: F.Filter | str,
        attributes: Sequence[str] = (),
        *,
        size_limit: int = 0,
        time_limit: int = 0,
        types_only: bool = False,
        timeout: float = 30.0,
        max_entries: int = 0,
    ) -> defer.Deferred[ClientResult]:
        """Search; the result carries the encoded entries, the final code and message."""
        if isinstance(filter, str):
            filter = F.parse_filter(filter)
        op = search_request(base, scope, filter, attributes, size_limit, time_limit, types_only)
        return self._send(op, timeout, max_entries)

    def stream(
        self,
        base: str,
        scope: int,
        filter: F.Filter | str,
        attributes: Sequence[str],
        on_message: Callable[[StreamMessage], None],
        *,
        controls: bytes = b"",
        size_limit: int = 0,
        time_limit: int = 0,
    ) -> SearchStream:
        """A streaming search (module docstring): messages to ``on_message``, the end to ``result``.

        ``controls`` is an encoded ``[0] Controls`` element (:func:`gridinfo.ldap.sync.controls`).
        A failed connect fails ``result`` (ConnectFailed); a stream cancelled before the
        connection was ready is never sent.  The connect is bounded by ``connect_timeout``; the
        search itself by nothing but its own end.
        """
        if isinstance(filter, str):
            filter = F.parse_filter(filter)
        op = search_request(base, scope, filter, attributes, size_limit, time_limit)
        stream = SearchStream(on_message, f"{self.host}:{self.port}")

        def send(protocol: LDAPClientProtocol) -> None:
            if stream._cancelled:
                stream._finish(ClientResult(CANCELED, "", "cancelled before it was sent"))
            elif not protocol.connected:
                stream._fail(ConnectionLost(f"connection to {stream.peer} lost before the search was sent"))
            else:
                protocol.start_stream(op, stream, controls)

        self._connection().addCallbacks(send, stream._fail)
        return stream

    @property
    def protocol(self) -> LDAPClientProtocol | None:
        """The live connection's protocol, if there is one."""
        return self._protocol

    def add(self, dn: str, attributes: Iterable[tuple[str, Sequence[bytes]]], *, timeout: float = 30.0) -> defer.Deferred[ClientResult]:
        """Add an entry; the result's code says whether it was accepted."""
        return self._send(add_request(dn, attributes), timeout)


def _endpoint_for(reactor: IReactorTCP, host: str, port: int, timeout: float) -> IStreamClientEndpoint:
    """An IP literal is connected to directly; a name goes through resolution (and may be slow)."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return HostnameEndpoint(reactor, host, port, timeout=timeout)
    if address.version == 6:
        return TCP6ClientEndpoint(reactor, str(address), port, timeout=timeout)
    return TCP4ClientEndpoint(reactor, str(address), port, timeout=timeout)
