"""LDIF written by the providers: what the GRIS's LDIF reader gets from them."""

from __future__ import annotations

from gridinfo.directory.dn import parse_dn
from gridinfo.directory.ldif import parse_ldif
from gridinfo.providers_lib.output import LDIFEntry, child_dn, escape_rdn_value, format_entries


def test_rdn_values_with_dn_specials_round_trip() -> None:
    """A mount point, job id or target name with ',', '+', '=' or a leading '#' stays one RDN."""
    for value in ["/", "a,b", "x+y=z", "#1", " lead", "trail ", 'q"uote', "back\\slash", "tcp:[::1]:22"]:
        dn = child_dn("GridinfoFSMount", value, "mds-vo-name=local,o=grid")
        parsed = parse_dn(dn)
        assert len(parsed) == 3 and parsed[0][0][1] == value, (dn, parsed)
        assert escape_rdn_value(value) in dn


def test_unsafe_values_are_base64_and_none_is_skipped() -> None:
    """Non-ASCII, leading ':' or trailing spaces survive the trip; unknown figures are left out."""
    entry = LDIFEntry("GridinfoJobID=1,mds-vo-name=local,o=grid")
    entry.add("objectClass", ["GridinfoJob"]).add("GridinfoJobID", "1")
    entry.add("GridinfoJobOwner", "jürgen ").add("GridinfoJobQueue", ":q").add("GridinfoJobState", None)
    entry.add("GridinfoJobVM", []).add("GridinfoJobGenericState", "Running")
    [record] = parse_ldif(format_entries([entry]))
    attrs = dict(record.attributes)
    assert attrs["GridinfoJobOwner"] == ("jürgen ".encode(),)
    assert attrs["GridinfoJobQueue"] == (b":q",)
    assert "GridinfoJobState" not in attrs and "GridinfoJobVM" not in attrs


def test_numbers_and_booleans_use_ldap_forms() -> None:
    """Integers stay integers, floats have no exponent, booleans are TRUE/FALSE."""
    entry = LDIFEntry("cn=x,o=grid").add("a", 3).add("b", 0.000012).add("c", True).add("d", 2.50)
    assert entry.values("a") == ["3"] and entry.values("b") == ["0.000012"]
    assert entry.values("c") == ["TRUE"] and entry.values("d") == ["2.5"]
