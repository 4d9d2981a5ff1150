"""The schema: attribute types and object classes read from OpenLDAP schema files.

Why one module: the loader (tokeniser, raw definitions, SUP resolution) and :class:`Schema` share
the raw definition classes and the canonical-key rules, and nothing else uses either half; the
built-in definitions, which are data, live in :mod:`.builtin_schema`.

Theory of operation
-------------------
``load_schema`` reads schema files written in slapd.conf syntax (the files in
``/etc/ldap/schema/*.schema`` and gridinfo's own ``schemas/``), in order, into raw definitions;
then it resolves references (SUP chains, MUST/MAY lists) and freezes everything into a
:class:`Schema`.  The filter engine and the directory tree only ask a schema three things:
how to match an attribute (:meth:`Schema.matching`, cached), which classes an objectClass value
stands for (:meth:`Schema.superclasses`, for the objectClass index) and whether an entry obeys
the schema (:meth:`Schema.check_entry`).

File syntax, as slapd reads it: a line starting with whitespace continues the previous line, an
empty line ends it, lines starting with ``#`` are comments (and, unlike slapd, a comment line
does not end a definition).  ``attributetype``, ``objectclass`` and ``objectidentifier`` are
read; other directives (``ditcontentrule``, ``include``...) are skipped.  A malformed definition
is a :class:`~gridinfo.errors.SchemaError` naming the file and the line it starts on.

Loading rules:
- A definition loaded again with the same OID replaces the earlier one (so loading Debian's
  ``Glue-*.schema`` or OpenLDAP's ``core.schema`` after ours is fine).
- The same NAME for two different OIDs is an error naming both places.
- EQUALITY, ORDERING, SUBSTR and SYNTAX are inherited from SUP when absent.
- Names and OIDs resolve case-insensitively.  ``objectidentifier NAME OID`` macros are global
  across files, as in slapd, and may be used as ``NAME`` or ``NAME:suffix``.

Some definitions are built in, as they are built into slapd, so that every schema has them even
without files: ``objectClass``, ``name``, ``cn``, ``description``, ``uid``, the DN-valued
``aliasedObjectName``/``distinguishedName``/``seeAlso``, ``labeledURI``, ``userPassword``,
``uidNumber``, ``gidNumber``, the
operational attributes the server publishes, and the classes ``top``, ``alias``,
``extensibleObject``, ``subentry`` and ``subschema``.

Canonical keys: an attribute type or object class is keyed by its first NAME lowercased (its OID
when it has no name).  The equality normaliser of ``objectClass`` (and of every other attribute
matched by ``objectIdentifierMatch``) returns the canonical key of the class or attribute a
value names, so ``objectClass=gluece`` and ``objectClass=1.3.6.1.4.1.8005.100.2.1.1`` both
match ``objectClass: GlueCE``; :meth:`Schema.superclasses` returns keys of the same kind, so
the tree can index an entry under every ancestor of its classes, which is how OpenLDAP lets
``(objectClass=GlueTop)`` match entries of its subclasses.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import sys
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridinfo.directory import matching as _matching
from gridinfo.directory.builtin_schema import BUILTIN_SCHEMA, BUILTIN_SOURCE
from gridinfo.errors import SchemaError

__all__ = [
    "AttributeType",
    "ObjectClass",
    "AttributeMatching",
    "Schema",
    "SchemaError",
    "load_schema",
    "default_schema",
    "bundled_schema_dir",
]

USAGES = ("userApplications", "directoryOperation", "distributedOperation", "dSAOperation")
KINDS = ("ABSTRACT", "STRUCTURAL", "AUXILIARY")


def _quote(text: str) -> str:
    """An RFC 4512 qdstring: ``'`` and ``\\`` escaped as ``\\27`` and ``\\5C``."""
    return "'" + text.replace("\\", "\\5C").replace("'", "\\27") + "'"


def _render_names(names: tuple[str, ...]) -> list[str]:
    if not names:
        return []
    if len(names) == 1:
        return ["NAME", _quote(names[0])]
    return ["NAME", "(", *(_quote(n) for n in names), ")"]


def _render_oids(keyword: str, oids: tuple[str, ...]) -> list[str]:
    if not oids:
        return []
    if len(oids) == 1:
        return [keyword, oids[0]]
    out = [keyword, "("]
    for i, oid in enumerate(oids):
        if i:
            out.append("$")
        out.append(oid)
    out.append(")")
    return out


#: Bound of :meth:`Schema.check_entry`'s cache of values already found valid.  Small: what
#: repeats (states, types, small numbers) fits, and a bulk load's one-off values kept beside
#: its entries and freed afterwards would leave holes in the allocator's arenas.
_CHECKED_VALUES_MAX = 8192


