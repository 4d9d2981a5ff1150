"""Minimal BER encoding for the pieces of LDAP messages gridinfo builds itself.

Entries are encoded once when they enter the tree; a search result is that encoding plus a
message header.  Only definite lengths are produced (RFC 4511, section 5.1).
"""

from __future__ import annotations

from collections.abc import Iterable

# Tags used in LDAP messages.
SEQUENCE = 0x30
SET = 0x31
OCTET_STRING = 0x04
INTEGER = 0x02
ENUMERATED = 0x0A
BOOLEAN = 0x01
APP_SEARCH_RESULT_ENTRY = 0x64  # [APPLICATION 4] constructed
APP_SEARCH_RESULT_DONE = 0x65  # [APPLICATION 5] constructed
APP_SEARCH_RESULT_REFERENCE = 0x73  # [APPLICATION 19] constructed

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
