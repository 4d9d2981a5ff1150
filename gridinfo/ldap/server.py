"""The LDAP server protocol: framing, limits, dispatch to a backend, results on the wire.

Why one module: nearly all of it is :class:`LDAPServerProtocol`, one connection's state machine
(bind identity, TLS, pending operations, paged sessions, idle timer, limits) that every operation
handler reads and changes; splitting search from bind and extended handling would spread one
object's state over two files.

Theory of operation
-------------------
A connection accumulates bytes; for each complete LDAPMessage the framing checks the outer tag
and the announced length first (an oversized or malformed PDU costs only that connection: it
gets a Notice of Disconnection with protocolError and is closed).  :mod:`gridinfo.ldap.wire`
decodes the message and the operation is dispatched:

==========  ======================================================================
Bind        anonymous; simple with a DN/password from ``credentials`` (with TLS configured,
            only under TLS unless plain passwords are allowed: else confidentialityRequired);
            SASL EXTERNAL under TLS with a client certificate (binds as its subject DN)
Search      root DSE and ``cn=Subschema`` answered here; the rest goes to the backend
Compare     backend.compare -> compareTrue / compareFalse
Add         backend.add (a GIIS accepts registrations; a GRIS refuses)
Modify,     refused: unwillingToPerform
Delete,
ModifyDN
Extended    Who am I? (RFC 4532); StartTLS (RFC 4511 4.14, when TLS is configured);
            anything else -> protocolError
Abandon     cancel the pending operation / paged session; no response
Unbind      close
==========  ======================================================================

Backends answer synchronously (the usual case: no Deferred is created) or with a Deferred;
pending Deferreds count against ``max_outstanding_ops``.  Errors become results in one place
(:meth:`LDAPServerProtocol._fail`): an ``LDAPError`` gives its code and message; any other
exception is a gridinfo bug, logged with its traceback and answered ``other``
"internal error", and the connection stays usable.

Paged results (RFC 2696) are served from the backend's full result, kept per connection
under a cookie (at most ``max_paged_sessions``, the oldest dropped first).

Output, backpressure and closing
--------------------------------
The protocol is registered with its transport as a streaming producer for the whole life of
the connection.  When the transport's send buffer passes ``send_buffer_bytes`` it pauses us;
while paused, or while a large result is still being streamed, no further request is
dispatched and reading from the socket stops, so a client that pipelines requests and never
reads costs at most one answer plus one send buffer.  When the buffer drains the transport
resumes us: streamed results continue, then waiting requests are dispatched, then reading
resumes.

=====================  ==========================================================
event                  what the connection does
=====================  ==========================================================
Unbind, protocol       :meth:`_close`: unregister as producer, ``loseConnection``
error, idle timeout    (flushes what is queued), and abort the transport if it has
                       not closed within ``close_timeout``
output stuck           a paused or streaming connection whose client has read nothing
                       for ``idle_timeout`` is aborted (a notice could not be sent)
partial request        a PDU that has started must be complete within
                       ``request_timeout``, however slowly its bytes trickle in
=====================  ==========================================================

StartTLS
--------
The request is refused (operationsError) under TLS already or with operations outstanding,
and (unavailable) when the server has no TLS configured.  Otherwise the success response is
written in the clear and the transport switches to TLS at once (``startTLS``); the transport
keeps us registered as its producer, so backpressure and closing work the same under TLS.
A client must send nothing after the request until the response (RFC 4511, 4.14.1): bytes that
arrived behind it are a protocol error.

Per source address at most ``max_connections_per_address`` connections are accepted, and
failed simple binds slow down later binds of the same DN or address
(:mod:`gridinfo.ldap.throttle`).
"""

from __future__ import annotations

from collections import OrderedDict
import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer, task, tcp
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.ssl import CertificateOptions
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from gridinfo import ber, debuglog
from gridinfo.directory.entry import Entry, EntryBuilder
from gridinfo.directory.evaluate import FilterCompiler
from gridinfo.directory.query import Scope, SearchRequest, SearchResult
from gridinfo.directory.schema import Schema
from gridinfo.errors import InvalidCredentials, LDAPError, ProtocolError, ResultCode
from gridinfo.ldap import dse, passwords, sync, tls, wire
from gridinfo.ldap.oplog import OperationObserver
from gridinfo.ldap.streams import CANCELED, ChangeStream
from gridinfo.ldap.throttle import FailureThrottle

log = Logger(namespace=__name__)  # named here: a compiled module has no frame to name it from

NOTICE_OF_DISCONNECTION_OID = "1.3.6.1.4.1.1466.20036"
PAGED_RESULTS_OID = dse.PAGED_RESULTS_OID
WHO_AM_I_OID = dse.WHO_AM_I_OID
START_TLS_OID = dse.START_TLS_OID
DEFAULT_WRITE_REFUSAL = "gridinfo is read-only: data comes from information providers"

_SCOPES = (Scope.BASE, Scope.ONE, Scope.SUB, Scope.CHILDREN)
STREAM_CONTROLS = frozenset({sync.SYNC_REQUEST_OID, sync.PERSISTENT_SEARCH_OID})
NO_SUCH_OPERATION = 119  # RFC 3909
CANNOT_CANCEL = 121
#: The LDAPMessage SEQUENCE header of each content length up to 8 KiB (every GLUE entry's),
#: looked up per entry written instead of encoding the length each time (~300 KiB)
_TABLED_LENGTHS = 8192
_SEQUENCE_HEADERS = [bytes((ber.SEQUENCE,)) + ber.encode_length(n) for n in range(_TABLED_LENGTHS)]


def _message_header(n: int) -> bytes:
    """The LDAPMessage SEQUENCE header for a body of ``n`` bytes (from the table when it has it)."""
    return _SEQUENCE_HEADERS[n] if n < _TABLED_LENGTHS else b"\x30" + ber.encode_length(n)


_DONE_SUCCESS = ber.ldap_result(ber.APP_SEARCH_RESULT_DONE, ResultCode.SUCCESS)


#: Results larger than this are streamed to the client in chunks of this many entries.
STREAM_CHUNK_ENTRIES = 512

#: An answer at most this long is sent with one ``send`` (:meth:`LDAPServerProtocol._send`);
#: a longer one goes through Twisted's ``writeSomeData``, which sends at most ``SEND_LIMIT``.
_SEND_AT_ONCE = tcp.Connection.SEND_LIMIT


@dataclass(frozen=True)
class ServerLimits:
    """What one client may cost the server.  0 means "no limit" where noted."""

    max_pdu_bytes: int = 1024 * 1024
    max_connections: int = 1024
    max_outstanding_ops: int = 64  # per connection
    idle_timeout: float = 300.0  # seconds; 0 = none
    default_size_limit: int = 0  # server-side cap on entries per search; 0 = none
    default_time_limit: float = 120.0  # server-side cap on seconds per search; 0 = none
    max_paged_sessions: int = 16  # per connection
    max_connections_per_address: int = 256  # 0 = none
    request_timeout: float = 30.0  # seconds for a started request to arrive whole; 0 = none
    close_timeout: float = 10.0  # seconds a closing connection may take to flush; 0 = none
    send_buffer_bytes: int = 64 * 1024  # queued output past which we stop reading the client
    bind_failure_delay: float = 0.5  # first delay after a failed bind (doubles); 0 = none
    bind_failure_max_delay: float = 16.0
    bind_failure_forget: float = 600.0  # seconds without failures after which a key is forgotten
    stream_buffer_entries: int = 10_000  # undelivered DNs per change stream before it must refresh