@dataclass(frozen=True, slots=True)
class AttributeType:
    """An attribute type with EQUALITY/ORDERING/SUBSTR/SYNTAX already resolved through SUP."""

    oid: str
    names: tuple[str, ...]
    description: str | None
    sup: str | None
    equality: str | None
    ordering: str | None
    substr: str | None
    syntax: str | None
    single_value: bool
    collective: bool
    no_user_modification: bool
    usage: str
    obsolete: bool
    source: str

    @property
    def name(self) -> str:
        """The first name, or the OID when the type has no name."""
        return self.names[0] if self.names else self.oid

    def definition(self) -> str:
        """The RFC 4512 AttributeTypeDescription published in ``cn=subschema``."""
        parts = ["(", self.oid, *_render_names(self.names)]
        if self.description is not None:
            parts += ["DESC", _quote(self.description)]
        if self.obsolete:
            parts.append("OBSOLETE")
        if self.sup is not None:
            parts += ["SUP", self.sup]
        for keyword, rule in (("EQUALITY", self.equality), ("ORDERING", self.ordering), ("SUBSTR", self.substr)):
            if rule is not None:
                parts += [keyword, rule]
        if self.syntax is not None:
            parts += ["SYNTAX", self.syntax]
        if self.single_value:
            parts.append("SINGLE-VALUE")
        if self.collective:
            parts.append("COLLECTIVE")
        if self.no_user_modification:
            parts.append("NO-USER-MODIFICATION")
        if self.usage != "userApplications":
            parts += ["USAGE", self.usage]
        parts.append(")")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class ObjectClass:
    """An object class; ``must`` and ``may`` are its own lists (see Schema.all_must/all_may)."""

    oid: str
    names: tuple[str, ...]
    description: str | None
    sup: tuple[str, ...]
    kind: str
    must: tuple[str, ...]
    may: tuple[str, ...]
    source: str
    obsolete: bool

    @property
    def name(self) -> str:
        """The first name, or the OID when the class has no name."""
        return self.names[0] if self.names else self.oid

    def definition(self) -> str:
        """The RFC 4512 ObjectClassDescription published in ``cn=subschema``."""
        parts = ["(", self.oid, *_render_names(self.names)]
        if self.description is not None:
            parts += ["DESC", _quote(self.description)]
        if self.obsolete:
            parts.append("OBSOLETE")
        parts += _render_oids("SUP", self.sup)
        parts.append(self.kind)
        parts += _render_oids("MUST", self.must)
        parts += _render_oids("MAY", self.may)
        parts.append(")")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class AttributeMatching:
    """Everything the filter engine and the tree need to know about one attribute.

    A ``None`` normaliser means the attribute has no rule of that kind, so a filter item using
    it is Undefined (OpenLDAP's behaviour for, e.g., an equality filter on an attribute with
    no EQUALITY rule).
    """

    key: str
    name: str
    equality: Callable[[bytes], Hashable | None] | None
    ordering: Callable[[bytes], Any | None] | None
    substr: Callable[[bytes], str | None] | None
    approx: Callable[[bytes], Hashable | None] | None
    single_value: bool
    syntax: str | None


# --- raw definitions as parsed ----------------------------------------------------------------


@dataclass(slots=True)
class _RawAttributeType:
    oid: str
    names: tuple[str, ...]
    source: str
    line: int
    description: str | None = None
    sup: str | None = None
    equality: str | None = None
    ordering: str | None = None
    substr: str | None = None
    syntax: str | None = None
    single_value: bool = False
    collective: bool = False
    no_user_modification: bool = False
    usage: str = "userApplications"
    obsolete: bool = False

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


@dataclass(slots=True)
class _RawObjectClass:
    oid: str
    names: tuple[str, ...]
    source: str
    line: int
    description: str | None = None
    sup: tuple[str, ...] = ()
    kind: str = "STRUCTURAL"
    must: tuple[str, ...] = ()
    may: tuple[str, ...] = ()
    obsolete: bool = False

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


# --- tokenising and parsing -------------------------------------------------------------------

_TOKEN = re.compile(r"""\s*(?:(\()|(\))|(\$)|'((?:[^'\\]|\\.)*)'|([^\s()$']+))""", re.S)
_HEX_ESCAPE = re.compile(r"\\([0-9A-Fa-f]{2})|\\(.)", re.S)
_NUMERIC_OID = re.compile(r"[0-9]+(?:\.[0-9]+)*\Z")
_DESCR = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")
_NOIDLEN = re.compile(r"([^{}]+)(?:\{[0-9]+\})?\Z")

# token kinds
_LP, _RP, _DOLLAR, _QSTR, _WORD = "(", ")", "$", "qstr", "word"


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text

    def byte(m: re.Match[str]) -> str:
        if m[1] is not None:
            return chr(int(m[1], 16)) if int(m[1], 16) < 0x80 else f"\0{m[1]}"
        return m[2]

    replaced = _HEX_ESCAPE.sub(byte, text)
    if "\0" in replaced:  # non-ASCII escapes: rebuild the UTF-8 bytes
        data = bytearray()
        i = 0
        while i < len(replaced):
            if replaced[i] == "\0":
                data.append(int(replaced[i + 1 : i + 3], 16))
                i += 3
            else:
                data += replaced[i].encode("utf-8")
                i += 1
        return data.decode("utf-8", "replace")
    return replaced


