"""Decoding LDAP requests off the wire: framing, a fast strict decoder, plain request objects.

Why one module: the framing, the strict decoder and the request objects it yields are one decoder,
read in the order a PDU is; nothing uses one part without the others.

Theory of operation
-------------------
The server accumulates bytes and asks :func:`read_pdu_header` where the next LDAPMessage ends
(this checks the outer tag and the length *before* the body arrives, so an oversized PDU is
refused without buffering it).  Once the whole PDU is there, :func:`decode_message` turns it
into a :class:`Message`: the message ID, one operation object and the request controls.

The operations a directory server sees all the time (Search, Bind, Unbind, Abandon, Compare)
and the small ones (Add, Delete, Extended) are decoded by hand here: every element's tag is
checked, every length is checked against its enclosing element, integers are range-checked,
strings must be UTF-8, and filters nest at most :data:`MAX_FILTER_DEPTH` deep.  Modify and
ModifyDN, which gridinfo only refuses, go through ldaptor's ``pureldap`` decoder.  Anything
wrong raises :class:`gridinfo.errors.ProtocolError` whose message says what and where; the
server answers it with a Notice of Disconnection.

Tags, framing and the element reader (tag, definite length, bounds) are :mod:`gridinfo.ber`'s,
shared with the client and the encoders: only definite lengths are accepted (RFC 4511,
section 5.1), and lengths of at most 4 octets inside a message.
"""

from __future__ import annotations

from typing import NamedTuple, Union

from ldaptor.protocols import pureber, pureldap

from gridinfo.ber import (
    APP_ABANDON_REQUEST,
    APP_ADD_REQUEST,
    APP_BIND_REQUEST,
    APP_COMPARE_REQUEST,
    APP_DEL_REQUEST,
    APP_EXTENDED_REQUEST,
    APP_MODIFY_DN_REQUEST,
    APP_MODIFY_REQUEST,
    APP_SEARCH_REQUEST,
    APP_UNBIND_REQUEST,
    AUTH_SASL,
    AUTH_SIMPLE,
    BOOLEAN,
    CONTROLS,
    DN_ATTRIBUTES,
    ENUMERATED,
    EXTENDED_REQUEST_NAME,
    EXTENDED_REQUEST_VALUE,
    FILTER_AND,
    FILTER_APPROX,
    FILTER_EQUALITY,
    FILTER_EXTENSIBLE,
    FILTER_GREATER_OR_EQUAL,
    FILTER_LESS_OR_EQUAL,
    FILTER_NOT,
    FILTER_OR,
    FILTER_PRESENT,
    FILTER_SUBSTRINGS,
    INTEGER,
    MATCH_TYPE,
    MATCH_VALUE,
    MATCHING_RULE,
    OCTET_STRING,
    RESPONSE_NAMES,
    SEQUENCE,
    SET,
    SUBSTRING_ANY,
    SUBSTRING_FINAL,
    SUBSTRING_INITIAL,
    expect as _expect,
    read_header as _header,
)
from gridinfo.ber import read_pdu_header as read_pdu_header  # framing, re-exported for the server
from gridinfo.directory import filters as F
from gridinfo.ldap import sync
from gridinfo.ldap.sync import PersistentSearch, SyncRequest
from gridinfo.errors import ProtocolError

#: Nested filters (and/or/not) deeper than this are refused.
MAX_FILTER_DEPTH = 100
_MAX_INT = 2**31 - 1


# ---------------------------------------------------------------------------------------------
# Decoded requests
# ---------------------------------------------------------------------------------------------


class Control(NamedTuple):
    """A request control (RFC 4511, section 4.1.11)."""

    oid: str
    critical: bool
    value: bytes | None


class SearchOp(NamedTuple):
    base: str
    scope: int
    deref_aliases: int
    size_limit: int
    time_limit: int
    types_only: bool
    filter: F.Filter
    attributes: tuple[str, ...]


class BindOp(NamedTuple):
    """A bind: ``password`` is set for simple binds, ``sasl_mechanism`` for SASL binds."""

    version: int
    dn: str
    password: bytes | None
    sasl_mechanism: str | None = None
    sasl_credentials: bytes | None = None


class UnbindOp(NamedTuple):
    pass


class AbandonOp(NamedTuple):
    message_id: int


class CompareOp(NamedTuple):
    dn: str
    attribute: str
    value: bytes


class AddOp(NamedTuple):
    dn: str
    attributes: list[tuple[str, list[bytes]]]


