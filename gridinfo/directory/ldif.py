"""LDIF (RFC 2849) reader and writer.

Why one module: the reader and the writer are one format's two directions and share its rules
(attribute names, base64 and folding, record shapes), so a change to one is checked against the
other in the same file.

Provider output, static ``*.ldif`` files and BDII-style plugins all reach gridinfo as LDIF, so
this is the one place where text from outside becomes records.  The reader is strict about
syntax (every error names the source and the physical line), bounded (record, line and input
size limits are checked while reading, so an endless stream is refused after at most the limit
has been buffered) and fast (whole records are split with C-level ``bytes`` operations; Python
code runs once per logical line, not per character).

Theory of operation
-------------------
Input arrives as blocks of bytes (one block for :func:`parse_ldif`, file reads or whatever an
iterable yields for :func:`iter_ldif`).  :class:`_Reader` keeps a ``bytearray`` of text not yet
forming a complete record.  Each block is counted against ``max_file_bytes``, CRLF is turned
into LF (a ``\\r`` at the end of a block is held back until the next block shows whether a
``\\n`` follows), and the buffer is searched for the *last* blank line (``\\n\\n``): everything
before it is a run of complete records, split on blank lines and parsed one record at a time;
the rest stays in the buffer.  The buffer's unfolded size and the length of its last, unfinished
line are tracked incrementally so that the entry and line limits stop an endless record or line
as soon as it crosses the limit.

A record ("chunk" below: the text between blank lines) is unfolded on bytes, never on text
(so a fold inside a multibyte UTF-8 character is harmless): comment lines and their
continuations are cut out with one regular expression, folds with ``replace(b"\\n ", b"")``,
then ``split(b"\\n")`` gives the logical lines.  Logical line *i* is physical line
``start + i`` when the record had no comment, fold or version line; otherwise the physical line
is worked out by a slower line-by-line unfold, but only when it is needed (an error, or a
record opening with comments).

Attribute descriptions are validated once per spelling and cached (bounded).  Records with the
same sequence of attribute spellings (a provider prints thousands of them) share a cached
"shape" that says how the values group, so grouping a record costs a handful of C-level calls.
While a large run of records is built, the cycle collector is paused (records are acyclic; it
is switched back on before control returns to the caller).

In tolerant mode (:func:`parse_ldif_tolerant`) a bad record is reported and skipped; an
oversized record or line is reported and skipped up to the next blank line; a breach of the
input size or record count limits (:class:`LDIFLimitExceeded`) stops parsing and is raised.
"""

from __future__ import annotations

import base64
import binascii
import gc
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO, Union

from gridinfo.errors import LDIFError

__all__ = [
    "LDIFError",
    "LDIFLimitExceeded",
    "LDIFLimits",
    "LDIFRecord",
    "Modification",
    "Control",
    "format_ldif",
    "iter_ldif",
    "parse_ldif",
    "parse_ldif_tolerant",
    "read_ldif_file",
]

#: ``control:`` line contents: (oid, criticality, value or None).
Control = tuple[str, bool, Union[bytes, None]]

CHANGETYPES = frozenset({"add", "modify", "delete", "modrdn", "moddn"})
MODIFY_OPS = frozenset({"add", "delete", "replace", "increment"})

_READ_BLOCK = 1 << 20
_GC_PAUSE_BYTES = 1 << 16


class LDIFLimitExceeded(LDIFError):
    """The input broke a limit that stops reading altogether (input size, record count).

    Raised even by :func:`parse_ldif_tolerant`: such input is refused as a whole.
    """


@dataclass(frozen=True, slots=True)
class Modification:
    """One block of a ``changetype: modify`` record."""

    op: str  # 'add' | 'delete' | 'replace' | 'increment'
    attribute: str
    values: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class LDIFRecord:
    """One LDIF record: a content record (``changetype`` None) or a change record.

    ``attributes`` holds the attributes of content and ``add`` records in first-seen order,
    values grouped per attribute description (case-insensitively, first spelling kept).
    """

    dn: str
    line: int
    changetype: str | None
    attributes: tuple[tuple[str, tuple[bytes, ...]], ...]
    modifications: tuple[Modification, ...] = ()
    controls: tuple[Control, ...] = ()
    newrdn: str | None = None
    deleteoldrdn: bool | None = None
    newsuperior: str | None = None

    def values(self, attribute: str) -> tuple[bytes, ...]:
        """The values of ``attribute`` (description compared case-insensitively), or ()."""
        wanted = attribute.lower()
        for name, values in self.attributes:
            if name.lower() == wanted:
                return values
        return ()


