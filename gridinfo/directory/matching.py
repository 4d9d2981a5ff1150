"""LDAP matching rules as normalisers: each rule turns a raw value into a comparison key.

The filter engine and the directory tree never compare raw values.  They ask the schema for an
attribute's rules (``schema.matching(name)``) and compare the keys these normalisers return:
two values match under an equality rule when their keys are equal, order under an ordering rule
by ``<`` on the keys, and substrings are searched in the (string) keys of a substrings rule.

A normaliser is ``bytes -> key | None``; ``None`` means "not a valid value for this rule", which
the filter engine treats as Undefined (RFC 4511, section 4.5.1.7): an integer attribute holding
``"12a"`` matches neither ``(x=12a)`` nor ``(!(x=12a))``.

String preparation follows RFC 4518 closely enough for directory data: the value is decoded as
UTF-8 (invalid UTF-8 is not a valid value), characters that map to nothing are dropped, other
whitespace becomes a space, the text is NFKC-normalised (and case-folded for the ``caseIgnore``
rules), leading and trailing spaces are removed and inner runs of spaces become one.  Pure ASCII
values take a fast path, since nearly all grid data is ASCII.

Deliberate leniencies, because providers write values slapd would refuse:
- the IA5 rules accept any UTF-8 (``syntax_valid`` still reports non-ASCII IA5 values);
- ``booleanMatch`` accepts ``true``/``false`` in any case.

Rules are looked up by name or OID, case-insensitively, with :func:`get_rule`.  A rule that is
known by name but has no implementation here (e.g. ``presentationAddressMatch``) is listed in
:data:`KNOWN_RULE_NAMES` so schema files using it still load; such an attribute simply has no
matching for that kind, as an attribute with no EQUALITY rule has none in OpenLDAP.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from gridinfo.directory.dn import DNNormaliser, parse_dn
from gridinfo.directory.gtime import generalized_time_key
from gridinfo.errors import InvalidDNSyntax

__all__ = [
    "MatchingRule",
    "get_rule",
    "approx_normaliser",
    "syntax_valid",
    "KNOWN_RULE_NAMES",
    "prepare_case_ignore",
    "prepare_case_exact",
]


@dataclass(frozen=True, slots=True)
class MatchingRule:
    """One matching rule: its name, OID, kind and the normaliser that yields comparison keys."""

    name: str
    oid: str
    kind: str  # 'equality' | 'ordering' | 'substr'
    normalise: Callable[[bytes], Any]


# --- string preparation (RFC 4518) ------------------------------------------------------------

# Characters RFC 4518 section 2.2 maps to nothing (soft hyphen, zero-width and joiner characters,
# variation selectors, most control characters) and those it maps to SPACE.
_MAP_TO_NOTHING = dict.fromkeys(
    [0xAD, 0x1806, 0x034F, 0x180B, 0x180C, 0x180D, 0xFEFF, 0x200B, 0x200C, 0x200D, 0x2060]
    + list(range(0xFE00, 0xFE10))
    + [c for c in range(0x00, 0x20) if c not in (0x09, 0x0A, 0x0B, 0x0C, 0x0D)]
    + list(range(0x7F, 0x85))
    + list(range(0x86, 0xA0)),
    None,
)
_MAP_TO_SPACE = dict.fromkeys(
    [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000]
    + list(range(0x2000, 0x200B)),
    " ",
)
_RFC4518_MAP = {**_MAP_TO_NOTHING, **_MAP_TO_SPACE}
_ASCII_CONTROLS = re.compile(rb"[\x00-\x08\x0e-\x1f\x7f]")


def _prepare(value: bytes, fold: bool) -> str | None:
    if value.isascii():
        if _ASCII_CONTROLS.search(value) is not None:
            value = _ASCII_CONTROLS.sub(b"", value)
        text = value.decode("ascii")
        if fold:
            text = text.lower()
        # str.split() with no argument splits on runs of any whitespace and drops the ends.
        return " ".join(text.split())
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return None
    text = unicodedata.normalize("NFKC", text.translate(_RFC4518_MAP))
    if fold:
        text = unicodedata.normalize("NFKC", text.casefold())
    return " ".join(text.split())


def prepare_case_ignore(value: bytes) -> str | None:
    """RFC 4518 preparation with case folding: the key of caseIgnoreMatch and friends."""
    return _prepare(value, True)


def prepare_case_exact(value: bytes) -> str | None:
    """RFC 4518 preparation keeping case: the key of caseExactMatch and friends."""
    return _prepare(value, False)


# --- other syntaxes ---------------------------------------------------------------------------

_INTEGER = re.compile(rb"-?(?:0|[1-9][0-9]*)\Z")
_INTEGER_MAX_DIGITS = 4000  # below Python's int-parsing limit; no real attribute comes close


def integer_key(value: bytes) -> int | None:
    """INTEGER syntax as OpenLDAP validates it: optional '-', no leading zeros, no spaces, no '-0'."""
    if value.isdigit() and (value[0] != 0x30 or len(value) == 1) and len(value) <= _INTEGER_MAX_DIGITS:
        return int(value)  # the common case: a plain non-negative number
    if len(value) > _INTEGER_MAX_DIGITS or _INTEGER.match(value) is None or value == b"-0":
        return None
    return int(value)


_NUMERIC_STRING = re.compile(rb"[0-9 ]*\Z")


def numeric_string_key(value: bytes) -> str | None:
    """NumericString: digits and spaces; spaces are insignificant."""
    if _NUMERIC_STRING.match(value) is None:
        return None
    return value.replace(b" ", b"").decode("ascii")


def telephone_number_key(value: bytes) -> str | None:
    """telephoneNumberMatch: case-ignore string with spaces and hyphens removed (RFC 4518 2.6.2)."""
    text = _prepare(value, True)
    if text is None:
        return None
    for ch in (" ", "-", "\u2010", "\u2011", "\u2012", "\u2013", "\u2014", "\u2015", "\u2212"):
        text = text.replace(ch, "")
    return text


def boolean_key(value: bytes) -> bool | None:
    """Boolean syntax: TRUE or FALSE (any case accepted, see the module docstring)."""
    upper = value.upper()
    if upper == b"TRUE":
        return True
    if upper == b"FALSE":
        return False
    return None


_NUMERIC_OID = re.compile(r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))+\Z")
_DESCR = re.compile(r"[A-Za-z][A-Za-z0-9-]*\Z")


def object_identifier_key(value: bytes) -> str | None:
    """OID syntax: a numeric OID or a descriptor (name); names compare case-insensitively.

    The schema layer wraps this for objectClass and similar attributes so that a name and its
    OID give the same key.
    """
    try:
        text = value.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    if _NUMERIC_OID.match(text) or _DESCR.match(text):
        return text.lower()
    return None


def object_identifier_first_component_key(value: bytes) -> str | None:
    """The OID that opens an RFC 4512 definition such as ``( 2.5.4.3 NAME 'cn' ... )``."""
    text = value.strip()
    if text.startswith(b"("):
        text = text[1:].lstrip()
        end = 0
        while end < len(text) and text[end : end + 1] not in b" )":
            end += 1
        text = text[:end]
    return object_identifier_key(text)


def integer_first_component_key(value: bytes) -> int | None:
    """The integer that opens a definition such as a DIT structure rule."""
    text = value.strip()
    if text.startswith(b"("):
        parts = text[1:].split()
        text = parts[0] if parts else b""
    return integer_key(text)


def octet_string_key(value: bytes) -> bytes:
    """OctetString: the raw bytes; every value is valid."""
    return bytes(value)


# --- distinguished names ----------------------------------------------------------------------

DNKey = tuple[str, ...]

# DN values compare by the directory's own DN parser (RFC 4514 escapes, MDS-era spacing, ';'
# separators, quoted values); without a schema at hand every value follows caseIgnore rules.
_DN_NORMALISER = DNNormaliser(None)


def distinguished_name_key(value: bytes) -> DNKey | None:
    """A DN as the canonical keys of its RDNs (the empty DN is the empty tuple); None if invalid."""
    try:
        dn = parse_dn(value.decode("utf-8"))
    except (UnicodeDecodeError, InvalidDNSyntax):
        return None
    return tuple(_DN_NORMALISER.rdn_key(rdn) for rdn in dn)


def unique_member_key(value: bytes) -> tuple[DNKey, str] | None:
    """NameAndOptionalUID: a DN optionally followed by ``#'0101'B``."""
    uid = ""
    m = re.search(rb"#'([01]*)'B\Z", value)
    if m is not None:
        uid = m[1].decode("ascii")
        value = value[: m.start()]
    dn = distinguished_name_key(value)
    return None if dn is None else (dn, uid)