class _Definition:
    """A cursor over the tokens of one parenthesised definition, raising located errors."""

    def __init__(self, text: str, source: str, line: int, what: str):
        self.source = source
        self.line = line
        self.what = what
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        n = len(text)
        while pos < n:
            m = _TOKEN.match(text, pos)
            if m is None:
                if not text[pos:].strip():
                    break
                rest = text[pos:].lstrip()
                if rest.startswith("'"):
                    self.fail("unterminated quoted string")
                self.fail(f"unexpected text {rest[:20]!r}")
            assert m is not None  # the loop above fails on no match
            pos = m.end()
            if m[1] is not None:
                self.tokens.append((_LP, "("))
            elif m[2] is not None:
                self.tokens.append((_RP, ")"))
            elif m[3] is not None:
                self.tokens.append((_DOLLAR, "$"))
            elif m[4] is not None:
                self.tokens.append((_QSTR, _unescape(m[4])))
            elif m[5] is not None:
                self.tokens.append((_WORD, m[5]))
            else:  # only trailing whitespace matched
                break
        self.pos = 0

    def fail(self, message: str) -> None:
        raise SchemaError(f"{self.what}: {message}", source=self.source, line=self.line)

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def next(self, expecting: str) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            self.fail(f"unexpected end of definition, expecting {expecting} (missing ')'?)")
            raise AssertionError  # unreachable; for type checkers
        self.pos += 1
        return token

    def expect(self, kind: str, expecting: str) -> str:
        token_kind, text = self.next(expecting)
        if token_kind != kind:
            self.fail(f"expecting {expecting}, found {text!r}")
        return text

    def oid(self, expecting: str) -> str:
        """A bare or quoted OID or name (Glue files quote SUP names)."""
        kind, text = self.next(expecting)
        if kind not in (_WORD, _QSTR) or not text:
            self.fail(f"expecting {expecting}, found {text!r}")
        return text

    def oids(self, expecting: str) -> tuple[str, ...]:
        """``oid`` or ``( oid $ oid ... )``."""
        token = self.peek()
        if token is not None and token[0] == _LP:
            self.pos += 1
            out = [self.oid(expecting)]
            while True:
                kind, text = self.next("'$' or ')'")
                if kind == _RP:
                    return tuple(out)
                if kind != _DOLLAR:
                    self.fail(f"expecting '$' or ')' in a list of {expecting}, found {text!r}")
                out.append(self.oid(expecting))
        return (self.oid(expecting),)

    def qdstrings(self, expecting: str) -> tuple[str, ...]:
        """``'a'`` or ``( 'a' 'b' ... )``; bare words are accepted as slapd does."""
        token = self.peek()
        if token is not None and token[0] == _LP:
            self.pos += 1
            out: list[str] = []
            while True:
                kind, text = self.next("a quoted string or ')'")
                if kind == _RP:
                    if not out:
                        self.fail(f"empty list of {expecting}")
                    return tuple(out)
                if kind not in (_QSTR, _WORD):
                    self.fail(f"expecting {expecting}, found {text!r}")
                out.append(text)
        kind, text = self.next(expecting)
        if kind not in (_QSTR, _WORD):
            self.fail(f"expecting {expecting}, found {text!r}")
        return (text,)


