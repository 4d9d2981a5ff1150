"""BER for LDAP, both directions: the tag table, the encoders and the one element reader.

Theory of operation
-------------------
Every module that puts LDAP on the wire or takes it off uses this one: the directory encodes
each entry here once when it enters the tree, the server (:mod:`gridinfo.ldap.wire`) decodes
requests with :func:`read_header`/:func:`expect`, the client (:mod:`gridinfo.ldap.client`) and
the GIIS forwarder walk the answers of children with the same readers, and the load generator
frames responses with :func:`read_pdu_header` and :func:`read_header`.

Only definite lengths are produced and accepted (RFC 4511, section 5.1).  Inside a message a
length field has at most 4 octets (no LDAP element can be larger than the PDU limit anyway); the
header of a whole PDU may have up to 8, so that the PDU size limit can name the announced size.

The readers take ``(data, pos, end)``, where ``end`` is the end of the enclosing element, and
check every length against it.  Anything wrong raises :class:`gridinfo.errors.ProtocolError`
saying what and at which offset; the client turns that into its peer's fault
(``PeerProtocolError``).  The length octets are decoded in :func:`read_header` (every element)
and :func:`read_pdu_header` (a PDU header, which may be incomplete), both inline: they are the
hot path of every decoded message; their diagnostics are one helper's.
"""

from __future__ import annotations

from collections.abc import Iterable

from gridinfo.errors import ProtocolError

# ---------------------------------------------------------------------------------------------
# Tags (RFC 4511, appendix B).  Universal:
# ---------------------------------------------------------------------------------------------

BOOLEAN = 0x01
INTEGER = 0x02
OCTET_STRING = 0x04
ENUMERATED = 0x0A
SEQUENCE = 0x30
SET = 0x31

# Application tags: the protocol operations.
APP_BIND_REQUEST = 0x60
APP_BIND_RESPONSE = 0x61
APP_UNBIND_REQUEST = 0x42  # primitive (NULL)
APP_SEARCH_REQUEST = 0x63
APP_SEARCH_RESULT_ENTRY = 0x64
APP_SEARCH_RESULT_DONE = 0x65
APP_MODIFY_REQUEST = 0x66
APP_MODIFY_RESPONSE = 0x67
APP_ADD_REQUEST = 0x68
APP_ADD_RESPONSE = 0x69
APP_DEL_REQUEST = 0x4A  # primitive (LDAPDN)
APP_DEL_RESPONSE = 0x6B
APP_MODIFY_DN_REQUEST = 0x6C
APP_MODIFY_DN_RESPONSE = 0x6D
APP_COMPARE_REQUEST = 0x6E
APP_COMPARE_RESPONSE = 0x6F
APP_ABANDON_REQUEST = 0x50  # primitive (MessageID)
APP_SEARCH_RESULT_REFERENCE = 0x73
APP_EXTENDED_REQUEST = 0x77
APP_EXTENDED_RESPONSE = 0x78
APP_INTERMEDIATE_RESPONSE = 0x79

#: The operations only a server sends, by tag (a client sending one is a protocol error).
RESPONSE_NAMES = {
    APP_BIND_RESPONSE: "BindResponse",
    APP_SEARCH_RESULT_ENTRY: "SearchResultEntry",
    APP_SEARCH_RESULT_DONE: "SearchResultDone",
    APP_MODIFY_RESPONSE: "ModifyResponse",
    APP_ADD_RESPONSE: "AddResponse",
    APP_DEL_RESPONSE: "DelResponse",
    APP_MODIFY_DN_RESPONSE: "ModifyDNResponse",
    APP_COMPARE_RESPONSE: "CompareResponse",
    APP_SEARCH_RESULT_REFERENCE: "SearchResultReference",
    APP_EXTENDED_RESPONSE: "ExtendedResponse",
    APP_INTERMEDIATE_RESPONSE: "IntermediateResponse",
}

# Context tags.  LDAPMessage: controls [0].
CONTROLS = 0xA0
# Filter choices.
FILTER_AND = 0xA0
FILTER_OR = 0xA1
FILTER_NOT = 0xA2
FILTER_EQUALITY = 0xA3
FILTER_SUBSTRINGS = 0xA4
FILTER_GREATER_OR_EQUAL = 0xA5
FILTER_LESS_OR_EQUAL = 0xA6
FILTER_PRESENT = 0x87
FILTER_APPROX = 0xA8
FILTER_EXTENSIBLE = 0xA9
# SubstringFilter choices.
SUBSTRING_INITIAL = 0x80
SUBSTRING_ANY = 0x81
SUBSTRING_FINAL = 0x82
# MatchingRuleAssertion fields.
MATCHING_RULE = 0x81
MATCH_TYPE = 0x82
MATCH_VALUE = 0x83
DN_ATTRIBUTES = 0x84
# BindRequest authentication choices.
AUTH_SIMPLE = 0x80
AUTH_SASL = 0xA3
# ExtendedRequest and ExtendedResponse fields.
EXTENDED_REQUEST_NAME = 0x80
EXTENDED_REQUEST_VALUE = 0x81
EXTENDED_RESPONSE_NAME = 0x8A
EXTENDED_RESPONSE_VALUE = 0x8B

#: Largest length field accepted in a PDU header (octets); 8 octets say "up to 2**64 bytes",
#: which is then refused by the PDU size limit with a clear message.
MAX_PDU_LENGTH_OCTETS = 8
#: Largest length field accepted inside a message (octets).
MAX_LENGTH_OCTETS = 4

# ---------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------

_SHORT_LENGTHS = [bytes((n,)) for n in range(128)]


