"""The directory tree: scopes, schema-aware filters, attribute selection and limits.

Several tests are regression tests for the mistakes a naive LDAP tree makes (ldaptor's
in-memory tree among them): ordering compared as strings, a substring bug, size limits and
attribute lists ignored, and lookups that scan siblings.
"""

from __future__ import annotations

import pytest
from ldaptor.protocols import pureber, pureldap

from gridinfo.directory.filters import parse_filter
from gridinfo.directory.query import Scope, SearchRequest
from gridinfo.directory.schema import default_schema
from gridinfo.directory.tree import DirectoryTree
from gridinfo.errors import NoSuchObject, ResultCode

SUFFIX = "mds-vo-name=local,o=grid"


def decode(op: bytes) -> tuple[str, dict[str, list[bytes]]]:
    """Decode a SearchResultEntry with ldaptor (an independent BER decoder)."""
    obj, _ = pureber.berDecodeObject(pureldap.LDAPBERDecoderContext(fallback=pureber.BERDecoderContext()), op)
    attrs = {name.decode(): [bytes(v) for v in vals] for name, vals in obj.attributes}
    return obj.objectName.decode(), attrs


def make_tree(n_ces: int = 20) -> DirectoryTree:
    tree = DirectoryTree(default_schema())
    add = lambda dn, **a: tree.add(tree.build(dn, [(k, [v.encode() if isinstance(v, str) else v for v in (vs if isinstance(vs, list) else [vs])]) for k, vs in a.items()]))  # noqa: E731
    add("o=grid", objectClass=["top", "organization"], o="grid")
    add(SUFFIX, objectClass=["top", "MdsVo"], **{"Mds-Vo-name": "local"})
    add(f"GlueSiteUniqueID=site1,{SUFFIX}", objectClass=["GlueTop", "GlueSite"], GlueSiteUniqueID="site1", GlueSiteName="Site One")
    for i in range(n_ces):
        ce = f"ce{i}.example.org:8443/cream-pbs-q{i}"
        add(
            f"GlueCEUniqueID={ce},GlueSiteUniqueID=site1,{SUFFIX}",
            objectClass=["GlueCETop", "GlueCE", "GlueCEState", "GlueCEInfo"],
            GlueCEUniqueID=ce,
            GlueCEName=f"queue  {i}",
            GlueCEStateFreeCPUs=str(i),
            GlueCEStateStatus="Production" if i % 2 == 0 else "Draining",
            GlueCEInfoHostName=f"ce{i}.example.org",
        )
    add(f"GlueSiteUniqueID=names,{SUFFIX}", objectClass=["GlueTop", "GlueSite"], GlueSiteUniqueID="names", GlueSiteName=["abcmidz", "abcdefmidz"])
    return tree


def search(tree, base=SUFFIX, scope=Scope.SUB, flt="(objectClass=*)", **kw):
    return tree.search(SearchRequest(base=base, scope=scope, filter=parse_filter(flt), **kw))


def dns(result) -> set[str]:
    return {decode(e)[0] for e in result.entries}


def test_integer_ordering_is_numeric():
    """(GlueCEStateFreeCPUs>=10) compares integers: 9 is not >= 10 (a string compare says it is)."""
    tree = make_tree()
    got = {int(decode(e)[1]["GlueCEStateFreeCPUs"][0]) for e in search(tree, flt="(GlueCEStateFreeCPUs>=10)").entries}
    assert got == set(range(10, 20))
    got = {int(decode(e)[1]["GlueCEStateFreeCPUs"][0]) for e in search(tree, flt="(GlueCEStateFreeCPUs<=9)").entries}
    assert got == set(range(10))


def test_substrings_any_and_final_do_not_overlap():
    """`abc*mid*z` matches abcmidz and abcdefmidz, and `abc*bc` does not match `abc`."""
    tree = make_tree()
    assert dns(search(tree, flt="(GlueSiteName=abc*mid*z)")) == {f"GlueSiteUniqueID=names,{SUFFIX}"}
    assert dns(search(tree, flt="(GlueSiteName=abc*bc)")) == set()
    assert dns(search(tree, flt="(GlueSiteName=*DEF*)")) == {f"GlueSiteUniqueID=names,{SUFFIX}"}


