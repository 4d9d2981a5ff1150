"""Wide ORs of equalities (DIRAC's 1,000 GLUE2ResourceID terms) answer as term-by-term ORs do.

The filter compiler turns equalities on one attribute inside an OR into one set test, and the
tree answers an AND/OR of indexed equalities from the union of index hits.  These tests hold
the grouped evaluation to the meaning of the filter, term by term (RFC 4511's three values:
an assertion invalid for the syntax is Undefined, NOT of Undefined is Undefined).
"""

from __future__ import annotations

import random

import pytest

from gridinfo.directory import filters as F
from gridinfo.directory.evaluate import FilterCompiler
from gridinfo.directory.filters import parse_filter
from gridinfo.directory.query import Scope, SearchRequest
from gridinfo.directory.schema import default_schema
from gridinfo.directory.tree import DirectoryTree
from tests.directory.test_tree import SUFFIX, decode, dns, make_tree, search


def term_by_term(compiler: FilterCompiler, f: F.Filter):
    """The reference: an OR evaluated one term after the other, nothing grouped."""
    if isinstance(f, F.Or):
        return compiler._or([term_by_term(compiler, t) for t in f.filters])
    if isinstance(f, F.And):
        return compiler._and([term_by_term(compiler, t) for t in f.filters])
    if isinstance(f, F.Not):
        inner = term_by_term(compiler, f.filter)
        return lambda e: (lambda r: None if r is None else not r)(inner(e))
    return compiler.compile(f)


TERMS = [
    "(GlueCEStateFreeCPUs={n})",
    "(GlueCEStateFreeCPUs=abc)",  # invalid for INTEGER: Undefined
    "(GlueCEUniqueID=ce{n}.example.org:8443/cream-pbs-q{n})",
    "(GlueCEUniqueID=CE{n}.EXAMPLE.org:8443/cream-pbs-q{n})",  # caseIgnoreIA5
    "(GlueCEStateStatus=Draining)",
    "(objectClass=GlueSite)",
    "(objectclass=gluece)",
    "(NoSuchAttribute=x)",
    "(name=site1)",  # a supertype: matches its subtypes' values
]


@pytest.mark.parametrize("seed", range(40))
def test_grouped_or_means_what_the_terms_mean(seed):
    """Any OR of equalities (with NOT around it or not) selects the same entries, term by term."""
    rng = random.Random(seed)
    tree = make_tree(30)
    compiler = tree.compiler
    terms = [rng.choice(TERMS).format(n=rng.randrange(40)) for _ in range(rng.randrange(1, 12))]
    text = "(|" + "".join(terms) + ")"
    if rng.random() < 0.3:
        text = f"(!{text})"
    if rng.random() < 0.3:
        text = f"(&(objectClass=GlueTop){text})"
    f = parse_filter(text)
    grouped, reference = compiler.compile(f), term_by_term(compiler, f)
    for entry in tree.entries.values():
        assert grouped(entry) == reference(entry), (text, entry.dn)


def test_undefined_term_makes_a_missing_match_undefined():
    """(!(|(FreeCPUs=abc)(FreeCPUs=1)(FreeCPUs=2))) selects nothing: NOT of Undefined, as slapd."""
    tree = make_tree(10)
    everything = len(search(tree, flt="(objectClass=GlueCE)").entries)
    assert len(search(tree, flt="(|(GlueCEStateFreeCPUs=1)(GlueCEStateFreeCPUs=2)(GlueCEStateFreeCPUs=3))").entries) == 3
    flt = "(!(|(GlueCEStateFreeCPUs=abc)(GlueCEStateFreeCPUs=1)(GlueCEStateFreeCPUs=2)))"
    assert dns(search(tree, flt=f"(&(objectClass=GlueCE){flt})")) == set()  # False for 1 and 2, Undefined for the rest
    assert len(search(tree, flt=flt[2:-1]).entries) == 2
    assert everything == 10


def test_dirac_thousand_term_or_through_the_index():
    """DIRAC's (&(objectClass=...)(|(ID=a)...x1000)) returns exactly the named entries."""
    tree = DirectoryTree(default_schema(), indexed=("objectClass", "GlueCEUniqueID"))
    tree.add(tree.build("o=grid", [("objectClass", [b"organization"]), ("o", [b"grid"])]))
    for i in range(3000):
        ce = f"ce{i}.example.org:8443/q".encode()
        tree.add(tree.build(f"GlueCEUniqueID={ce.decode()},o=grid", [("objectClass", [b"GlueCE"]), ("GlueCEUniqueID", [ce])]))
    wanted = list(range(0, 3000, 3))
    flt = "(&(objectClass=GlueCE)(|" + "".join(f"(GlueCEUniqueID=CE{i}.example.org:8443/q)" for i in wanted) + "(GlueCEUniqueID=none)))"
    f = parse_filter(flt)
    candidates = tree._candidates(f)
    assert candidates is not None and len(candidates) == len(wanted)  # the union of index hits, not a scan
    result = tree.search(SearchRequest("o=grid", Scope.SUB, f, ("1.1",)))
    assert sorted(decode(e)[0] for e in result.entries) == sorted(f"GlueCEUniqueID=ce{i}.example.org:8443/q,o=grid" for i in wanted)


def test_or_of_object_classes_is_one_set_test():
    """(|(objectClass=GlueSite)(objectClass=GlueCE)(objectClass=MdsVo)) keeps superclass semantics."""
    tree = make_tree(5)
    got = dns(search(tree, base="o=grid", flt="(|(objectClass=GlueSite)(objectClass=GlueCETop)(objectClass=MdsVo))"))
    assert SUFFIX in got and len(got) == 1 + 2 + 5