class DeleteOp(NamedTuple):
    dn: str


class ModifyOp(NamedTuple):
    dn: str


class ModifyDNOp(NamedTuple):
    dn: str


class ExtendedOp(NamedTuple):
    name: str
    value: bytes | None


Operation = Union[
    SearchOp, BindOp, UnbindOp, AbandonOp, CompareOp, AddOp, DeleteOp, ModifyOp, ModifyDNOp, ExtendedOp
]


class Message(NamedTuple):
    """One decoded LDAPMessage."""

    message_id: int
    op: Operation
    controls: tuple[Control, ...]


# ---------------------------------------------------------------------------------------------
# Framing
# ---------------------------------------------------------------------------------------------


def pdu_too_large_message(size: int, limit: int) -> str:
    """The diagnostic sent when a client announces a PDU over the limit."""
    return f"PDU of {size} bytes exceeds the {limit}-byte limit"


# ---------------------------------------------------------------------------------------------
# Primitive readers.  Each takes (data, pos, end) where ``end`` is the end of the enclosing
# element, and returns the decoded value plus the position after the element.  The element
# reader itself (tag and length) is gridinfo.ber's read_header / expect.
# ---------------------------------------------------------------------------------------------


def _text(data: bytes, start: int, stop: int, what: str) -> str:
    try:
        return data[start:stop].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(f"{what} is not valid UTF-8") from None


def _string(data: bytes, pos: int, end: int, what: str, tag: int = OCTET_STRING) -> tuple[str, int]:
    start, stop = _expect(data, pos, end, tag, what)
    try:
        return data[start:stop].decode("utf-8"), stop
    except UnicodeDecodeError:
        raise ProtocolError(f"{what} is not valid UTF-8") from None


def _octets(data: bytes, pos: int, end: int, what: str, tag: int = OCTET_STRING) -> tuple[bytes, int]:
    start, stop = _expect(data, pos, end, tag, what)
    return data[start:stop], stop


def _int(data: bytes, pos: int, end: int, what: str, tag: int, low: int, high: int) -> tuple[int, int]:
    start, stop = _expect(data, pos, end, tag, what)
    if stop == start + 1:  # the usual one-octet integer
        value = data[start]
        if value >= 0x80:
            value -= 0x100
    elif start == stop:
        raise ProtocolError(f"{what} at offset {pos} is empty")
    elif stop - start > 8:
        raise ProtocolError(f"{what} at offset {pos} is {stop - start} octets long")
    else:
        value = int.from_bytes(data[start:stop], "big", signed=True)
    if not low <= value <= high:
        raise ProtocolError(f"{what} {value} is outside {low}..{high}")
    return value, stop


def _bool(data: bytes, pos: int, end: int, what: str, tag: int = BOOLEAN) -> tuple[bool, int]:
    start, stop = _expect(data, pos, end, tag, what)
    if stop - start != 1:
        raise ProtocolError(f"{what} at offset {pos} must be one octet, not {stop - start}")
    return data[start] != 0, stop


def _no_trailing(pos: int, end: int, what: str) -> None:
    if pos != end:
        raise ProtocolError(f"{end - pos} unexpected bytes at the end of {what}")


# ---------------------------------------------------------------------------------------------
# Filters
# ---------------------------------------------------------------------------------------------


def _ava(data: bytes, start: int, stop: int, what: str) -> tuple[str, bytes]:
    attribute, pos = _string(data, start, stop, f"attributeDesc of {what}")
    value, pos = _octets(data, pos, stop, f"assertionValue of {what}")
    _no_trailing(pos, stop, what)
    return attribute, value


