"""RFC 4515 filter text: what ldapsearch users type parses to the right filter, and back."""

import pytest
from hypothesis import given, strategies as st

from gridinfo.directory import filters as F
from gridinfo.errors import ProtocolError


@pytest.mark.parametrize(
    "text, expected",
    [
        ("(objectClass=*)", F.Present("objectClass")),
        ("objectClass=GlueCE", F.Equality("objectClass", b"GlueCE")),
        ("(GlueCEStateFreeCPUs>=10)", F.GreaterOrEqual("GlueCEStateFreeCPUs", b"10")),
        ("(GlueCEStateFreeCPUs<=10)", F.LessOrEqual("GlueCEStateFreeCPUs", b"10")),
        ("(cn~=smith)", F.Approx("cn", b"smith")),
        ("(cn=abc*mid*z)", F.Substrings("cn", b"abc", (b"mid",), b"z")),
        ("(cn=*mid*)", F.Substrings("cn", None, (b"mid",), None)),
        ("(cn=abc*)", F.Substrings("cn", b"abc", (), None)),
        (r"(cn=a\2ab)", F.Equality("cn", b"a*b")),
        (r"(cn=\28x\29)", F.Equality("cn", b"(x)")),
        ("(cn:caseExactMatch:=Foo)", F.Extensible("caseExactMatch", "cn", b"Foo", False)),
        ("(cn:dn:=Foo)", F.Extensible(None, "cn", b"Foo", True)),
        (
            "(&(objectClass=GlueCE)(!(GlueCEStateStatus=Closed)))",
            F.And((F.Equality("objectClass", b"GlueCE"), F.Not(F.Equality("GlueCEStateStatus", b"Closed")))),
        ),
        ("(|(a=1)(b=2))", F.Or((F.Equality("a", b"1"), F.Equality("b", b"2")))),
        ("(&)", F.And(())),
        ("(cn;lang-en=x)", F.Equality("cn;lang-en", b"x")),
        ("(2.5.4.3=x)", F.Equality("2.5.4.3", b"x")),
    ],
)
def test_each_filter_kind_parses_from_its_rfc4515_text(text, expected):
    """Each RFC 4511 filter kind parses from its RFC 4515 text."""
    assert F.parse_filter(text) == expected


@pytest.mark.parametrize("bad", ["", "(cn=x", "(cn)", "(&(cn=x)", "(c n=x)", "((cn=x))", "(cn=x))", "(:=x)", "(cn>x)"])
def test_bad_filters_are_protocol_errors(bad):
    """A malformed filter string is refused with a message naming the filter."""
    with pytest.raises(ProtocolError) as err:
        F.parse_filter(bad)
    assert "filter" in err.value.message


def test_absurd_filter_nesting_is_refused_before_the_stack_runs_out():
    """Absurd nesting is refused instead of exhausting the stack."""
    text = "(!" * 500 + "(cn=x)" + ")" * 500
    with pytest.raises(ProtocolError):
        F.parse_filter(text)


attr = st.sampled_from(["cn", "GlueCEUniqueID", "o", "description"])
value = st.binary(min_size=1, max_size=12)
leaf = st.one_of(
    st.builds(F.Equality, attr, value),
    st.builds(F.GreaterOrEqual, attr, value),
    st.builds(F.LessOrEqual, attr, value),
    st.builds(F.Approx, attr, value),
    st.builds(F.Present, attr),
    st.builds(
        F.Substrings,
        attr,
        st.one_of(st.none(), value),
        st.lists(value, max_size=3).map(tuple),
        st.one_of(st.none(), value),
    ).filter(lambda s: s.initial or s.any or s.final),
)
filters = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.builds(F.And, st.lists(inner, max_size=3).map(tuple)),
        st.builds(F.Or, st.lists(inner, max_size=3).map(tuple)),
        st.builds(F.Not, inner),
    ),
    max_leaves=8,
)


@given(filters)
def test_a_filter_written_as_text_parses_back_to_the_same_filter(f):
    """filter_to_string and parse_filter are inverses (filters go to children as text)."""
    assert F.parse_filter(F.filter_to_string(f)) == f
