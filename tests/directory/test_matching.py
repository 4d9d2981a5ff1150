"""Matching rules: the keys filters compare, and which values are valid for a rule at all."""

from __future__ import annotations

import pytest

from gridinfo.directory.matching import MatchingRule, approx_normaliser, get_rule, syntax_valid


def normalise(rule: str, value: bytes):
    found = get_rule(rule)
    assert found is not None, rule
    return found.normalise(value)


def test_lookup_by_name_and_oid_is_case_insensitive():
    """Schema files name rules in any case or by OID; both find the same rule."""
    by_name = get_rule("CASEIGNOREMATCH")
    by_oid = get_rule("2.5.13.2")
    assert isinstance(by_name, MatchingRule)
    assert by_name is by_oid
    assert (by_name.name, by_name.oid, by_name.kind) == ("caseIgnoreMatch", "2.5.13.2", "equality")
    assert get_rule("caseIgnoreIA5SubstringsMatch").kind == "substr"
    assert get_rule("integerOrderingMatch").kind == "ordering"
    assert get_rule("noSuchMatch") is None


def test_case_ignore_squeezes_and_strips_spaces():
    """(cn=foo bar) matches '  Foo   BAR ' and values with tabs or newlines inside."""
    key = normalise("caseIgnoreMatch", b"foo bar")
    assert normalise("caseIgnoreMatch", b"  Foo   BAR ") == key
    assert normalise("caseIgnoreMatch", b"Foo\tbar") == key
    assert normalise("caseIgnoreIA5Match", b"FOO  bar") == key
    assert normalise("caseIgnoreMatch", b"foobar") != key


def test_case_exact_keeps_case_but_squeezes_spaces():
    """caseExact rules tell 'Foo' from 'foo' but still ignore insignificant spaces."""
    assert normalise("caseExactMatch", b" Foo  Bar ") == "Foo Bar"
    assert normalise("caseExactMatch", b"Foo") != normalise("caseExactMatch", b"foo")
    assert normalise("caseExactIA5Match", b"A  b") == "A b"


def test_non_ascii_is_folded_and_invalid_utf8_is_not_a_value():
    """Unicode site names match case-insensitively; bytes that are not UTF-8 never match."""
    assert normalise("caseIgnoreMatch", "ZÜRICH".encode()) == normalise("caseIgnoreMatch", "zürich".encode())
    # NFKC: the ligature and the compatibility form compare equal to plain letters
    assert normalise("caseIgnoreMatch", "ﬁle".encode()) == "file"
    # a no-break space is a space; a zero-width space is nothing
    assert normalise("caseIgnoreMatch", "a\u00a0b\u200bc".encode()) == "a bc"
    assert normalise("caseIgnoreMatch", b"\xff\xfe") is None
    assert normalise("caseIgnoreSubstringsMatch", b"\xc3") is None


def test_substrings_use_the_equality_preparation():
    """Substring pieces are prepared like values, so (cn=*BAR*) finds 'foo   bar baz'."""
    value = normalise("caseIgnoreSubstringsMatch", b"foo   Bar baz")
    assert normalise("caseIgnoreSubstringsMatch", b"BAR") in value
    assert normalise("caseExactSubstringsMatch", b"Bar") in normalise("caseExactSubstringsMatch", b"foo Bar")


def test_integer_ordering_is_numeric():
    """(GlueCEStateFreeCPUs>=10) must treat 9 as less than 10, unlike string comparison."""
    assert normalise("integerOrderingMatch", b"9") < normalise("integerOrderingMatch", b"10")
    assert normalise("integerOrderingMatch", b"-5") < normalise("integerOrderingMatch", b"0")
    assert normalise("integerMatch", b"42") == 42
    # and strings do order as strings
    assert normalise("caseIgnoreOrderingMatch", b"9") > normalise("caseIgnoreOrderingMatch", b"10")


@pytest.mark.parametrize("bad", [b"", b"-", b"12a", b" 12", b"12 ", b"007", b"-0", b"+5", b"1.5", b"0x10", b"\xff"])
def test_invalid_integers_are_not_values(bad):
    """Like OpenLDAP, integer rules refuse anything but a canonical integer (Undefined in filters)."""
    assert normalise("integerMatch", bad) is None
    assert normalise("integerOrderingMatch", bad) is None
    assert not syntax_valid("1.3.6.1.4.1.1466.115.121.1.27", bad)


def test_huge_integers_are_refused_not_crashing():
    """A hostile value cannot make int() blow up the server."""
    assert normalise("integerMatch", b"9" * 100_000) is None
    assert normalise("integerMatch", b"9" * 300) == int("9" * 300)


