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

from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gridinfo import ber
from gridinfo.directory.dn import DN, DNNormaliser, parse_dn

if TYPE_CHECKING:
    from gridinfo.directory.schema import Schema


class Shape:
    """Attribute names and order shared by every entry that has the same attributes.

    Thousands of entries from one provider have the same attribute list; sharing it keeps
    per-entry memory to the values and the encoding.
    """

    __slots__ = ("names", "index")

    def __init__(self, names: dict[str, str]):
        self.names = names
        self.index = {k: i for i, k in enumerate(names)}


_SHAPES: dict[tuple[tuple[str, str], ...], Shape] = {}
_MAX_SHAPES = 50_000


def shape_for(names: dict[str, str]) -> Shape:
    signature = tuple(names.items())
    shape = _SHAPES.get(signature)
    if shape is None:
        shape = Shape(dict(names))
        if len(_SHAPES) < _MAX_SHAPES:
            _SHAPES[signature] = shape
    return shape


class AttributeView(Mapping[str, list[bytes]]):
    """Read-only ``canonical key -> values`` view of an entry's attributes.

    Values come back as new lists (the entry itself stores shared tuples); hot paths such as
    filter evaluation use the entry's shape and values directly.
    """

    __slots__ = ("_index", "_values")

    def __init__(self, index: dict[str, int], values: tuple[tuple[bytes, ...], ...]):
        self._index = index
        self._values = values

    def __getitem__(self, key: str) -> list[bytes]:
        return list(self._values[self._index[key]])

    def get(self, key: str, default: Any = None) -> Any:
        i = self._index.get(key)
        return default if i is None else list(self._values[i])

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


