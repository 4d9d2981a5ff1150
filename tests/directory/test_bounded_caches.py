"""The directory core's caches stay bounded whatever names clients and providers send.

Issue 9 item 3: two million never-seen attribute names in filters and attribute lists grew the
schema's matching cache by 200 MB that was never freed.  Unknown names are not cached at all;
caches keyed by what clients or providers spell (attribute spellings, attribute-list plans,
objectClass values, DN attribute types) have a fixed bound.
"""

from __future__ import annotations

from gridinfo.directory import entry as entry_module
from gridinfo.directory import schema as schema_module
from gridinfo.directory.dn import _TYPE_CACHE_MAX, DNNormaliser
from gridinfo.directory.entry import EntryBuilder
from gridinfo.directory.filters import parse_filter
from gridinfo.directory.query import Scope, SearchRequest
from gridinfo.directory.schema import load_schema
from gridinfo.directory.tree import DirectoryTree


def defined_spellings(schema) -> int:
    """How many names and OIDs the schema defines: the most its matching cache may hold."""
    return sum(len(at.names) + 1 for at in schema.attribute_types())


def test_unknown_attribute_names_are_not_cached():
    """A client inventing attribute names costs no memory in the schema."""
    schema = load_schema(())
    for i in range(20_000):
        assert schema.matching(f"madeUp{i}") is None
    assert all(v is not None for v in schema._matching_cache.values())
    assert len(schema._matching_cache) == 0


def test_options_and_case_variants_share_one_cache_entry():
    """cn;lang-x1, CN;lang-x2 ... all resolve to cn and are cached once, as cn."""
    schema = load_schema(())
    for i in range(5_000):
        m = schema.matching(f"{'CN' if i % 2 else 'cn'};lang-x{i}")
        assert m is not None and m.key == "cn"
    assert list(schema._matching_cache) == ["cn"]
    for at in schema.attribute_types():
        for name in (*at.names, at.oid):
            schema.matching(name.upper())
    assert len(schema._matching_cache) <= defined_spellings(schema)


def test_unknown_object_classes_are_not_cached():
    """objectClass values a provider or filter invents do not accumulate in the schema."""
    schema = load_schema(())
    for i in range(10_000):
        assert schema.superclasses(f"NoSuchClass{i}") == (f"nosuchclass{i}",)
    assert not schema._superclass_cache
    assert schema.superclasses("GlueCE")[0] == "gluece"


def test_entry_builder_caches_have_a_bound():
    """Entries with ever-new attribute lists (a hostile registrant) keep the builder bounded."""
    schema = load_schema(())
    builder = EntryBuilder(schema)
    limit = entry_module._PLAN_CACHE_MAX
    for i in range(limit + 500):
        e = builder.build(
            f"cn=x{i},o=grid",
            [("objectClass", [f"Invented{i}".encode()]), ("cn", [b"x"]), (f"attr{i}", [b"v"]), (f"cn;x-{i}", [b"y"])],
        )
        assert e.get(f"attr{i}".lower()) == [b"v"]
    assert len(builder._plans) <= limit
    assert len(builder._attr_cache) <= entry_module._ATTR_CACHE_MAX
    assert len(builder._oc_cache) <= entry_module._OC_CACHE_MAX
    assert len(builder._oc_sets) <= entry_module._OC_CACHE_MAX
    # the cache heals: a list seen again after the flood is cached and gives the same entry
    again = builder.build("cn=y,o=grid", [("objectClass", [b"organization"]), ("o", [b"y"])])
    assert again.object_classes >= {"organization", "top"}


def test_dn_attribute_types_are_bounded():
    """Search bases naming invented attribute types (x123=y) do not grow the DN normaliser."""
    schema = load_schema(())
    normaliser = DNNormaliser(schema)
    for i in range(_TYPE_CACHE_MAX + 1000):
        assert normaliser.key(f"x{i}=Value,o=grid") == f"x{i}=value,o=grid"
    assert len(normaliser._types) <= 1  # only o, which the schema defines
    assert normaliser.key("CN=A,O=Grid") == "cn=a,o=grid"


def test_tree_search_with_invented_names_leaves_caches_bounded():
    """Filters and attribute lists full of invented names answer right and cache nothing new."""
    schema = load_schema(())
    tree = DirectoryTree(schema)
    tree.add(tree.build("o=grid", [("objectClass", [b"organization"]), ("o", [b"grid"])]))
    sizes = []
    for n in range(20):
        names = [f"invented{n}x{i}" for i in range(500)]
        flt = parse_filter("(|" + "".join(f"({a}=v)" for a in names) + "(o=grid))")
        result = tree.search(SearchRequest("o=grid", Scope.BASE, flt, tuple(names) + ("o",)))
        assert len(result.entries) == 1
        sizes.append(len(schema._matching_cache))
    assert len(set(sizes)) == 1  # the first search cached what it needed; 19 x 500 new names added nothing
    assert sizes[0] <= defined_spellings(schema)


