"""Compiling filters against a schema into predicates over entries.

Why one module: it is one compiler (:class:`FilterCompiler`) and the matching helpers only it
calls.

A compiled filter is a function ``Entry -> True | False | None``; ``None`` is RFC 4511's
Undefined (unknown attribute, no matching rule for the operation, an assertion value that is
not valid for the attribute's syntax).  Only ``True`` selects an entry.  Compilation resolves
everything that depends on the filter alone (attribute keys, normalised assertion values,
subtypes) once per search, so per-entry work is a dictionary lookup and a comparison.

Operational attributes the entry does not hold (``modifyTimestamp``, ``entryUUID``,
``hasSubordinates``... kept or computed by the tree) are read through the ``operational``
hook the tree passes in: a filter item on one of them is compiled as usual, then evaluated
over a one-attribute view (:class:`_Virtual`) of the values the hook gives for each entry.
Filters that name no such attribute never reach the hook.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from gridinfo.directory import filters as F
from gridinfo.directory.applicable import rule_applies
from gridinfo.directory.dn import parse_dn
from gridinfo.errors import InvalidDNSyntax, UnwillingToPerform

if TYPE_CHECKING:
    from gridinfo.directory.entry import Entry
    from gridinfo.directory.schema import AttributeMatching, Schema

Predicate = Callable[["Entry"], "bool | None"]


def _undefined(entry: Entry) -> None:
    return None


def _true(entry: Entry) -> bool:
    return True


#: for an operational attribute key, how to read its values from an entry (None: not one)
OperationalHook = Callable[[str], "Callable[[Entry], list[bytes]] | None"]


class _Shape:
    __slots__ = ("index",)

    def __init__(self, key: str):
        self.index = {key: 0}


class _Virtual:
    """One entry seen as holding only the values of one operational attribute (not cached)."""

    __slots__ = ("shape", "values", "dn", "object_classes")

    def __init__(self, shape: _Shape, values: list[bytes], entry: Entry):
        self.shape = shape
        self.values = values
        self.dn = entry.dn
        self.object_classes = entry.object_classes

    def normalised(self, key: str, kind: str, normalise: Any) -> tuple[Any, ...]:
        out = []
        for v in self.values:
            n = normalise(v)
            if n is not None:
                out.append(n)
        return tuple(out)


_COMPILED_MAX = 4096  # distinct filters remembered
_COMPILED_TERMS = 50_000  # their terms in all (about 250 bytes each)


def _terms(f: F.Filter) -> int:
    """How many terms (and/or/not nodes included) a filter has."""
    if isinstance(f, (F.And, F.Or)):
        return 1 + sum(_terms(x) for x in f.filters)
    if isinstance(f, F.Not):
        return 1 + _terms(f.filter)
    return 1


def _any_at_least(values: tuple[Any, ...], assertion: Any) -> bool:
    """(attr>=value): a plain loop, not any() over a generator (this runs per candidate)."""
    for v in values:
        if v >= assertion:
            return True
    return False


def _any_at_most(values: tuple[Any, ...], assertion: Any) -> bool:
    for v in values:
        if v <= assertion:
            return True
    return False


class FilterCompiler:
    """Compiles filters for one schema; caches attribute facts (subtypes, matching)."""

    def __init__(
        self,
        schema: Schema,
        *,
        operational: OperationalHook | None = None,
        operational_keys: Collection[str] = (),
    ):
        """``operational`` reads the attributes whose canonical keys are ``operational_keys``."""
        self.schema = schema
        self.operational = operational if operational_keys else None
        self._operational_keys = frozenset(operational_keys)
        self._operational_names: frozenset[str] | None = None
        self._subtypes: dict[str, tuple[str, ...]] | None = None
        self._compiled: OrderedDict[F.Filter, tuple[Predicate, int]] = OrderedDict()
        self._compiled_terms = 0

    def _operational_reader(self, description: str) -> tuple[str, Callable[[Entry], list[bytes]]] | None:
        if self.operational is None:
            return None
        names = self._operational_names
        if names is None:
            found = set()
            for at in self.schema.attribute_types():
                m = self.schema.matching(at.oid)
                if m is not None and m.key in self._operational_keys:
                    found.add(at.oid)
                    found.update(n.lower() for n in at.names)
            names = self._operational_names = frozenset(found)
        base, sep, _ = description.partition(";")
        if base.lower() not in names:  # a plain attribute: one set lookup, no schema lookup
            return None
        m = self.schema.matching(base)
        if m is None or sep:
            return None
        reader = self.operational(m.key)
        return None if reader is None else (m.key, reader)

    def _on_operational(self, f: F.Filter, key: str, reader: Callable[[Entry], list[bytes]]) -> Predicate:
        inner = self._compile_item(f)
        if inner is _undefined:
            return inner
        shape = _Shape(key)

        def operational(e: Entry) -> bool | None:
            values = reader(e)
            if not values:
                return False  # the entry lacks it (contextCSN below a naming context...)
            return inner(_Virtual(shape, values, e))  # type: ignore[arg-type]

        return operational

    # -- schema facts -----------------------------------------------------------------------

    def subtype_keys(self, key: str) -> tuple[str, ...]:
        """The attribute's own key and the keys of all its subtypes (``name`` -> cn, o, ou...)."""
        if self._subtypes is None:
            children: dict[str, list[str]] = {}
            for at in self.schema.attribute_types():
                if at.sup:
                    sup = self.schema.matching(at.sup)
                    own = self.schema.matching(at.oid)
                    if sup is not None and own is not None:
                        children.setdefault(sup.key, []).append(own.key)
            closure: dict[str, tuple[str, ...]] = {}
            for root in children:
                seen = [root]
                stack = list(children[root])
                while stack:
                    k = stack.pop()
                    if k not in seen:
                        seen.append(k)
                        stack.extend(children.get(k, ()))
                closure[root] = tuple(seen)
            self._subtypes = closure
        return self._subtypes.get(key, (key,))

    def _resolve(self, description: str) -> tuple[AttributeMatching | None, tuple[str, ...]]:
        base, sep, options = description.partition(";")
        m = self.schema.matching(base)
        if m is None:
            return None, ()
        if sep:
            return m, (m.key + ";" + options.lower(),)
        return m, self.subtype_keys(m.key)

    # -- compilation ------------------------------------------------------------------------

    def predicate(self, f: F.Filter) -> Predicate:
        """:meth:`compile`, remembered: clients send the same filters again and again.

        A predicate depends only on the filter and the schema (operational values are read
        when it runs), so a remembered one stays right.  The least recently used are let go
        beyond :data:`_COMPILED_MAX` filters or :data:`_COMPILED_TERMS` terms in all (a
        1,000-term OR weighs 1,000), so hostile filters cannot grow the server.
        """
        compiled = self._compiled
        hit = compiled.get(f)
        if hit is not None:
            compiled.move_to_end(f)
            return hit[0]
        predicate = self.compile(f)
        weight = _terms(f)
        if weight <= _COMPILED_TERMS:
            compiled[f] = (predicate, weight)
            self._compiled_terms += weight
            while len(compiled) > _COMPILED_MAX or self._compiled_terms > _COMPILED_TERMS:
                self._compiled_terms -= compiled.popitem(last=False)[1][1]
        return predicate

    def compile(self, f: F.Filter) -> Predicate:
        if self.operational is not None and not isinstance(f, (F.And, F.Or, F.Not)):
            attribute = getattr(f, "attribute", None)
            if attribute is not None:
                found = self._operational_reader(attribute)
                if found is not None:
                    return self._on_operational(f, *found)
        return self._compile_item(f)

    def _compile_item(self, f: F.Filter) -> Predicate:
        if isinstance(f, F.And):
            return self._and([self.compile(x) for x in f.filters])
        if isinstance(f, F.Or):
            return self._or(self._compile_or_terms(f.filters))
        if isinstance(f, F.Not):
            inner = self.compile(f.filter)

            def not_(e: Entry) -> bool | None:
                r = inner(e)
                return None if r is None else not r

            return not_
        if isinstance(f, F.Present):
            return self._present(f.attribute)
        if isinstance(f, F.Equality):
            return self._equality(f.attribute, f.value)
        if isinstance(f, F.GreaterOrEqual):
            return self._ordering(f.attribute, f.value, ge=True)
        if isinstance(f, F.LessOrEqual):
            return self._ordering(f.attribute, f.value, ge=False)
        if isinstance(f, F.Substrings):
            return self._substrings(f)
        if isinstance(f, F.Approx):
            return self._approx(f.attribute, f.value)
        if isinstance(f, F.Extensible):
            return self._extensible(f)
        raise TypeError(f"not a filter: {f!r}")

    def _compile_or_terms(self, terms: tuple[F.Filter, ...] | list[F.Filter]) -> list[Predicate]:
        """Predicates for the terms of an OR; equalities on one attribute become one set test.

        DIRAC and BDII clients send ORs of up to thousands of equalities on one attribute
        (``(|(GLUE2ResourceID=a)(GLUE2ResourceID=b)...)``).  Evaluated term by term, each
        entry costs one comparison per term; grouped, it costs one set lookup per value.
        """
        groups: dict[tuple[str, ...], list[F.Equality]] = {}
        preds: list[Predicate] = []
        plain: dict[str, bool] = {}  # attribute description -> not operational (asked once per OR)
        for term in terms:
            if isinstance(term, F.Equality):
                is_plain = plain.get(term.attribute)
                if is_plain is None:
                    is_plain = plain[term.attribute] = self._operational_reader(term.attribute) is None
                if is_plain:
                    m, keys = self._resolve(term.attribute)
                    if m is not None and m.equality is not None:
                        groups.setdefault(("objectclass",) if m.key == "objectclass" else keys, []).append(term)
                        continue
            preds.append(self.compile(term))
        for keys, equalities in groups.items():
            if len(equalities) < _GROUP_AT_LEAST:
                preds.extend(self._equality(t.attribute, t.value) for t in equalities)
            else:
                preds.append(self._equality_set(keys, equalities))
        return preds

    def _equality_set(self, keys: tuple[str, ...], equalities: list[F.Equality]) -> Predicate:
        """One predicate for many equalities on one attribute: True if any value is asserted.

        An assertion value invalid for the syntax is Undefined, as it is alone: the group
        answers None instead of False when nothing matched and one of its terms was Undefined.
        """
        if keys == ("objectclass",):
            wanted: set[str] = set()
            for t in equalities:
                name = t.value.decode("utf-8", "replace").strip()
                oc = self.schema.object_class(name)
                wanted.add(oc.name.lower() if oc is not None else name.lower())
            return lambda e: not wanted.isdisjoint(e.object_classes)
        m, _ = self._resolve(equalities[0].attribute)
        assert m is not None and m.equality is not None
        normalise = m.equality
        assertions: set[Any] = set()
        undefined = False
        for t in equalities:
            a = normalise(t.value)
            if a is None:
                undefined = True
            else:
                assertions.add(a)
        miss: bool | None = None if undefined else False
        if len(keys) == 1:
            k = keys[0]

            def one(e: Entry) -> bool | None:
                if k in e.shape.index and not assertions.isdisjoint(e.normalised(k, "eq", normalise)):
                    return True
                return miss

            return one

        def many(e: Entry) -> bool | None:
            for k in keys:
                if k in e.shape.index and not assertions.isdisjoint(e.normalised(k, "eq", normalise)):
                    return True
            return miss

        return many

    @staticmethod
    def _and(preds: list[Predicate]) -> Predicate:
        if not preds:
            return _true  # (&) is TRUE (RFC 4526)
        if len(preds) == 1:
            return preds[0]

        def and_(e: Entry) -> bool | None:
            result: bool | None = True
            for p in preds:
                r = p(e)
                if r is False:
                    return False
                if r is None:
                    result = None
            return result

        return and_

    @staticmethod
    def _or(preds: list[Predicate]) -> Predicate:
        if not preds:
            return lambda e: False  # (|) is FALSE (RFC 4526)
        if len(preds) == 1:
            return preds[0]

        def or_(e: Entry) -> bool | None:
            result: bool | None = False
            for p in preds:
                r = p(e)
                if r is True:
                    return True
                if r is None:
                    result = None
            return result

        return or_

    def _present(self, attribute: str) -> Predicate:
        m, keys = self._resolve(attribute)
        if m is None:
            return _undefined
        if m.key == "objectclass":
            return _true
        if len(keys) == 1:
            k = keys[0]
            return lambda e: k in e.shape.index
        return lambda e: any(k in e.shape.index for k in keys)

    def _equality(self, attribute: str, value: bytes) -> Predicate:
        m, keys = self._resolve(attribute)
        if m is None:
            return _undefined
        if m.key == "objectclass":
            name = value.decode("utf-8", "replace").strip()
            oc = self.schema.object_class(name)
            wanted = oc.name.lower() if oc is not None else name.lower()
            return lambda e: wanted in e.object_classes
        return self._match_values(keys, m.equality, value, "eq", lambda vals, a: a in vals)

    def _approx(self, attribute: str, value: bytes) -> Predicate:
        m, keys = self._resolve(attribute)
        if m is None:
            return _undefined
        if m.key == "objectclass":
            return self._equality(attribute, value)
        if m.syntax in _STRING_SYNTAXES:
            return self._match_values(keys, phonetic_words, value, "approx", _words_in_order)
        norm = m.approx or m.equality
        return self._match_values(keys, norm, value, "eq", lambda vals, a: a in vals)

    def _ordering(self, attribute: str, value: bytes, ge: bool) -> Predicate:
        m, keys = self._resolve(attribute)
        if m is None:
            return _undefined
        return self._match_values(keys, m.ordering, value, "ord", _any_at_least if ge else _any_at_most)

    @staticmethod
    def _match_values(
        keys: tuple[str, ...],
        normalise: Callable[[bytes], Any] | None,
        value: bytes,
        kind: str,
        test: Callable[[Any, Any], bool],
    ) -> Predicate:
        if normalise is None:
            return _undefined
        assertion = normalise(value)
        if assertion is None:
            return _undefined
        if len(keys) == 1:
            k = keys[0]

            def one(e: Entry) -> bool | None:
                if k not in e.shape.index:
                    return False
                return test(e.normalised(k, kind, normalise), assertion)

            return one

        def many(e: Entry) -> bool | None:
            for k in keys:
                if k in e.shape.index and test(e.normalised(k, kind, normalise), assertion):
                    return True
            return False

        return many

    def _substrings(self, f: F.Substrings) -> Predicate:
        m, keys = self._resolve(f.attribute)
        if m is None or m.substr is None:
            return _undefined
        norm = m.substr
        parts: list[str | None] = []
        for raw in [f.initial, *f.any, f.final]:
            if raw is None:
                parts.append(None)
                continue
            n = _substring_part(norm, raw)
            if n is None:
                return _undefined
            parts.append(n)
        initial, anys, final = parts[0], [p for p in parts[1:-1] if p], parts[-1]

        def matches(v: str) -> bool:
            pos = 0
            if initial:
                if not v.startswith(initial):
                    return False
                pos = len(initial)
            for a in anys:
                i = v.find(a, pos)
                if i < 0:
                    return False
                pos = i + len(a)
            if final:
                if len(v) - len(final) < pos or not v.endswith(final):
                    return False
            return True

        def pred(e: Entry) -> bool | None:
            for k in keys:
                if k in e.shape.index:
                    for v in e.normalised(k, "sub", norm):
                        if matches(v):
                            return True
            return False

        return pred

    def _extensible(self, f: F.Extensible) -> Predicate:
        from gridinfo.directory.matching import get_rule

        if f.attribute is None:
            raise UnwillingToPerform(
                "extensible match without an attribute type is not supported; name the attribute, "
                "e.g. (cn:caseExactMatch:=value)"
            )
        m, keys = self._resolve(f.attribute)
        if f.matching_rule is not None:
            rule = get_rule(f.matching_rule)
            if rule is None:
                raise UnwillingToPerform(f"unknown matching rule {f.matching_rule!r} in extensible match")
            if m is not None:
                at = self.schema.attribute(f.attribute)
                own = (at.equality, at.ordering) if at is not None else ()
                if not rule_applies(rule.name, m.syntax, own):
                    return _undefined  # e.g. caseIgnoreMatch on an IA5 string, as slapd decides
            normalise = rule.normalise
            kind = "x:" + rule.name
            if rule.kind == "ordering":
                test = lambda vals, a: any(v <= a for v in vals)  # noqa: E731
            elif rule.kind == "substr":
                raise UnwillingToPerform("substring rules cannot be used in an extensible match")
            else:
                test = lambda vals, a: a in vals  # noqa: E731
        else:
            if m is None:
                return _undefined
            normalise = m.equality  # type: ignore[assignment]
            kind = "eq"
            test = lambda vals, a: a in vals  # noqa: E731
        if m is None:
            return _undefined
        values_pred = self._match_values(keys, normalise, f.value, kind, test)
        if not f.dn_attributes:
            return values_pred
        assertion = normalise(f.value) if normalise is not None else None
        wanted = set(keys)

        def with_dn(e: Entry) -> bool | None:
            r = values_pred(e)
            if r is True:
                return True
            try:
                dn = parse_dn(e.dn)
            except InvalidDNSyntax:
                return r
            for rdn in dn:
                for typ, val in rdn:
                    mm = self.schema.matching(typ)
                    if mm is not None and mm.key in wanted and normalise is not None:
                        if normalise(val.encode("utf-8")) == assertion:
                            return True
            return r

        return with_dn