class _Loader:
    """Accumulates definitions file by file; :meth:`build` resolves them into a Schema."""

    def __init__(self) -> None:
        self.macros: dict[str, tuple[str, str]] = {}  # lower name -> (oid, where)
        self.attributes: dict[str, _RawAttributeType] = {}  # oid -> definition
        self.attribute_names: dict[str, str] = {}  # lower name -> oid
        self.classes: dict[str, _RawObjectClass] = {}
        self.class_names: dict[str, str] = {}

    # ---- reading files

    def load_text(self, text: str, source: str) -> None:
        for line, logical in self._logical_lines(text):
            stripped = logical.strip()
            if not stripped:
                continue
            split = stripped.split(None, 1)
            keyword, rest = split[0], split[1] if len(split) > 1 else ""
            if "(" in keyword:  # "objectclass(" written without a space
                keyword, paren, tail = keyword.partition("(")
                rest = paren + tail + " " + rest
            directive = keyword.lower().rstrip(":")
            if directive in ("attributetype", "attributetypes"):
                self._add_attribute(self._parse_attribute(rest, source, line))
            elif directive in ("objectclass", "objectclasses"):
                self._add_class(self._parse_class(rest, source, line))
            elif directive == "objectidentifier":
                self._add_macro(rest, source, line)
            # any other directive (ditcontentrule, include, ...) is not ours to read

    def load_file(self, path: Path) -> None:
        try:
            data = path.read_bytes()
        except OSError as e:
            raise SchemaError(f"cannot read schema file: {e.strerror or e}", source=str(path)) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = data[: e.start].count(b"\n") + 1
            raise SchemaError("schema file is not valid UTF-8", source=str(path), line=line) from None
        self.load_text(text, str(path))

    @staticmethod
    def _logical_lines(text: str) -> Iterable[tuple[int, str]]:
        """(first line number, joined text) for each logical line, slapd style."""
        start = 0
        parts: list[str] = []
        for number, raw in enumerate(text.splitlines(), 1):
            if raw.startswith("#"):
                continue
            if raw and raw[0] in " \t":
                if parts:
                    parts.append(" " + raw[1:])
                    continue
                if not raw.strip():
                    continue
            if parts:
                yield start, "".join(parts)
            if raw:
                start, parts = number, [raw]
            else:
                parts = []
        if parts:
            yield start, "".join(parts)

    # ---- OIDs and macros

    def _resolve_oid(self, text: str, d: _Definition, what: str) -> str:
        if _NUMERIC_OID.match(text):
            return text
        prefix, colon, suffix = text.partition(":")
        macro = self.macros.get(prefix.lower())
        if macro is not None:
            if not colon:
                return macro[0]
            if _NUMERIC_OID.match(suffix):
                return f"{macro[0]}.{suffix}"
        d.fail(f"{what} {text!r} is neither a numeric OID nor a known objectidentifier macro")
        raise AssertionError

    def _add_macro(self, rest: str, source: str, line: int) -> None:
        d = _Definition(rest, source, line, "objectidentifier")
        name = d.expect(_WORD, "a macro name")
        value = d.expect(_WORD, "an OID")
        if d.peek() is not None:
            d.fail("expecting 'objectidentifier NAME OID'")
        if not _DESCR.match(name):
            d.fail(f"bad macro name {name!r}")
        oid = self._resolve_oid(value, d, "OID")
        previous = self.macros.get(name.lower())
        if previous is not None and previous[0] != oid:
            d.fail(f"macro {name!r} was defined as {previous[0]} in {previous[1]}")
        self.macros[name.lower()] = (oid, f"{source}:{line}")

    # ---- attribute types

    def _parse_attribute(self, rest: str, source: str, line: int) -> _RawAttributeType:
        d = _Definition(rest, source, line, "attributetype")
        d.expect(_LP, "'('")
        oid = self._resolve_oid(d.oid("the OID"), d, "OID")
        d.what = f"attributetype {oid}"
        raw = _RawAttributeType(oid=oid, names=(), source=source, line=line)
        seen: set[str] = set()
        while True:
            kind, word = d.next("a keyword or ')'")
            if kind == _RP:
                break
            if kind != _WORD:
                d.fail(f"expecting a keyword, found {word!r}")
            keyword = word.upper()
            if keyword in seen and not keyword.startswith("X-"):
                d.fail(f"{keyword} given twice")
            seen.add(keyword)
            if keyword == "NAME":
                raw.names = self._names(d)
            elif keyword == "DESC":
                raw.description = d.expect(_QSTR, "a quoted description")
            elif keyword == "OBSOLETE":
                raw.obsolete = True
            elif keyword == "SUP":
                raw.sup = d.oid("a superior attribute type")
            elif keyword in ("EQUALITY", "ORDERING", "SUBSTR"):
                rule = d.oid("a matching rule")
                if not (_NUMERIC_OID.match(rule) or rule.lower() in _matching.KNOWN_RULE_NAMES):
                    d.fail(f"unknown matching rule {rule!r}")
                setattr(raw, keyword.lower(), rule)
            elif keyword == "SYNTAX":
                text = d.oid("a syntax OID")
                m = _NOIDLEN.match(text)
                if m is None:
                    d.fail(f"bad SYNTAX {text!r}")
                    raise AssertionError
                raw.syntax = self._resolve_oid(m[1], d, "SYNTAX")
            elif keyword == "SINGLE-VALUE":
                raw.single_value = True
            elif keyword == "COLLECTIVE":
                raw.collective = True
            elif keyword == "NO-USER-MODIFICATION":
                raw.no_user_modification = True
            elif keyword == "USAGE":
                usage = d.expect(_WORD, "a usage")
                for known in USAGES:
                    if usage.lower() == known.lower():
                        raw.usage = known
                        break
                else:
                    d.fail(f"unknown USAGE {usage!r}")
            elif keyword.startswith("X-"):
                d.qdstrings(f"values of {word}")
            else:
                d.fail(f"unknown keyword {word!r}")
        if d.peek() is not None:
            d.fail(f"unexpected text after the closing ')': {d.peek()[1]!r}")  # type: ignore[index]
        if raw.syntax is None and raw.sup is None:
            d.fail("needs a SYNTAX or a SUP to inherit one from")
        return raw

    @staticmethod
    def _names(d: _Definition) -> tuple[str, ...]:
        names = d.qdstrings("names")
        for name in names:
            if not _DESCR.match(name):
                d.fail(f"bad name {name!r}")
        return names

    def _add_attribute(self, raw: _RawAttributeType) -> None:
        self._add(raw, self.attributes, self.attribute_names, "attribute type")

    # ---- object classes

    def _parse_class(self, rest: str, source: str, line: int) -> _RawObjectClass:
        d = _Definition(rest, source, line, "objectclass")
        d.expect(_LP, "'('")
        oid = self._resolve_oid(d.oid("the OID"), d, "OID")
        d.what = f"objectclass {oid}"
        raw = _RawObjectClass(oid=oid, names=(), source=source, line=line)
        seen: set[str] = set()
        while True:
            kind, word = d.next("a keyword or ')'")
            if kind == _RP:
                break
            if kind != _WORD:
                d.fail(f"expecting a keyword, found {word!r}")
            keyword = word.upper()
            if keyword in KINDS:
                if seen & set(KINDS):
                    d.fail("more than one of ABSTRACT, STRUCTURAL, AUXILIARY")
            elif keyword in seen and not keyword.startswith("X-"):
                d.fail(f"{keyword} given twice")
            seen.add(keyword)
            if keyword == "NAME":
                raw.names = self._names(d)
            elif keyword == "DESC":
                raw.description = d.expect(_QSTR, "a quoted description")
            elif keyword == "OBSOLETE":
                raw.obsolete = True
            elif keyword == "SUP":
                raw.sup = d.oids("superior classes")
            elif keyword in KINDS:
                raw.kind = keyword
            elif keyword == "MUST":
                raw.must = d.oids("attribute types")
            elif keyword == "MAY":
                raw.may = d.oids("attribute types")
            elif keyword.startswith("X-"):
                d.qdstrings(f"values of {word}")
            else:
                d.fail(f"unknown keyword {word!r}")
        if d.peek() is not None:
            d.fail(f"unexpected text after the closing ')': {d.peek()[1]!r}")  # type: ignore[index]
        return raw

    def _add_class(self, raw: _RawObjectClass) -> None:
        self._add(raw, self.classes, self.class_names, "object class")

    # ---- shared: replace by OID, refuse a name taken by another OID

    @staticmethod
    def _add(raw: Any, by_oid: dict[str, Any], names: dict[str, str], what: str) -> None:
        for name in raw.names:
            taken = names.get(name.lower())
            if taken is not None and taken != raw.oid:
                other = by_oid[taken]
                raise SchemaError(
                    f"{what} name {name!r} is defined with OID {raw.oid} here and with OID "
                    f"{taken} in {other.where}",
                    source=raw.source,
                    line=raw.line,
                )
        old = by_oid.get(raw.oid)
        if old is not None:
            for name in old.names:
                if names.get(name.lower()) == raw.oid:
                    del names[name.lower()]
        by_oid[raw.oid] = raw
        for name in raw.names:
            names[name.lower()] = raw.oid

    # ---- resolution

    def build(self) -> Schema:
        attributes = self._resolve_attributes()
        classes = self._resolve_classes(attributes)
        return Schema(attributes, self.attribute_names, classes, self.class_names)

    def _find_attribute(self, ref: str) -> _RawAttributeType | None:
        return self.attributes.get(self._ref_oid(ref, self.attribute_names))

    def _find_class(self, ref: str) -> _RawObjectClass | None:
        return self.classes.get(self._ref_oid(ref, self.class_names))

    def _ref_oid(self, ref: str, names: dict[str, str]) -> str:
        """A reference by name, numeric OID or OID macro, as an OID (possibly undefined)."""
        oid = names.get(ref.lower())
        if oid is not None:
            return oid
        prefix, colon, suffix = ref.partition(":")
        macro = self.macros.get(prefix.lower())
        if macro is not None and (not colon or _NUMERIC_OID.match(suffix)):
            return f"{macro[0]}.{suffix}" if colon else macro[0]
        return ref

    def _resolve_attributes(self) -> dict[str, AttributeType]:
        resolved: dict[str, AttributeType] = {}
        for raw in self.attributes.values():
            self._resolve_attribute(raw, (), resolved)
        return resolved

    def _resolve_attribute(
        self, raw: _RawAttributeType, chain: tuple[str, ...], resolved: dict[str, AttributeType]
    ) -> AttributeType:
        """``raw`` resolved, its SUP chain first (kept in ``resolved``, by OID)."""
        done = resolved.get(raw.oid)
        if done is not None:
            return done
        if raw.oid in chain:
            raise SchemaError(f"attributetype {raw.oid}: SUP chain loops", source=raw.source, line=raw.line)
        sup_name = None
        inherited: dict[str, str | None] = {"equality": None, "ordering": None, "substr": None, "syntax": None}
        if raw.sup is not None:
            parent_raw = self._find_attribute(raw.sup)
            if parent_raw is None:
                raise SchemaError(
                    f"attributetype {raw.oid}: unknown SUP {raw.sup!r}", source=raw.source, line=raw.line
                )
            parent = self._resolve_attribute(parent_raw, chain + (raw.oid,), resolved)
            sup_name = parent.name
            inherited = {
                "equality": parent.equality,
                "ordering": parent.ordering,
                "substr": parent.substr,
                "syntax": parent.syntax,
            }
        at = AttributeType(
            oid=raw.oid,
            names=raw.names,
            description=raw.description,
            sup=sup_name,
            equality=raw.equality if raw.equality is not None else inherited["equality"],
            ordering=raw.ordering if raw.ordering is not None else inherited["ordering"],
            substr=raw.substr if raw.substr is not None else inherited["substr"],
            syntax=raw.syntax if raw.syntax is not None else inherited["syntax"],
            single_value=raw.single_value,
            collective=raw.collective,
            no_user_modification=raw.no_user_modification,
            usage=raw.usage,
            obsolete=raw.obsolete,
            source=raw.where,
        )
        resolved[raw.oid] = at
        return at

    def _resolve_classes(self, attributes: dict[str, AttributeType]) -> dict[str, ObjectClass]:
        out: dict[str, ObjectClass] = {}
        for raw in self.classes.values():
            sup = []
            for ref in raw.sup:
                parent = self._find_class(ref)
                if parent is None:
                    raise SchemaError(f"objectclass {raw.oid}: unknown SUP {ref!r}", source=raw.source, line=raw.line)
                sup.append(parent.names[0] if parent.names else parent.oid)
            lists = []
            for refs in (raw.must, raw.may):
                names = []
                for ref in refs:
                    at_raw = self._find_attribute(ref)
                    if at_raw is None:
                        raise SchemaError(
                            f"objectclass {raw.oid}: unknown attribute type {ref!r}", source=raw.source, line=raw.line
                        )
                    names.append(attributes[at_raw.oid].name)
                lists.append(tuple(names))
            out[raw.oid] = ObjectClass(
                oid=raw.oid,
                names=raw.names,
                description=raw.description,
                sup=tuple(sup),
                kind=raw.kind,
                must=lists[0],
                may=lists[1],
                source=raw.where,
                obsolete=raw.obsolete,
            )
        # superclass loops
        for oc in out.values():
            seen: set[str] = set()
            stack = [oc.oid]
            while stack:
                oid = stack.pop()
                for ref in out[oid].sup:
                    parent_oid = self.class_names.get(ref.lower(), ref)
                    if parent_oid == oc.oid:
                        raw = self.classes[oc.oid]
                        raise SchemaError(f"objectclass {oc.oid}: SUP chain loops", source=raw.source, line=raw.line)
                    if parent_oid not in seen:
                        seen.add(parent_oid)
                        stack.append(parent_oid)
        return out