def test_case_ignore_squeezes_spaces():
    """caseIgnore strings ignore case and runs of spaces, as OpenLDAP's matching rules do."""
    tree = make_tree()
    assert len(search(tree, flt="(GlueCEName=QUEUE 3)").entries) == 1
    assert len(search(tree, flt="(GlueCEName=  queue    3 )").entries) == 1


def test_unknown_attribute_never_matches():
    """An attribute the schema does not know is Undefined: no match, and NOT of it is no match too."""
    tree = make_tree()
    r = search(tree, flt="(NoSuchAttr=1)")
    assert r.code == ResultCode.SUCCESS and r.entries == []
    assert search(tree, flt="(!(NoSuchAttr=1))").entries == []


def test_size_limit_returns_that_many_then_code_4():
    """sizeLimit: exactly that many entries are sent, then sizeLimitExceeded (4)."""
    tree = make_tree()
    r = search(tree, flt="(objectClass=GlueCE)", size_limit=5)
    assert r.code == ResultCode.SIZE_LIMIT_EXCEEDED
    assert len(r.entries) == 5
    r = search(tree, flt="(objectClass=GlueCE)", size_limit=20)
    assert r.code == ResultCode.SUCCESS and len(r.entries) == 20
    request = SearchRequest(base=SUFFIX, scope=Scope.SUB, filter=parse_filter("(objectClass=GlueCE)"), size_limit=10)
    r = tree.search(request, server_size_limit=3)  # the smaller of the two limits holds
    assert r.code == ResultCode.SIZE_LIMIT_EXCEEDED and len(r.entries) == 3
    big = make_tree(200)  # more candidates than are answered at once: the cursor keeps the same limit
    r = search(big, flt="(objectClass=GlueCE)", size_limit=150)
    assert r.code == ResultCode.SIZE_LIMIT_EXCEEDED and len(r.entries) == 150


def test_time_limit_code_3():
    """timeLimit: a search that runs past it ends with timeLimitExceeded (3)."""
    ticks = iter(range(0, 10**6, 10))
    tree = make_tree(600)
    tree.clock = lambda: float(next(ticks))
    r = search(tree, flt="(GlueCEName=*)", time_limit=1)
    assert r.code == ResultCode.TIME_LIMIT_EXCEEDED


def test_requested_attributes_any_case():
    """Only the attributes asked for come back, whatever case the client wrote."""
    tree = make_tree()
    r = search(tree, flt="(GlueCEUniqueID=ce1.example.org:8443/cream-pbs-q1)", attributes=("gluecestatefreecpus", "GLUECENAME"))
    (dn, attrs), = [decode(e) for e in r.entries]
    assert set(attrs) == {"GlueCEStateFreeCPUs", "GlueCEName"}
    r = search(tree, flt="(GlueCEUniqueID=ce1.example.org:8443/cream-pbs-q1)", attributes=("1.1",))
    assert decode(r.entries[0])[1] == {}


def test_types_only_search_returns_attribute_names_without_values():
    """typesOnly returns attribute names without values."""
    tree = make_tree()
    r = search(tree, base=f"GlueSiteUniqueID=site1,{SUFFIX}", scope=Scope.BASE, types_only=True)
    attrs = decode(r.entries[0])[1]
    assert set(attrs) == {"objectClass", "GlueSiteUniqueID", "GlueSiteName"}
    assert all(v == [] for v in attrs.values())


def test_operational_attributes_only_on_request():
    """'+' adds operational attributes; '*' alone does not."""
    tree = make_tree()
    base = f"GlueSiteUniqueID=site1,{SUFFIX}"
    plain = decode(search(tree, base=base, scope=Scope.BASE).entries[0])[1]
    assert "hasSubordinates" not in plain
    both = decode(search(tree, base=base, scope=Scope.BASE, attributes=("*", "+")).entries[0])[1]
    assert both["hasSubordinates"] == [b"TRUE"]
    assert both["structuralObjectClass"] == [b"GlueSite"]
    assert "GlueSiteName" in both


def test_base_one_and_sub_scopes_select_the_base_its_children_and_its_subtree():
    """base, one and sub scopes select exactly the base, its children, and its subtree."""
    tree = make_tree(3)
    site = f"GlueSiteUniqueID=site1,{SUFFIX}"
    assert dns(search(tree, base=site, scope=Scope.BASE)) == {site}
    assert len(search(tree, base=site, scope=Scope.ONE).entries) == 3
    assert len(search(tree, base=site, scope=Scope.SUB).entries) == 4
    assert len(search(tree, base="o=grid", scope=Scope.SUB).entries) == 7


