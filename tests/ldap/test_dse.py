"""The root DSE and subschema subentry: content, attribute selection, filter matching."""

from __future__ import annotations

from ldaptor.protocols import pureber
from ldaptor.protocols import pureldap as L

from gridinfo.directory import filters as F
from gridinfo.ldap import dse
from tests.support.serve_fixture import FixtureSchema


def _decode(encoded: bytes) -> tuple[str, dict[str, list[bytes]]]:
    """Decode a SearchResultEntry with ldaptor (an independent decoder)."""
    context = L.LDAPBERDecoderContext(fallback=pureber.BERDecoderContext())
    entry, used = pureber.berDecodeObject(context, encoded)
    assert used == len(encoded)
    name = entry.objectName.decode() if isinstance(entry.objectName, bytes) else entry.objectName
    return name, {(a.decode() if isinstance(a, bytes) else a): list(v) for a, v in entry.attributes}


def _root() -> dse.DSEEntry:
    return dse.build_root_dse(["o=grid", "mds-vo-name=local,o=grid"], "1.2.3")


def test_root_dse_attribute_selection_follows_star_plus_names_and_1_1() -> None:
    """'*' or nothing gives user attributes, '+' operational ones, names pick case-insensitively, 1.1 none."""
    root = _root()
    assert _decode(root.encode([])) == ("", {"objectClass": [b"top"]})
    assert _decode(root.encode(["*"]))[1] == {"objectClass": [b"top"]}
    operational = _decode(root.encode(["+"]))[1]
    assert operational["namingContexts"] == [b"o=grid", b"mds-vo-name=local,o=grid"]
    assert operational["vendorVersion"] == [b"1.2.3"]
    assert operational["supportedLDAPVersion"] == [b"3"]
    assert "objectClass" not in operational
    assert set(_decode(root.encode(["*", "+"]))[1]) == set(operational) | {"objectClass"}
    assert _decode(root.encode(["NAMINGCONTEXTS", "vendorname"]))[1] == {
        "namingContexts": [b"o=grid", b"mds-vo-name=local,o=grid"],
        "vendorName": [b"gridinfo"],
    }
    assert _decode(root.encode(["1.1"]))[1] == {}


def test_types_only_on_the_dse_returns_names_without_values() -> None:
    """typesOnly returns attribute names with no values."""
    assert _decode(_root().encode(["supportedControl"], types_only=True))[1] == {"supportedControl": []}


def test_the_usual_discovery_filters_match_the_dse_and_others_do_not() -> None:
    """The usual discovery filters match the DSE; others do not."""
    root = _root()
    assert root.matches(F.Present("objectclass"))
    assert root.matches(F.Equality("objectClass", b"TOP"))
    assert not root.matches(F.Equality("objectClass", b"person"))
    assert root.matches(F.And((F.Present("objectClass"), F.Not(F.Present("cn")))))
    assert root.matches(F.Or((F.Present("cn"), F.Substrings("vendorName", b"GRID", (), None))))
    assert root.matches(F.Substrings("namingContexts", None, (b"VO-NAME",), b"=grid"))
    assert not root.matches(F.Substrings("namingContexts", b"o=grid", (), b"o=grid"))
    assert not root.matches(F.Extensible(None, "objectClass", b"top"))


def test_the_subschema_subentry_carries_the_schemas_definitions() -> None:
    """The subschema subentry carries the schema's definitions and is a subschema object."""
    schema = FixtureSchema()
    subschema = dse.build_subschema(schema)
    assert subschema.matches(F.Equality("objectClass", b"subschema"))
    dn, attributes = _decode(subschema.encode(["*", "+"]))
    assert dn == "cn=Subschema"
    assert attributes["attributeTypes"] == [a.definition().encode() for a in schema.attribute_types()]
    assert attributes["objectClasses"] == [c.definition().encode() for c in schema.object_classes()]
    assert len(attributes["ldapSyntaxes"]) == len(dse.ldap_syntax_definitions())
    assert b"( 1.3.6.1.4.1.1466.109.114.2 NAME 'caseIgnoreIA5Match' SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 )" in (
        attributes["matchingRules"]
    )


def test_dse_dns_compare_without_case_or_spaces_around_separators() -> None:
    """DNs compare without case and without spaces around separators."""
    assert dse.normalise_dn(" CN=Admin , O = Grid ") == "cn=admin,o=grid"
    assert dse.is_subschema_dn("CN = SubSchema")
    assert not dse.is_subschema_dn("cn=subschema,o=grid")