def _make_content_record() -> Callable[[str, int, tuple[tuple[str, tuple[bytes, ...]], ...]], LDIFRecord]:
    """A constructor for content records that skips the frozen dataclass ``__init__``.

    Frozen dataclasses set each field through ``object.__setattr__``; writing the slots
    directly halves the cost, which matters at 100k records per file.  The test suite
    compares its records with ones built by ``LDIFRecord(...)``.
    """
    set_ = {name: getattr(LDIFRecord, name).__set__ for name in LDIFRecord.__slots__}
    if set(set_) != {"dn", "line", "changetype", "attributes", "modifications", "controls",
                     "newrdn", "deleteoldrdn", "newsuperior"}:
        raise AssertionError("LDIFRecord fields changed: update _make_content_record")
    set_dn, set_line, set_changetype, set_attributes = (
        set_["dn"], set_["line"], set_["changetype"], set_["attributes"]
    )
    set_modifications, set_controls = set_["modifications"], set_["controls"]
    set_newrdn, set_deleteoldrdn, set_newsuperior = (
        set_["newrdn"], set_["deleteoldrdn"], set_["newsuperior"]
    )
    new = object.__new__

    def content_record(dn: str, line: int, attributes: tuple[tuple[str, tuple[bytes, ...]], ...]) -> LDIFRecord:
        record = new(LDIFRecord)
        set_dn(record, dn)
        set_line(record, line)
        set_changetype(record, None)
        set_attributes(record, attributes)
        set_modifications(record, ())
        set_controls(record, ())
        set_newrdn(record, None)
        set_deleteoldrdn(record, None)
        set_newsuperior(record, None)
        return record

    return content_record


_content_record = _make_content_record()


@dataclass(frozen=True, slots=True)
class LDIFLimits:
    """Bounds on LDIF input; each breach is an :class:`LDIFError` naming the line."""

    max_entry_bytes: int = 1 << 20  # one record's unfolded size
    max_file_bytes: int = 256 << 20  # the whole input
    max_line_bytes: int = 1 << 20  # one physical line
    max_records: int | None = None


_DEFAULT_LIMITS = LDIFLimits()


# --------------------------------------------------------------------------------------------
# Reading