def case_ignore_list_key(value: bytes) -> tuple[str, ...] | None:
    """PostalAddress-like lists: lines separated by '$', each compared with caseIgnore rules."""
    lines = []
    for line in value.split(b"$"):
        prepared = _prepare(line.replace(b"\\24", b"$").replace(b"\\5C", b"\\").replace(b"\\5c", b"\\"), True)
        if prepared is None:
            return None
        lines.append(prepared)
    return tuple(lines)


def case_ignore_list_substrings_key(value: bytes) -> str | None:
    key = case_ignore_list_key(value)
    return None if key is None else "$".join(key)


_UUID = re.compile(rb"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\Z")


def uuid_key(value: bytes) -> str | None:
    """UUID (RFC 4530) in its string form, compared case-insensitively."""
    if _UUID.match(value) is None:
        return None
    return value.decode("ascii").lower()


# --- syntax validation ------------------------------------------------------------------------

_CSN = re.compile(rb"[0-9]{14}\.[0-9]{6}Z#[0-9a-fA-F]{6}#[0-9a-fA-F]{3}#[0-9a-fA-F]{6}\Z")


def csn_key(value: bytes) -> str | None:
    """OpenLDAP's change sequence number (``YYYYmmddHHMMSS.ffffffZ#cccccc#sid#mmmmmm``).

    Fixed width, so the lower-cased text orders as the CSNs do.
    """
    if _CSN.match(value) is None:
        return None
    return value.decode("ascii").lower()