def test_generalized_time_compares_instants_across_offsets():
    """Mds-validto in any time zone orders by the instant it names."""
    utc = normalise("generalizedTimeMatch", b"20240101120000Z")
    assert normalise("generalizedTimeMatch", b"20240101140000+0200") == utc
    assert normalise("generalizedTimeMatch", b"20240101070000-0500") == utc
    assert normalise("generalizedTimeMatch", b"2024010112Z") == utc
    assert normalise("generalizedTimeMatch", b"202401011200Z") == utc
    assert normalise("generalizedTimeMatch", b"2024010114+02") == utc
    later = normalise("generalizedTimeOrderingMatch", b"20240101120000.5Z")
    assert later - utc == 500_000
    # the fraction applies to the last unit given: .5 of a minute is 30 s
    assert normalise("generalizedTimeMatch", b"202401011200.5Z") - utc == 30_000_000
    assert normalise("generalizedTimeOrderingMatch", b"20231231235959Z") < utc
    assert normalise("generalizedTimeMatch", b"19700101000000Z") == 0


@pytest.mark.parametrize(
    "bad",
    [b"20240101120000", b"20241301120000Z", b"20240230120000Z", b"20240101250000Z", b"2024010112000Z",
     b"20240101120000+2500", b"yesterday", b""],
)
def test_invalid_generalized_times_are_not_values(bad):
    """A time without a zone, or an impossible date, is not a time (Undefined in filters)."""
    assert normalise("generalizedTimeMatch", bad) is None


def test_leap_day_is_a_valid_time():
    """29 February exists in leap years only."""
    assert normalise("generalizedTimeMatch", b"20240229000000Z") is not None
    assert normalise("generalizedTimeMatch", b"20230229000000Z") is None


def test_booleans_are_true_or_false_and_lowercase_still_matches():
    """TRUE/FALSE; providers writing lowercase still match."""
    assert normalise("booleanMatch", b"TRUE") is True
    assert normalise("booleanMatch", b"false") is False
    assert normalise("booleanMatch", b"yes") is None


def test_numeric_string_and_telephone_number_ignore_spaces():
    """Numeric strings drop spaces; telephone numbers drop spaces and hyphens."""
    assert normalise("numericStringMatch", b"12 34") == normalise("numericStringMatch", b"1234")
    assert normalise("numericStringMatch", b"12a") is None
    assert normalise("telephoneNumberMatch", b"+41 44-123 45 67") == "+41441234567"


def test_distinguished_names_compare_by_value():
    """Suffixes written with other spacing or case name the same entry."""
    key = normalise("distinguishedNameMatch", b"Mds-Vo-name=local,o=grid")
    assert normalise("distinguishedNameMatch", b"mds-vo-name=LOCAL, o=Grid") == key
    assert normalise("distinguishedNameMatch", b"MDS-VO-NAME = local ; O = grid") == key
    assert normalise("distinguishedNameMatch", b"mds-vo-name=site,o=grid") != key
    assert normalise("distinguishedNameMatch", b"cn=a\\,b,o=grid") == normalise("distinguishedNameMatch", b"CN=A\\2cB,o=grid")
    assert normalise("distinguishedNameMatch", b"cn=x+sn=y,o=grid") == normalise("distinguishedNameMatch", b"sn=Y+cn=X,o=grid")
    assert normalise("distinguishedNameMatch", b"") == ()
    assert normalise("distinguishedNameMatch", b"no equals sign") is None
    assert normalise("distinguishedNameMatch", b"cn=\"unterminated,o=grid") is None


def test_object_identifier_and_octet_string():
    """OIDs and names compare case-insensitively; octet strings compare raw bytes."""
    assert normalise("objectIdentifierMatch", b"GlueCE") == "gluece"
    assert normalise("objectIdentifierMatch", b"2.5.6.0") == "2.5.6.0"
    assert normalise("objectIdentifierMatch", b"not an oid!") is None
    assert normalise("octetStringMatch", b"\x00\xff") == b"\x00\xff"
    assert normalise("objectIdentifierFirstComponentMatch", b"( 2.5.4.3 NAME 'cn' )") == "2.5.4.3"


def test_approx_match_behaves_as_equality_without_an_approximate_rule():
    """Without an approximate rule, ~= behaves as = (OpenLDAP's behaviour)."""
    rule = get_rule("caseIgnoreMatch")
    assert approx_normaliser(rule) is rule.normalise
    assert approx_normaliser(None) is None


def test_ia5_values_must_be_ascii_and_directory_strings_nonempty_utf8():
    """check_entry relies on these: IA5 is ASCII, directory strings are non-empty UTF-8."""
    ia5 = "1.3.6.1.4.1.1466.115.121.1.26"
    assert syntax_valid(ia5, b"plain")
    assert not syntax_valid(ia5, "é".encode())
    assert not syntax_valid("1.3.6.1.4.1.1466.115.121.1.15", b"")
    assert syntax_valid("1.3.6.1.4.1.1466.115.121.1.11", b"CH")
    assert not syntax_valid("1.3.6.1.4.1.1466.115.121.1.11", b"CHE")
    assert syntax_valid("9.9.9", b"\xff")  # syntaxes we do not check accept anything
    assert syntax_valid(None, b"anything")