class _Bad(Exception):
    """A syntax error at logical line ``index`` of the record being parsed."""

    def __init__(self, message: str, index: int, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.index = index
        self.line = line  # set when the physical line is known directly


_ATTR_DESCR = re.compile(rb"(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)*)(?:;[A-Za-z0-9-]+)*")
# a comment line and its continuation lines, with the line end after them
_COMMENT_LINE = re.compile(rb"^#[^\n]*(?:\n [^\n]*)*\n?", re.MULTILINE)
# the comment lines (with continuations) that may open a record
_LEADING_COMMENTS = re.compile(rb"(?:#[^\n]*(?:\n [^\n]*)*\n)*")
_OID = re.compile(rb"[0-9]+(?:\.[0-9]+)*")
# raw spelling -> (name as str, grouping key); bounded so that hostile input cannot grow it.
_NAME_CACHE: dict[bytes, tuple[str, bytes]] = {}
_NAME_CACHE_MAX = 4096
_RESERVED_MESSAGES = {
    b"dn": "unexpected dn: line inside a record (records must be separated by a blank line)",
    b"changetype": (
        "changetype: must come right after the dn: line (and any control: lines);"
        " this record mixes content and change syntax"
    ),
    b"control": (
        "control: must come right after the dn: line and before changetype:;"
        " this record mixes content and change syntax"
    ),
}


def _first_line(text: bytes | bytearray, start: int) -> int:
    """The physical line of the first line after any comments opening ``text``."""
    match = _LEADING_COMMENTS.match(text)
    return start + (text.count(b"\n", 0, match.end()) if match and match.end() else 0)


def _show(raw: bytes, limit: int = 60) -> str:
    text = raw[:limit].decode("utf-8", "backslashreplace")
    return text + ("..." if len(raw) > limit else "")


def _expected(line: bytes, index: int) -> _Bad:
    if line.strip(b" ") == b"-":
        return _Bad(
            "'-' separates modifications and is only allowed in changetype: modify records;"
            " this record mixes content and change syntax",
            index,
        )
    return _Bad(f'expected "attribute: value", got "{_show(line)}"', index)


def _attribute_name(name: bytes, index: int) -> tuple[str, bytes]:
    """Validate an attribute description on a content/add line; cache it if valid."""
    lowered = name.lower()
    if lowered in _RESERVED_MESSAGES:
        raise _Bad(_RESERVED_MESSAGES[lowered], index)
    if _ATTR_DESCR.fullmatch(name) is None:
        raise _Bad(f"invalid attribute description '{_show(name)}'", index)
    info = (name.decode("ascii"), lowered)
    if len(_NAME_CACHE) < _NAME_CACHE_MAX:
        _NAME_CACHE[name] = info
    return info


def _description(raw: bytes, index: int) -> str:
    """An attribute description given as a value (``add: cn``), spaces around it ignored."""
    name = raw.strip(b" ")
    if _ATTR_DESCR.fullmatch(name) is None:
        raise _Bad(f"invalid attribute description '{_show(name)}'", index)
    return name.decode("ascii")


def _b64(text: bytes, index: int, what: str) -> bytes:
    text = text.strip(b" ")
    if len(text) % 4 == 0:
        try:
            return binascii.a2b_base64(text, strict_mode=True)
        except (binascii.Error, ValueError):
            pass
    raise _Bad(f"invalid base64 in {what}", index)


def _value(rest: bytes, index: int, what: str) -> bytes:
    """The value after ``name:`` -- plain, or ``:`` base64; ``:<`` URLs are refused."""
    first = rest[:1]
    if first == b":":
        return _b64(rest[1:], index, what)
    if first == b"<":
        raise _Bad("attribute values from URLs (:<) are not supported", index)
    return rest.lstrip(b" ")


def _text(rest: bytes, index: int, what: str) -> str:
    """A value that must be UTF-8 text (dn, newrdn, newsuperior)."""
    raw = _value(rest, index, what)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _Bad(f"{what} is not valid UTF-8", index) from None


def _attribute_line(line: bytes, index: int) -> tuple[tuple[str, bytes], bytes]:
    """Parse any ``name: value`` / ``name:: base64`` line of a content or add record."""
    name, sep, value = line.partition(b":")
    if not sep:
        raise _expected(line, index)
    info = _NAME_CACHE.get(name)
    if info is None:
        info = _attribute_name(name, index)
    first = value[:1]
    if first == b" ":
        value = value.lstrip(b" ")
    elif first == b":":
        value = _b64(value[1:], index, f"the value of '{info[0]}'")
    elif first == b"<":
        raise _Bad("attribute values from URLs (:<) are not supported", index)
    return info, value


# Record shapes: the sequence of attribute spellings of a record (as split at ": ") -> the
# grouped names and the slice of the value sequence each group takes.  Providers print
# thousands of records with the same shape; for those, grouping is a few C-level calls.
_SHAPES: dict[tuple[bytes, ...], tuple[tuple[str, ...], tuple[slice, ...]]] = {}
_SHAPES_MAX = 1024
_SHAPE_MAX_LINES = 64


def _learn_shape(names: tuple[bytes, ...]) -> None:
    """Remember how records with these attribute spellings group, if groups are contiguous."""
    if len(_SHAPES) >= _SHAPES_MAX or len(names) > _SHAPE_MAX_LINES:
        return
    groups: list[str] = []
    slices: list[slice] = []
    seen: set[bytes] = set()
    previous = None
    begin = 0
    for position, name in enumerate(names):
        info = _NAME_CACHE.get(name)
        if info is None:
            return
        if info[1] != previous:
            if info[1] in seen:
                return  # a group split in two: leave it to the general path
            if previous is not None:
                slices.append(slice(begin, position))
            seen.add(info[1])
            groups.append(info[0])
            previous, begin = info[1], position
    slices.append(slice(begin, len(names)))
    _SHAPES[names] = (tuple(groups), tuple(slices))


def _attributes(
    lines: list[bytes], start: int, simple: bool
) -> tuple[tuple[str, tuple[bytes, ...]], ...]:
    """Parse ``lines[start:]`` as attribute-value lines, grouped per description.

    ``simple`` says that no line has two spaces after its colon, so that splitting at the
    first ``": "`` gives the value of every line whose name is a known, valid description;
    any other line (``name:: base64``, ``name:value``, errors) takes :func:`_attribute_line`.
    """
    body = lines[start:] if start else lines
    if not body:
        raise _Bad("entry has no attributes", 0)
    if simple:
        spellings, seps, plain = zip(*[line.partition(b": ") for line in body])
        shape = _SHAPES.get(spellings)
        if shape is not None and all(seps):
            return tuple(zip(shape[0], map(plain.__getitem__, shape[1])))
    cache_get = _NAME_CACHE.get
    groups: dict[bytes, list[bytes]] = {}
    names: list[str] = []
    learn = simple
    for line in body:
        if simple:
            name, sep, value = line.partition(b": ")
            info = cache_get(name)
            if info is None or not sep:
                # a line that is invalid is the first of its kind: index() finds this one
                info, value = _attribute_line(line, start + body.index(line))
                learn = False
        else:
            info, value = _attribute_line(line, start + body.index(line))
        values = groups.get(info[1])
        if values is None:
            groups[info[1]] = [value]
            names.append(info[0])
        else:
            values.append(value)
    if learn:
        _learn_shape(spellings)
    return tuple(zip(names, map(tuple, groups.values())))


def _control(rest: bytes, index: int) -> Control:
    """``control: oid [true|false] [: value | :: base64]``."""
    text = rest.lstrip(b" ")
    spec, colon, value_part = text.partition(b":")
    words = spec.split()
    if not words or len(words) > 2 or _OID.fullmatch(words[0]) is None:
        raise _Bad(f"invalid control: line '{_show(text)}'", index)
    critical = False
    if len(words) == 2:
        if words[1] not in (b"true", b"false"):
            raise _Bad(f"control criticality must be 'true' or 'false', got '{_show(words[1])}'", index)
        critical = words[1] == b"true"
    value = _value(value_part, index, "control value") if colon else None
    return (words[0].decode("ascii"), critical, value)


def _modifications(lines: list[bytes], start: int) -> tuple[Modification, ...]:
    mods = []
    index = start
    count = len(lines)
    while index < count:
        line = lines[index]
        op_raw, sep, rest = line.partition(b":")
        op = op_raw.lower().decode("ascii", "replace")
        if not sep or op not in MODIFY_OPS:
            raise _Bad(
                'expected "add:", "delete:", "replace:" or "increment:" in a modify record,'
                f' got "{_show(line)}"',
                index,
            )
        block_start = index
        attribute = _description(rest, index)
        wanted = attribute.lower().encode("ascii")
        values = []
        index += 1
        while index < count:
            line = lines[index]
            if line.strip(b" ") == b"-":
                index += 1
                break
            name, sep, value = line.partition(b":")
            if not sep:
                raise _expected(line, index)
            if name.lower() != wanted:
                raise _Bad(
                    f"attribute '{_show(name)}' inside the '{op}: {attribute}' block"
                    f" (every line before '-' must name {attribute})",
                    index,
                )
            values.append(_value(value, index, f"the value of '{attribute}'"))
            index += 1
        # RFC 2849 closes every block with '-'; like ldapmodify we accept a missing final one.
        if op == "increment" and len(values) != 1:
            raise _Bad(f"increment: {attribute} needs exactly one value", block_start)
        if op == "add" and not values:
            raise _Bad(f"add: {attribute} needs at least one value", block_start)
        mods.append(Modification(op, attribute, tuple(values)))
    return tuple(mods)


def _modrdn(lines: list[bytes], start: int, end_index: int) -> tuple[str, bool, str | None]:
    expected = [b"newrdn", b"deleteoldrdn", b"newsuperior"]
    found: dict[bytes, tuple[bytes, int]] = {}
    for offset, line in enumerate(lines[start:]):
        index = start + offset
        name, sep, rest = line.partition(b":")
        key = name.lower()
        if not sep:
            raise _expected(line, index)
        if len(found) >= 3 or key != expected[len(found)]:
            wanted = expected[len(found)].decode() + ":" if len(found) < 3 else "end of record"
            raise _Bad(f"expected {wanted} in a modrdn record, got \"{_show(line)}\"", index)
        found[key] = (rest, index)
    if b"deleteoldrdn" not in found:
        missing = "newrdn:" if not found else "deleteoldrdn:"
        raise _Bad(f"modrdn record without {missing}", end_index)
    newrdn = _text(found[b"newrdn"][0], found[b"newrdn"][1], "newrdn")
    raw, index = found[b"deleteoldrdn"]
    flag = _value(raw, index, "deleteoldrdn").strip(b" ")
    if flag not in (b"0", b"1"):
        raise _Bad(f"deleteoldrdn must be 0 or 1, got '{_show(flag)}'", index)
    newsuperior = None
    if b"newsuperior" in found:
        newsuperior = _text(found[b"newsuperior"][0], found[b"newsuperior"][1], "newsuperior")
    return newrdn, flag == b"1", newsuperior


def _record(lines: list[bytes], line_no: int, simple: bool = False) -> LDIFRecord:
    """Parse the logical lines of one record; ``line_no`` is the dn: line's physical line.

    ``simple``: no line has two spaces after its colon (see :func:`_attributes`).
    """
    first = lines[0]
    if (
        first[:4] == b"dn: "
        and len(lines) > 1
        and (
            lines[1][:1] not in b"cC"
            or not lines[1][:11].lower().startswith((b"changetype:", b"control:"))
        )
    ):
        # the common case: a content record with a plain dn
        raw = first[4:]
        if raw[:1] == b" ":
            raw = raw.lstrip(b" ")
        try:
            dn = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _Bad("dn is not valid UTF-8", 0) from None
        return _content_record(dn, line_no, _attributes(lines, 1, simple))
    name, sep, rest = first.partition(b":")
    if not sep or name.lower() != b"dn":
        raise _Bad(f'a record must start with "dn:", got "{_show(first)}"', 0)
    dn = _text(rest, 0, "dn")
    count = len(lines)
    index = 1
    controls = []
    while index < count:
        name, sep, rest = lines[index].partition(b":")
        if not sep or name.lower() != b"control":
            break
        controls.append(_control(rest, index))
        index += 1
    if index < count and sep and name.lower() == b"changetype":
        changetype = rest.strip(b" ").lower().decode("ascii", "replace")
        if changetype not in CHANGETYPES:
            raise _Bad(
                f"unknown changetype '{_show(rest.strip(b' '))}' (expected add, modify, delete,"
                " modrdn or moddn)",
                index,
            )
        change_index = index
        index += 1
        if changetype == "add":
            return LDIFRecord(
                dn, line_no, "add", _attributes(lines, index, simple), controls=tuple(controls)
            )
        if changetype == "modify":
            return LDIFRecord(
                dn, line_no, "modify", (), _modifications(lines, index), tuple(controls)
            )
        if changetype == "delete":
            if index < count:
                raise _Bad(
                    f'a delete record ends after changetype:, got "{_show(lines[index])}"', index
                )
            return LDIFRecord(dn, line_no, "delete", (), controls=tuple(controls))
        newrdn, deleteold, newsuperior = _modrdn(lines, index, change_index)
        return LDIFRecord(
            dn, line_no, changetype, (), (), tuple(controls), newrdn, deleteold, newsuperior
        )
    if controls:
        raise _Bad(
            "control: lines are only allowed in change records (no changetype: follows);"
            " this record mixes content and change syntax",
            1,
        )
    return _content_record(dn, line_no, _attributes(lines, 1, simple))


class _Reader:
    """Incremental LDIF reader: feed blocks of bytes, get records (see module docstring)."""

    def __init__(self, source: str, limits: LDIFLimits, tolerant: bool = False):
        self.source = source
        self.limits = limits
        self.tolerant = tolerant
        self.errors: list[LDIFError] = []
        self.total = 0  # raw bytes seen
        self.buf = bytearray()  # LF-normalised text not yet forming complete records
        self.buf_line = 1  # physical line of buf[0]
        self.folds = 0  # occurrences of b"\n " in buf
        self.partial = 0  # length of buf's last, unterminated line
        self.hold_cr = False
        self.skipping = False  # tolerant mode: discarding an oversized record
        self.first = True  # the next record may be preceded by "version: 1"
        self.count = 0

    # -- errors

    def _fail(self, message: str, line: int, fatal: bool = False) -> None:
        """Raise, or in tolerant mode record, an error."""
        if fatal:
            raise LDIFLimitExceeded(message, self.source, line)
        error = LDIFError(message, self.source, line)
        if not self.tolerant:
            raise error
        self.errors.append(error)

    # -- blocks

    def feed(self, block: bytes | bytearray | str) -> list[LDIFRecord]:
        """Take the next block of input; return the records it completed."""
        if isinstance(block, str):
            block = block.encode("utf-8")
        elif not isinstance(block, bytes):
            block = bytes(block)
        assert isinstance(block, bytes)
        limits = self.limits
        size = len(block)
        if self.total + size > limits.max_file_bytes:
            allowed = limits.max_file_bytes - self.total
            line = self.buf_line + self.buf.count(b"\n") + block.count(b"\n", 0, allowed)
            self._fail(f"LDIF input larger than {limits.max_file_bytes} bytes", line, fatal=True)
        self.total += size
        if self.hold_cr:
            block = b"\r" + block
            self.hold_cr = False
        if block.endswith(b"\r"):
            block = block[:-1]
            self.hold_cr = True
        block = block.replace(b"\r\n", b"\n")
        if not block:
            return []
        buf = self.buf
        if self.skipping:
            buf += block
            end = buf.find(b"\n\n")
            if end < 0:
                keep = len(buf) - 1 if buf.endswith(b"\n") else len(buf)
                self.buf_line += buf.count(b"\n", 0, keep)
                del buf[:keep]
                return []
            self.buf_line += buf.count(b"\n", 0, end + 2)
            block = bytes(buf[end + 2 :])
            buf.clear()
            self.skipping = False
            self.folds = self.partial = 0
            if not block:
                return []

        records: list[LDIFRecord] = []
        if buf:
            joint = len(buf)
            if buf[-1] == 10 and block[0] == 32:
                self.folds += 1
            buf += block
            sep = buf.rfind(b"\n\n", joint - 1)
            data: bytes | bytearray = buf
        else:
            sep = block.rfind(b"\n\n")
            data = block
        if sep >= 0:
            region = bytes(data[:sep])
            line = self.buf_line
            self.buf_line = line + region.count(b"\n") + 2
            rest = data[sep + 2 :]
            self.buf = buf = bytearray(rest)
            self.folds = buf.count(b"\n ")
            cut = buf.rfind(b"\n")
            self.partial = len(buf) - cut - 1
            if len(region) >= _GC_PAUSE_BYTES and gc.isenabled():
                # Records are acyclic: pausing the cycle collector while a large run of them
                # is built only skips useless work (20-25% of the parse time).  It never stays
                # paused beyond this call, so no caller code runs with it off.
                gc.disable()
                try:
                    self._region(region, line, records)
                finally:
                    gc.enable()
            else:
                self._region(region, line, records)
        else:
            if data is block:
                self.buf = buf = bytearray(block)
                self.folds = block.count(b"\n ")
            else:
                self.folds += block.count(b"\n ")
            cut = block.rfind(b"\n")
            self.partial = len(block) - cut - 1 if cut >= 0 else self.partial + len(block)
        self._check_pending()
        return records

    def _check_pending(self) -> None:
        """Bound the unfinished record: its unfolded size and its last line's length."""
        buf = self.buf
        limits = self.limits
        if self.partial > limits.max_line_bytes:
            line = self.buf_line + buf.count(b"\n")
            self._fail(f"line longer than {limits.max_line_bytes} bytes", line)
            self._start_skipping()
            return
        if len(buf) - 2 * self.folds > limits.max_entry_bytes:
            stripped = buf.lstrip(b"\n")
            leading = len(buf) - len(stripped)
            if len(stripped) - 2 * self.folds > limits.max_entry_bytes:
                line = _first_line(stripped, self.buf_line + leading)
                self._fail(f"record larger than {limits.max_entry_bytes} bytes", line)
                self._start_skipping()

    def _start_skipping(self) -> None:
        buf = self.buf
        keep = len(buf) - 1 if buf.endswith(b"\n") else len(buf)
        self.buf_line += buf.count(b"\n", 0, keep)
        del buf[:keep]
        self.skipping = True
        self.folds = self.partial = 0

    def close(self) -> list[LDIFRecord]:
        """End of input: parse the last record (it needs no blank line after it)."""
        records: list[LDIFRecord] = []
        self.hold_cr = False  # a lone '\r' at the very end ends the last line
        if not self.skipping and self.buf:
            region = bytes(self.buf)
            self.buf = bytearray()
            self._region(region, self.buf_line, records)
        self.buf = bytearray()
        return records

    # -- records

    def _region(self, region: bytes, line: int, out: list[LDIFRecord]) -> None:
        """Parse a run of complete records separated by blank lines."""
        if region.endswith(b"\n"):
            region = region.rstrip(b"\n")
        chunk_record = self._chunk
        for part in region.split(b"\n\n"):
            if part:
                if part[0] == 10:
                    chunk = part.lstrip(b"\n")
                    start = line + len(part) - len(chunk)
                else:
                    chunk, start = part, line
                if chunk:
                    record = chunk_record(chunk, start)
                    if record is not None:
                        out.append(record)
            line += part.count(b"\n") + 2

    def _chunk(self, chunk: bytes, start: int) -> LDIFRecord | None:
        """Parse one record's text (no blank lines, LF line ends, first line at ``start``)."""
        limits = self.limits
        size = len(chunk)
        if size > limits.max_entry_bytes and size - 2 * chunk.count(b"\n ") > limits.max_entry_bytes:
            self._fail(f"record larger than {limits.max_entry_bytes} bytes", _first_line(chunk, start))
            return None
        if size > limits.max_line_bytes:
            for offset, physical in enumerate(chunk.split(b"\n")):
                if len(physical) > limits.max_line_bytes:
                    self._fail(f"line longer than {limits.max_line_bytes} bytes", start + offset)
                    return None
        # Logical line i is physical line start + i unless the record has comments, folds or
        # a version line; then the physical lines are worked out only when needed (an error,
        # or a dn: line that is not the record's first line).
        mapped = False
        dropped = 0  # logical lines removed before the dn: line (the version line)
        try:
            if chunk[0] == 32:
                self._unfold(chunk, start)  # raises: a continuation with nothing to continue
            text = chunk
            if chunk[0] == 35 or b"\n#" in chunk:
                text = _COMMENT_LINE.sub(b"", chunk).rstrip(b"\n")
                if not text:
                    return None  # only comments
                mapped = True
            if b"\n " in text:
                text = text.replace(b"\n ", b"")
                mapped = True
            lines = text.split(b"\n")
            if self.first:
                self.first = False
                name, sep, rest = lines[0].partition(b":")
                if sep and name.lower() == b"version":
                    version = rest.strip(b" ")
                    if version != b"1":
                        raise _Bad(f"unsupported LDIF version '{_show(version)}' (only 1 is defined)", 0)
                    del lines[0]
                    dropped = 1
                    if not lines:
                        return None
            if dropped or chunk[0] == 35:
                dn_line = self._unfold(chunk, start)[1][dropped]
            else:
                dn_line = start
            record = _record(lines, dn_line, b":  " not in text)
        except _Bad as bad:
            if bad.line is not None:
                where = bad.line
            elif mapped:
                where = self._unfold(chunk, start)[1][bad.index + dropped]
            else:
                where = start + bad.index + dropped
            self._fail(bad.message, where)
            return None
        self.count += 1
        if limits.max_records is not None and self.count > limits.max_records:
            self._fail(f"more than {limits.max_records} records", record.line, fatal=True)
        return record

    @staticmethod
    def _unfold(chunk: bytes, start: int) -> tuple[list[bytes], list[int]]:
        """Join folded lines (on bytes), drop comments; keep each logical line's physical line."""
        lines: list[bytes] = []
        numbers: list[int] = []
        parts: list[bytes] = []
        in_comment = False
        for offset, physical in enumerate(chunk.split(b"\n")):
            first = physical[:1]
            if first == b" ":
                if in_comment:
                    continue
                if not parts:
                    raise _Bad(
                        "continuation line (starting with a space) with no line to continue",
                        0,
                        line=start + offset,
                    )
                parts.append(physical[1:])
                continue
            if parts:
                lines.append(parts[0] if len(parts) == 1 else b"".join(parts))
                parts = []
            if first == b"#":
                in_comment = True
                continue
            in_comment = False
            parts.append(physical)
            numbers.append(start + offset)
        if parts:
            lines.append(parts[0] if len(parts) == 1 else b"".join(parts))
        return lines, numbers


_BATCH = 1 << 16


def _blocks(stream: Iterable[bytes] | BinaryIO, stop: int | None = None) -> Iterator[bytes]:
    """Blocks of at least 64 KiB where the source gives less (lines), for fewer feed() calls;
    from a file, up to its byte ``stop`` when one is given."""
    read = getattr(stream, "read", None)
    if read is None:
        pending: list[bytes] = []
        size = 0
        for item in stream:
            if isinstance(item, str):
                item = item.encode("utf-8")
            pending.append(item)
            size += len(item)
            if size >= _BATCH:
                yield b"".join(pending)
                pending.clear()
                size = 0
        if pending:
            yield b"".join(pending)
        return
    if stop is not None:
        left = stop - stream.tell()  # type: ignore[union-attr]
        while left > 0:
            block = read(min(_READ_BLOCK, left))
            if not block:
                return
            left -= len(block)
            yield block
        return
    while True:
        block = read(_READ_BLOCK)
        if not block:
            return
        yield block


def iter_ldif(
    stream: Iterable[bytes] | BinaryIO,
    source: str = "<ldif>",
    limits: LDIFLimits = _DEFAULT_LIMITS,
) -> Iterator[LDIFRecord]:
    """Parse LDIF from a binary stream or an iterable of byte blocks, record by record.

    Blocks need not be lines: records may be cut anywhere.  Limits are checked as the input
    arrives, so an endless stream is refused once it crosses a limit.  Raises
    :class:`LDIFError` (``source:line: message``) at the first error.
    """
    reader = _Reader(source, limits)
    for block in _blocks(stream):
        yield from reader.feed(block)
    yield from reader.close()


def iter_ldif_tolerant(
    stream: Iterable[bytes] | BinaryIO,
    errors: list[LDIFError],
    source: str = "<ldif>",
    limits: LDIFLimits = _DEFAULT_LIMITS,
    *,
    resume: tuple[int, int] | None = None,
    stop: int | None = None,
) -> Iterator[LDIFRecord]:
    """Streaming :func:`parse_ldif_tolerant`: good records as they are read, bad ones appended
    to ``errors``.  Memory stays bounded by a block plus one record, whatever the file size.

    ``resume`` (byte offset, physical line) reads the rest of a file from a record boundary
    there, as the reader of the whole file would: lines numbered from that line, no
    ``version:`` line allowed, the file's byte limit counted from the start of the file (the
    caller has put the file there).  ``stop``: read the file up to that byte only.
    """
    reader = _Reader(source, limits, tolerant=True)
    reader.errors = errors
    if resume is not None:
        reader.total, reader.buf_line = resume
        reader.first = False
    for block in _blocks(stream, stop):
        yield from reader.feed(block)
    yield from reader.close()


def parse_ldif(
    data: bytes | str, source: str = "<ldif>", limits: LDIFLimits = _DEFAULT_LIMITS
) -> list[LDIFRecord]:
    """Parse a whole LDIF text; raise :class:`LDIFError` at the first error."""
    reader = _Reader(source, limits)
    records = reader.feed(data)
    records.extend(reader.close())
    return records


def parse_ldif_tolerant(
    data: bytes | str, source: str = "<ldif>", limits: LDIFLimits = _DEFAULT_LIMITS
) -> tuple[list[LDIFRecord], list[LDIFError]]:
    """Parse LDIF keeping every good record; bad ones are reported and skipped.

    For provider output and static files: one broken record must not hide its neighbours.
    Parsing resumes at the next blank line.  Breaking ``max_file_bytes`` or ``max_records``
    still raises :class:`LDIFLimitExceeded`: such input is refused as a whole.
    """
    reader = _Reader(source, limits, tolerant=True)
    records = reader.feed(data)
    records.extend(reader.close())
    return records, reader.errors


def read_ldif_file(path: str | os.PathLike[str], limits: LDIFLimits = _DEFAULT_LIMITS) -> list[LDIFRecord]:
    """Parse an LDIF file (errors name the path); reads at most the input limit."""
    with open(path, "rb") as stream:
        data = stream.read(limits.max_file_bytes + 1)
    return parse_ldif(data, os.fspath(path), limits)


# --------------------------------------------------------------------------------------------
# Writing

# RFC 2849 SAFE-STRING, narrowed to printable ASCII: no leading space, ':' or '<', no
# trailing space.  Everything else is written base64.
_SAFE_VALUE = re.compile(rb"(?:[\x21-\x39\x3b\x3d-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?)?")

AttributeValues = Union[bytes, str, Iterable[Union[bytes, str]]]
AttributesInput = Union[Mapping[str, AttributeValues], Iterable[tuple[str, AttributeValues]]]


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _spec(name: str, value: bytes | str) -> bytes:
    raw = _as_bytes(value)
    if _SAFE_VALUE.fullmatch(raw):
        return name.encode("ascii") + (b": " + raw if raw else b":")
    return name.encode("ascii") + b":: " + base64.b64encode(raw)


def _fold(line: bytes, width: int, out: list[bytes]) -> None:
    if len(line) <= width:
        out.append(line)
        return
    out.append(line[:width])
    step = width - 1
    for at in range(width, len(line), step):
        out.append(b" " + line[at : at + step])


def _pairs(attributes: AttributesInput) -> Iterator[tuple[str, Iterable[bytes | str]]]:
    items = attributes.items() if isinstance(attributes, Mapping) else attributes
    for name, values in items:
        if isinstance(values, (bytes, str, bytearray)):
            yield name, (bytes(values) if isinstance(values, bytearray) else values,)
        else:
            yield name, values


def _checked(name: str) -> str:
    """An attribute description that reads back as one (the writer never emits bad LDIF)."""
    if name.encode("ascii", "replace") not in _NAME_CACHE:
        if name.lower() in ("dn", "changetype", "control") or _ATTR_DESCR.fullmatch(
            name.encode("ascii", "replace")
        ) is None:
            raise ValueError(f"cannot write attribute description {name!r} in LDIF")
    return name


def _record_lines(record: LDIFRecord | tuple[str, AttributesInput]) -> list[bytes]:
    if not isinstance(record, LDIFRecord):
        dn, attributes = record
        lines = [_spec("dn", dn)]
        for name, values in _pairs(attributes):
            name = _checked(name)
            lines.extend(_spec(name, v) for v in values)
        return lines
    lines = [_spec("dn", record.dn)]
    for oid, critical, value in record.controls:
        control = f"control: {oid}{' true' if critical else ''}".encode("ascii")
        if value is not None:
            control += _spec("", value)
        lines.append(control)
    if record.changetype is None or record.changetype == "add":
        if record.changetype:
            lines.append(b"changetype: add")
        for name, values in record.attributes:
            name = _checked(name)
            lines.extend(_spec(name, v) for v in values)
    elif record.changetype == "modify":
        lines.append(b"changetype: modify")
        for mod in record.modifications:
            lines.append(f"{mod.op}: {_checked(mod.attribute)}".encode("ascii"))
            lines.extend(_spec(mod.attribute, v) for v in mod.values)
            lines.append(b"-")
    elif record.changetype == "delete":
        lines.append(b"changetype: delete")
    else:
        lines.append(f"changetype: {record.changetype}".encode("ascii"))
        lines.append(_spec("newrdn", record.newrdn or ""))
        lines.append(b"deleteoldrdn: 1" if record.deleteoldrdn else b"deleteoldrdn: 0")
        if record.newsuperior is not None:
            lines.append(_spec("newsuperior", record.newsuperior))
    return lines


def format_ldif(
    records: Iterable[LDIFRecord | tuple[str, AttributesInput]],
    *,
    version: bool = False,
    width: int = 76,
) -> bytes:
    """Write records as LDIF that :func:`parse_ldif` (and OpenLDAP's tools) read back exactly.

    ``records`` are :class:`LDIFRecord` objects or ``(dn, attributes)`` pairs, where attributes
    is a mapping or a sequence of ``(name, values)`` and values are bytes or str (UTF-8).
    Values that are not printable-ASCII SAFE-STRINGs are base64 (``::``); lines are folded at
    ``width`` columns; ``version=True`` writes ``version: 1`` first.
    """
    if width < 2:
        raise ValueError("width must be at least 2")
    out: list[bytes] = [b"version: 1", b""] if version else []
    for record in records:
        for line in _record_lines(record):
            _fold(line, width, out)
        out.append(b"")
    return b"\n".join(out) + b"\n" if out else b""
