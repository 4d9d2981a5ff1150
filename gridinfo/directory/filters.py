"""LDAP search filters: the RFC 4511 kinds as plain data, RFC 4515 text, and evaluation.

Filters are parsed (from text, or converted from the wire by the server) into the small
frozen dataclasses below, then *compiled* against a schema into a predicate over entries.
Evaluation follows the schema's matching rules: integer attributes order as integers,
caseIgnore strings ignore case and squeeze spaces, and an attribute the schema does not know
(or a value that is not valid for its syntax) is Undefined, which never matches; ``not``
of Undefined is Undefined too (RFC 4511, section 4.5.1.7).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True, slots=True)
class And:
    filters: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class Or:
    filters: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class Not:
    filter: Filter


@dataclass(frozen=True, slots=True)
class Equality:
    attribute: str
    value: bytes


@dataclass(frozen=True, slots=True)
class Substrings:
    attribute: str
    initial: bytes | None
    any: tuple[bytes, ...]
    final: bytes | None


@dataclass(frozen=True, slots=True)
class GreaterOrEqual:
    attribute: str
    value: bytes


@dataclass(frozen=True, slots=True)
class LessOrEqual:
    attribute: str
    value: bytes


@dataclass(frozen=True, slots=True)
class Present:
    attribute: str


@dataclass(frozen=True, slots=True)
class Approx:
    attribute: str
    value: bytes


@dataclass(frozen=True, slots=True)
class Extensible:
    matching_rule: str | None
    attribute: str | None
    value: bytes
    dn_attributes: bool = False


Filter = Union[And, Or, Not, Equality, Substrings, GreaterOrEqual, LessOrEqual, Present, Approx, Extensible]


# --------------------------------------------------------------------------------------------
# RFC 4515 string representation


_FILTER_DEPTH_LIMIT = 100


def parse_filter(text: str) -> Filter:
    """Parse an RFC 4515 filter string such as ``(&(objectClass=GlueCE)(GlueCEStateFreeCPUs>=10))``.

    A bare ``attr=value`` without parentheses is accepted, as ``ldapsearch`` does.  Errors are
    :class:`~gridinfo.errors.ProtocolError` naming the position.
    """
    from gridinfo.errors import ProtocolError

    text = text.strip()
    if not text:
        raise ProtocolError("empty filter")
    if not text.startswith("("):
        text = f"({text})"
    parser = _FilterParser(text, ProtocolError)
    result = parser.parse(0)
    if parser.pos != len(text):
        raise parser.error("trailing characters")
    return result


class _FilterParser:
    def __init__(self, text: str, error_type: type[Exception]):
        self.text = text
        self.pos = 0
        self.error_type = error_type

    def error(self, what: str) -> Exception:
        return self.error_type(f"bad search filter {self.text!r}: {what} at position {self.pos}")

    def expect(self, ch: str) -> None:
        if self.pos >= len(self.text) or self.text[self.pos] != ch:
            raise self.error(f"expected {ch!r}")
        self.pos += 1

    def parse(self, depth: int) -> Filter:
        if depth > _FILTER_DEPTH_LIMIT:
            raise self.error("filter nested too deeply")
        self.expect("(")
        if self.pos >= len(self.text):
            raise self.error("unexpected end")
        ch = self.text[self.pos]
        result: Filter
        if ch in "&|":
            self.pos += 1
            parts = []
            while self.pos < len(self.text) and self.text[self.pos] == "(":
                parts.append(self.parse(depth + 1))
            result = And(tuple(parts)) if ch == "&" else Or(tuple(parts))
        elif ch == "!":
            self.pos += 1
            result = Not(self.parse(depth + 1))
        else:
            result = self.parse_item()
        self.expect(")")
        return result

    def parse_item(self) -> Filter:
        text = self.text
        end = text.find(")", self.pos)
        if end < 0:
            raise self.error("missing ')'")
        item = text[self.pos : end]
        # find the operator
        i = 0
        while i < len(item) and item[i] not in "=<>~":
            i += 1
        if i >= len(item):
            raise self.error(f"no operator in {item!r}")
        attr = item[:i]
        op = item[i]
        if op in "<>~":
            if i + 1 >= len(item) or item[i + 1] != "=":
                raise self.error(f"bad operator in {item!r}")
            raw = item[i + 2 :]
        else:
            raw = item[i + 1 :]
        self.pos = end
        if op == "=" and ":" in attr:
            return self.extensible(attr, raw)
        if not attr or not _valid_attr(attr):
            raise self.error(f"invalid attribute description {attr!r}")
        if op == ">":
            return GreaterOrEqual(attr, self.unescape(raw))
        if op == "<":
            return LessOrEqual(attr, self.unescape(raw))
        if op == "~":
            return Approx(attr, self.unescape(raw))
        if raw == "*":
            return Present(attr)
        if "*" in raw:
            pieces = raw.split("*")
            initial = self.unescape(pieces[0]) if pieces[0] else None
            final = self.unescape(pieces[-1]) if pieces[-1] else None
            anys = tuple(self.unescape(p) for p in pieces[1:-1] if p)
            return Substrings(attr, initial, anys, final)
        return Equality(attr, self.unescape(raw))

    def extensible(self, attr: str, raw: str) -> Filter:
        parts = attr.split(":")
        if parts[-1] != "":
            raise self.error(f"bad extensible match {attr!r}")
        parts = parts[:-1]
        typ = parts[0] or None
        dn_attrs = False
        rule = None
        for p in parts[1:]:
            if p.lower() == "dn":
                dn_attrs = True
            elif p:
                rule = p
        if typ is None and rule is None:
            raise self.error("extensible match needs an attribute or a matching rule")
        return Extensible(rule, typ, self.unescape(raw), dn_attrs)

    def unescape(self, raw: str) -> bytes:
        if "\\" not in raw:
            return raw.encode("utf-8")
        out = bytearray()
        i = 0
        n = len(raw)
        while i < n:
            ch = raw[i]
            if ch == "\\":
                h = raw[i + 1 : i + 3]
                if len(h) == 2 and all(c in "0123456789abcdefABCDEF" for c in h):
                    out.append(int(h, 16))
                    i += 3
                    continue
                if i + 1 < n:  # RFC 2254-style escape of one character
                    out += raw[i + 1].encode("utf-8")
                    i += 2
                    continue
                raise self.error("dangling backslash")
            out += ch.encode("utf-8")
            i += 1
        return bytes(out)


def _valid_attr(attr: str) -> bool:
    base = attr.split(";", 1)[0]
    if not base:
        return False
    if base[0].isdigit():
        return all(p.isdigit() for p in base.split("."))
    return base[0].isascii() and base[0].isalpha() and all(c.isascii() and (c.isalnum() or c == "-") for c in base)


def _escape_assertion(value: bytes) -> str:
    out = []
    for b in value:
        if b in b"*()\\" or b < 0x20 or b >= 0x7F:
            out.append(f"\\{b:02x}")
        else:
            out.append(chr(b))
    return "".join(out)


def filter_to_string(f: Filter) -> str:
    """RFC 4515 text of a filter (used in logs, cache keys and forwarding)."""
    if isinstance(f, And):
        return "(&" + "".join(filter_to_string(x) for x in f.filters) + ")"
    if isinstance(f, Or):
        return "(|" + "".join(filter_to_string(x) for x in f.filters) + ")"
    if isinstance(f, Not):
        return "(!" + filter_to_string(f.filter) + ")"
    if isinstance(f, Equality):
        return f"({f.attribute}={_escape_assertion(f.value)})"
    if isinstance(f, GreaterOrEqual):
        return f"({f.attribute}>={_escape_assertion(f.value)})"
    if isinstance(f, LessOrEqual):
        return f"({f.attribute}<={_escape_assertion(f.value)})"
    if isinstance(f, Approx):
        return f"({f.attribute}~={_escape_assertion(f.value)})"
    if isinstance(f, Present):
        return f"({f.attribute}=*)"
    if isinstance(f, Substrings):
        parts = [_escape_assertion(f.initial) if f.initial else ""]
        parts += [_escape_assertion(a) for a in f.any]
        parts.append(_escape_assertion(f.final) if f.final else "")
        return f"({f.attribute}={'*'.join(parts)})"
    if isinstance(f, Extensible):
        s = f.attribute or ""
        if f.dn_attributes:
            s += ":dn"
        if f.matching_rule:
            s += ":" + f.matching_rule
        return f"({s}:={_escape_assertion(f.value)})"
    raise TypeError(f"not a filter: {f!r}")
