"""Distinguished names (RFC 4514): parsing, escaping, and the canonical key used for lookups.

A :class:`DN` is a tuple of RDNs, each a tuple of ``(attribute type, value)`` AVAs as written
(escapes resolved).  Two DNs name the same entry when their *keys* are equal; the key lowercases
attribute types, maps them to the schema's canonical name, normalises each value with the
attribute's equality rule, sorts the AVAs of multi-valued RDNs, and re-escapes the result.

The parser is lenient where MDS-era data needs it (spaces around ``=`` and ``,``,
``"quoted"`` values, ``;`` as separator) and strict everywhere else: a malformed DN is an
:class:`~gridinfo.errors.InvalidDNSyntax` with a message saying where.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from gridinfo import ber
from gridinfo.errors import InvalidDNSyntax, ProtocolError

if TYPE_CHECKING:
    from gridinfo.directory.schema import Schema

AVA = tuple[str, str]
RDN = tuple[AVA, ...]

_SPECIAL = frozenset(',+"\\<>;=')
#: a character escape_value escapes wherever it stands (_SPECIAL and NUL)
_ESCAPED = re.compile(r'[,+"\\<>;=\0]')
_HEX = frozenset("0123456789abcdefABCDEF")
_TYPE_RE = re.compile(r"[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)*")
_SIMPLE_DN = re.compile(r'[^\\"#+;]*\Z')
_SQUEEZE = re.compile(r" {2,}")
_NEEDS_ESCAPE = re.compile(r"[,+\"\\<>;=]")


class DN(tuple[RDN, ...]):
    """A parsed DN: RDNs from the entry itself up to the root."""

    __slots__ = ()

    @classmethod
    def parse(cls, text: str) -> DN:
        return parse_dn(text)

    def parent(self) -> DN:
        return DN(self[1:])

    def rdn(self) -> RDN:
        return self[0] if self else ()

    def __str__(self) -> str:
        return ",".join("+".join(f"{t}={escape_value(v)}" for t, v in rdn) for rdn in self)

    def __repr__(self) -> str:
        return f"DN({str(self)!r})"


def escape_value(value: str) -> str:
    """Escape an attribute value for a string DN (RFC 4514, section 2.4)."""
    if not value:
        return value
    if not _ESCAPED.search(value) and value[0] not in "# " and value[-1] != " ":
        return value  # nothing to escape (the usual case): no copy, no per-character loop
    out = []
    last = len(value) - 1
    for i, ch in enumerate(value):
        if ch in _SPECIAL or (ch == "#" and i == 0) or (ch == " " and (i == 0 or i == last)):
            out.append("\\" + ch)
        elif ch == "\0":
            out.append("\\00")
        else:
            out.append(ch)
    return "".join(out)


def parse_dn(text: str) -> DN:
    """Parse a string DN; the empty string is the root DSE's (empty) DN."""
    if not text or text.isspace():
        return DN(())
    if _SIMPLE_DN.match(text):
        return DN(_parse_simple(text))
    return DN(_Parser(text).parse())


def _parse_simple(text: str) -> list[RDN]:
    """Fast path: no escapes, quotes, hex values or multi-valued RDNs."""
    rdns: list[RDN] = []
    for part in text.split(","):
        attr, eq, value = part.partition("=")
        attr = attr.strip()
        if not eq or not _TYPE_RE.fullmatch(attr):
            raise InvalidDNSyntax(f"invalid DN {text!r}: expected attribute=value, got {part.strip()!r}")
        value = value.strip(" ")
        rdns.append(((attr, value),))
    return rdns