def test_no_such_base_reports_matched_dn():
    """A missing base is noSuchObject (32) with the nearest existing ancestor as matchedDN."""
    tree = make_tree()
    with pytest.raises(NoSuchObject) as err:
        search(tree, base=f"GlueSiteUniqueID=nowhere,{SUFFIX}")
    assert err.value.code == 32
    assert tree.key(err.value.matched_dn) == tree.key(SUFFIX)


def test_an_objectclass_filter_also_matches_entries_of_its_subclasses():
    """objectClass=GlueCETop finds GlueCE entries (OpenLDAP matches superclasses too)."""
    tree = make_tree(4)
    assert len(search(tree, flt="(objectClass=gluecetop)").entries) == 4


def test_one_level_lookup_does_not_scan_siblings():
    """A base lookup and a one-level search touch only the entries they return."""
    tree = make_tree(2000)
    calls = []
    real = tree.compiler.compile

    def counting_compile(f):
        pred = real(f)

        def wrapped(e):
            calls.append(e)
            return pred(e)

        return wrapped

    tree.compiler.compile = counting_compile
    ce = f"GlueCEUniqueID=ce7.example.org:8443/cream-pbs-q7,GlueSiteUniqueID=site1,{SUFFIX}"
    assert len(search(tree, base=ce, scope=Scope.BASE).entries) == 1
    assert len(calls) == 1
    calls.clear()
    search(tree, base=ce, scope=Scope.ONE)
    assert calls == []
    calls.clear()
    # a subtree search with an indexed equality visits only the indexed candidates
    r = search(tree, base="o=grid", flt="(&(objectClass=GlueSite)(GlueSiteName=site one))")
    assert len(r.entries) == 1 and len({e.key for e in calls}) == 2


def test_replace_and_remove_keep_indexes_right():
    """Replacing or removing an entry updates the children and objectClass indexes."""
    tree = make_tree(2)
    ce = f"GlueCEUniqueID=ce0.example.org:8443/cream-pbs-q0,GlueSiteUniqueID=site1,{SUFFIX}"
    entry = tree.lookup(ce)
    tree.add(tree.build(ce, [("objectClass", [b"GlueTop", b"GlueSite"]), ("GlueSiteUniqueID", [b"x"])]))
    assert len(search(tree, flt="(objectClass=GlueCE)").entries) == 1
    assert tree.remove(entry.key) is not None
    assert len(search(tree, flt="(objectClass=GlueSite)").entries) == 2
    assert tree.subtree_sizes[tree.key("o=grid")] == len(tree)


def test_compare_answers_by_the_attributes_equality_rule():
    """compare answers true/false by the attribute's equality rule."""
    tree = make_tree(2)
    ce = f"GlueCEUniqueID=ce1.example.org:8443/cream-pbs-q1,GlueSiteUniqueID=site1,{SUFFIX}"
    assert tree.compare(ce, "GlueCEStateFreeCPUs", b"1") is True
    assert tree.compare(ce, "gluecestatefreecpus", b"1") is True
    assert tree.compare(ce, "GlueCEStateStatus", b"draining") is True
    assert tree.compare(ce, "GlueCEStateStatus", b"closed") is False