def decode_filter(data: bytes, pos: int, end: int, depth: int = 0) -> tuple[F.Filter, int]:
    """Decode one Filter element at ``data[pos]`` into the filters AST; returns (filter, next)."""
    if pos + 2 <= end and data[pos + 1] < 0x80:
        tag = data[pos]
        start = pos + 2
        stop = start + data[pos + 1]
        if stop > end:
            raise ProtocolError(f"filter at offset {pos} claims {stop - start} bytes but only {end - start} remain")
    else:
        tag, start, stop = _header(data, pos, end, "filter")
    if tag == FILTER_EQUALITY:
        # Fast path for the most common filter: both strings short.
        if start + 4 <= stop and data[start] == OCTET_STRING and data[start + 1] < 0x80:
            middle = start + 2 + data[start + 1]
            if middle + 2 <= stop and data[middle] == OCTET_STRING and middle + 2 + data[middle + 1] == stop:
                attribute = _text(data, start + 2, middle, "attributeDesc of equalityMatch filter")
                return F.Equality(attribute, data[middle + 2 : stop]), stop
        attribute, value = _ava(data, start, stop, "equalityMatch filter")
        return F.Equality(attribute, value), stop
    if tag == FILTER_PRESENT:
        return F.Present(_text(data, start, stop, "present filter")), stop
    if tag == FILTER_AND or tag == FILTER_OR:
        if depth >= MAX_FILTER_DEPTH:
            raise ProtocolError(f"filter nested deeper than {MAX_FILTER_DEPTH} levels")
        parts = []
        p = start
        while p < stop:
            sub, p = decode_filter(data, p, stop, depth + 1)
            parts.append(sub)
        return (F.And(tuple(parts)) if tag == FILTER_AND else F.Or(tuple(parts))), stop
    if tag == FILTER_NOT:
        if depth >= MAX_FILTER_DEPTH:
            raise ProtocolError(f"filter nested deeper than {MAX_FILTER_DEPTH} levels")
        sub, p = decode_filter(data, start, stop, depth + 1)
        _no_trailing(p, stop, "not filter")
        return F.Not(sub), stop
    if tag == FILTER_SUBSTRINGS:
        return _substrings(data, start, stop), stop
    if tag == FILTER_GREATER_OR_EQUAL:
        attribute, value = _ava(data, start, stop, "greaterOrEqual filter")
        return F.GreaterOrEqual(attribute, value), stop
    if tag == FILTER_LESS_OR_EQUAL:
        attribute, value = _ava(data, start, stop, "lessOrEqual filter")
        return F.LessOrEqual(attribute, value), stop
    if tag == FILTER_APPROX:
        attribute, value = _ava(data, start, stop, "approxMatch filter")
        return F.Approx(attribute, value), stop
    if tag == FILTER_EXTENSIBLE:
        return _extensible(data, start, stop), stop
    raise ProtocolError(f"unknown filter choice (tag 0x{tag:02x}) at offset {pos}")


def _substrings(data: bytes, start: int, stop: int) -> F.Substrings:
    attribute, pos = _string(data, start, stop, "type of substrings filter")
    seq_start, seq_stop = _expect(data, pos, stop, SEQUENCE, "substrings of substrings filter")
    _no_trailing(seq_stop, stop, "substrings filter")
    initial: bytes | None = None
    final: bytes | None = None
    middle: list[bytes] = []
    p = seq_start
    index = 0
    while p < seq_stop:
        tag, s, e = _header(data, p, seq_stop, "substring")
        if final is not None:
            raise ProtocolError("substrings filter has an element after 'final'")
        if tag == SUBSTRING_INITIAL:
            if index != 0:
                raise ProtocolError("substrings filter has 'initial' after its first element")
            initial = data[s:e]
        elif tag == SUBSTRING_ANY:
            middle.append(data[s:e])
        elif tag == SUBSTRING_FINAL:
            final = data[s:e]
        else:
            raise ProtocolError(f"unknown substring choice (tag 0x{tag:02x}) at offset {p}")
        index += 1
        p = e
    if index == 0:
        raise ProtocolError("substrings filter without any substring")
    return F.Substrings(attribute, initial, tuple(middle), final)


_EXTENSIBLE_ORDER = {MATCHING_RULE: 1, MATCH_TYPE: 2, MATCH_VALUE: 3, DN_ATTRIBUTES: 4}


def _extensible(data: bytes, start: int, stop: int) -> F.Extensible:
    rule: str | None = None
    attribute: str | None = None
    value: bytes | None = None
    dn_attributes = False
    p = start
    last = 0
    while p < stop:
        tag, s, e = _header(data, p, stop, "extensibleMatch field")
        order = _EXTENSIBLE_ORDER.get(tag)
        if order is None:
            raise ProtocolError(f"unknown extensibleMatch field (tag 0x{tag:02x}) at offset {p}")
        if order <= last:
            raise ProtocolError("extensibleMatch fields out of order or repeated")
        last = order
        if tag == MATCHING_RULE:
            rule = _text(data, s, e, "matchingRule")
        elif tag == MATCH_TYPE:
            attribute = _text(data, s, e, "type of extensibleMatch")
        elif tag == MATCH_VALUE:
            value = data[s:e]
        else:
            if e - s != 1:
                raise ProtocolError("dnAttributes of extensibleMatch must be one octet")
            dn_attributes = data[s] != 0
        p = e
    if value is None:
        raise ProtocolError("extensibleMatch filter without matchValue")
    if rule is None and attribute is None:
        raise ProtocolError("extensibleMatch filter needs a matchingRule or a type")
    return F.Extensible(rule, attribute, value, dn_attributes)