SYNTAX_PREFIX = "1.3.6.1.4.1.1466.115.121.1."
_PRINTABLE = re.compile(rb"[A-Za-z0-9 '()+,\-./:?=]*\Z")


def _ia5_valid(value: bytes) -> bool:
    return value.isascii()


def _utf8_valid(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _directory_string_valid(value: bytes) -> bool:
    return bool(value) and _utf8_valid(value)


_SYNTAX_VALIDATORS: dict[str, Callable[[bytes], bool]] = {
    SYNTAX_PREFIX + "7": lambda v: boolean_key(v) is not None,
    SYNTAX_PREFIX + "11": lambda v: len(v) == 2 and _PRINTABLE.match(v) is not None,
    SYNTAX_PREFIX + "12": lambda v: distinguished_name_key(v) is not None,
    SYNTAX_PREFIX + "15": _directory_string_valid,
    SYNTAX_PREFIX + "24": lambda v: generalized_time_key(v) is not None,
    SYNTAX_PREFIX + "26": _ia5_valid,
    SYNTAX_PREFIX + "27": lambda v: integer_key(v) is not None,
    SYNTAX_PREFIX + "36": lambda v: bool(v) and numeric_string_key(v) is not None,
    SYNTAX_PREFIX + "38": lambda v: object_identifier_key(v) is not None,
    SYNTAX_PREFIX + "44": lambda v: _PRINTABLE.match(v) is not None,
    SYNTAX_PREFIX + "50": _directory_string_valid,
    "1.3.6.1.1.16.1": lambda v: uuid_key(v) is not None,
    "1.3.6.1.4.1.4203.666.11.2.1": lambda v: csn_key(v) is not None,
}


def syntax_valid(syntax_oid: str | None, value: bytes) -> bool:
    """Whether ``value`` is valid for the syntax; syntaxes we do not check accept everything."""
    if syntax_oid is None:
        return True
    validator = _SYNTAX_VALIDATORS.get(syntax_oid)
    return True if validator is None else validator(value)


# --- the registry -----------------------------------------------------------------------------

_RULES: dict[str, MatchingRule] = {}

_RULE_TABLE: tuple[tuple[str, str, str, Callable[[bytes], Any]], ...] = (
    ("objectIdentifierMatch", "2.5.13.0", "equality", object_identifier_key),
    ("distinguishedNameMatch", "2.5.13.1", "equality", distinguished_name_key),
    ("caseIgnoreMatch", "2.5.13.2", "equality", prepare_case_ignore),
    ("caseIgnoreOrderingMatch", "2.5.13.3", "ordering", prepare_case_ignore),
    ("caseIgnoreSubstringsMatch", "2.5.13.4", "substr", prepare_case_ignore),
    ("caseExactMatch", "2.5.13.5", "equality", prepare_case_exact),
    ("caseExactOrderingMatch", "2.5.13.6", "ordering", prepare_case_exact),
    ("caseExactSubstringsMatch", "2.5.13.7", "substr", prepare_case_exact),
    ("numericStringMatch", "2.5.13.8", "equality", numeric_string_key),
    ("numericStringOrderingMatch", "2.5.13.9", "ordering", numeric_string_key),
    ("numericStringSubstringsMatch", "2.5.13.10", "substr", numeric_string_key),
    ("caseIgnoreListMatch", "2.5.13.11", "equality", case_ignore_list_key),
    ("caseIgnoreListSubstringsMatch", "2.5.13.12", "substr", case_ignore_list_substrings_key),
    ("booleanMatch", "2.5.13.13", "equality", boolean_key),
    ("integerMatch", "2.5.13.14", "equality", integer_key),
    ("integerOrderingMatch", "2.5.13.15", "ordering", integer_key),
    ("octetStringMatch", "2.5.13.17", "equality", octet_string_key),
    ("octetStringOrderingMatch", "2.5.13.18", "ordering", octet_string_key),
    ("telephoneNumberMatch", "2.5.13.20", "equality", telephone_number_key),
    ("telephoneNumberSubstringsMatch", "2.5.13.21", "substr", telephone_number_key),
    ("uniqueMemberMatch", "2.5.13.23", "equality", unique_member_key),
    ("generalizedTimeMatch", "2.5.13.27", "equality", generalized_time_key),
    ("generalizedTimeOrderingMatch", "2.5.13.28", "ordering", generalized_time_key),
    ("integerFirstComponentMatch", "2.5.13.29", "equality", integer_first_component_key),
    ("objectIdentifierFirstComponentMatch", "2.5.13.30", "equality", object_identifier_first_component_key),
    ("caseExactIA5Match", "1.3.6.1.4.1.1466.109.114.1", "equality", prepare_case_exact),
    ("caseIgnoreIA5Match", "1.3.6.1.4.1.1466.109.114.2", "equality", prepare_case_ignore),
    ("caseIgnoreIA5SubstringsMatch", "1.3.6.1.4.1.1466.109.114.3", "substr", prepare_case_ignore),
    ("caseExactIA5SubstringsMatch", "1.3.6.1.4.1.4203.1.2.1", "substr", prepare_case_exact),
    ("uuidMatch", "1.3.6.1.1.16.2", "equality", uuid_key),
    ("uuidOrderingMatch", "1.3.6.1.1.16.3", "ordering", uuid_key),
    ("CSNMatch", "1.3.6.1.4.1.4203.666.11.2.2", "equality", csn_key),
    ("CSNOrderingMatch", "1.3.6.1.4.1.4203.666.11.2.3", "ordering", csn_key),
)

for _name, _oid, _kind, _fn in _RULE_TABLE:
    _rule = MatchingRule(_name, _oid, _kind, _fn)
    _RULES[_name.lower()] = _rule
    _RULES[_oid] = _rule

#: Names of standard rules schema files may use.  The ones not implemented above load without
#: error and give the attribute no matching of that kind.
KNOWN_RULE_NAMES: frozenset[str] = frozenset(
    {name.lower() for name, _, _, _ in _RULE_TABLE}
    | {
        "bitstringmatch",
        "octetstringsubstringsmatch",
        "presentationaddressmatch",
        "protocolinformationmatch",
        "directorystringfirstcomponentmatch",
        "wordmatch",
        "keywordmatch",
        "certificateexactmatch",
        "certificatematch",
        "certificatepairexactmatch",
        "certificatelistexactmatch",
        "attributecertificateexactmatch",
        "authzmatch",
        "csnsubstringsmatch",
        "directorycomponentsmatch",
    }
)


def get_rule(name_or_oid: str) -> MatchingRule | None:
    """The implemented rule with this name or OID (case-insensitive), or None."""
    rule = _RULES.get(name_or_oid)
    if rule is None:
        rule = _RULES.get(name_or_oid.strip().lower())
    return rule


def approx_normaliser(rule: MatchingRule | None) -> Callable[[bytes], Hashable | None] | None:
    """Approximate matching: as OpenLDAP without an approx rule, use the equality normaliser."""
    return None if rule is None else rule.normalise