def test_an_equality_index_follows_values_shared_then_unshared_and_removed():
    """A value one entry holds, then two, then one again, then none: the indexed search finds
    exactly the entries that hold it at each step (the index keeps a lone holder's key
    without a bucket of its own, and goes back to that when a bucket empties to one)."""
    tree = DirectoryTree(default_schema(), indexed=("GlueCEInfoHostName",))
    tree.add(tree.build("o=grid", [("objectClass", [b"organization"]), ("o", [b"grid"])]))
    tree.add(tree.build(SUFFIX, [("objectClass", [b"MdsVo"]), ("Mds-Vo-name", [b"local"])]))

    def ce(name: str, host: bytes):
        return tree.build(
            f"GlueCEUniqueID={name},{SUFFIX}",
            [("objectClass", [b"GlueCETop", b"GlueCE", b"GlueCEInfo"]), ("GlueCEUniqueID", [name.encode()]),
             ("GlueCEInfoHostName", [host])],
        )

    def holders(host: str) -> set[str]:
        return {dn.split(",")[0] for dn in dns(search(tree, flt=f"(GlueCEInfoHostName={host})"))}

    tree.add(ce("a", b"CE1.example.org"))
    assert holders("ce1.EXAMPLE.org") == {"GlueCEUniqueID=a"}
    tree.add(ce("b", b"ce1.example.org"))
    assert holders("ce1.example.org") == {"GlueCEUniqueID=a", "GlueCEUniqueID=b"}
    tree.add(ce("a", b"ce2.example.org"))  # a moves away: b alone holds ce1
    assert holders("ce1.example.org") == {"GlueCEUniqueID=b"}
    assert holders("ce2.example.org") == {"GlueCEUniqueID=a"}
    tree.remove(tree.key(f"GlueCEUniqueID=b,{SUFFIX}"))
    assert holders("ce1.example.org") == set()
    tree.remove(tree.key(f"GlueCEUniqueID=a,{SUFFIX}"))
    assert holders("ce2.example.org") == set()
    assert tree.eq_indexes["glueceinfohostname"] == {}


@pytest.mark.parametrize("dn", [
    "GlueCEUniqueID=ce1.example.org:8443/cream-pbs-long,mds-vo-name=local,o=grid",
    "GlueSiteUniqueID=Zürich " + "x" * 300 + ",mds-vo-name=local,o=grid",  # non-ASCII, long-form BER length
])
def test_an_entry_gives_back_its_dn_as_written(dn):
    """An entry keeps its DN only inside its encoding; the DN it gives back is the one it was
    built with, spelling and all, and its encoding decodes to it (ldaptor's decoder)."""
    tree = DirectoryTree(default_schema())
    entry = tree.build(dn, [("objectClass", [b"GlueTop"]), ("description", [b"d"])])
    assert entry.dn == dn
    assert decode(entry.encoded)[0] == dn
    assert decode(entry.encode_selected(["description"]))[0] == dn


def test_kept_subtree_key_lists_follow_adds_and_removes_below_them():
    """A large subtree's key list is kept between searches; adding or removing any key below
    it (a grandchild, an orphan under a missing parent, the base itself) gives the next search
    the list a fresh walk gives; small subtrees are not kept."""
    tree = make_tree(40)
    site = tree.key(f"GlueSiteUniqueID=site1,{SUFFIX}")
    other = tree.key(f"GlueSiteUniqueID=names,{SUFFIX}")

    def under(base_dn):
        return dns(search(tree, base=base_dn, flt="(objectClass=*)"))

    def walk_is_kept_and_exact(key):
        kept = tree.subtree_keys(key)
        assert kept is tree.subtree_keys(key)  # kept, not walked again
        assert kept == tree._walk_subtree(key)

    base_dn = f"GlueSiteUniqueID=site1,{SUFFIX}"
    assert len(under(base_dn)) == 41
    walk_is_kept_and_exact(site)
    walk_is_kept_and_exact(tree.key(SUFFIX))
    ce = f"GlueCEUniqueID=ce3.example.org:8443/cream-pbs-q3,{base_dn}"
    tree.add(tree.build(f"cn=x,{ce}", [("objectClass", [b"device"]), ("cn", [b"x"])]))  # a grandchild
    assert f"cn=x,{ce}".lower() in {d.lower() for d in under(base_dn)}
    assert len(under(SUFFIX)) == 44
    tree.add(tree.build(f"cn=y,cn=missing,{base_dn}", [("objectClass", [b"device"]), ("cn", [b"y"])]))  # an orphan
    walk_is_kept_and_exact(site)
    tree.remove(tree.key(ce))  # its child stays, an orphan no walk from the site reaches
    assert len(under(base_dn)) == 40
    walk_is_kept_and_exact(site)
    tree.remove(site)
    assert tree.subtree_keys(site) == tree._walk_subtree(site)
    assert tree.subtree_keys(tree.key(SUFFIX)) == tree._walk_subtree(tree.key(SUFFIX))
    assert len(tree.subtree_keys(other)) == 1  # small subtrees are walked, not kept
    assert other not in tree._subtrees