# --- the schema -------------------------------------------------------------------------------


def _canonical(names: tuple[str, ...], oid: str) -> str:
    return names[0].lower() if names else oid


@dataclass(eq=False)
class Schema:
    """A loaded, resolved schema.  Build one with :func:`load_schema`."""

    _attributes: dict[str, AttributeType]
    _attribute_names: dict[str, str]
    _classes: dict[str, ObjectClass]
    _class_names: dict[str, str]
    _matching_cache: dict[str, AttributeMatching | None] = field(default_factory=dict, repr=False)
    _superclass_cache: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    _check_shapes: dict[tuple[tuple[str, ...], tuple[bytes, ...]], Any] = field(default_factory=dict, repr=False)
    _check_good_values: set[tuple[str, bytes]] = field(default_factory=set, repr=False)

    def forget_checked_values(self) -> None:
        """Empty :meth:`check_entry`'s cache of values already found valid (after a bulk load:
        it would otherwise keep up to its bound of one-off values; it refills with what repeats)."""
        self._check_good_values.clear()

    def fingerprint(self) -> str:
        """A SHA-256 of every definition: equal for schemas that check and match alike."""
        h = hashlib.sha256()
        for at in sorted(self._attributes.values(), key=lambda a: a.oid):
            h.update(repr(at).encode("utf-8"))
        for oc in sorted(self._classes.values(), key=lambda c: c.oid):
            h.update(repr(oc).encode("utf-8"))
        return h.hexdigest()

    def __repr__(self) -> str:
        return f"<Schema: {len(self._attributes)} attribute types, {len(self._classes)} object classes>"

    # ---- lookups

    def attribute(self, name_or_oid: str) -> AttributeType | None:
        """The attribute type with this name or OID (case-insensitive; options are ignored)."""
        key = name_or_oid.split(";", 1)[0].strip()
        oid = self._attribute_names.get(key.lower(), key)
        return self._attributes.get(oid)

    def object_class(self, name_or_oid: str) -> ObjectClass | None:
        """The object class with this name or OID (case-insensitive)."""
        key = name_or_oid.strip()
        oid = self._class_names.get(key.lower(), key)
        return self._classes.get(oid)

    def attribute_types(self) -> Iterable[AttributeType]:
        return self._attributes.values()

    def object_classes(self) -> Iterable[ObjectClass]:
        return self._classes.values()

    # ---- matching

    def matching(self, name_or_oid: str) -> AttributeMatching | None:
        """How to match values of an attribute; None for an attribute the schema does not know."""
        lookup = name_or_oid.lower()
        cache = self._matching_cache
        hit = cache.get(lookup)
        if hit is not None:
            return hit
        at = self.attribute(name_or_oid)
        if at is None:
            return None  # unknown names are not cached: a client can send millions of them
        # Cached under the name or OID the schema defines (with options and spaces removed),
        # so the cache holds at most one entry per defined name and OID, whatever clients send.
        canonical = name_or_oid.split(";", 1)[0].strip().lower()
        result = cache.get(canonical)
        if result is None:
            result = self._build_matching(at)
            cache[canonical] = result
        return result

    def _build_matching(self, at: AttributeType) -> AttributeMatching:
        def rule(name: str | None) -> _matching.MatchingRule | None:
            return None if name is None else _matching.get_rule(name)

        eq_rule = rule(at.equality)
        equality = None if eq_rule is None else eq_rule.normalise
        if eq_rule is not None and eq_rule.name == "objectIdentifierMatch":
            equality = self._oid_normaliser
        ordering_rule = rule(at.ordering)
        substr_rule = rule(at.substr)
        return AttributeMatching(
            key=_canonical(at.names, at.oid),
            name=at.name,
            equality=equality,
            ordering=None if ordering_rule is None else ordering_rule.normalise,
            substr=None if substr_rule is None else substr_rule.normalise,
            approx=equality,
            single_value=at.single_value,
            syntax=at.syntax,
        )

    def _oid_normaliser(self, value: bytes) -> str | None:
        """objectIdentifierMatch that knows the schema: a class or attribute name gives its key."""
        text = _matching.object_identifier_key(value)
        if text is None:
            return None
        oid = self._class_names.get(text, text)
        oc = self._classes.get(oid)
        if oc is not None:
            return _canonical(oc.names, oc.oid)
        oid = self._attribute_names.get(text, text)
        at = self._attributes.get(oid)
        if at is not None:
            return _canonical(at.names, at.oid)
        return text

    # ---- class hierarchy

    def superclasses(self, name: str) -> tuple[str, ...]:
        """Canonical keys of the class and all its ancestors (``top`` included).

        An unknown class gives just its lowercased name, so the tree can index it anyway.
        """
        lookup = name.strip().lower()
        cached = self._superclass_cache.get(lookup)
        if cached is not None:
            return cached
        oc = self.object_class(name)
        if oc is None:
            return (lookup,)  # not cached: unknown names are unbounded
        keys: list[str] = []
        stack = [oc]
        while stack:
            current = stack.pop(0)
            key = _canonical(current.names, current.oid)
            if key in keys:
                continue
            keys.append(key)
            for ref in current.sup:
                parent = self.object_class(ref)
                if parent is not None:
                    stack.append(parent)
        if "top" not in keys and self.object_class("top") is not None:
            keys.append("top")
        result = tuple(keys)
        self._superclass_cache[lookup] = result  # one entry per name or OID the schema defines
        return result

    def _class_of(self, object_class: str | ObjectClass) -> ObjectClass | None:
        if isinstance(object_class, ObjectClass):
            return object_class
        return self.object_class(object_class)

    def _inherited(self, object_class: str | ObjectClass, which: str) -> tuple[str, ...]:
        oc = self._class_of(object_class)
        if oc is None:
            return ()
        out: dict[str, None] = {}
        for key in self.superclasses(oc.oid):
            cls = self.object_class(key)
            if cls is None:
                continue
            for name in getattr(cls, which):
                at = self.attribute(name)
                out[_canonical(at.names, at.oid) if at is not None else name.lower()] = None
        return tuple(out)

    def all_must(self, object_class: str | ObjectClass) -> tuple[str, ...]:
        """Canonical keys of the attributes the class and its ancestors require."""
        return self._inherited(object_class, "must")

    def all_may(self, object_class: str | ObjectClass) -> tuple[str, ...]:
        """Canonical keys of the attributes the class and its ancestors allow (MAY only)."""
        return self._inherited(object_class, "may")

    # ---- entry checking

    def _class_facts(
        self, class_values: Sequence[bytes]
    ) -> tuple[list[str], list[ObjectClass], dict[str, str], set[str], bool]:
        """What an entry's objectClass values imply: problems, classes, MUST, allowed, extensible."""
        problems: list[str] = []
        classes: list[ObjectClass] = []
        if not class_values:
            problems.append("the entry has no objectClass")
        for raw in class_values:
            text = raw.decode("utf-8", "replace").strip()
            oc = self.object_class(text)
            if oc is None:
                problems.append(f"objectClass {text!r} is not defined in the schema")
            else:
                classes.append(oc)
        if class_values and classes and not any(oc.kind == "STRUCTURAL" for oc in classes):
            problems.append("the entry has no STRUCTURAL objectClass")
        required: dict[str, str] = {}
        allowed: set[str] = {"objectclass"}
        extensible = False
        for oc in classes:
            if _canonical(oc.names, oc.oid) == "extensibleobject":
                extensible = True
            for key in self.all_must(oc):
                required.setdefault(key, oc.name)
                allowed.add(key)
            allowed.update(self.all_may(oc))
        return problems, classes, required, allowed, extensible

    def check_entry(self, attrs: Mapping[str, Sequence[bytes]]) -> list[str]:
        """Human-readable schema violations of an entry; an empty list means it is fine.

        Checks: objectClass present and every class known; at least one STRUCTURAL class;
        every MUST attribute present; every attribute known and allowed by some class (unless
        the entry is an ``extensibleObject``; operational attributes are always allowed);
        SINGLE-VALUE attributes with one value; no value repeated; every value valid for the
        attribute's syntax and equality rule.

        What depends only on the attribute names and the objectClass values (the entry's
        *shape*) is worked out once per shape and cached: a provider's thousand entries share a
        handful of shapes, so per entry only the values are checked.
        """
        names = tuple(attrs)
        class_values: tuple[bytes, ...] = ()
        for name in names:
            if name.lower() == "objectclass":
                class_values += tuple(attrs[name])
        shape_key = (names, class_values)
        shape = self._check_shapes.get(shape_key)
        if shape is None:
            shape = self._shape_facts(names, class_values)
            if len(self._check_shapes) < 10_000:
                self._check_shapes[shape_key] = shape
        static_problems, slots = shape
        problems = list(static_problems)
        known_good = self._check_good_values
        for key, shown, at, sources in slots:
            if len(sources) == 1:
                values: Sequence[bytes] = attrs[sources[0]]
            else:
                values = [v for source in sources for v in attrs[source]]
            if at.single_value and len(values) > 1:
                problems.append(f"attribute {shown!r} is SINGLE-VALUE but has {len(values)} values")
            if len(values) == 1 and (key, values[0]) in known_good:
                continue  # this value was checked for this attribute before
            match = self.matching(key)
            equality = match.equality if match is not None else None
            seen: set[Hashable] = set()
            for value in values:
                valid = _matching.syntax_valid(at.syntax, value)
                normalised = equality(value) if equality is not None else None
                if not valid or (equality is not None and normalised is None):
                    problems.append(
                        f"attribute {shown!r} value {_show(value)} is not valid for its syntax"
                        f" ({at.syntax}{', ' + at.equality if at.equality else ''})"
                    )
                    continue
                if normalised is not None:
                    if normalised in seen:
                        problems.append(f"attribute {shown!r} has the value {_show(value)} more than once")
                    seen.add(normalised)
                if len(value) <= 64:
                    if len(known_good) >= _CHECKED_VALUES_MAX:
                        known_good.clear()  # emptied, not frozen: what repeats now is cached again
                    known_good.add((key, value))
        return problems

    def _shape_facts(
        self, names: tuple[str, ...], class_values: tuple[bytes, ...]
    ) -> tuple[list[str], list[tuple[str, str, AttributeType, tuple[str, ...]]]]:
        """Problems that follow from an entry's shape alone, and the attributes whose values to check."""
        problems: list[str] = []
        types: dict[str, AttributeType] = {}
        written: dict[str, str] = {}
        sources: dict[str, list[str]] = {}
        for name in names:
            at = self.attribute(name)
            if at is None:
                problems.append(f"attribute type {name!r} is not defined in the schema")
                continue
            key = _canonical(at.names, at.oid)
            types[key] = at
            written.setdefault(key, name.split(";", 1)[0])
            sources.setdefault(key, []).append(name)
        class_problems, classes, required, allowed, extensible = self._class_facts(class_values)
        problems.extend(class_problems)
        for key, class_name in required.items():
            if key not in types:
                at = self.attribute(key)
                shown = at.name if at is not None else key
                problems.append(f"missing attribute {shown!r} required by objectClass {class_name!r}")
        slots = []
        for key, at in types.items():
            if key == "objectclass" and len(class_values) == len(classes):
                continue  # every class is known (checked with the class facts above)
            shown = written[key]
            if classes and not extensible and key not in allowed and at.usage == "userApplications":
                problems.append(f"attribute {shown!r} is not allowed by the entry's objectClasses")
            slots.append((key, shown, at, tuple(sources[key])))
        return problems, slots