# ---------------------------------------------------------------------------------------------
# Operations
# ---------------------------------------------------------------------------------------------


# The fixed fields after baseObject in the common encoding: scope, derefAliases, sizeLimit,
# timeLimit and typesOnly, each one octet long (0x?? marks the values).
_SEARCH_FIELDS_MASK = int.from_bytes(b"\xff\xff\x00" * 5, "big")
_SEARCH_FIELDS_SHAPE = int.from_bytes(b"\x0a\x01\x00\x0a\x01\x00\x02\x01\x00\x02\x01\x00\x01\x01\x00", "big")


def _search(data: bytes, start: int, stop: int) -> SearchOp:
    # Fast path: a short baseObject and one-octet fields (what clients send nearly always).
    if start + 17 <= stop and data[start] == OCTET_STRING and data[start + 1] < 0x80:
        p = start + 2 + data[start + 1]
        if p + 15 <= stop and int.from_bytes(data[p : p + 15], "big") & _SEARCH_FIELDS_MASK == _SEARCH_FIELDS_SHAPE:
            scope = data[p + 2]
            deref = data[p + 5]
            size_limit = data[p + 8]
            time_limit = data[p + 11]
            if scope <= 3 and deref <= 3 and size_limit < 0x80 and time_limit < 0x80:
                base = _text(data, start + 2, p, "baseObject")
                types_only = data[p + 14] != 0
                flt, p = decode_filter(data, p + 15, stop)
                attributes = _attribute_list(data, p, stop)
                return SearchOp(base, scope, deref, size_limit, time_limit, types_only, flt, attributes)
    base, p = _string(data, start, stop, "baseObject")
    scope, p = _int(data, p, stop, "scope", ENUMERATED, 0, 3)
    deref, p = _int(data, p, stop, "derefAliases", ENUMERATED, 0, 3)
    size_limit, p = _int(data, p, stop, "sizeLimit", INTEGER, 0, _MAX_INT)
    time_limit, p = _int(data, p, stop, "timeLimit", INTEGER, 0, _MAX_INT)
    types_only, p = _bool(data, p, stop, "typesOnly")
    flt, p = decode_filter(data, p, stop)
    return SearchOp(base, scope, deref, size_limit, time_limit, types_only, flt, _attribute_list(data, p, stop))


def _attribute_list(data: bytes, pos: int, stop: int) -> tuple[str, ...]:
    """The AttributeSelection ending the SearchRequest at ``stop``."""
    a_start, a_stop = _expect(data, pos, stop, SEQUENCE, "attributes")
    _no_trailing(a_stop, stop, "SearchRequest")
    attributes = []
    p = a_start
    while p < a_stop:
        n = data[p + 1] if p + 1 < a_stop else 0x80
        if data[p] == OCTET_STRING and n < 0x80 and p + 2 + n <= a_stop:
            try:
                attributes.append(data[p + 2 : p + 2 + n].decode("utf-8"))
            except UnicodeDecodeError:
                raise ProtocolError("attribute selector is not valid UTF-8") from None
            p += 2 + n
        else:
            name, p = _string(data, p, a_stop, "attribute selector")
            attributes.append(name)
    return tuple(attributes)


def _bind(data: bytes, start: int, stop: int) -> BindOp:
    version, p = _int(data, start, stop, "bind version", INTEGER, 1, 127)
    dn, p = _string(data, p, stop, "bind name")
    tag, s, e = _header(data, p, stop, "bind authentication")
    _no_trailing(e, stop, "BindRequest")
    if tag == AUTH_SIMPLE:
        return BindOp(version, dn, data[s:e])
    if tag == AUTH_SASL:
        mechanism, q = _string(data, s, e, "SASL mechanism")
        credentials = None
        if q < e:
            credentials, q = _octets(data, q, e, "SASL credentials")
        _no_trailing(q, e, "SaslCredentials")
        return BindOp(version, dn, None, mechanism, credentials)
    raise ProtocolError(f"unknown bind authentication choice (tag 0x{tag:02x})")


