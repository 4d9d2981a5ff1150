"""Directory entries: attribute values as given, their BER encoding made once, and provenance.

An :class:`Entry` keeps each attribute's values as bytes (as a provider or LDIF file gave
them), keyed by the schema's canonical attribute key, plus the complete encoded
``SearchResultEntry`` so that a search answering ``*`` only adds a message header.  The
offsets of each attribute inside that encoding let a search with an attribute list pick
attributes by slicing, without encoding again.

Normalised values (for filter evaluation) are computed on first use and cached per entry and
per matching kind; entries are immutable once in the tree, so the cache never goes stale.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from gridinfo.directory import ber
from gridinfo.directory.dn import DN, DNNormaliser, parse_dn

if TYPE_CHECKING:
    from gridinfo.directory.schema import Schema


class Entry:
    """One directory entry, immutable once built."""

    __slots__ = (
        "dn",
        "key",
        "attributes",
        "names",
        "encoded",
        "_spans",
        "_head_len",
        "_norm",
        "source",
        "valid_to",
        "object_classes",
    )

    dn: str
    key: str
    attributes: dict[str, list[bytes]]  # canonical key -> values
    names: dict[str, str]  # canonical key -> attribute description to send
    encoded: bytes  # [APPLICATION 4] SearchResultEntry with every attribute
    source: str  # where it came from: "file.ldif", "provider:host", "child:ldap://..."
    valid_to: float | None  # when it stops being served (None: never)
    object_classes: frozenset[str]  # canonical keys of its classes and their superclasses

    def __init__(
        self,
        dn: str,
        key: str,
        attributes: dict[str, list[bytes]],
        names: dict[str, str],
        *,
        object_classes: frozenset[str] = frozenset(),
        source: str = "",
        valid_to: float | None = None,
    ):
        self.dn = dn
        self.key = key
        self.attributes = attributes
        self.names = names
        self.source = source
        self.valid_to = valid_to
        self.object_classes = object_classes
        self._norm: dict[Any, Any] | None = None
        self._encode()

    def _encode(self) -> None:
        parts = [ber.partial_attribute(self.names[k].encode("utf-8"), vals) for k, vals in self.attributes.items()]
        dn_tlv = ber.octet_string(self.dn.encode("utf-8"))
        body = b"".join(parts)
        attrs_tlv = ber.tlv(ber.SEQUENCE, body)
        inner = dn_tlv + attrs_tlv
        self.encoded = ber.tlv(ber.APP_SEARCH_RESULT_ENTRY, inner)
        head = len(self.encoded) - len(inner) + len(dn_tlv) + (len(attrs_tlv) - len(body))
        self._head_len = head
        spans: dict[str, tuple[int, int]] = {}
        pos = head
        for k, part in zip(self.attributes, parts):
            spans[k] = (pos, pos + len(part))
            pos += len(part)
        self._spans = spans

    def encoded_attribute(self, key: str) -> bytes:
        start, end = self._spans[key]
        return self.encoded[start:end]

    def encode_selected(self, keys: Iterable[str], types_only: bool = False, extra: Sequence[bytes] = ()) -> bytes:
        """The SearchResultEntry with only the attributes in ``keys`` (those it has)."""
        if types_only:
            parts = [ber.partial_attribute(self.names[k].encode("utf-8"), ()) for k in keys if k in self._spans]
        else:
            spans = self._spans
            enc = self.encoded
            parts = [enc[spans[k][0] : spans[k][1]] for k in keys if k in spans]
        if extra:
            parts.extend(extra)
        return ber.search_result_entry(self.dn.encode("utf-8"), parts)

    def normalised(self, key: str, kind: str, normalise: Any) -> tuple[Any, ...]:
        """Values of attribute ``key`` normalised by ``normalise``; invalid values are dropped.

        Cached per (key, kind).  Returns () when the entry lacks the attribute.
        """
        cache = self._norm
        if cache is None:
            cache = self._norm = {}
        ck = (key, kind)
        hit = cache.get(ck)
        if hit is None:
            values = self.attributes.get(key)
            if not values:
                hit = ()
            else:
                out = []
                for v in values:
                    n = normalise(v)
                    if n is not None:
                        out.append(n)
                hit = tuple(out)
            cache[ck] = hit
        return hit

    def get(self, key: str) -> list[bytes]:
        return self.attributes.get(key, [])

    def first(self, key: str, default: bytes | None = None) -> bytes | None:
        vals = self.attributes.get(key)
        return vals[0] if vals else default

    def __repr__(self) -> str:
        return f"Entry({self.dn!r})"


class EntryBuilder:
    """Builds entries against one schema: canonical keys, DN keys, object class closure."""

    def __init__(self, schema: Schema):
        self.schema = schema
        self.dn_normaliser = DNNormaliser(schema)
        self._attr_cache: dict[str, tuple[str, str]] = {}
        self._oc_cache: dict[bytes, frozenset[str]] = {}

    def attribute_key(self, description: str) -> tuple[str, str]:
        """(canonical key, name to publish) for an attribute description as written."""
        hit = self._attr_cache.get(description)
        if hit is not None:
            return hit
        base, sep, options = description.partition(";")
        matching = self.schema.matching(base)
        if matching is None:
            key = base.lower()
        else:
            key = matching.key
        if sep:
            key = key + ";" + options.lower()
        hit = (key, description)
        if len(self._attr_cache) < 100_000:
            self._attr_cache[description] = hit
        return hit

    def object_class_closure(self, value: bytes) -> frozenset[str]:
        hit = self._oc_cache.get(value)
        if hit is None:
            name = value.decode("utf-8", "replace").strip()
            try:
                hit = frozenset(self.schema.superclasses(name))
            except Exception:  # unknown class: index it under its own lowercased name
                hit = frozenset()
            if not hit:
                hit = frozenset((name.lower(),))
            self._oc_cache[value] = hit
        return hit

    def build(
        self,
        dn: str | DN,
        attributes: Iterable[tuple[str, Sequence[bytes]]],
        *,
        source: str = "",
        valid_to: float | None = None,
        dn_text: str | None = None,
    ) -> Entry:
        """Make an entry; attribute descriptions are grouped case-insensitively, order kept.

        Values repeated within one attribute are kept once (LDAP attribute values are sets).
        """
        parsed = parse_dn(dn) if isinstance(dn, str) else dn
        text = dn_text if dn_text is not None else (dn if isinstance(dn, str) else str(dn))
        key = self.dn_normaliser.key(parsed)
        values: dict[str, list[bytes]] = {}
        names: dict[str, str] = {}
        for description, vals in attributes:
            k, name = self.attribute_key(description)
            current = values.get(k)
            if current is None:
                values[k] = current = []
                names[k] = name
            for v in vals:
                if v not in current:
                    current.append(v)
        ocs: frozenset[str] = frozenset()
        oc_values = values.get("objectclass")
        if oc_values:
            closure: set[str] = set()
            for v in oc_values:
                closure |= self.object_class_closure(v)
            ocs = frozenset(closure)
        return Entry(text, key, values, names, object_classes=ocs, source=source, valid_to=valid_to)