def encode_length(n: int) -> bytes:
    """Encode a definite length."""
    if n < 128:
        return _SHORT_LENGTHS[n]
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, value: bytes) -> bytes:
    """Encode one tag-length-value."""
    n = len(value)
    if n < 128:
        return bytes((tag, n)) + value
    return bytes((tag,)) + encode_length(n) + value


def octet_string(value: bytes) -> bytes:
    return tlv(OCTET_STRING, value)


def integer(value: int, tag: int = INTEGER) -> bytes:
    """Encode a (signed, two's complement) INTEGER or ENUMERATED."""
    if 0 <= value < 128:
        return bytes((tag, 1, value))
    length = (value.bit_length() + 8) // 8
    return tlv(tag, value.to_bytes(length, "big", signed=True))


def sequence(parts: Iterable[bytes], tag: int = SEQUENCE) -> bytes:
    return tlv(tag, b"".join(parts))


def partial_attribute(name: bytes, values: Iterable[bytes]) -> bytes:
    """PartialAttribute ::= SEQUENCE { type AttributeDescription, vals SET OF value }."""
    short = _SHORT_LENGTHS
    vals = b"".join([b"\x04" + short[len(v)] + v if len(v) < 128 else tlv(OCTET_STRING, v) for v in values])
    return tlv(SEQUENCE, tlv(OCTET_STRING, name) + tlv(SET, vals))


def search_result_entry(dn: bytes, attributes: Iterable[bytes]) -> bytes:
    """[APPLICATION 4] SearchResultEntry from a DN and encoded PartialAttributes."""
    return tlv(APP_SEARCH_RESULT_ENTRY, tlv(OCTET_STRING, dn) + tlv(SEQUENCE, b"".join(attributes)))


def ldap_message(message_id: int, protocol_op: bytes, controls: bytes = b"") -> bytes:
    """LDAPMessage ::= SEQUENCE { messageID, protocolOp, controls [0] OPTIONAL }.

    ``controls`` is the already encoded ``[0] Controls`` element, or empty.
    """
    return tlv(SEQUENCE, integer(message_id) + protocol_op + controls)


def ldap_result(tag: int, code: int, matched_dn: bytes = b"", message: bytes = b"", extra: bytes = b"") -> bytes:
    """An LDAPResult-shaped protocol op (SearchResultDone, BindResponse, ...)."""
    return tlv(tag, integer(code, ENUMERATED) + tlv(OCTET_STRING, matched_dn) + tlv(OCTET_STRING, message) + extra)


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------


def read_pdu_header(buf: bytes | bytearray, pos: int, end: int) -> tuple[int, int] | None:
    """Where the LDAPMessage starting at ``buf[pos]`` ends: ``(header_length, content_length)``.

    Returns None while the header itself is incomplete (framing waits for more bytes).  Raises
    ProtocolError for anything that is not the start of an LDAPMessage: another outer tag, the
    indefinite form, a length field longer than 8 octets.
    """
    if end - pos < 2:
        return None
    tag = buf[pos]
    if tag != SEQUENCE:
        raise ProtocolError(f"expected an LDAPMessage (SEQUENCE, tag 0x30), got tag 0x{tag:02x}")
    first = buf[pos + 1]
    if first < 0x80:
        return 2, first
    octets = first & 0x7F
    if octets > MAX_PDU_LENGTH_OCTETS or first == 0x80:
        raise _length_field_error(first, "LDAPMessage", pos)
    if end - pos < 2 + octets:
        return None
    return 2 + octets, int.from_bytes(buf[pos + 2 : pos + 2 + octets], "big")


def _length_field_error(first: int, what: str, pos: int) -> ProtocolError:
    """What is wrong with the refused long-form length octet ``first`` of the element at ``pos``."""
    if first == 0x80:
        return ProtocolError(f"indefinite length in {what} at offset {pos} (RFC 4511, section 5.1)")
    return ProtocolError(f"length field of {first & 0x7F} octets in {what} at offset {pos}")


def _truncated(what: str, pos: int) -> ProtocolError:
    return ProtocolError(f"truncated {what} at offset {pos}")


def read_header(data: bytes | bytearray, pos: int, end: int, what: str = "BER element") -> tuple[int, int, int]:
    """Read a tag and a definite length; returns ``(tag, content_start, content_end)``.

    The element must fit within ``end``; ProtocolError names ``what`` and the offset if not.
    The long form is decoded inline (it is every element over 127 bytes: entries, messages).
    """
    if pos + 2 > end:
        raise _truncated(what, pos)
    tag = data[pos]
    n = data[pos + 1]
    start = pos + 2
    if n >= 0x80:
        octets = n & 0x7F
        if octets > MAX_LENGTH_OCTETS or n == 0x80:
            raise _length_field_error(n, what, pos)
        if start + octets > end:
            raise _truncated(what, pos)
        n = int.from_bytes(data[start : start + octets], "big")
        start += octets
    stop = start + n
    if stop > end:
        raise ProtocolError(f"{what} at offset {pos} claims {n} bytes but only {end - start} remain")
    return tag, start, stop


def expect(data: bytes | bytearray, pos: int, end: int, tag: int, what: str) -> tuple[int, int]:
    """Read an element that must carry ``tag``; returns ``(content_start, content_end)``."""
    # Fast path: the expected tag with a short-form length.
    if pos + 2 <= end and data[pos] == tag:
        n = data[pos + 1]
        if n < 0x80:
            stop = pos + 2 + n
            if stop > end:
                raise ProtocolError(f"{what} at offset {pos} claims {n} bytes but only {end - pos - 2} remain")
            return pos + 2, stop
    got, start, stop = read_header(data, pos, end, what)
    if got != tag:
        raise ProtocolError(f"expected {what} (tag 0x{tag:02x}) at offset {pos}, got tag 0x{got:02x}")
    return start, stop