def test_dn_text_cache_has_a_bound_and_never_holds_a_bad_dn():
    """Search bases clients spell are remembered (a base lookup parses its DN once), within a
    bound; a DN that does not parse is refused every time and never remembered."""
    from gridinfo.directory.dn import _TEXT_CACHE_MAX
    from gridinfo.errors import InvalidDNSyntax

    normaliser = DNNormaliser(load_schema(()))
    first = normaliser.key("GlueCEUniqueID=ce1,Mds-Vo-name=local,o=grid")
    assert normaliser.key("GlueCEUniqueID=ce1,Mds-Vo-name=local,o=grid") == first
    assert normaliser.key("glueceuniqueid=ce1, mds-vo-name=LOCAL,O=grid") == first
    for _ in range(2):
        try:
            normaliser.key("no equals sign,o=grid")
        except InvalidDNSyntax:
            pass
        else:
            raise AssertionError("an invalid DN was given a key")
    assert "no equals sign,o=grid" not in normaliser._texts
    for i in range(_TEXT_CACHE_MAX + 100):
        normaliser.key(f"cn=n{i},o=grid")
    assert len(normaliser._texts) <= _TEXT_CACHE_MAX
    assert normaliser.key("GlueCEUniqueID=ce1,Mds-Vo-name=local,o=grid") == first


def test_compiled_filters_have_a_bound_and_answer_as_compiled():
    """Filters are compiled once and remembered, within a bound on their number and on their
    terms in all; a remembered predicate gives the same answers as a fresh one."""
    from gridinfo.directory.evaluate import _COMPILED_MAX, _COMPILED_TERMS

    tree = DirectoryTree(load_schema(()))
    tree.add(tree.build("o=grid", [("objectClass", [b"organization"]), ("o", [b"grid"])]))
    for i in range(_COMPILED_MAX + 50):
        request = SearchRequest("o=grid", Scope.BASE, parse_filter(f"(|(o=grid)(cn=x{i}))"))
        assert len(tree.search(request).entries) == 1
    assert len(tree.compiler._compiled) <= _COMPILED_MAX
    again = SearchRequest("o=grid", Scope.BASE, parse_filter("(|(o=grid)(cn=x3))"))
    none = SearchRequest("o=grid", Scope.BASE, parse_filter("(!(|(o=grid)(cn=x3)))"))
    assert len(tree.search(again).entries) == 1
    assert tree.search(none).entries == []
    wide = _COMPILED_TERMS // 10
    for i in range(30):  # DIRAC-style wide ORs: the term budget lets the oldest go
        terms = "".join(f"(cn=w{i}-{j})" for j in range(wide))
        request = SearchRequest("o=grid", Scope.BASE, parse_filter(f"(|{terms}(o=grid))"))
        assert len(tree.search(request).entries) == 1
    assert tree.compiler._compiled_terms <= _COMPILED_TERMS
    assert sum(w for _, w in tree.compiler._compiled.values()) == tree.compiler._compiled_terms


def test_a_bulk_load_keeps_the_value_caches_small():
    """Many entries with one-off values (IDs, URLs): the builder's encoding cache and the schema's
    checked-values cache stay within their small bounds as they pour in, and what repeats is still
    encoded the same (the encoding of a cached value is the one of a fresh build)."""
    schema = load_schema(())
    builder = EntryBuilder(schema)
    limit = max(entry_module._ENCODE_CACHE_MAX, schema_module._CHECKED_VALUES_MAX)
    first = None
    for i in range(limit + 2_000):
        attrs = [("objectClass", [b"organizationalUnit"]), ("ou", [f"unit{i}".encode()]), ("description", [b"same"])]
        assert schema.check_entry(dict(attrs)) == []
        e = builder.build(f"ou=unit{i},o=grid", attrs)
        assert len(builder._encoded) <= entry_module._ENCODE_CACHE_MAX
        assert len(schema._check_good_values) <= schema_module._CHECKED_VALUES_MAX
        if first is None:
            first = e
    fresh = EntryBuilder(load_schema(())).build(
        "ou=unit0,o=grid", [("objectClass", [b"organizationalUnit"]), ("ou", [b"unit0"]), ("description", [b"same"])]
    )
    assert first is not None and first.encoded == fresh.encoded