def test_kept_subtree_key_lists_are_bounded():
    """At most _SUBTREES_MAX lists and _SUBTREE_KEYS_MAX keys in all are kept, oldest out first."""
    from gridinfo.directory import tree as tree_module

    tree = make_tree(40)
    site = tree.key(f"GlueSiteUniqueID=site1,{SUFFIX}")
    for i in range(tree_module._SUBTREES_MAX + 10):
        tree._subtrees[f"cn=fake{i}"] = ["k"] * 40  # noqa: as the kept lists look, without the walks
        tree._subtree_keys_kept += 40
    tree.subtree_keys(site)
    assert len(tree._subtrees) <= tree_module._SUBTREES_MAX
    assert tree._subtree_keys_kept == sum(len(v) for v in tree._subtrees.values()) <= tree_module._SUBTREE_KEYS_MAX
    assert site in tree._subtrees and "cn=fake0" not in tree._subtrees


def test_remembered_answers_hold_until_the_tree_changes():
    """A tree with answer_cache (a GIIS's) answers a repeated large search from memory, and any
    add, replace (a freshness stamp included), remove or touch makes the next one search again;
    a caller changing its answer does not change the remembered one."""
    tree = DirectoryTree(default_schema(), answer_cache=True)
    add = lambda dn, **a: tree.add(tree.build(dn, [(k, [v.encode()]) for k, v in a.items()]))  # noqa: E731
    add("o=grid", objectClass="organization", o="grid")
    add(SUFFIX, objectClass="MdsVo", **{"Mds-Vo-name": "local"})
    for i in range(100):
        add(f"GlueCEUniqueID=ce{i},{SUFFIX}", objectClass="GlueCE", GlueCEUniqueID=f"ce{i}", GlueCEStateFreeCPUs=str(i))

    def ask():
        return search(tree, flt="(objectClass=GlueCE)")

    first = ask()
    assert len(first.entries) == 100 and len(tree._answers) == 1
    first.entries.clear()  # the caller's copy
    again = ask()
    assert len(again.entries) == 100
    add(f"GlueCEUniqueID=ce100,{SUFFIX}", objectClass="GlueCE", GlueCEUniqueID="ce100", GlueCEStateFreeCPUs="1")
    assert len(ask().entries) == 101
    add(f"GlueCEUniqueID=ce5,{SUFFIX}", objectClass="GlueCE", GlueCEUniqueID="ce5", GlueCEStateFreeCPUs="5",
        **{"Mds-validto": "20990101000000Z"})  # only a freshness stamp differs
    assert any(b"Mds-validto" in e for e in ask().entries)
    tree.remove(tree.key(f"GlueCEUniqueID=ce7,{SUFFIX}"))
    assert len(ask().entries) == 100
    with_csn = SearchRequest(base=SUFFIX, scope=Scope.SUB, filter=parse_filter("(objectClass=GlueCE)"), attributes=("entryCSN",))
    before = tree.search(with_csn).entries
    tree.touch(tree.key(f"GlueCEUniqueID=ce1,{SUFFIX}"))
    assert tree.search(with_csn).entries != before


def test_an_indexed_search_from_a_base_above_every_entry_or_not():
    """An equality search answered from an index: from a base every entry lies below, the index
    hits are the answer; once an entry lies elsewhere (another suffix), it is left out."""
    tree = DirectoryTree(default_schema(), indexed=("GlueCEUniqueID",))
    add = lambda dn, **a: tree.add(tree.build(dn, [(k, [v.encode()]) for k, v in a.items()]))  # noqa: E731
    add("o=grid", objectClass="organization", o="grid")
    for i in range(20):
        add(f"GlueCEUniqueID=ce{i},o=grid", objectClass="GlueCE", GlueCEUniqueID=f"ce{i}")

    def ids(base):
        return {d.split(",")[0] for d in dns(search(tree, base=base, flt="(GlueCEUniqueID=ce3)"))}

    assert ids("o=grid") == {"GlueCEUniqueID=ce3"}
    add("o=other", objectClass="organization", o="other")
    add("GlueCEUniqueID=ce3,o=other", objectClass="GlueCE", GlueCEUniqueID="ce3")
    assert dns(search(tree, base="o=grid", flt="(GlueCEUniqueID=ce3)")) == {"GlueCEUniqueID=ce3,o=grid"}
    assert dns(search(tree, base="o=other", flt="(GlueCEUniqueID=ce3)")) == {"GlueCEUniqueID=ce3,o=other"}
    assert len(search(tree, base="", flt="(GlueCEUniqueID=ce3)").entries) == 2