def factory_connection_number(factory: LDAPServerFactory) -> int:
    """The next connection number (conn= in the operator log), shared by the factory's observers."""
    return next(factory.connection_numbers)


def _smaller_limit(client: float, server: float) -> float:
    """The tighter of two limits where 0 means unlimited."""
    if not client:
        return server
    if not server:
        return client
    return min(client, server)


@dataclass
class _PagedSession:
    """The rest of a paged search, kept under a cookie between pages."""

    key: tuple[Any, ...]
    result: SearchResult
    offset: int
    message_id: int


class LDAPServerFactory(ServerFactory):
    """Builds :class:`LDAPServerProtocol` connections serving ``backend``."""

    def __init__(
        self,
        backend: Any,
        *,
        reactor: IReactorTime,
        limits: ServerLimits = ServerLimits(),
        credentials: Mapping[str, str] | None = None,
        vendor_version: str,
        tls_context: CertificateOptions | None = None,
        allow_plain_passwords: bool = False,
        client_certificates: bool = False,
        observers: Sequence[OperationObserver] = (),
    ) -> None:
        """``tls_context`` (a Twisted TLS context factory) enables StartTLS; with it, simple
        binds with a password need TLS unless ``allow_plain_passwords``.  ``client_certificates``
        says the context asks for them (SASL EXTERNAL is then advertised)."""
        self.backend = backend
        #: told of every connection, request and result (the operator log, the metrics); usually none
        self.observers = tuple(observers)
        self.connection_numbers = itertools.count(1000)  # conn=, as slapd numbers its connections
        self.tls_context = tls_context
        self.plain_passwords = tls_context is None or allow_plain_passwords
        self.client_certificates = client_certificates and tls_context is not None
        self.reactor = reactor
        self.limits = limits
        self.vendor_version = vendor_version
        # plain or {SSHA} (gridinfo.ldap.passwords); file: values were read by the wiring
        self.credentials = {dse.normalise_dn(dn): pw for dn, pw in (credentials or {}).items()}
        self.connections = 0
        self.connections_by_address: dict[str, int] = {}
        self.bind_throttle = FailureThrottle(
            limits.bind_failure_delay, limits.bind_failure_max_delay, limits.bind_failure_forget
        )
        #: Counters published under o=infosys: failed binds, refused and aborted connections, and the
        #: change streams open now (a gauge).
        self.stats = {"failed_binds": 0, "refused_connections": 0, "aborted_connections": 0, "change_streams": 0}
        #: change streams (sync, persistent search) are served when the backend can give a view
        self.streams = callable(getattr(backend, "sync_view", None))
        self._root_dse: tuple[tuple[str, ...], dse.DSEEntry] | None = None
        self._dse_entries: dict[int, tuple[dse.DSEEntry, Any, Entry, FilterCompiler]] = {}
        self._subschema: tuple[object, dse.DSEEntry] | None = None

    def buildProtocol(self, addr: IAddress | None) -> LDAPServerProtocol:
        protocol = LDAPServerProtocol(self)
        protocol.factory = self
        return protocol

    def root_dse(self) -> dse.DSEEntry:
        """The root DSE, rebuilt only when the backend's naming contexts change."""
        contexts = tuple(self.backend.naming_contexts())
        if self._root_dse is None or self._root_dse[0] != contexts:
            extensions: tuple[str, ...] = (WHO_AM_I_OID,)
            controls: tuple[str, ...] = (PAGED_RESULTS_OID,)
            if self.tls_context is not None:
                extensions += (START_TLS_OID,)
            if self.streams:
                extensions += (sync.CANCEL_OID,)
                controls += (sync.MANAGE_DSA_IT_OID, sync.SYNC_REQUEST_OID, sync.PERSISTENT_SEARCH_OID)
            mechanisms = ("EXTERNAL",) if self.client_certificates else ()
            self._root_dse = (
                contexts,
                dse.build_root_dse(
                    contexts, self.vendor_version, extensions, supported_controls=controls, sasl_mechanisms=mechanisms
                ),
            )
        return self._root_dse[1]

    def subschema(self) -> dse.DSEEntry:
        """The subschema subentry, rebuilt only when the backend's schema object changes."""
        schema = self.backend.schema
        if self._subschema is None or self._subschema[0] is not schema:
            self._subschema = (schema, dse.build_subschema(schema))
        return self._subschema[1]

    def dse_matches(self, entry: dse.DSEEntry, flt: Any) -> bool:
        """Does the root DSE or subschema entry match ``flt``, judged as a search would judge it?

        With a real schema the filter engine of the tree decides (so ``supportedLDAPVersion``
        has integer equality and no ordering, as RFC 4512 defines it); a stand-in backend
        without one gets the DSE's own case-insensitive evaluation.
        """
        schema = self.backend.schema
        if not isinstance(schema, Schema):
            return entry.matches(flt)
        cached = self._dse_entries.get(id(entry))
        if cached is None or cached[0] is not entry or cached[1] is not schema:
            builder = EntryBuilder(schema)
            built = builder.build(entry.dn, entry.attributes(), source="gridinfo:dse")
            cached = (entry, schema, built, FilterCompiler(schema))
            if len(self._dse_entries) > 4:  # root DSE and subschema, plus ones replaced since
                self._dse_entries.clear()
            self._dse_entries[id(entry)] = cached
        return cached[3].compile(flt)(cached[2]) is True