class _Parser:
    """Character-level RFC 4514 parser for DNs with escapes, quotes, hex strings or '+'."""

    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def error(self, what: str) -> InvalidDNSyntax:
        return InvalidDNSyntax(f"invalid DN {self.text!r}: {what} at position {self.pos}")

    def skip_spaces(self) -> None:
        text, n = self.text, len(self.text)
        while self.pos < n and text[self.pos] == " ":
            self.pos += 1

    def parse(self) -> list[RDN]:
        rdns: list[RDN] = []
        n = len(self.text)
        while True:
            avas = [self.parse_ava()]
            while self.pos < n and self.text[self.pos] == "+":
                self.pos += 1
                avas.append(self.parse_ava())
            rdns.append(tuple(avas))
            if self.pos >= n:
                return rdns
            if self.text[self.pos] not in ",;":
                raise self.error(f"unexpected {self.text[self.pos]!r}")
            self.pos += 1

    def parse_ava(self) -> AVA:
        self.skip_spaces()
        start = self.pos
        eq = self.text.find("=", start)
        if eq < 0:
            raise self.error("missing '='")
        attr = self.text[start:eq].strip()
        if not _TYPE_RE.fullmatch(attr):
            raise self.error(f"invalid attribute type {attr!r}")
        self.pos = eq + 1
        self.skip_spaces()
        return attr, self.parse_value()

    def parse_value(self) -> str:
        text, n = self.text, len(self.text)
        if self.pos < n and text[self.pos] == "#":
            return self.parse_hex_value()
        if self.pos < n and text[self.pos] == '"':
            return self.parse_quoted()
        buf = bytearray()
        trailing_unescaped_spaces = 0
        while self.pos < n:
            ch = text[self.pos]
            if ch in ",;+":
                break
            if ch == "\\":
                self.pos += 1
                if self.pos >= n:
                    raise self.error("dangling backslash")
                nxt = text[self.pos]
                if nxt in _HEX and self.pos + 1 < n and text[self.pos + 1] in _HEX:
                    buf.append(int(text[self.pos : self.pos + 2], 16))
                    self.pos += 2
                elif nxt in _SPECIAL or nxt in " #=":
                    buf += nxt.encode()
                    self.pos += 1
                else:
                    raise self.error(f"invalid escape '\\{nxt}'")
                trailing_unescaped_spaces = 0
                continue
            if ch in '"<>=' and ch != "=":
                raise self.error(f"unescaped {ch!r} in value")
            buf += ch.encode()
            trailing_unescaped_spaces = trailing_unescaped_spaces + 1 if ch == " " else 0
            self.pos += 1
        if trailing_unescaped_spaces:
            del buf[-trailing_unescaped_spaces:]
        try:
            return buf.decode("utf-8")
        except UnicodeDecodeError:
            raise self.error("escaped bytes are not UTF-8") from None

    def parse_quoted(self) -> str:
        text, n = self.text, len(self.text)
        self.pos += 1
        buf = []
        while self.pos < n and text[self.pos] != '"':
            if text[self.pos] == "\\" and self.pos + 1 < n:
                self.pos += 1
            buf.append(text[self.pos])
            self.pos += 1
        if self.pos >= n:
            raise self.error("unterminated quoted value")
        self.pos += 1
        self.skip_spaces()
        return "".join(buf)

    def parse_hex_value(self) -> str:
        text, n = self.text, len(self.text)
        start = self.pos + 1
        end = start
        while end < n and text[end] in _HEX:
            end += 1
        hexstr = text[start:end]
        if not hexstr or len(hexstr) % 2:
            raise self.error("invalid #hex value")
        self.pos = end
        self.skip_spaces()
        return _decode_ber_string(bytes.fromhex(hexstr), self)

def _decode_ber_string(data: bytes, parser: _Parser) -> str:
    """The value of a ``#hex`` AVA: a BER-encoded string (tag, length, contents)."""
    if len(data) < 2:
        raise parser.error("#hex value too short for BER")
    try:
        _, start, stop = ber.read_header(data, 0, len(data), "#hex value")
    except ProtocolError as e:
        raise parser.error(f"bad BER in #hex value: {e.message}") from None
    if stop != len(data):
        raise parser.error("BER length does not match #hex value")
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError:
        raise parser.error("#hex value is not a UTF-8 string") from None


def _fallback_normalise(value: str) -> str:
    return _SQUEEZE.sub(" ", value.strip(" ")).casefold()


def _key_escape(value: str) -> str:
    if not value:
        return value
    if _NEEDS_ESCAPE.search(value) or value[0] in " #" or value[-1] == " ":
        return escape_value(value)
    return value


_RDN_CACHE_MAX = 100_000
_TEXT_CACHE_MAX = 65_536  # DNs as clients spell them: base lookups repeat the same few thousand
_TYPE_CACHE_MAX = 4096  # spellings of attribute types (a schema has a few hundred names)