def _compare(data: bytes, start: int, stop: int) -> CompareOp:
    dn, p = _string(data, start, stop, "compare entry")
    s, e = _expect(data, p, stop, SEQUENCE, "compare assertion")
    _no_trailing(e, stop, "CompareRequest")
    attribute, value = _ava(data, s, e, "compare assertion")
    return CompareOp(dn, attribute, value)


def _add(data: bytes, start: int, stop: int) -> AddOp:
    dn, p = _string(data, start, stop, "add entry")
    l_start, l_stop = _expect(data, p, stop, SEQUENCE, "add attributes")
    _no_trailing(l_stop, stop, "AddRequest")
    attributes: list[tuple[str, list[bytes]]] = []
    p = l_start
    while p < l_stop:
        a_start, a_stop = _expect(data, p, l_stop, SEQUENCE, "add attribute")
        name, q = _string(data, a_start, a_stop, "add attribute type")
        v_start, v_stop = _expect(data, q, a_stop, SET, "add attribute values")
        _no_trailing(v_stop, a_stop, "add attribute")
        values = []
        q = v_start
        while q < v_stop:
            value, q = _octets(data, q, v_stop, "add attribute value")
            values.append(value)
        attributes.append((name, values))
        p = a_stop
    return AddOp(dn, attributes)


def _extended(data: bytes, start: int, stop: int) -> ExtendedOp:
    name, p = _string(data, start, stop, "requestName", tag=EXTENDED_REQUEST_NAME)
    value = None
    if p < stop:
        value, p = _octets(data, p, stop, "requestValue", tag=EXTENDED_REQUEST_VALUE)
    _no_trailing(p, stop, "ExtendedRequest")
    return ExtendedOp(name, value)


def _via_pureldap(data: bytes, pos: int, stop: int, what: str) -> object:
    """Decode one protocol op with ldaptor's generic decoder (for rarely used operations)."""
    context = pureldap.LDAPBERDecoderContext(fallback=pureber.BERDecoderContext())
    try:
        obj, used = pureber.berDecodeObject(context, data[pos:stop])
    except ProtocolError:
        raise
    except Exception as e:  # pureldap signals bad input with asserts and assorted errors
        raise ProtocolError(f"undecodable {what}: {type(e).__name__}: {e}") from None
    if obj is None or used != stop - pos:
        raise ProtocolError(f"undecodable {what}")
    return obj


def _as_text(value: object, what: str) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(f"{what} is not valid UTF-8") from None
    return str(value)


def _controls(data: bytes, start: int, stop: int) -> tuple[Control, ...]:
    controls = []
    p = start
    while p < stop:
        c_start, c_stop = _expect(data, p, stop, SEQUENCE, "control")
        oid, q = _string(data, c_start, c_stop, "controlType")
        critical = False
        value = None
        if q < c_stop and data[q] == BOOLEAN:
            critical, q = _bool(data, q, c_stop, "criticality")
        if q < c_stop:
            value, q = _octets(data, q, c_stop, "controlValue")
        _no_trailing(q, c_stop, "Control")
        controls.append(Control(oid, critical, value))
        p = c_stop
    return tuple(controls)