#: ORs with at least this many equalities on one attribute test them as one set.
_GROUP_AT_LEAST = 3


def _substring_part(norm: Callable[[bytes], str | None], raw: bytes) -> str | None:
    """Normalise one substring piece; spaces at its edges are significant inside the value."""
    if not raw.strip(b" "):
        return " " if raw else ""
    lead = raw[: len(raw) - len(raw.lstrip(b" "))]
    trail = raw[len(raw.rstrip(b" ")) :]
    core = norm(raw)
    if core is None:
        return None
    return (" " if lead else "") + core + (" " if trail else "")


# Approximate matching for strings, in the manner of OpenLDAP: values are split into words,
# each word reduced to a phonetic skeleton, and the assertion's words must all be found, in
# order, among the value's words.  The skeleton keeps the first letter, drops other vowels,
# digits and punctuation, and folds doubled letters ("queue4" ~ "queue1", "Smith" ~ "Smyth").
_STRING_SYNTAXES = frozenset(
    {
        "1.3.6.1.4.1.1466.115.121.1.15",  # Directory String
        "1.3.6.1.4.1.1466.115.121.1.26",  # IA5 String
        "1.3.6.1.4.1.1466.115.121.1.44",  # Printable String
    }
)
_WORD_SPLIT = re.compile(r"[\s,.;:!?_/=()\-]+")
_VOWELS = frozenset("aeiouy")


def _skeleton(word: str) -> str:
    letters = [c for c in word.casefold() if c.isalpha()]
    if not letters:
        return ""
    out = [letters[0]]
    for c in letters[1:]:
        if c in _VOWELS or c == out[-1]:
            continue
        out.append(c)
    return "".join(out)


def phonetic_words(value: bytes) -> tuple[str, ...] | None:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return tuple(_skeleton(w) for w in _WORD_SPLIT.split(text) if w)


def _words_in_order(values: tuple[tuple[str, ...], ...], assertion: tuple[str, ...]) -> bool:
    for words in values:
        pos = 0
        for a in assertion:
            try:
                pos = words.index(a, pos) + 1
            except ValueError:
                break
        else:
            return True
    return False
