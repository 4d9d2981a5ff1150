"""DNs as users write them: RFC 4514 escapes, MDS-era spacing, and canonical keys."""

import pytest

from gridinfo.directory.dn import DN, DNNormaliser, escape_value, is_descendant_key, parent_key, parse_dn
from gridinfo.directory.schema import default_schema
from gridinfo.errors import InvalidDNSyntax


def test_mds_style_spaces_and_case():
    """`Mds-Vo-name=local, o=Grid` (MDS2's spelling) names the same entry as `mds-vo-name=local,o=grid`."""
    n = DNNormaliser(default_schema())
    assert n.key("Mds-Vo-name=local, o=Grid") == n.key("mds-vo-name=local,o=grid")
    assert n.key("MDS-VO-NAME = Local , O = GRID") == n.key("mds-vo-name=local,o=grid")


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"cn=a\,b,o=grid", [[("cn", "a,b")], [("o", "grid")]]),
        (r"cn=a\2Cb,o=grid", [[("cn", "a,b")], [("o", "grid")]]),
        (r"cn=\23hash,o=grid", [[("cn", "#hash")], [("o", "grid")]]),
        (r"cn=caf\C3\A9,o=grid", [[("cn", "café")], [("o", "grid")]]),
        (r"cn=x+sn=y,o=grid", [[("cn", "x"), ("sn", "y")], [("o", "grid")]]),
        ("cn=#04026869,o=grid", [[("cn", "hi")], [("o", "grid")]]),
        (r"cn=trailing\ ,o=grid", [[("cn", "trailing ")], [("o", "grid")]]),
        ('cn="quoted, value",o=grid', [[("cn", "quoted, value")], [("o", "grid")]]),
        ("", []),
    ],
)
def test_every_rfc4514_escape_form_decodes_to_the_meant_value(text, expected):
    """Every RFC 4514 escape form decodes to the value the user meant."""
    assert [list(rdn) for rdn in parse_dn(text)] == expected


@pytest.mark.parametrize("bad", ["cn", "=x,o=grid", "cn=a,,o=grid", r"cn=a\zz", "cn=#0", "c n=x"])
def test_malformed_dn_is_invalid_dn_syntax(bad):
    """A malformed DN is invalidDNSyntax (34) with a message, never a crash."""
    with pytest.raises(InvalidDNSyntax) as err:
        parse_dn(bad)
    assert err.value.code == 34
    assert "invalid DN" in err.value.message


def test_multi_valued_rdn_order_does_not_matter():
    """`cn=x+sn=y` and `sn=y+cn=x` are the same RDN."""
    n = DNNormaliser(default_schema())
    assert n.key("cn=x+sn=y,o=grid") == n.key("SN=Y + CN=X,o=grid")


def test_escaped_and_hex_forms_share_a_key():
    """`\\,` and `\\2C` spell the same value; the key tells entries apart only by meaning."""
    n = DNNormaliser(default_schema())
    assert n.key(r"cn=a\,b,o=grid") == n.key(r"CN=A\2cB,o=Grid")
    assert n.key(r"cn=a\,b,o=grid") != n.key("cn=a,cn=b,o=grid")


def test_values_normalised_by_matching_rule():
    """caseIgnore values ignore case and squeeze inner spaces, as OpenLDAP does."""
    n = DNNormaliser(default_schema())
    assert n.key("GlueSiteUniqueID=My   Site,o=grid") == n.key("gluesiteuniqueid=my site,o=grid")


def test_str_round_trip_escapes_specials():
    """A DN printed back escapes what needs escaping and parses to the same DN."""
    dn = DN(((("cn", "a,b+c"),), (("o", " grid "),)))
    assert parse_dn(str(dn)) == dn
    assert escape_value("#x") == r"\#x"


def test_parent_and_descendant_keys():
    """Parent and subtree checks on keys respect escaped commas."""
    assert parent_key(r"cn=a\,b,o=grid") == "o=grid"
    assert parent_key("o=grid") == ""
    assert parent_key("") is None
    assert is_descendant_key("cn=x,o=grid", "o=grid")
    assert is_descendant_key("o=grid", "o=grid")
    assert not is_descendant_key("cn=x,foo=grid", "o=grid")
    assert not is_descendant_key(r"cn=x\,o=grid", "o=grid")
    # an escaped backslash ends the value: the comma after it separates, as parent_key reads it
    assert is_descendant_key(r"cn=x\\,o=grid", "o=grid") and parent_key(r"cn=x\\,o=grid") == "o=grid"
    assert not is_descendant_key(r"cn=x\\\,o=grid", "o=grid") and parent_key(r"cn=x\\\,o=grid") == ""
    assert is_descendant_key("anything", "")