def _show(value: bytes) -> str:
    text = value[:60].decode("utf-8", "replace")
    return repr(text + ("..." if len(value) > 60 else ""))


# --- loading ----------------------------------------------------------------------------------


def bundled_schema_dir() -> Path:
    """Where gridinfo's own schema files are.

    ``$GRIDINFO_SCHEMA_DIR`` first; then ``schemas/`` next to the ``gridinfo`` package (a source
    checkout or an editable install); then ``<prefix>/share/gridinfo/schemas`` (an installed
    package that ships them as data files).
    """
    env = os.environ.get("GRIDINFO_SCHEMA_DIR")
    if env:
        return Path(env)
    import gridinfo

    candidates = [
        Path(gridinfo.__file__).resolve().parent.parent / "schemas",
        Path(sys.prefix) / "share" / "gridinfo" / "schemas",
    ]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise SchemaError(
        "gridinfo's schema directory was not found (set GRIDINFO_SCHEMA_DIR)", source=str(candidates[0])
    )


def _schema_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix == ".schema" and p.is_file())
    return [path]


def load_schema(paths: Iterable[str | os.PathLike[str]], *, include_default: bool = True) -> Schema:
    """Load schema files (or directories: their ``*.schema`` files in sorted order), in order.

    With ``include_default`` gridinfo's bundled schemas (every ``*.schema`` in ``schemas/``:
    core, GLUE 1.3, GLUE 2.0, gridinfo's own, MDS) are loaded first, so the files given can add
    to them or replace definitions by OID.
    """
    loader = _Loader()
    loader.load_text(BUILTIN_SCHEMA, BUILTIN_SOURCE)
    files: list[Path] = []
    if include_default:
        files += _schema_files(bundled_schema_dir())
    for path in paths:
        p = Path(path)
        if not p.exists():
            raise SchemaError("no such schema file or directory", source=str(p))
        files += _schema_files(p)
    for f in files:
        loader.load_file(f)
    return loader.build()


@functools.cache
def default_schema() -> Schema:
    """The built-in definitions plus gridinfo's bundled schema files, loaded once."""
    return load_schema(())