def test_subtree_sizes_count_every_ancestor_also_past_escaped_commas():
    """``subtree_sizes`` holds, for every key, how many entries lie at or below it: counted on
    add and remove for plain keys and for keys whose values hold escaped commas."""
    from gridinfo.directory.dn import parent_key

    tree = make_tree(3)
    odd = [f'GlueSiteUniqueID=a\\,b,{SUFFIX}', f'GlueSiteUniqueID=x\\,y\\\\,GlueSiteUniqueID=a\\,b,{SUFFIX}',
           f'GlueSiteUniqueID=plain,GlueSiteUniqueID=a\\,b,{SUFFIX}']
    for dn in odd:
        tree.add(tree.build(dn, [("objectClass", [b"GlueTop", b"GlueSite"]), ("GlueSiteUniqueID", [b"v"])]))
    tree.remove(tree.key(f"GlueCEUniqueID=ce1.example.org:8443/cream-pbs-q1,GlueSiteUniqueID=site1,{SUFFIX}"))

    def recount() -> dict[str, int]:
        sizes: dict[str, int] = {}
        for key in tree.entries:
            k: str | None = key
            while k is not None:
                sizes[k] = sizes.get(k, 0) + 1
                k = parent_key(k)
        return sizes

    assert tree.subtree_sizes == recount()
    assert tree.subtree_sizes[tree.key(f"GlueSiteUniqueID=a\\,b,{SUFFIX}")] == 3


def _twin_trees():
    """The same entries in a tree with equality indexes and in one without any."""
    indexed = DirectoryTree(default_schema(), indexed=("GlueCEUniqueID", "cn", "name", "GlueCEInfoHostName"))
    plain = DirectoryTree(default_schema())
    records = [
        ("o=grid", [("objectClass", ["organization"]), ("o", ["grid"])]),
        ("o=other", [("objectClass", ["organization"]), ("o", ["other"])]),
        (SUFFIX, [("objectClass", ["MdsVo"]), ("Mds-Vo-name", ["local"])]),
        (f"GlueSiteUniqueID=s1,{SUFFIX}", [("objectClass", ["GlueTop", "GlueSite"]), ("GlueSiteUniqueID", ["s1"]),
                                           ("GlueSiteName", ["alpha"])]),
        ("cn=alpha,o=other", [("objectClass", ["person"]), ("cn", ["Alpha"]), ("sn", ["alpha"])]),
        ("cn=beta,o=grid", [("objectClass", ["person"]), ("cn", ["beta", "ALPHA"]), ("sn", ["b"])]),
        ("cn=gamma,o=grid", [("objectClass", ["person"]), ("cn", ["gamma"]), ("sn", ["alpha"]), ("name", ["x"])]),
    ]
    for i in range(8):
        records.append((
            f"GlueCEUniqueID=ce{i},GlueSiteUniqueID=s1,{SUFFIX}",
            [("objectClass", ["GlueCETop", "GlueCE", "GlueCEInfo"]), ("GlueCEUniqueID", [f"CE{i % 3}"]),
             ("GlueCEInfoHostName", [f"host{i % 2}.example.org"])]
            + ([("GlueCEUniqueID;x-alias", ["ce7"])] if i == 5 else []),
        ))
    records.append((f"GlueCEUniqueID=ce1,o=other", [("objectClass", ["GlueCE"]), ("GlueCEUniqueID", ["ce1"])]))
    for tree in (indexed, plain):
        for dn, attrs in records:
            tree.add(tree.build(dn, [(a, [v.encode() for v in vs]) for a, vs in attrs]))
    return indexed, plain