class LDAPServerProtocol(Protocol):
    """One client connection."""

    def __init__(self, factory: LDAPServerFactory) -> None:
        self.server = factory
        self.backend = factory.backend
        self.limits = factory.limits
        self.bind_dn = ""
        self.tls = False  # under TLS (LDAPS, or after StartTLS)
        self._start_tls: int | None = None  # message ID of an accepted StartTLS request
        self._buffer = bytearray()
        self._closing = False
        self._streams: list[list[Any]] = []  # large results being written, oldest first
        self._held_searches: list[Callable[[], None]] = []  # next slices, waiting for the output to drain
        self._counted = False
        self._pending: dict[int, defer.Deferred[Any]] = {}
        self._paged: OrderedDict[bytes, _PagedSession] = OrderedDict()
        self._next_cookie = 1
        self._idle_call: IDelayedCall | None = None
        self._request_call: IDelayedCall | None = None  # deadline of a request that has started to arrive
        self._abort_call: IDelayedCall | None = None  # deadline of a connection that is closing
        self._last_activity = 0.0
        self._peer = "?"
        self._host = "?"
        self._producing = False  # registered with the transport as its producer
        self._paused = False  # the transport's send buffer is full
        self._reading_paused = False  # we stopped reading from the client
        self._change_streams: dict[int, ChangeStream] = {}  # message ID -> sync / persistent search
        self._observers = factory.observers
        self._direct = False  # a plain TCP transport: answers may go straight to the socket (_send)
        self._conn = 0  # the connection's number (the operator log's conn=)
        self._op_count = 0
        self._ops: dict[int, tuple[int, float, int]] = {}  # message ID -> (op number, start, entries)
        self._handlers: dict[type, Callable[[int, Any, tuple[wire.Control, ...]], None]] = {
            wire.SearchOp: self._handle_search,
            wire.BindOp: self._handle_bind,
            wire.UnbindOp: self._handle_unbind,
            wire.AbandonOp: self._handle_abandon,
            wire.CompareOp: self._handle_compare,
            wire.AddOp: self._handle_add,
            wire.ModifyOp: self._handle_write,
            wire.DeleteOp: self._handle_write,
            wire.ModifyDNOp: self._handle_write,
            wire.ExtendedOp: self._handle_extended,
        }

    # -- connection life ------------------------------------------------------------------------

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()  # type: ignore[union-attr]
        self._host = str(getattr(peer, "host", peer))
        self._peer = f"{self._host}:{getattr(peer, 'port', '')}"
        server = self.server
        limits = self.limits
        if server.connections >= limits.max_connections:
            self._refuse(f"too many connections (limit {limits.max_connections})")
            return
        by_address = server.connections_by_address
        per_address = limits.max_connections_per_address
        if per_address and by_address.get(self._host, 0) >= per_address:
            self._refuse(f"too many connections from {self._host} (limit {per_address})")
            return
        server.connections += 1
        by_address[self._host] = by_address.get(self._host, 0) + 1
        self._counted = True
        if debuglog.wanted:
            log.debug("LDAP connection from {peer}", peer=self._peer)
        if self._observers:
            self._conn = factory_connection_number(server)
            for observer in self._observers:
                observer.accepted(self._conn, self._peer)
        transport: Any = self.transport
        self.tls = tls.under_tls(transport)
        self._direct = not self.tls and _can_send_directly(transport)
        if limits.send_buffer_bytes and hasattr(transport, "bufferSize"):
            transport.bufferSize = limits.send_buffer_bytes
        transport.registerProducer(self, True)
        self._producing = True
        if limits.idle_timeout > 0:
            self._last_activity = server.reactor.seconds()
            self._idle_call = server.reactor.callLater(limits.idle_timeout, self._check_idle)

    def _refuse(self, reason: str) -> None:
        log.warn("refusing LDAP connection from {peer}: {reason}", peer=self._peer, reason=reason)
        self.server.stats["refused_connections"] += 1
        self._disconnect(ResultCode.BUSY, reason)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._closing = True
        self._producing = False
        if self._counted:
            server = self.server
            server.connections -= 1
            left = server.connections_by_address.get(self._host, 1) - 1
            if left > 0:
                server.connections_by_address[self._host] = left
            else:
                server.connections_by_address.pop(self._host, None)
            self._counted = False
            if debuglog.wanted:
                log.debug("LDAP connection from {peer} closed", peer=self._peer)
            for observer in self._observers:
                observer.closed(self._conn)
        for name in ("_idle_call", "_request_call", "_abort_call"):
            call = getattr(self, name)
            if call is not None and call.active():
                call.cancel()
            setattr(self, name, None)
        pending, self._pending = self._pending, {}
        for d in pending.values():
            d.cancel()
        self._paged.clear()
        self._streams.clear()
        self._held_searches.clear()
        self._buffer = bytearray()

    def _check_idle(self) -> None:
        self._idle_call = None
        if self._closing:
            return
        timeout = self.limits.idle_timeout
        now = self.server.reactor.seconds()
        remaining = self._last_activity + timeout - now
        if remaining > 0:
            self._idle_call = self.server.reactor.callLater(remaining, self._check_idle)
            return
        if self._streams or self._paused:
            # Output is queued and the client has read none of it for the whole timeout: a
            # notice could not reach it either.
            log.info(
                "aborting LDAP connection from {peer}: it read none of its results for {timeout} s",
                peer=self._peer,
                timeout=timeout,
            )
            self._abort()
            return
        if self._pending:
            self._idle_call = self.server.reactor.callLater(timeout, self._check_idle)
            return
        log.info("closing idle LDAP connection from {peer}", peer=self._peer)
        self._disconnect(ResultCode.UNAVAILABLE, f"connection idle for more than {timeout:g} s")

    def _request_too_slow(self) -> None:
        self._request_call = None
        timeout = self.limits.request_timeout
        log.warn(
            "closing LDAP connection from {peer}: a request it started was not complete within {timeout} s",
            peer=self._peer,
            timeout=timeout,
        )
        self._disconnect(ResultCode.UNAVAILABLE, f"request not complete within {timeout:g} s")

    def _disconnect(self, code: int, message: str) -> None:
        """Send a Notice of Disconnection (RFC 4511, section 4.4.1) and close."""
        if self._closing:
            return
        notice = ber.ldap_result(
            ber.APP_EXTENDED_RESPONSE,
            code,
            b"",
            message.encode("utf-8"),
            ber.tlv(ber.EXTENDED_RESPONSE_NAME, NOTICE_OF_DISCONNECTION_OID.encode("ascii")),
        )
        self.transport.write(ber.ldap_message(0, notice))  # type: ignore[union-attr]
        self._close()

    def _close(self) -> None:
        """Close after flushing what is queued; the one way a connection is closed by us.

        Unregistering as producer first is what lets the transport finish closing (it waits for
        a registered producer forever); the abort deadline covers a client that never reads.
        """
        if self._closing:
            return
        self._closing = True
        self._streams.clear()
        self._held_searches.clear()
        self._buffer = bytearray()
        if self._request_call is not None and self._request_call.active():
            self._request_call.cancel()
        self._request_call = None
        transport: Any = self.transport
        if self._producing:
            self._producing = False
            transport.unregisterProducer()
        transport.loseConnection()
        if self.limits.close_timeout > 0 and self._abort_call is None:
            self._abort_call = self.server.reactor.callLater(self.limits.close_timeout, self._abort)

    def _abort(self) -> None:
        """Drop the connection now, discarding what it has not taken."""
        self._abort_call = None
        self._closing = True
        self._streams.clear()
        self._held_searches.clear()
        transport: Any = self.transport
        if self._producing:
            self._producing = False
            transport.unregisterProducer()
        self.server.stats["aborted_connections"] += 1
        abort = getattr(transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:
            transport.loseConnection()

    def _protocol_violation(self, message: str) -> None:
        log.warn("LDAP protocol error from {peer}: {problem}", peer=self._peer, problem=message)
        self._disconnect(ResultCode.PROTOCOL_ERROR, message)

    # -- framing --------------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        if self.limits.idle_timeout > 0:
            self._last_activity = self.server.reactor.seconds()
        buffer = self._buffer
        if not buffer and not (self._paused or self._streams):
            # Usual case: the read holds whole messages; decode them in place, no copies.
            used = self._consume(data, False)
            if used < len(data) and not self._closing:
                buffer += memoryview(data)[used:]
        else:
            buffer += data
            if not (self._paused or self._streams):
                self._consume_buffer()
        self._after_input()

    def _consume_buffer(self) -> None:
        buffer = self._buffer
        used = self._consume(buffer, True)
        if used and not self._closing:
            # Compact once per read: what is left is at most one partial PDU (or, while output
            # is blocked, what one read brought).
            del buffer[:used]

    def _after_input(self) -> None:
        """Read on only while output flows; keep the deadline of a partial request."""
        if self._closing:
            return
        blocked = self._paused or bool(self._streams)
        transport: Any = self.transport
        if blocked and not self._reading_paused:
            self._reading_paused = True
            transport.pauseProducing()
        elif not blocked and self._reading_paused:
            self._reading_paused = False
            transport.resumeProducing()
        timeout = self.limits.request_timeout
        if self._buffer and not blocked and timeout > 0:
            if self._request_call is None:
                self._request_call = self.server.reactor.callLater(timeout, self._request_too_slow)
        elif self._request_call is not None and not self._buffer:
            self._request_call.cancel()
            self._request_call = None

    def _consume(self, data: bytes | bytearray, copy: bool) -> int:
        """Handle every complete message in ``data``; returns the number of bytes used."""
        pos = 0
        end = len(data)
        limit = self.limits.max_pdu_bytes
        while pos < end and not (self._closing or self._paused or self._streams):
            try:
                header = wire.read_pdu_header(data, pos, end)
            except ProtocolError as e:
                self._protocol_violation(e.message)
                return pos
            if header is None:
                return pos
            size = header[0] + header[1]
            if size > limit:
                self._protocol_violation(wire.pdu_too_large_message(size, limit))
                return pos
            stop = pos + size
            if stop > end:
                return pos
            try:
                if copy:
                    message = wire.decode_message(bytes(data[pos:stop]))
                else:
                    message = wire.decode_message(data, pos, stop)  # type: ignore[arg-type]
            except ProtocolError as e:
                self._protocol_violation(e.message)
                return pos
            except Exception:
                log.failure("decoder failed on a message from {peer}", peer=self._peer)
                self._protocol_violation("undecodable LDAPMessage")
                return pos
            pos = stop
            if self._request_call is not None:  # a whole request arrived: its deadline is met
                self._request_call.cancel()
                self._request_call = None
            self._dispatch(message)
            if self._start_tls is not None:
                if pos < end:
                    self._start_tls = None
                    self._protocol_violation("data after a StartTLS request, before its response")
                    return pos
                self._switch_to_tls()
                return pos
        return pos

    def _switch_to_tls(self) -> None:
        """Answer an accepted StartTLS in the clear, then run the connection over TLS."""
        message_id, self._start_tls = self._start_tls, None
        assert message_id is not None
        self._result(
            message_id, ber.APP_EXTENDED_RESPONSE, ResultCode.SUCCESS, extra=ber.tlv(ber.EXTENDED_RESPONSE_NAME, START_TLS_OID.encode("ascii"))
        )
        transport: Any = self.transport
        self._direct = False  # from here on every byte goes through the TLS layer
        transport.startTLS(self.server.tls_context)
        self.tls = True
        log.info("LDAP connection from {peer} now under TLS", peer=self._peer)

    def _dispatch(self, message: wire.Message) -> None:
        op = message.op
        if self._observers:
            self._log_request(message.message_id, op)
        try:
            self._handlers[type(op)](message.message_id, op, message.controls)
        except Exception:
            log.failure("error handling {op} from {peer}", op=type(op).__name__, peer=self._peer)
            tag = _RESPONSE_TAGS.get(type(op))
            if tag is not None and not self._closing:
                self._result(message.message_id, tag, ResultCode.OTHER, "internal error")

    def _log_request(self, message_id: int, op: Any) -> None:
        number = self._op_count
        self._op_count += 1
        if not isinstance(op, (wire.UnbindOp, wire.AbandonOp)):  # those have no result
            self._ops[message_id] = (number, time.perf_counter(), 0)
        for observer in self._observers:
            observer.request(self._conn, number, op)

    def _log_result(self, message_id: int, tag: int, code: int, message: str, search: bool = False) -> None:
        pending = self._ops.pop(message_id, None)
        if pending is None:
            return
        number, started, entries = pending
        etime = time.perf_counter() - started
        for observer in self._observers:
            observer.result(self._conn, number, tag, code, etime, message, entries if search else None)

    # -- writing results --------------------------------------------------------------------------

    def _result(
        self,
        message_id: int,
        tag: int,
        code: int,
        message: str = "",
        matched_dn: str = "",
        extra: bytes = b"",
        controls: bytes = b"",
    ) -> None:
        if self._closing:
            return
        op = ber.ldap_result(tag, code, matched_dn.encode("utf-8"), message.encode("utf-8"), extra)
        self.transport.write(ber.ldap_message(message_id, op, controls))  # type: ignore[union-attr]
        if self._observers:
            self._log_result(message_id, tag, code, message, search=tag == ber.APP_SEARCH_RESULT_DONE)

    def _fail(self, message_id: int, tag: int, failure: Failure | BaseException, what: str) -> None:
        """Turn an exception from a backend into the operation's result (the one place)."""
        error = failure.value if isinstance(failure, Failure) else failure
        if isinstance(error, LDAPError):
            self._result(message_id, tag, error.code, error.message, error.matched_dn)
            return
        if isinstance(error, defer.CancelledError):
            return
        if isinstance(failure, Failure):
            log.failure("backend error in {what} from {peer}", failure=failure, what=what, peer=self._peer)
        else:
            log.failure("backend error in {what} from {peer}", failure=Failure(error), what=what, peer=self._peer)
        self._result(message_id, tag, ResultCode.OTHER, "internal error")

    def _refuse_when_busy(self, message_id: int, tag: int) -> bool:
        """Answer and return True if another operation cannot be accepted now."""
        pending = self._pending
        if not pending:
            return False
        if message_id in pending:
            self._result(message_id, tag, ResultCode.PROTOCOL_ERROR, f"message ID {message_id} is already in use")
            return True
        if len(pending) >= self.limits.max_outstanding_ops:
            self._result(
                message_id,
                tag,
                ResultCode.BUSY,
                f"too many outstanding operations (limit {self.limits.max_outstanding_ops})",
            )
            return True
        return False

    def _call_backend(
        self,
        message_id: int,
        tag: int,
        what: str,
        call: Callable[[], Any],
        answer: Callable[[int, Any], None],
    ) -> None:
        """Run a backend call, synchronous or Deferred, and ``answer`` with its value."""
        if self._refuse_when_busy(message_id, tag):
            return
        try:
            value = call()
        except Exception as e:
            self._fail(message_id, tag, Failure() if not isinstance(e, LDAPError) else e, what)
            return
        if isinstance(value, defer.Deferred):
            self._await(message_id, tag, what, value, answer)
        else:
            answer(message_id, value)

    def _await(
        self, message_id: int, tag: int, what: str, value: defer.Deferred[Any], answer: Callable[[int, Any], None]
    ) -> None:
        """Answer when ``value`` fires, unless abandoned or disconnected by then."""
        pending = self._pending
        pending[message_id] = value

        def succeeded(result: Any) -> None:
            if pending.get(message_id) is value and not self._closing:
                del pending[message_id]
                try:
                    answer(message_id, result)
                except Exception:
                    self._fail(message_id, tag, Failure(), what)

        def failed(failure: Failure) -> None:
            if pending.get(message_id) is value and not self._closing:
                del pending[message_id]
                self._fail(message_id, tag, failure, what)

        value.addCallbacks(succeeded, failed)

    # -- Search -----------------------------------------------------------------------------------

    def _handle_search(self, message_id: int, op: wire.SearchOp, controls: tuple[wire.Control, ...]) -> None:
        paged: tuple[int, bytes] | None = None
        stream: sync.SyncRequest | sync.PersistentSearch | None = None
        for control in controls:
            if control.oid == PAGED_RESULTS_OID:
                try:
                    paged = wire.decode_paged_control(control.value)
                except ProtocolError as e:
                    self._result(message_id, ber.APP_SEARCH_RESULT_DONE, ResultCode.PROTOCOL_ERROR, e.message)
                    return
            elif control.oid in STREAM_CONTROLS and self.server.streams:
                try:
                    if control.oid == sync.SYNC_REQUEST_OID:
                        stream = wire.decode_sync_request(control.value)
                    else:
                        stream = wire.decode_persistent_search(control.value)
                except ProtocolError as e:
                    self._result(message_id, ber.APP_SEARCH_RESULT_DONE, ResultCode.PROTOCOL_ERROR, e.message)
                    return
            elif control.oid == sync.MANAGE_DSA_IT_OID:
                pass  # gridinfo holds no referrals or aliases: every entry is already treated as normal
            elif control.critical:
                self._result(
                    message_id,
                    ber.APP_SEARCH_RESULT_DONE,
                    ResultCode.UNAVAILABLE_CRITICAL_EXTENSION,
                    f"critical control {control.oid} is not supported",
                )
                return
        if stream is not None:
            self._start_stream(message_id, op, stream)
            return
        if paged is not None:
            size, cookie = paged
            if cookie or size == 0:
                self._continue_paged(message_id, op, size, cookie)
                return
        base = op.base
        if op.scope == 0 and not base:
            entry = self.server.root_dse()
            self._answer_dse(message_id, op, entry, paged)
            return
        if dse.is_subschema_dn(base):
            subschema = self.server.subschema()
            if op.scope in (0, 2):
                self._answer_dse(message_id, op, subschema, paged)
            else:
                self._send_search(message_id, SearchResult(), None, op)
            return
        limits = self.limits
        request = SearchRequest(
            base,
            _SCOPES[op.scope],
            op.filter,
            op.attributes,
            int(_smaller_limit(op.size_limit, limits.default_size_limit)),
            float(_smaller_limit(op.time_limit, limits.default_time_limit)),
            op.types_only,
            op.deref_aliases,
            self.bind_dn,
        )
        # Inline rather than _call_backend: this is the hot path.
        if self._pending and self._refuse_when_busy(message_id, ber.APP_SEARCH_RESULT_DONE):
            return
        try:
            result = self.backend.search(request)
        except Exception as e:
            self._fail(message_id, ber.APP_SEARCH_RESULT_DONE, Failure() if not isinstance(e, LDAPError) else e, "search")
            return
        if type(result) is SearchResult and paged is None and result.cursor is None:
            self._write_entries(message_id, result, 0, len(result.entries), True, b"")
        elif isinstance(result, defer.Deferred):
            self._await(
                message_id, ber.APP_SEARCH_RESULT_DONE, "search", result, lambda mid, r: self._send_search(mid, r, paged, op)
            )
        else:
            self._send_search(message_id, result, paged, op)

    def _start_stream(
        self, message_id: int, op: wire.SearchOp, control: sync.SyncRequest | sync.PersistentSearch
    ) -> None:
        """A sync or persistent search: a :class:`ChangeStream` that stays pending until it ends."""
        if self._refuse_when_busy(message_id, ber.APP_SEARCH_RESULT_DONE):
            return
        request = SearchRequest(
            op.base, _SCOPES[op.scope], op.filter, op.attributes, 0, 0.0, op.types_only, op.deref_aliases, self.bind_dn
        )
        try:
            view = self.backend.sync_view(request)
        except Exception as e:
            self._fail(message_id, ber.APP_SEARCH_RESULT_DONE, Failure() if not isinstance(e, LDAPError) else e, "search")
            return
        streams = self._change_streams
        done: defer.Deferred[None] = defer.Deferred(lambda d: streams.pop(message_id, stream).stop())
        done.addErrback(lambda f: f.trap(defer.CancelledError))  # Abandon, or the connection went

        def finished(s: ChangeStream) -> None:
            self.server.stats["change_streams"] -= 1
            if self._observers:
                if s.end_code is None:
                    self._ops.pop(message_id, None)  # abandoned or cut: no result was sent
                else:
                    self._log_result(message_id, ber.APP_SEARCH_RESULT_DONE, s.end_code, "", search=True)
            streams.pop(message_id, None)
            if self._pending.get(message_id) is done:
                del self._pending[message_id]

        stream = ChangeStream(
            message_id,
            view,
            write=self.transport.write,  # type: ignore[union-attr]
            can_write=lambda: not (self._paused or self._closing),
            finished=finished,
            reactor=self.server.reactor,
            peer=self._peer,
            sync_request=control if isinstance(control, sync.SyncRequest) else None,
            psearch=control if isinstance(control, sync.PersistentSearch) else None,
            max_pending=self.limits.stream_buffer_entries,
        )
        streams[message_id] = stream
        self._pending[message_id] = done
        self.server.stats["change_streams"] += 1
        stream.pump()

    def _answer_dse(
        self, message_id: int, op: wire.SearchOp, entry: dse.DSEEntry, paged: tuple[int, bytes] | None
    ) -> None:
        result = SearchResult()
        if self.server.dse_matches(entry, op.filter):
            result.entries.append(entry.encode(op.attributes, op.types_only))
        self._send_search(message_id, result, paged, op)

    def _send_search(
        self, message_id: int, result: SearchResult, paged: tuple[int, bytes] | None, op: wire.SearchOp
    ) -> None:
        if not isinstance(result, SearchResult):
            raise TypeError(f"backend.search returned {type(result).__name__}, not SearchResult")
        if result.cursor is not None:
            self._continue_search(message_id, result, paged, op)
            return
        if paged is None:
            self._write_entries(message_id, result, 0, len(result.entries), True, b"")
            return
        self._send_page(message_id, result, 0, paged[0], op)

    def _continue_search(
        self, message_id: int, result: SearchResult, paged: tuple[int, bytes] | None, op: wire.SearchOp
    ) -> None:
        """Finish a search the backend left unfinished: one slice per reactor turn.

        The search counts as an outstanding operation until it ends (Abandon and a closed
        connection cancel it); between two slices the reactor serves every other connection,
        so one long search costs the others at most a slice of latency.
        """
        cursor = result.cursor
        assert cursor is not None
        reactor = self.server.reactor
        call: list[Any] = [None]

        def cancel(_: defer.Deferred[SearchResult]) -> None:
            cursor.cancel()
            if call[0] is not None and call[0].active():
                call[0].cancel()

        done: defer.Deferred[SearchResult] = defer.Deferred(cancel)

        streaming = paged is None  # a paged search keeps its whole answer for the pages to come

        def write_found() -> None:
            """Send what the slices found so far: the client reads while the search goes on."""
            found = cursor.take()
            if found:
                self._write_entries(message_id, SearchResult(entries=found), 0, len(found), False, b"", closes=False)

        def step() -> None:
            call[0] = None
            if done.called:  # abandoned, or the connection went, while this slice waited
                return
            if self._closing:
                cursor.cancel()
                return
            if streaming and self._paused:
                # The client has not read what was sent: find no more until it has, so the
                # server holds at most one slice of entries beyond the socket's buffer.
                self._held_searches.append(step)
                return
            try:
                finished = cursor.run()
            except Exception:
                done.errback(Failure())
                return
            if finished:
                result.cursor = None
                done.callback(result)
                return
            if streaming:
                write_found()
            call[0] = reactor.callLater(0, step)

        self._await(message_id, ber.APP_SEARCH_RESULT_DONE, "search", done, lambda mid, r: self._send_search(mid, r, paged, op))
        if streaming:
            write_found()  # the backend's first slice
        call[0] = reactor.callLater(0, step)

    def _send_page(self, message_id: int, result: SearchResult, offset: int, size: int, op: wire.SearchOp) -> None:
        stop = offset + size
        total = len(result.entries)
        if stop >= total:
            self._write_entries(message_id, result, offset, total, True, _paged_control(total, b""))
            return
        cookie = self._next_cookie.to_bytes(8, "big")
        self._next_cookie += 1
        sessions = self._paged
        sessions[cookie] = _PagedSession(_search_key(op), result, stop, message_id)
        while len(sessions) > self.limits.max_paged_sessions:
            sessions.popitem(last=False)
        self._write_entries(message_id, result, offset, stop, False, _paged_control(total, cookie))

    def _continue_paged(self, message_id: int, op: wire.SearchOp, size: int, cookie: bytes) -> None:
        if not cookie:  # size 0 without a cookie: nothing asked for
            self._write_entries(message_id, SearchResult(), 0, 0, True, _paged_control(0, b""))
            return
        session = self._paged.pop(cookie, None)
        if session is None:
            self._result(message_id, ber.APP_SEARCH_RESULT_DONE, ResultCode.UNWILLING_TO_PERFORM, "unknown paged results cookie")
            return
        if session.key != _search_key(op):
            self._result(
                message_id,
                ber.APP_SEARCH_RESULT_DONE,
                ResultCode.UNWILLING_TO_PERFORM,
                "paged results cookie belongs to a different search",
            )
            return
        if size == 0:  # RFC 2696: a size of 0 abandons the paged search
            self._write_entries(message_id, SearchResult(), 0, 0, True, _paged_control(0, b""))
            return
        self._send_page(message_id, session.result, session.offset, size, op)

    def _write_entries(
        self,
        message_id: int,
        result: SearchResult,
        start: int,
        stop: int,
        final: bool,
        controls: bytes,
        *,
        closes: bool = True,
    ) -> None:
        """Write entries ``start:stop`` and (``closes``) the SearchResultDone.

        Small results go out in one transport write.  Large ones (a full dump) are streamed in
        chunks as the transport drains, so the server never holds a second copy of a
        100,000-entry answer in its send buffer.  Without ``closes`` only the entries are
        written: part of a search whose later slices follow.
        """
        if self._closing:
            return
        if stop - start > STREAM_CHUNK_ENTRIES or self._streams or self._paused:
            self._streams.append([message_id, result, start, stop, final, controls, closes])
            self._write_streams()
            return
        self._write_chunk(message_id, result, start, stop, final, controls, done=closes)

    def _write_streams(self) -> None:
        """Write queued results chunk by chunk until they are done or the transport pauses us."""
        streams = self._streams
        while streams and not (self._paused or self._closing):
            job = streams[0]
            message_id, result, start, stop, final, controls, closes = job
            end = min(stop, start + STREAM_CHUNK_ENTRIES)
            last = end >= stop
            if last:
                streams.pop(0)
            else:
                job[2] = end
            self._write_chunk(message_id, result, start, end, final and last, controls if last else b"", done=last and closes)

    def _send(self, data: bytes) -> None:
        """Write an answer: straight to the socket when nothing is queued before it.

        Twisted's ``write`` always queues and sends on the next reactor turn, which costs every
        small answer a second epoll round (arm for writing, wake, send, disarm).  When the
        transport's buffer is empty the answer is sent at once; whatever the kernel does not
        take (or any error) goes through ``write`` as before, so ordering, flow control and
        connection loss behave exactly as they do without this.  An answer that fits one of
        Twisted's sends goes straight to the socket's ``send``, as ``writeSomeData`` would send it.
        """
        transport: Any = self.transport
        if (
            self._direct
            and not transport.dataBuffer
            and not transport._tempDataLen
            and transport.connected
            and not (transport.disconnecting or transport._writeDisconnected)
        ):
            if len(data) <= _SEND_AT_ONCE:
                # what Twisted's writeSomeData does for it, without its two Python calls
                try:
                    sent = transport.socket.send(data)
                except OSError:  # full (queued), or failed: write() reports that in order
                    transport.write(data)
                    return
            else:
                sent = transport.writeSomeData(data)
                if not isinstance(sent, int):  # the connection failed: let write() report it in order
                    transport.write(data)
                    return
            if sent == len(data):
                return
            data = data[sent:]
        transport.write(data)

    # IPushProducer: the transport pauses us when its send buffer is full, resumes us when drained.
    def pauseProducing(self) -> None:
        self._paused = True
        if not self._reading_paused and not self._closing:
            self._reading_paused = True
            self.transport.pauseProducing()  # type: ignore[union-attr]

    def resumeProducing(self) -> None:
        if self._closing:
            return
        self._paused = False
        if self.limits.idle_timeout > 0:
            self._last_activity = self.server.reactor.seconds()  # the client is reading
        self._write_streams()
        if self._held_searches and not self._paused:
            held, self._held_searches = self._held_searches, []
            for step in held:  # their next slices, one reactor turn from now
                self.server.reactor.callLater(0, step)
        for stream in list(self._change_streams.values()):
            stream.pump()
        if not (self._paused or self._streams or self._closing) and self._buffer:
            self._consume_buffer()  # requests that waited for the output to drain
        self._after_input()

    def stopProducing(self) -> None:
        self._streams.clear()
        self._held_searches.clear()

    def _write_chunk(
        self,
        message_id: int,
        result: SearchResult,
        start: int,
        stop: int,
        final: bool,
        controls: bytes,
        done: bool = True,
    ) -> None:
        id_element = ber.integer(message_id)
        id_length = len(id_element)
        headers = _SEQUENCE_HEADERS
        entries = result.entries[start:stop] if start or stop != len(result.entries) else result.entries
        parts: list[bytes]
        if len(entries) <= 8:  # a lookup's one entry, a few: appended
            parts = []
            append = parts.append
            for entry in entries:
                append(_message_header(id_length + len(entry)))
                append(id_element)
                append(entry)
        else:
            # header, messageID, entry for each entry, laid out by slice assignment: much less of
            # the interpreter's work than appending them one by one (5,000 entries of a GIIS answer)
            parts = [id_element] * (3 * len(entries))
            parts[2::3] = entries
            try:
                parts[0::3] = [headers[id_length + len(entry)] for entry in entries]
            except IndexError:  # an entry of 8 KiB or more: its header is made
                parts[0::3] = [_message_header(id_length + len(entry)) for entry in entries]
            append = parts.append
        if self._observers:
            pending = self._ops.get(message_id)
            if pending is not None:
                self._ops[message_id] = (pending[0], pending[1], pending[2] + stop - start)
        if not done:
            self._send(b"".join(parts))
            return
        if final:
            for reference in result.references:
                append(ber.ldap_message(message_id, reference))
            code, message, matched = result.code, result.message, result.matched_dn
        else:
            code, message, matched = ResultCode.SUCCESS, "", ""
        if code == 0 and not message and not matched and not controls:
            append(_message_header(id_length + len(_DONE_SUCCESS)))
            append(id_element)
            append(_DONE_SUCCESS)
        else:
            done_op = ber.ldap_result(ber.APP_SEARCH_RESULT_DONE, code, matched.encode("utf-8"), message.encode("utf-8"))
            append(ber.ldap_message(message_id, done_op, controls))
        self._send(b"".join(parts))
        if self._observers:
            self._log_result(message_id, ber.APP_SEARCH_RESULT_DONE, code, message, search=True)

    # -- Bind, Unbind, Abandon --------------------------------------------------------------------

    def _handle_bind(self, message_id: int, op: wire.BindOp, controls: tuple[wire.Control, ...]) -> None:
        self.bind_dn = ""  # a failed bind leaves the connection anonymous (RFC 4513, 4.2.1)
        if self._refuse_critical(message_id, ber.APP_BIND_RESPONSE, controls):
            return
        if op.version not in (2, 3):
            self._result(
                message_id, ber.APP_BIND_RESPONSE, ResultCode.PROTOCOL_ERROR, f"LDAP version {op.version} is not supported"
            )
            return
        if op.password is None:
            if (op.sasl_mechanism or "").upper() == "EXTERNAL":
                self._bind_external(message_id, op)
                return
            self._result(
                message_id,
                ber.APP_BIND_RESPONSE,
                ResultCode.AUTH_METHOD_NOT_SUPPORTED,
                f"SASL bind ({op.sasl_mechanism}) is not supported (EXTERNAL is, under TLS with a client certificate)",
            )
            return
        if op.password and not (self.tls or self.server.plain_passwords):
            # Refused before the password is looked at: it has crossed the network in the
            # clear already, and the answer must not tell whether it was right.
            log.warn("refused a password bind as {dn} in the clear from {peer}", dn=op.dn, peer=self._peer)
            self._result(
                message_id,
                ber.APP_BIND_RESPONSE,
                ResultCode.CONFIDENTIALITY_REQUIRED,
                "a password bind needs TLS: use StartTLS (ldapsearch -ZZ) or ldaps:// first",
            )
            return
        if not op.dn:
            if op.password:
                self._result(message_id, ber.APP_BIND_RESPONSE, ResultCode.INVALID_CREDENTIALS, "password without a DN")
            else:
                self._result(message_id, ber.APP_BIND_RESPONSE, ResultCode.SUCCESS)
            return
        if not op.password:
            self._result(
                message_id,
                ber.APP_BIND_RESPONSE,
                ResultCode.UNWILLING_TO_PERFORM,
                "unauthenticated bind (DN with no password) disallowed",
            )
            return
        dn_key = "dn:" + dse.normalise_dn(op.dn)
        address_key = "address:" + self._host
        throttle = self.server.bind_throttle
        reactor = self.server.reactor
        password = op.password

        def judge() -> str:
            expected = self.server.credentials.get(dn_key[3:])
            now = reactor.seconds()
            if expected is None or not passwords.matches(expected, password):
                dn_failures = throttle.record(dn_key, now)
                address_failures = throttle.record(address_key, now)
                self.server.stats["failed_binds"] += 1
                log.warn(
                    "failed bind as {dn} from {peer}: {dn_failures} recent failures for this DN, "
                    "{address_failures} from {host}; the next bind waits {delay:g} s",
                    dn=op.dn,
                    peer=self._peer,
                    host=self._host,
                    dn_failures=dn_failures,
                    address_failures=address_failures,
                    delay=throttle.delay((dn_key, address_key), now),
                )
                raise InvalidCredentials("invalid credentials for DN")
            throttle.forget(dn_key)
            return op.dn

        def bound(mid: int, dn: str) -> None:
            self.bind_dn = dn
            self._result(mid, ber.APP_BIND_RESPONSE, ResultCode.SUCCESS)

        # Wait before judging, whatever the outcome, so a right password is not answered
        # faster than a wrong one while this DN or address is being guessed at.
        delay = throttle.delay((dn_key, address_key), reactor.seconds())
        if delay > 0:
            self._call_backend(
                message_id, ber.APP_BIND_RESPONSE, "bind", lambda: task.deferLater(reactor, delay, judge), bound
            )
        else:
            self._call_backend(message_id, ber.APP_BIND_RESPONSE, "bind", judge, bound)

    def _bind_external(self, message_id: int, op: wire.BindOp) -> None:
        """SASL EXTERNAL (RFC 4422, appendix A; RFC 4513, 5.2.1.2): the identity is the subject of
        the client certificate TLS verified, as an RFC 4514 DN.  An authorization identity may be
        sent only if it names that same DN (no proxy authorization)."""
        subject = tls.peer_subject(self.transport) if self.tls else ""
        if not subject:
            why = "no TLS on this connection" if not self.tls else "no client certificate was presented"
            self._result(
                message_id,
                ber.APP_BIND_RESPONSE,
                ResultCode.INAPPROPRIATE_AUTHENTICATION,
                f"SASL EXTERNAL needs TLS with a client certificate signed by the server's CA ({why})",
            )
            return
        authzid = (op.sasl_credentials or b"").decode("utf-8", "replace")
        if authzid and dse.normalise_dn(authzid[3:] if authzid.lower().startswith("dn:") else authzid) != (
            dse.normalise_dn(subject)
        ):
            self._result(
                message_id,
                ber.APP_BIND_RESPONSE,
                ResultCode.INSUFFICIENT_ACCESS_RIGHTS,
                f"authorization identity {authzid!r} is not the certificate's subject {subject!r}",
            )
            return
        self.bind_dn = subject
        log.info("SASL EXTERNAL bind from {peer} as {dn}", peer=self._peer, dn=subject)
        self._result(message_id, ber.APP_BIND_RESPONSE, ResultCode.SUCCESS)

    def _handle_unbind(self, message_id: int, op: wire.UnbindOp, controls: tuple[wire.Control, ...]) -> None:
        self._close()

    def _handle_abandon(self, message_id: int, op: wire.AbandonOp, controls: tuple[wire.Control, ...]) -> None:
        target = op.message_id
        pending = self._pending.pop(target, None)
        if pending is not None:
            pending.cancel()
        for cookie in [c for c, s in self._paged.items() if s.message_id == target]:
            del self._paged[cookie]

    # -- Compare, Add, writes, Extended -----------------------------------------------------------

    def _refuse_critical(self, message_id: int, tag: int, controls: tuple[wire.Control, ...]) -> bool:
        for control in controls:
            if control.critical:
                self._result(
                    message_id,
                    tag,
                    ResultCode.UNAVAILABLE_CRITICAL_EXTENSION,
                    f"critical control {control.oid} is not supported",
                )
                return True
        return False

    def _handle_compare(self, message_id: int, op: wire.CompareOp, controls: tuple[wire.Control, ...]) -> None:
        if self._refuse_critical(message_id, ber.APP_COMPARE_RESPONSE, controls):
            return

        def answer(mid: int, matched: Any) -> None:
            code = ResultCode.COMPARE_TRUE if matched else ResultCode.COMPARE_FALSE
            self._result(mid, ber.APP_COMPARE_RESPONSE, code)

        self._call_backend(
            message_id,
            ber.APP_COMPARE_RESPONSE,
            "compare",
            lambda: self.backend.compare(op.dn, op.attribute, op.value),
            answer,
        )

    def _handle_add(self, message_id: int, op: wire.AddOp, controls: tuple[wire.Control, ...]) -> None:
        if self._refuse_critical(message_id, ber.APP_ADD_RESPONSE, controls):
            return
        bind_dn = self.bind_dn
        self._call_backend(
            message_id,
            ber.APP_ADD_RESPONSE,
            "add",
            lambda: self.backend.add(op.dn, op.attributes, bind_dn, peer=self._host),
            lambda mid, _: self._result(mid, ber.APP_ADD_RESPONSE, ResultCode.SUCCESS),
        )

    def _handle_write(self, message_id: int, op: Any, controls: tuple[wire.Control, ...]) -> None:
        tag = _RESPONSE_TAGS[type(op)]
        reason = getattr(self.backend, "write_refusal_message", None) or DEFAULT_WRITE_REFUSAL
        self._result(message_id, tag, ResultCode.UNWILLING_TO_PERFORM, reason)

    def _handle_extended(self, message_id: int, op: wire.ExtendedOp, controls: tuple[wire.Control, ...]) -> None:
        if self._refuse_critical(message_id, ber.APP_EXTENDED_RESPONSE, controls):
            return
        if op.name == START_TLS_OID:
            self._handle_start_tls(message_id)
            return
        if op.name == sync.CANCEL_OID and self.server.streams:
            self._handle_cancel(message_id, op)
            return
        if op.name == WHO_AM_I_OID:
            authz = f"dn:{self.bind_dn}" if self.bind_dn else ""
            self._result(
                message_id, ber.APP_EXTENDED_RESPONSE, ResultCode.SUCCESS, extra=ber.tlv(ber.EXTENDED_RESPONSE_VALUE, authz.encode("utf-8"))
            )
            return
        self._result(
            message_id,
            ber.APP_EXTENDED_RESPONSE,
            ResultCode.PROTOCOL_ERROR,
            f"extended operation {op.name} is not supported",
        )


    def _handle_cancel(self, message_id: int, op: wire.ExtendedOp) -> None:
        """RFC 3909: a change stream ends with ``canceled``, then the Cancel succeeds.

        Only change streams can be cancelled; other operations are answered before a Cancel
        could reach them, or cannotCancel (121), and an unknown ID is noSuchOperation (119).
        """
        try:
            target = wire.decode_cancel(op.value)
        except ProtocolError as e:
            self._result(message_id, ber.APP_EXTENDED_RESPONSE, ResultCode.PROTOCOL_ERROR, e.message)
            return
        stream = self._change_streams.get(target)
        if stream is not None:
            stream.end(CANCELED, "cancelled by the client")
            self._result(message_id, ber.APP_EXTENDED_RESPONSE, ResultCode.SUCCESS)
        elif target in self._pending:
            self._result(message_id, ber.APP_EXTENDED_RESPONSE, CANNOT_CANCEL, f"operation {target} cannot be cancelled")
        else:
            self._result(message_id, ber.APP_EXTENDED_RESPONSE, NO_SUCH_OPERATION, f"no operation {target} to cancel")

    def _handle_start_tls(self, message_id: int) -> None:
        """Accept StartTLS (the switch happens once the request's bytes are consumed) or refuse."""
        problem: tuple[int, str] | None = None
        if self.server.tls_context is None:
            problem = (ResultCode.UNAVAILABLE, "StartTLS is not available: this server has no TLS configured")
        elif self.tls:
            problem = (ResultCode.OPERATIONS_ERROR, "TLS is already established on this connection")
        elif self._pending or self._streams:
            problem = (ResultCode.OPERATIONS_ERROR, "StartTLS with operations outstanding: wait for their results")
        elif not hasattr(self.transport, "startTLS"):
            problem = (ResultCode.UNAVAILABLE, "StartTLS is not available on this transport")
        if problem is not None:
            self._result(
                message_id,
                ber.APP_EXTENDED_RESPONSE,
                problem[0],
                problem[1],
                extra=ber.tlv(ber.EXTENDED_RESPONSE_NAME, START_TLS_OID.encode("ascii")),
            )
            return
        self._start_tls = message_id


_RESPONSE_TAGS: dict[type, int] = {
    wire.SearchOp: ber.APP_SEARCH_RESULT_DONE,
    wire.BindOp: ber.APP_BIND_RESPONSE,
    wire.CompareOp: ber.APP_COMPARE_RESPONSE,
    wire.AddOp: ber.APP_ADD_RESPONSE,
    wire.ModifyOp: ber.APP_MODIFY_RESPONSE,
    wire.DeleteOp: ber.APP_DEL_RESPONSE,
    wire.ModifyDNOp: ber.APP_MODIFY_DN_RESPONSE,
    wire.ExtendedOp: ber.APP_EXTENDED_RESPONSE,
}


def _can_send_directly(transport: Any) -> bool:
    """A plain ``twisted.internet.tcp`` connection, whose write buffer :meth:`_send` can see."""
    return isinstance(transport, tcp.Connection) and not getattr(transport, "TLS", True) and all(
        hasattr(transport, a) for a in ("dataBuffer", "_tempDataLen", "_writeDisconnected", "writeSomeData", "socket")
    )


def _search_key(op: wire.SearchOp) -> tuple[Any, ...]:
    """What must stay the same between the pages of one paged search (RFC 2696)."""
    return (dse.normalise_dn(op.base), op.scope, op.filter, op.attributes, op.types_only)


def _paged_control(size: int, cookie: bytes) -> bytes:
    """The ``[0] Controls`` element carrying a paged results response control."""
    value = ber.sequence([ber.integer(size), ber.octet_string(cookie)])
    control = ber.sequence([ber.octet_string(PAGED_RESULTS_OID.encode("ascii")), ber.octet_string(value)])
    return ber.tlv(ber.CONTROLS, control)