class Entry:
    """One directory entry, immutable once built."""

    __slots__ = (
        "key",
        "shape",
        "encoded",
        "_ends",
        "_norm",
        "source",
        "valid_to",
        "object_classes",
    )

    key: str
    encoded: bytes  # [APPLICATION 4] SearchResultEntry: the one copy of the DN and of the values
    source: str  # where it came from: "file.ldif", "provider:host", "child:ldap://..."
    valid_to: float | None  # when it stops being served (None: never)
    object_classes: frozenset[str]  # canonical keys of its classes and their superclasses

    def __init__(
        self,
        dn: str,
        key: str,
        attributes: Mapping[str, Sequence[bytes]] | tuple[tuple[bytes, ...], ...],
        names: dict[str, str] | Shape,
        *,
        object_classes: frozenset[str] = frozenset(),
        source: str = "",
        valid_to: float | None = None,
        encoded_attributes: list[bytes] | None = None,
        encoded: bytes | None = None,
        ends: array[int] | None = None,
    ):
        """``encoded`` and ``ends``, given together, are the entry's encoding and attribute
        offsets as an earlier build of the same entry made them (a snapshot): not encoded again,
        and ``dn`` and ``attributes`` are not read (the encoding holds both); with
        ``encoded_attributes``, ``attributes`` is not read either."""
        self.key = key
        self.shape = names if isinstance(names, Shape) else shape_for(names)
        self.source = source
        self.valid_to = valid_to
        self.object_classes = object_classes
        self._norm: dict[Any, Any] | None = None
        if encoded is not None and ends is not None:
            self.encoded = encoded
            self._ends = ends
        elif encoded_attributes is not None:
            self._encode(dn, encoded_attributes)
        else:
            if isinstance(attributes, tuple):
                values = attributes
            else:
                values = tuple(tuple(attributes[k]) for k in self.shape.names)
            keys = self.shape.names
            self._encode(dn, [ber.partial_attribute(keys[k].encode("utf-8"), vals) for k, vals in zip(keys, values)])

    @property
    def dn(self) -> str:
        """The DN as given, decoded from :attr:`encoded` (a second copy as text cost ~150 bytes
        per GLUE entry; the DN is read off the hot paths, which send the encoding)."""
        _, start, end = self._dn_span()
        return self.encoded[start:end].decode("utf-8")

    def _dn_span(self) -> tuple[int, int, int]:
        """Where in :attr:`encoded` the objectName OCTET STRING starts, its value starts, it ends."""
        enc = self.encoded
        _, i = _length(enc, 1)  # [APPLICATION 4]
        n, j = _length(enc, i + 1)
        return i, j, j + n

    @property
    def values(self) -> tuple[tuple[bytes, ...], ...]:
        """Each attribute's values, in the shape's order, decoded from :attr:`encoded`.

        The encoding is the only copy an entry keeps (a second, decoded one cost about half a
        kilobyte per GLUE entry); hot paths read :attr:`encoded` or cached normalised values.
        """
        ends = self._ends
        enc = self.encoded
        return tuple([_decode_values(enc, ends[i], ends[i + 1]) for i in range(len(ends) - 1)])

    def values_of(self, i: int) -> tuple[bytes, ...]:
        """The values of the shape's ``i``-th attribute."""
        return _decode_values(self.encoded, self._ends[i], self._ends[i + 1])

    @property
    def ends(self) -> array[int]:
        """Offsets in :attr:`encoded` where each attribute starts, then where the last ends."""
        return self._ends

    @property
    def attributes(self) -> AttributeView:
        """Canonical key -> values (read-only)."""
        return AttributeView(self.shape.index, self.values)

    def has(self, key: str) -> bool:
        return key in self.shape.index

    @property
    def names(self) -> dict[str, str]:
        """Canonical key -> attribute description as published."""
        return self.shape.names

    def _encode(self, dn: str, parts: list[bytes]) -> None:
        dn_tlv = ber.octet_string(dn.encode("utf-8"))
        body = b"".join(parts)
        attrs_tlv = ber.tlv(ber.SEQUENCE, body)
        inner = dn_tlv + attrs_tlv
        self.encoded = ber.tlv(ber.APP_SEARCH_RESULT_ENTRY, inner)
        pos = len(self.encoded) - len(body)
        ends = [pos]
        for part in parts:
            pos += len(part)
            ends.append(pos)
        self._ends = array("I", ends)

    def encode_selected(self, keys: Iterable[str], types_only: bool = False, extra: Sequence[bytes] = ()) -> bytes:
        """The SearchResultEntry with only the attributes in ``keys`` (those it has)."""
        index = self.shape.index
        if types_only:
            names = self.shape.names
            parts = [ber.partial_attribute(names[k].encode("utf-8"), ()) for k in keys if k in index]
        else:
            ends = self._ends
            enc = self.encoded
            parts = []
            for k in keys:
                i = index.get(k)
                if i is not None:
                    parts.append(enc[ends[i] : ends[i + 1]])
        if extra:
            parts.extend(extra)
        tag, _, end = self._dn_span()
        return ber.tlv(ber.APP_SEARCH_RESULT_ENTRY, self.encoded[tag:end] + ber.tlv(ber.SEQUENCE, b"".join(parts)))

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
            i = self.shape.index.get(key)
            values = self.values_of(i) if i is not None else None
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

    def normalise(self, key: str, normalise: Any) -> list[Any]:
        """Values of ``key`` normalised by ``normalise`` (invalid ones dropped), not cached.

        For building indexes: the index holds the normalised values, a per-entry cache of them
        would be a second copy of every indexed value of every entry.
        """
        i = self.shape.index.get(key)
        if i is None:
            return []
        out = []
        for v in self.values_of(i):
            n = normalise(v)
            if n is not None:
                out.append(n)
        return out

    def get(self, key: str) -> list[bytes]:
        i = self.shape.index.get(key)
        return list(self.values_of(i)) if i is not None else []

    def first(self, key: str, default: bytes | None = None) -> bytes | None:
        vals = self.get(key)
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
        self._oc_sets: dict[tuple[bytes, ...], frozenset[str]] = {}
        self._plans: dict[tuple[str, ...], Any] = {}
        #: (attribute name, values) -> encoded PartialAttribute, for the short ones entries repeat
        #: (objectClass lists, states, small numbers); small, and emptied when full
        self._encoded: dict[tuple[bytes, tuple[bytes, ...]], bytes] = {}

    def forget_values(self) -> None:
        """Empty the encoding cache (after a bulk load: it refills with what repeats)."""
        self._encoded.clear()

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
        if matching is not None:  # unknown names are not cached (they are unbounded)
            _remember(self._attr_cache, description, hit, _ATTR_CACHE_MAX)
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
            _remember(self._oc_cache, value, hit, _OC_CACHE_MAX)
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
        if not isinstance(attributes, (list, tuple)):
            attributes = list(attributes)
        descriptions = tuple([a for a, _ in attributes])
        plan = self._plans.get(descriptions)
        if plan is None:
            plan = self._plan(descriptions)
        slots, shape, encoded_names, oc_slot = plan
        if slots is None:
            # every description names its own attribute: one slot per input, in order
            grouped: list[Sequence[bytes]] = [vals for _, vals in attributes]
        else:
            grouped = [[] for _ in encoded_names]
            for (_, vals), slot in zip(attributes, slots):
                grouped[slot].extend(vals)
        encoded = self._encoded
        parts = []
        stored = []
        for name, vals in zip(encoded_names, grouped):
            tv: tuple[bytes, ...] = (vals[0],) if len(vals) == 1 else tuple(dict.fromkeys(vals))  # a set: no repeats
            hit = encoded.get((name, tv))
            if hit is None:
                hit = ber.partial_attribute(name, tv)
                if len(hit) <= _ENCODE_CACHE_MAX_LEN:
                    _remember(encoded, (name, tv), hit, _ENCODE_CACHE_MAX)
            parts.append(hit)
            stored.append(tv)
        ocs: frozenset[str] = frozenset()
        if oc_slot is not None:
            oc_values = stored[oc_slot]
            ocs = self._oc_sets.get(oc_values)  # type: ignore[assignment]
            if ocs is None:
                closure: set[str] = set()
                for v in oc_values:
                    closure |= self.object_class_closure(v)
                ocs = frozenset(closure)
                _remember(self._oc_sets, oc_values, ocs, _OC_CACHE_MAX)
        return Entry(
            text,
            key,
            (),  # the values are in encoded_attributes
            shape,
            object_classes=ocs,
            source=source,
            valid_to=valid_to,
            encoded_attributes=parts,
        )

    def _plan(
        self, descriptions: tuple[str, ...]
    ) -> tuple[list[int] | None, Shape, list[bytes], int | None]:
        """How to group one list of attribute descriptions: cached, entries repeat their lists."""
        names: dict[str, str] = {}
        slots: list[int] = []
        for description in descriptions:
            k, name = self.attribute_key(description)
            if k not in names:
                names[k] = name
            slots.append(list(names).index(k))
        unique = len(names) == len(descriptions)
        shape = shape_for(names)
        plan = (
            None if unique else slots,
            shape,
            [n.encode("utf-8") for n in names.values()],
            shape.index.get("objectclass"),
        )
        _remember(self._plans, descriptions, plan, _PLAN_CACHE_MAX)
        return plan