@pytest.mark.parametrize("flt", [
    "(GlueCEUniqueID=ce1)", "(glueceuniqueid=CE1 )", "(GlueCEUniqueID=ce9)", "(GlueCEUniqueID=ce7)",
    "(GlueCEUniqueID;x-alias=ce7)", "(cn=alpha)", "(name=alpha)", "(sn=alpha)", "(objectClass=GlueCE)",
    "(objectclass=person)", "(GlueCEInfoHostName=HOST1.example.org)", "(&(objectClass=GlueCE)(GlueCEUniqueID=ce2))",
    "(&(GlueCEInfoHostName=host1.example.org)(GlueCEUniqueID=ce1))", "(|(GlueCEUniqueID=ce1)(cn=alpha)(cn=nobody))",
    "(&(objectClass=GlueCE)(|(GlueCEUniqueID=ce0)(GlueCEUniqueID=ce2)))", "(&(objectClass=person)(sn=alpha))",
    "(|(cn=alpha)(name=x))", "(&(objectClass=GlueCE)(!(GlueCEUniqueID=ce1)))", "(&(cn=alpha)(cn=beta))",
])
@pytest.mark.parametrize("base, scope", [
    ("", Scope.SUB), ("o=grid", Scope.SUB), (SUFFIX, Scope.SUB), (f"GlueSiteUniqueID=s1,{SUFFIX}", Scope.CHILDREN),
    (f"GlueCEUniqueID=ce1,GlueSiteUniqueID=s1,{SUFFIX}", Scope.SUB), ("o=grid", Scope.CHILDREN), ("o=other", Scope.ONE),
])
def test_an_answer_from_the_indexes_is_the_answer_of_the_filter_evaluated(flt, base, scope):
    """An equality on an indexed attribute is answered from its index without evaluating the
    filter; the answer must be what evaluating the filter over the scope gives (a tree without
    indexes): values that differ only in case and spaces, values under an option (which the
    index does not hold), a supertype (name, whose index cannot answer for cn), scopes that
    leave part of the index's hits out."""
    indexed, plain = _twin_trees()
    assert dns(search(indexed, base=base, scope=scope, flt=flt)) == dns(search(plain, base=base, scope=scope, flt=flt))


def test_which_equalities_the_indexes_answer_alone():
    """An equality on objectClass or on an indexed attribute with no subtypes and no options is
    answered by its index alone, and so are ANDs and ORs of only such terms; anything else
    (a term on an unindexed attribute, a NOT) still has its filter evaluated."""
    indexed, _ = _twin_trees()
    alone = {flt: indexed._exact_keys(parse_filter(flt)) is not None for flt in (
        "(GlueCEUniqueID=ce1)", "(cn=alpha)", "(objectClass=GlueCE)", "(GlueCEUniqueID;x-alias=ce7)",
        "(name=alpha)", "(sn=alpha)", "(&(objectClass=GlueCE)(GlueCEUniqueID=ce2))", "(modifyTimestamp=20260101000000Z)",
        "(|(GlueCEUniqueID=ce1)(cn=alpha))", "(&(objectClass=person)(sn=alpha))", "(!(cn=alpha))",
    )}
    assert alone == {
        "(GlueCEUniqueID=ce1)": True, "(cn=alpha)": True, "(objectClass=GlueCE)": True,
        "(GlueCEUniqueID;x-alias=ce7)": False, "(name=alpha)": False, "(sn=alpha)": False,
        "(&(objectClass=GlueCE)(GlueCEUniqueID=ce2))": True, "(modifyTimestamp=20260101000000Z)": False,
        "(|(GlueCEUniqueID=ce1)(cn=alpha))": True, "(&(objectClass=person)(sn=alpha))": False, "(!(cn=alpha))": False,
    }


def test_index_answers_too_large_for_a_small_answer_are_evaluated_and_right():
    """An OR of indexed equalities naming more entries than a small answer, and an AND whose
    every term names many entries, go the evaluated way; their answers are the same."""
    trees = [DirectoryTree(default_schema(), indexed=("GlueCEUniqueID",)), DirectoryTree(default_schema())]
    for tree in trees:
        tree.add(tree.build("o=grid", [("objectClass", [b"organization"]), ("o", [b"grid"])]))
        for i in range(100):
            tree.add(tree.build(f"GlueCEUniqueID=ce{i},o=grid", [
                ("objectClass", [b"GlueCETop", b"GlueCE"]), ("GlueCEUniqueID", [f"ce{i}".encode()])]))
    wide_or = "(|" + "".join(f"(GlueCEUniqueID=ce{i})" for i in range(80)) + ")"
    for flt, expected in ((wide_or, 80), ("(&(objectClass=GlueCE)(objectClass=GlueCETop))", 100)):
        indexed, plain = (dns(search(tree, base="o=grid", flt=flt)) for tree in trees)
        assert indexed == plain and len(indexed) == expected
        assert trees[0]._exact_keys(parse_filter(flt)) is None