class DNNormaliser:
    """Turns DNs into canonical keys with a schema's equality rules; caches per type."""

    def __init__(self, schema: Schema | None):
        self.schema = schema
        self._types: dict[str, tuple[str, Callable[[str], str]]] = {}
        self._rdns: dict[RDN, str] = {}  # parents' RDNs recur in every child's DN
        self._texts: dict[str, str] = {}  # string DN -> key (only DNs that parsed)

    def _type(self, attr: str) -> tuple[str, Callable[[str], str]]:
        lowered = attr.lower()
        hit = self._types.get(lowered)
        if hit is not None:
            return hit
        key = lowered
        norm: Callable[[str], str] = _fallback_normalise
        if self.schema is not None:
            matching = self.schema.matching(attr)
            if matching is None:
                return key, norm  # unknown types are not cached: DNs in requests can name millions
            key = matching.key
            eq = matching.equality
            if eq is not None:
                norm = _string_normaliser(eq)
        if len(self._types) >= _TYPE_CACHE_MAX:
            self._types.clear()
        self._types[lowered] = (key, norm)
        return key, norm

    def ava_key(self, attr: str, value: str) -> str:
        key, norm = self._type(attr)
        return f"{key}={_key_escape(norm(value))}"

    def rdn_key(self, rdn: RDN) -> str:
        hit = self._rdns.get(rdn)
        if hit is not None:
            return hit
        if len(rdn) == 1:
            hit = self.ava_key(*rdn[0])
        else:
            hit = "+".join(sorted(self.ava_key(t, v) for t, v in rdn))
        if len(self._rdns) >= _RDN_CACHE_MAX:
            self._rdns.clear()
        self._rdns[rdn] = hit
        return hit

    def key(self, dn: DN | str) -> str:
        """The canonical key of a DN (or of a string DN, parsed first)."""
        if isinstance(dn, str):
            texts = self._texts
            hit = texts.get(dn)
            if hit is not None:
                return hit
            hit = ",".join([self.rdn_key(rdn) for rdn in parse_dn(dn)])
            if len(texts) >= _TEXT_CACHE_MAX:
                texts.clear()
            texts[dn] = hit
            return hit
        return ",".join([self.rdn_key(rdn) for rdn in dn])


def _string_normaliser(eq: Callable[[bytes], object]) -> Callable[[str], str]:
    def normalise(value: str) -> str:
        result = eq(value.encode("utf-8"))
        if result is None:
            return _fallback_normalise(value)
        if isinstance(result, bytes):
            return result.decode("utf-8", "replace")
        return str(result)

    return normalise


_LOOSE = DNNormaliser(None)


def loose_key(dn: str) -> str:
    """A DN's key without a schema (every value by caseIgnore rules): for bind DNs and the like.

    A string that is not a valid DN compares as its stripped, lowercased text.
    """
    try:
        return _LOOSE.key(dn)
    except InvalidDNSyntax:
        return dn.strip().lower()


def parent_key(key: str) -> str | None:
    """The key of the parent, from a canonical key (whose separators are unescaped ',')."""
    if not key:
        return None
    i = _first_separator(key)
    return key[i + 1 :] if i >= 0 else ""


def _first_separator(key: str) -> int:
    i = key.find(",")
    while i > 0 and key[i - 1] == "\\" and _escaped(key, i):
        i = key.find(",", i + 1)
    return i


def _escaped(key: str, i: int) -> bool:
    """Whether the character at ``i`` is escaped: an odd run of backslashes before it (an even
    run is escaped backslashes)."""
    j = i - 1
    while j >= 0 and key[j] == "\\":
        j -= 1
    return (i - 1 - j) % 2 == 1


def is_descendant_key(key: str, base_key: str) -> bool:
    """True when ``key`` is ``base_key`` or below it (the root key '' contains everything)."""
    if not base_key:
        return True
    if key == base_key:
        return True
    comma = len(key) - len(base_key) - 1
    return key.endswith(base_key) and comma >= 0 and key[comma] == "," and not _escaped(key, comma)


def join(rdns: Iterable[RDN], base: DN) -> DN:
    return DN(tuple(rdns) + tuple(base))