def _length(data: bytes, i: int) -> tuple[int, int]:
    """A BER definite length at ``data[i]``: (length, offset after it)."""
    n = data[i]
    if n < 0x80:
        return n, i + 1
    k = n & 0x7F
    return int.from_bytes(data[i + 1 : i + 1 + k], "big"), i + 1 + k


def _decode_values(data: bytes, start: int, end: int) -> tuple[bytes, ...]:
    """The values of the PartialAttribute ``data[start:end]`` (as :func:`ber.partial_attribute` wrote it)."""
    _, i = _length(data, start + 1)  # SEQUENCE
    n, i = _length(data, i + 1)  # type
    _, i = _length(data, i + 1 + n)  # SET OF
    out = []
    while i < end:
        n, i = _length(data, i + 1)
        out.append(data[i : i + n])
        i += n
    return tuple(out)


def _remember(cache: dict[Any, Any], key: Any, value: Any, limit: int) -> None:
    """Store in a bounded cache: a full cache is emptied first.

    Emptying rather than refusing keeps the bound and heals by itself: names a flood of
    never-seen attribute lists pushed in are forgotten, and the lists real providers repeat
    are cached again on their next entry.
    """
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value


#: Bounds of the builder's caches (attribute spellings, objectClass closures, attribute-list plans).
_ATTR_CACHE_MAX = 4096
_OC_CACHE_MAX = 4096
_PLAN_CACHE_MAX = 4096

#: Bounds of the encoding cache.  Small on purpose: a bulk load's hundreds of thousands of
#: one-off values (IDs, URLs) cached beside the entries and freed afterwards left 50 MiB of
#: holes in the allocator's arenas at 100k entries; what repeats fits in a few thousand.
_ENCODE_CACHE_MAX_LEN = 256
_ENCODE_CACHE_MAX = 4096