def decode_message(data: bytes, pos: int = 0, end: int | None = None) -> Message:
    """Decode the complete LDAPMessage ``data[pos:end]`` (header included).

    ``data`` must be ``bytes`` so decoded values are bytes.  Raises ProtocolError on any
    malformed or unknown content.
    """
    if end is None:
        end = len(data)
    m_start, m_stop = _expect(data, pos, end, SEQUENCE, "LDAPMessage")
    _no_trailing(m_stop, end, "the PDU")
    message_id, p = _int(data, m_start, m_stop, "messageID", INTEGER, 0, _MAX_INT)
    if p + 2 <= m_stop and data[p + 1] < 0x80:
        tag = data[p]
        s = p + 2
        e = s + data[p + 1]
        if e > m_stop:
            raise ProtocolError(f"protocolOp at offset {p} claims {e - s} bytes but only {m_stop - s} remain")
    else:
        tag, s, e = _header(data, p, m_stop, "protocolOp")
    op: Operation
    if tag == APP_SEARCH_REQUEST:
        op = _search(data, s, e)
    elif tag == APP_BIND_REQUEST:
        op = _bind(data, s, e)
    elif tag == APP_UNBIND_REQUEST:
        if e != s:
            raise ProtocolError("UnbindRequest must be empty")
        op = UnbindOp()
    elif tag == APP_ABANDON_REQUEST:
        if s == e or e - s > 8:
            raise ProtocolError("AbandonRequest must hold a message ID")
        abandoned = int.from_bytes(data[s:e], "big", signed=True)
        if not 0 <= abandoned <= _MAX_INT:
            raise ProtocolError(f"AbandonRequest message ID {abandoned} is outside 0..{_MAX_INT}")
        op = AbandonOp(abandoned)
    elif tag == APP_COMPARE_REQUEST:
        op = _compare(data, s, e)
    elif tag == APP_ADD_REQUEST:
        op = _add(data, s, e)
    elif tag == APP_DEL_REQUEST:
        op = DeleteOp(_text(data, s, e, "delete entry"))
    elif tag == APP_EXTENDED_REQUEST:
        op = _extended(data, s, e)
    elif tag == APP_MODIFY_REQUEST:
        modify = _via_pureldap(data, p, e, "ModifyRequest")
        op = ModifyOp(_as_text(getattr(modify, "object", ""), "modify object"))
    elif tag == APP_MODIFY_DN_REQUEST:
        moddn = _via_pureldap(data, p, e, "ModifyDNRequest")
        op = ModifyDNOp(_as_text(getattr(moddn, "entry", ""), "modifyDN entry"))
    elif tag in RESPONSE_NAMES:
        raise ProtocolError(f"a client may not send {RESPONSE_NAMES[tag]} (tag 0x{tag:02x})")
    else:
        raise ProtocolError(f"unknown protocol operation (tag 0x{tag:02x})")
    controls: tuple[Control, ...] = ()
    if e < m_stop:
        c_start, c_stop = _expect(data, e, m_stop, CONTROLS, "controls")
        _no_trailing(c_stop, m_stop, "LDAPMessage")
        controls = _controls(data, c_start, c_stop)
    return Message(message_id, op, controls)


def _value_sequence(value: bytes | None, what: str) -> tuple[bytes, int, int]:
    """A control's or extended request's value, which must be one SEQUENCE: (value, start, end)."""
    if value is None:
        raise ProtocolError(f"{what} missing: sent without a value")
    s, e = _expect(value, 0, len(value), SEQUENCE, what)
    _no_trailing(e, len(value), what)
    return value, s, e


def decode_paged_control(value: bytes | None) -> tuple[int, bytes]:
    """The ``(size, cookie)`` of a paged results control value (RFC 2696)."""
    value, s, e = _value_sequence(value, "paged results control value")
    size, p = _int(value, s, e, "paged results size", INTEGER, 0, _MAX_INT)
    cookie, p = _octets(value, p, e, "paged results cookie")
    _no_trailing(p, e, "paged results control value")
    return size, cookie


def decode_sync_request(value: bytes | None) -> SyncRequest:
    """A Sync Request control value (RFC 4533 section 2.2): mode, cookie, reloadHint."""
    what = "sync request control value"
    value, s, e = _value_sequence(value, what)
    mode, p = _int(value, s, e, "sync request mode", ENUMERATED, 0, 3)
    if mode not in (sync.REFRESH_ONLY, sync.REFRESH_AND_PERSIST):
        raise ProtocolError(f"sync request mode {mode} is not refreshOnly (1) or refreshAndPersist (3)")
    cookie: bytes | None = None
    if p < e and value[p] == OCTET_STRING:
        cookie, p = _octets(value, p, e, "sync request cookie")
    reload_hint = False
    if p < e:
        reload_hint, p = _bool(value, p, e, "sync request reloadHint")
    _no_trailing(p, e, what)
    return sync.SyncRequest(mode, cookie, reload_hint)


def decode_persistent_search(value: bytes | None) -> PersistentSearch:
    """A persistent search control value: changeTypes, changesOnly, returnECs."""
    what = "persistent search control value"
    value, s, e = _value_sequence(value, what)
    types, p = _int(value, s, e, "persistent search changeTypes", INTEGER, 1, 15)
    changes_only, p = _bool(value, p, e, "persistent search changesOnly")
    return_ecs, p = _bool(value, p, e, "persistent search returnECs")
    _no_trailing(p, e, what)
    return sync.PersistentSearch(types, changes_only, return_ecs)


def decode_cancel(value: bytes | None) -> int:
    """The cancelID of a Cancel extended request value (RFC 3909)."""
    what = "cancel request value"
    value, s, e = _value_sequence(value, what)
    target, p = _int(value, s, e, "cancelID", INTEGER, 0, _MAX_INT)
    _no_trailing(p, e, what)
    return target
