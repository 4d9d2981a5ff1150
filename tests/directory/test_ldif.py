"""Tests for the LDIF reader and writer (RFC 2849) in gridinfo.directory.ldif."""

from __future__ import annotations

import base64
import io
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridinfo.directory.ldif import (
    LDIFError,
    LDIFLimitExceeded,
    LDIFLimits,
    LDIFRecord,
    Modification,
    format_ldif,
    iter_ldif,
    parse_ldif,
    parse_ldif_tolerant,
    read_ldif_file,
)

DATA = Path(__file__).parent / "data" / "ldif"


def error_of(text: bytes | str, **kwargs) -> LDIFError:
    with pytest.raises(LDIFError) as info:
        parse_ldif(text, **kwargs)
    return info.value


# ----------------------------------------------------------------------------- content records


def test_content_record_attributes_grouped_in_first_seen_order():
    """Attributes keep the order and spelling providers wrote; values group case-insensitively."""
    (record,) = parse_ldif(
        b"dn: GlueCEUniqueID=ce1,mds-vo-name=local,o=grid\n"
        b"objectClass: GlueCETop\n"
        b"GlueCEUniqueID: ce1\n"
        b"objectclass: GlueCE\n"
        b"cn;lang-en: x\n"
        b"GlueCEUniqueID: ce1\n"
    )
    assert record.dn == "GlueCEUniqueID=ce1,mds-vo-name=local,o=grid"
    assert record.line == 1
    assert record.changetype is None
    assert record.attributes == (
        ("objectClass", (b"GlueCETop", b"GlueCE")),
        ("GlueCEUniqueID", (b"ce1", b"ce1")),
        ("cn;lang-en", (b"x",)),
    )
    assert record.values("OBJECTCLASS") == (b"GlueCETop", b"GlueCE")
    assert record.values("missing") == ()
    same = LDIFRecord("GlueCEUniqueID=ce1,mds-vo-name=local,o=grid", 1, None, record.attributes)
    assert record == same and hash(record) == hash(same)
    with pytest.raises(AttributeError):
        record.dn = "cn=other"  # type: ignore[misc]


def test_spaces_after_colon_and_empty_values():
    """The value starts after any spaces following the colon; trailing spaces are kept."""
    (record,) = parse_ldif(b"dn:cn=a\nx:1\ny:    2 \nz:\nw: \n2.5.4.3: numeric oid\n")
    assert record.dn == "cn=a"
    assert record.attributes == (
        ("x", (b"1",)),
        ("y", (b"2 ",)),
        ("z", (b"",)),
        ("w", (b"",)),
        ("2.5.4.3", (b"numeric oid",)),
    )


def test_records_separated_by_several_blank_lines_and_their_start_lines():
    """Each record knows the physical line of its dn: line, whatever lies between records."""
    text = b"\n\ndn: cn=a\nx: 1\n\n\n\n# between\n\ndn: cn=b\nx: 2\n\n# last\ndn: cn=c\nx: 3"
    records = parse_ldif(text)
    assert [(r.dn, r.line) for r in records] == [("cn=a", 3), ("cn=b", 10), ("cn=c", 14)]


def test_plain_utf8_dn_and_values_are_accepted():
    """Providers often print UTF-8 without base64; the dn becomes str, values stay bytes."""
    (record,) = parse_ldif("dn: o=Grüße\ndescription: Grüße\n")
    assert record.dn == "o=Grüße"
    assert record.attributes == (("description", ("Grüße".encode(),)),)


# ------------------------------------------------------------------------------------ folding


def test_folded_lines_are_joined_without_their_leading_space():
    """A line starting with one space continues the previous one; only that space goes."""
    (record,) = parse_ldif(b"dn: cn=long\n ,o=grid\ndescription: one\n  two\n three\n")
    assert record.dn == "cn=long,o=grid"
    assert record.attributes == (("description", (b"one twothree",)),)


def test_fold_inside_a_multibyte_utf8_character():
    """Folding may cut a UTF-8 character in two; joining works on bytes and restores it."""
    word = "Müller".encode()  # ü is C3 BC
    cut = word.index(b"\xc3") + 1
    text = b"dn: cn=" + word[:cut] + b"\n " + word[cut:] + b"\nsn: " + word[:cut] + b"\n " + word[cut:] + b"\n"
    (record,) = parse_ldif(text)
    assert record.dn == "cn=Müller"
    assert record.attributes == (("sn", (word,)),)


def test_fold_inside_a_base64_value_and_attribute_name():
    """Folds may fall anywhere: inside the base64 text or even the attribute name."""
    encoded = base64.b64encode(b"\x00binary\xff").decode()
    text = f"dn: cn=a\nuser\n Certificate:: {encoded[:5]}\n {encoded[5:]}\n"
    (record,) = parse_ldif(text)
    assert record.attributes == (("userCertificate", (b"\x00binary\xff",)),)


def test_continuation_with_nothing_to_continue_is_an_error():
    """A record cannot begin with a continuation line."""
    err = error_of(b"dn: cn=a\nx: 1\n\n continued\ndn: cn=b\n")
    assert err.line == 4
    assert "continuation" in err.message


# ---------------------------------------------------------------------------------- base64


def test_base64_values_and_dn():
    """`attr::` values are decoded to bytes and `dn::` to a UTF-8 string."""
    dn = "cn=Zoë, o=grid"
    text = (
        b"dn:: " + base64.b64encode(dn.encode()) + b"\n"
        b"jpegPhoto:: " + base64.b64encode(bytes(range(256))) + b"\n"
        b"empty::\n"
        b"spaced::   IGxlYWRpbmcgc3BhY2U=  \n"
    )
    (record,) = parse_ldif(text)
    assert record.dn == dn
    assert record.attributes == (
        ("jpegPhoto", (bytes(range(256)),)),
        ("empty", (b"",)),
        ("spaced", (b" leading space",)),
    )


@pytest.mark.parametrize("bad", [b"####", b"QUJD=", b"QQ", b"QQ==QQ==", b"QU JD"])
def test_invalid_base64_names_the_line(bad):
    """A broken base64 value is refused with the line it is on."""
    err = error_of(b"dn: cn=a\nx: 1\n\ndn: cn=b\ny: 2\nphoto:: " + bad + b"\n")
    assert err.line == 6
    assert err.message == "invalid base64 in the value of 'photo'"


def test_base64_dn_must_be_utf8():
    """A dn must be text: base64 that decodes to something else is an error."""
    err = error_of(b"dn:: " + base64.b64encode(b"cn=\xff") + b"\nx: 1\n")
    assert (err.line, err.message) == (1, "dn is not valid UTF-8")


def test_url_values_are_refused_with_the_line():
    """We never read files or URLs named by providers: `:<` is refused, naming the line."""
    err = error_of(b"dn: cn=a\nx: 1\n# comment\n folded\njpegPhoto:< file:///etc/shadow\n")
    assert err.line == 5
    assert err.message == "attribute values from URLs (:<) are not supported"
    assert str(err) == "<ldif>:5: attribute values from URLs (:<) are not supported"


# --------------------------------------------------------------------- comments, CRLF, version


def test_comments_and_folded_comments_are_skipped():
    """`#` lines and their continuations vanish; error lines still count them."""
    text = (
        b"# header\n"
        b"#  continued header\n"
        b" more header\n"
        b"dn: cn=a\n"
        b"# inside\n"
        b"  continued\n"
        b"x: 1\n"
        b"#last\n"
        b"\n"
        b"# only comments\n"
        b"# in this paragraph\n"
    )
    (record,) = parse_ldif(text)
    assert record.line == 4
    assert record.attributes == (("x", (b"1",)),)
    err = error_of(text.replace(b"x: 1", b"x 1"))
    assert err.line == 7


def test_crlf_and_mixed_line_ends():
    """CRLF, LF and both mixed in one file give the same records."""
    lf = b"dn: cn=a\nx: 1\n  two\n\ndn: cn=b\ny: 2\n"
    crlf = lf.replace(b"\n", b"\r\n")
    mixed = b"dn: cn=a\r\nx: 1\n  two\r\n\ndn: cn=b\r\ny: 2\r\n"
    expected = parse_ldif(lf)
    assert [(r.dn, r.attributes) for r in expected] == [("cn=a", (("x", (b"1 two",)),)), ("cn=b", (("y", (b"2",)),))]
    assert parse_ldif(crlf) == expected
    assert parse_ldif(mixed) == expected


def test_crlf_cut_between_blocks_of_a_stream():
    """A CR and its LF arriving in different reads are still one line end."""
    crlf = b"dn: cn=a\r\nx: 1\r\n\r\ndn: cn=b\r\ny: 2\r\n"
    blocks = [crlf[i : i + 1] for i in range(len(crlf))]
    assert list(iter_ldif(blocks)) == parse_ldif(crlf.replace(b"\r\n", b"\n"))


def test_a_version_line_may_open_the_file_with_or_without_a_blank_line():
    """`version: 1` may open the file, followed by a blank line or directly by a record."""
    assert [r.line for r in parse_ldif(b"version: 1\n\ndn: cn=a\nx: 1\n")] == [3]
    assert [r.line for r in parse_ldif(b"# c\nversion: 1\ndn: cn=a\nx: 1\n")] == [3]
    assert parse_ldif(b"version: 1\n") == []


def test_other_versions_are_refused():
    """Only LDIF version 1 exists."""
    err = error_of(b"# comment\nversion: 2\n\ndn: cn=a\nx: 1\n")
    assert (err.line, err.message) == (2, "unsupported LDIF version '2' (only 1 is defined)")


def test_sample_file_from_a_resource_bdii():
    """A realistic file: CRLF, comments, folded dn, base64 dn and values, fold inside UTF-8."""
    path = DATA / "glue-resource.ldif"
    records = read_ldif_file(path)
    assert [r.dn for r in records] == [
        "mds-vo-name=resource,o=grid",
        "GlueCEUniqueID=ce01.example.org:8443/cream-pbs-atlas,mds-vo-name=resource,o=grid",
        "GlueSiteUniqueID=München,mds-vo-name=resource,o=grid",
    ]
    assert [r.line for r in records] == [5, 10, 27]
    ce = records[1]
    assert ce.values("objectclass") == (b"GlueCETop", b"GlueCE", b"GlueCEState")
    assert ce.values("GlueCEAccessControlBaseRule") == (b"VO:atlas", b"VOMS:/atlas/Role=production")
    assert ce.values("GlueCEInfoContactString") == (
        b"https://ce01.example.org:8443/ce-cream/services/CREAM2?queue=atlas",
    )
    assert ce.values("GlueCEName") == (b"atlas queue ",)
    assert records[2].values("GlueSiteDescription") == ("Grün-Standort".encode(),)
    assert records[2].values("GlueSiteUniqueID") == ("München".encode(),)


def test_read_ldif_file_errors_name_the_path(tmp_path):
    """Errors in a static file say which file and line."""
    path = tmp_path / "bad.ldif"
    path.write_bytes(b"dn: cn=a\nx: 1\n\ndn: cn=b\nnonsense\n")
    with pytest.raises(LDIFError) as info:
        read_ldif_file(path)
    assert str(info.value) == f'{path}:5: expected "attribute: value", got "nonsense"'


# ----------------------------------------------------------------------------- change records

CHANGES = b"""version: 1

dn: cn=new,o=grid
changetype: add
objectClass: top
cn: new

dn: cn=mod,o=grid
control: 1.2.840.113556.1.4.805 true
control: 1.3.6.1.4.1.4203.1.10.1:: AAEC
control: 1.3.6.1.1.13.1 false: plain value
changetype: modify
add: mail
mail: a@example.org
mail: b@example.org
-
delete: telephoneNumber
-
delete: description
description: old
-
replace: GlueCEStateFreeCPUs
GlueCEStateFreeCPUs: 7
-
replace: seeAlso
-
increment: uidNumber
uidNumber: 1
-

dn: cn=gone,o=grid
changetype: delete

dn: cn=old,o=grid
changetype: modrdn
newrdn: cn=renamed
deleteoldrdn: 1

dn: cn=moved,o=grid
changetype: moddn
newrdn:: Y249w7xiZXI=
deleteoldrdn: 0
newsuperior: ou=elsewhere,o=grid
"""


def test_add_modify_delete_modrdn_and_moddn_records_parse_with_their_controls():
    """add, modify (all four operations), delete, modrdn and moddn records with controls."""
    add, modify, delete, modrdn, moddn = parse_ldif(CHANGES)
    assert add == LDIFRecord(
        "cn=new,o=grid", 3, "add", (("objectClass", (b"top",)), ("cn", (b"new",)))
    )
    assert modify.changetype == "modify" and modify.line == 8 and modify.attributes == ()
    assert modify.controls == (
        ("1.2.840.113556.1.4.805", True, None),
        ("1.3.6.1.4.1.4203.1.10.1", False, b"\x00\x01\x02"),
        ("1.3.6.1.1.13.1", False, b"plain value"),
    )
    assert modify.modifications == (
        Modification("add", "mail", (b"a@example.org", b"b@example.org")),
        Modification("delete", "telephoneNumber", ()),
        Modification("delete", "description", (b"old",)),
        Modification("replace", "GlueCEStateFreeCPUs", (b"7",)),
        Modification("replace", "seeAlso", ()),
        Modification("increment", "uidNumber", (b"1",)),
    )
    assert (delete.dn, delete.changetype, delete.line) == ("cn=gone,o=grid", "delete", 31)
    assert (modrdn.changetype, modrdn.newrdn, modrdn.deleteoldrdn, modrdn.newsuperior) == (
        "modrdn", "cn=renamed", True, None,
    )
    assert (moddn.changetype, moddn.newrdn, moddn.deleteoldrdn, moddn.newsuperior) == (
        "moddn", "cn=über", False, "ou=elsewhere,o=grid",
    )


def test_modify_without_final_dash_is_accepted():
    """Like ldapmodify, the last block of a modify record may omit its closing '-'."""
    (record,) = parse_ldif(b"dn: cn=a\nchangetype: modify\nreplace: x\nx: 1\n")
    assert record.modifications == (Modification("replace", "x", (b"1",)),)


@pytest.mark.parametrize(
    "text, line, message",
    [
        (
            b"dn: cn=a\nchangetype: modify\nreplace: x\ny: 1\n-\n",
            4,
            "attribute 'y' inside the 'replace: x' block (every line before '-' must name x)",
        ),
        (
            b"dn: cn=a\nchangetype: modify\nreplace: x\nx: 1\n-\nfrobnicate: x\n-\n",
            6,
            'expected "add:", "delete:", "replace:" or "increment:" in a modify record, got "frobnicate: x"',
        ),
        (b"dn: cn=a\nchangetype: rename\n", 2, "unknown changetype 'rename' (expected add, modify, delete, modrdn or moddn)"),
        (b"dn: cn=a\nchangetype: delete\nx: 1\n", 3, 'a delete record ends after changetype:, got "x: 1"'),
        (b"dn: cn=a\nchangetype: modrdn\ndeleteoldrdn: 1\n", 3, 'expected newrdn: in a modrdn record, got "deleteoldrdn: 1"'),
        (b"dn: cn=a\nchangetype: modrdn\nnewrdn: cn=b\n", 2, "modrdn record without deleteoldrdn:"),
        (b"dn: cn=a\nchangetype: modrdn\nnewrdn: cn=b\ndeleteoldrdn: yes\n", 4, "deleteoldrdn must be 0 or 1, got 'yes'"),
        (b"dn: cn=a\nchangetype: add\n", 1, "entry has no attributes"),
        (b"dn: cn=a\nchangetype: modify\nincrement: n\n-\n", 3, "increment: n needs exactly one value"),
        (b"dn: cn=a\ncontrol: not-an-oid\nchangetype: delete\n", 2, "invalid control: line 'not-an-oid'"),
    ],
)
def test_change_record_errors_name_the_line(text, line, message):
    """Each malformed change record is refused with the offending line and what was wrong."""
    err = error_of(text)
    assert (err.line, err.message) == (line, message)


@pytest.mark.parametrize(
    "text, line",
    [
        (b"dn: cn=a\nx: 1\nchangetype: modify\nreplace: x\n-\n", 3),  # changetype after content
        (b"dn: cn=a\nx: 1\n-\n", 3),  # modify separator in a content record
        (b"dn: cn=a\ncontrol: 1.2.3\nx: 1\n", 2),  # control without changetype
        (b"dn: cn=a\nchangetype: add\nx: 1\n-\n", 4),  # separator in an add record
    ],
)
def test_record_mixing_content_and_change_syntax_is_refused(text, line):
    """A record is either content or a change, never half of each."""
    err = error_of(text)
    assert err.line == line
    assert "mixes content and change syntax" in err.message


# ----------------------------------------------------------------------------- syntax errors


def test_garbage_line_names_the_line():
    """A line without a colon is refused with its physical line number and text."""
    text = b"dn: cn=a\nx: 1\n\n# c\ndn: cn=b\ny: 1\n\n garbage\ngarbage text\n"
    err = error_of(text.replace(b"\n\n garbage", b"\ny: folded\n  more"))
    assert err.line == 9
    assert err.message == 'expected "attribute: value", got "garbage text"'
    assert str(err) == '<ldif>:9: expected "attribute: value", got "garbage text"'


def test_missing_dn_names_the_line():
    """A record must begin with dn:."""
    err = error_of(b"dn: cn=a\nx: 1\n\n\nobjectClass: top\ncn: b\n", source="provider:host")
    assert (err.source, err.line) == ("provider:host", 5)
    assert err.message == 'a record must start with "dn:", got "objectClass: top"'


@pytest.mark.parametrize("name", [b"x y", b"_under", b"1abc", b"cn;", b"a.b", b"cn;lang en", b"1.2."])
def test_bad_attribute_description_names_the_line(name):
    """Attribute descriptions must be a descr or numeric OID, with optional ;options."""
    err = error_of(b"dn: cn=a\nx: 1\n" + name + b": v\n")
    assert err.line == 3
    assert err.message == f"invalid attribute description '{name.decode()}'"


def test_a_content_record_with_only_a_dn_is_refused():
    """A content record with only a dn is refused."""
    err = error_of(b"dn: cn=a\nx: 1\n\ndn: cn=b\n# nothing\n\ndn: cn=c\nx: 1\n")
    assert (err.line, err.message) == (4, "entry has no attributes")


def test_missing_blank_line_between_records():
    """A second dn: inside a record is reported as such."""
    err = error_of(b"dn: cn=a\nx: 1\ndn: cn=b\nx: 1\n")
    assert err.line == 3
    assert "blank line" in err.message


def test_error_line_is_right_in_a_long_stream_read_in_small_pieces():
    """Line numbers stay exact however the stream is cut."""
    good = b"dn: cn=x\nfolded: a\n b\n# c\n\n"
    text = good * 50 + b"dn: cn=bad\nbad:: !!\n"
    for size in (1, 7, 64, 4096):
        with pytest.raises(LDIFError) as info:
            list(iter_ldif(text[i : i + size] for i in range(0, len(text), size)))
        assert info.value.line == 5 * 50 + 2


# ----------------------------------------------------------------------------------- limits


class EndlessRecords:
    """A provider that never stops printing records; counts what it has printed."""

    def __init__(self) -> None:
        self.produced = 0

    def __iter__(self) -> Iterator[bytes]:
        for n in itertools.count():
            for line in (b"dn: cn=%d,o=grid\n" % n, b"objectClass: top\n\n"):
                self.produced += len(line)
                yield line


def endless_lines() -> Iterator[bytes]:
    yield b"dn: cn=huge,o=grid\n"
    while True:
        yield b"description: another line of an endless record\n"


def test_file_size_limit_stops_an_endless_stream():
    """An endless provider is cut off once it has sent max_file_bytes, not read to the end."""
    limits = LDIFLimits(max_file_bytes=1_000_000)
    provider = EndlessRecords()
    seen = []
    with pytest.raises(LDIFLimitExceeded) as info:
        for record in iter_ldif(provider, "provider", limits):
            seen.append(record)
    assert str(info.value).startswith("provider:")
    assert info.value.message == "LDIF input larger than 1000000 bytes"
    assert provider.produced < 1_000_000 + 70_000  # read at most one 64 KiB batch too far
    assert 20_000 < len(seen) < 1_000_000 // 35
    assert seen[-1].dn == f"cn={len(seen) - 1},o=grid"
    assert info.value.line > 3 * len(seen)


def test_file_size_limit_on_whole_input_names_the_line():
    """The line where the input crosses the limit is named."""
    text = b"dn: cn=a\nx: 1\n\n" * 100
    err = error_of(text, limits=LDIFLimits(max_file_bytes=len(text) - 1))
    assert isinstance(err, LDIFLimitExceeded)
    assert err.line == 300
    assert str(err) == f"<ldif>:300: LDIF input larger than {len(text) - 1} bytes"


def test_entry_size_limit_stops_an_endless_record():
    """A record that never ends is refused once it is larger than max_entry_bytes."""
    limits = LDIFLimits(max_entry_bytes=10_000)
    with pytest.raises(LDIFError) as info:
        list(iter_ldif(endless_lines(), "provider", limits))
    assert (info.value.line, info.value.message) == (1, "record larger than 10000 bytes")


def test_entry_size_limit_counts_unfolded_bytes():
    """The entry limit is about the record's unfolded size and names its dn: line."""
    value = b"v" * 900
    folded = b"\n ".join(value[i : i + 10] for i in range(0, 900, 10))
    text = b"dn: cn=a\nx: 1\n\n# c\ndn: cn=b\nd: " + folded + b"\n"
    assert len(parse_ldif(text, limits=LDIFLimits(max_entry_bytes=1000))) == 2
    err = error_of(text + b"e: " + b"w" * 100 + b"\n", limits=LDIFLimits(max_entry_bytes=1000))
    assert (err.line, err.message) == (5, "record larger than 1000 bytes")


def test_line_limit_stops_an_endless_line():
    """A line that never ends is refused at max_line_bytes."""
    def endless_line() -> Iterator[bytes]:
        yield b"dn: cn=a\nx: 1\n\ndn: cn=b\ndescription: "
        while True:
            yield b"x" * 1000

    with pytest.raises(LDIFError) as info:
        list(iter_ldif(endless_line(), limits=LDIFLimits(max_line_bytes=50_000)))
    assert (info.value.line, info.value.message) == (5, "line longer than 50000 bytes")


def test_max_records_bounds_the_entries_one_source_may_publish():
    """max_records bounds how many entries one source may publish."""
    text = b"dn: cn=a\nx: 1\n\n" * 5
    assert len(parse_ldif(text, limits=LDIFLimits(max_records=5))) == 5
    err = error_of(text, limits=LDIFLimits(max_records=4))
    assert isinstance(err, LDIFLimitExceeded)
    assert (err.line, err.message) == (13, "more than 4 records")


def test_binary_stream_input_is_read_in_bounded_pieces():
    """iter_ldif reads a file object lazily: the first record arrives before the stream ends."""
    stream = io.BytesIO(b"dn: cn=a\nx: 1\n\n" * 100_000)
    first = next(iter_ldif(stream))
    assert first.dn == "cn=a"
    assert stream.tell() < len(stream.getvalue())


# ------------------------------------------------------------------------------ tolerant mode


def test_tolerant_mode_keeps_good_records_around_bad_ones():
    """One broken provider record is reported and skipped; its neighbours are published."""
    text = (
        b"dn: cn=good1\nx: 1\n\n"
        b"dn: cn=bad1\nx 1\n\n"
        b"dn: cn=good2\nx: 2\n\n"
        b"dn: cn=bad2\nphoto:< file:///etc/passwd\n\n\n"
        b"garbage\n\n"
        b"dn: cn=big\nd: " + b"x" * 300 + b"\n\n"
        b"dn: cn=good3\nx: 3\n"
    )
    records, errors = parse_ldif_tolerant(text, "provider:host", LDIFLimits(max_entry_bytes=200))
    assert [r.dn for r in records] == ["cn=good1", "cn=good2", "cn=good3"]
    assert [(e.line, e.message) for e in errors] == [
        (5, 'expected "attribute: value", got "x 1"'),
        (11, "attribute values from URLs (:<) are not supported"),
        (14, 'a record must start with "dn:", got "garbage"'),
        (16, "record larger than 200 bytes"),
    ]
    assert all(e.source == "provider:host" for e in errors)


def test_tolerant_mode_resynchronises_after_an_oversized_line_in_a_stream():
    """An over-long line costs only its own record."""
    text = b"dn: cn=a\nx: 1\n\ndn: cn=b\nx: " + b"y" * 5000 + b"\nz: 1\n\ndn: cn=c\nx: 1\n"
    records, errors = parse_ldif_tolerant(text, limits=LDIFLimits(max_line_bytes=1000))
    assert [r.dn for r in records] == ["cn=a", "cn=c"]
    assert [(e.line, e.message) for e in errors] == [(5, "line longer than 1000 bytes")]


def test_tolerant_mode_drops_an_oversized_last_record():
    """A last record that never ends (no blank line after it) is reported, the rest kept."""
    text = b"dn: cn=a\nx: 1\n\ndn: cn=b\n# c\nx: " + b"y" * 5000 + b"\n"
    records, errors = parse_ldif_tolerant(text, limits=LDIFLimits(max_entry_bytes=1000))
    assert [r.dn for r in records] == ["cn=a"]
    assert [(e.line, e.message) for e in errors] == [(4, "record larger than 1000 bytes")]


def test_tolerant_reader_resynchronises_across_blocks():
    """Skipping an oversized record works when it arrives in many small reads."""
    from gridinfo.directory.ldif import _Reader

    text = (
        b"dn: cn=a\nx: 1\n\n"
        b"dn: cn=b\nx: " + b"y" * 3000 + b"\nz: 1\n\n"
        b"dn: cn=c\nx: " + b"w" * 3000 + b"\n\n"
        b"dn: cn=d\nx: 1\n"
    )
    for size in (1, 3, 100, 999):
        reader = _Reader("stream", LDIFLimits(max_entry_bytes=1000, max_line_bytes=2000), tolerant=True)
        records = []
        for at in range(0, len(text), size):
            records.extend(reader.feed(text[at : at + size]))
        records.extend(reader.close())
        assert [(r.dn, r.line) for r in records] == [("cn=a", 1), ("cn=d", 11)]
        assert [e.line for e in reader.errors] == [4, 8]


def test_tolerant_mode_still_stops_at_the_input_size_limit():
    """Too much output is refused as a whole, even in tolerant mode."""
    text = b"dn: cn=a\nx: 1\n\n" * 100
    with pytest.raises(LDIFLimitExceeded):
        parse_ldif_tolerant(text, limits=LDIFLimits(max_file_bytes=1000))


# ------------------------------------------------------------------------------------ writer


def test_format_ldif_base64_for_unsafe_values():
    """Values that are not safe strings are written base64 so they survive the round trip."""
    out = format_ldif(
        [
            (
                "cn=a,o=grid",
                [
                    ("plain", b"hello world"),
                    ("lead", b" x"),
                    ("colon", b":x"),
                    ("lt", b"<x"),
                    ("trail", b"x "),
                    ("utf8", "é"),
                    ("nul", b"a\x00b"),
                    ("newline", b"a\nb"),
                    ("empty", b""),
                    ("inner", b"a: b <c"),
                ],
            )
        ],
        version=True,
    )
    assert out.endswith(b"\n\n")  # every record ends with a blank line
    lines = out.decode().splitlines()
    assert lines[:3] == ["version: 1", "", "dn: cn=a,o=grid"]
    assert lines[3:-1] == [
        "plain: hello world",
        "lead:: " + base64.b64encode(b" x").decode(),
        "colon:: " + base64.b64encode(b":x").decode(),
        "lt:: " + base64.b64encode(b"<x").decode(),
        "trail:: " + base64.b64encode(b"x ").decode(),
        "utf8:: " + base64.b64encode("é".encode()).decode(),
        "nul:: " + base64.b64encode(b"a\x00b").decode(),
        "newline:: " + base64.b64encode(b"a\nb").decode(),
        "empty:",
        "inner: a: b <c",
    ]


def test_format_ldif_folds_at_76_columns():
    """Long lines are folded so that no physical line is longer than 76 bytes."""
    value = "".join(chr(ord("a") + i % 26) for i in range(500))
    out = format_ldif([("cn=" + value, {"description": [value, value.encode() + b"\xff"]})])
    assert max(len(line) for line in out.split(b"\n")) == 76
    (record,) = parse_ldif(out)
    assert record.dn == "cn=" + value
    assert record.values("description") == (value.encode(), value.encode() + b"\xff")


@pytest.mark.parametrize("name", ["dn", "changeType", "control", "x y", "ü", ""])
def test_format_ldif_refuses_names_that_would_not_read_back(name):
    """The writer never produces LDIF that the reader would refuse or misread."""
    with pytest.raises(ValueError):
        format_ldif([("cn=a", {"objectClass": "top", name: "x"})])


def test_format_ldif_writes_change_records():
    """Change records are written back in a form parse_ldif reads identically."""
    records = parse_ldif(CHANGES)
    assert [(r.dn, r.changetype, r.attributes, r.modifications, r.controls, r.newrdn,
             r.deleteoldrdn, r.newsuperior) for r in parse_ldif(format_ldif(records))] == [
        (r.dn, r.changetype, r.attributes, r.modifications, r.controls, r.newrdn,
         r.deleteoldrdn, r.newsuperior) for r in records]


attribute_names = st.from_regex(r"\A[A-Za-z][A-Za-z0-9-]{0,20}(;[A-Za-z0-9-]{1,8})?\Z").filter(
    lambda name: name.lower() not in ("dn", "changetype", "control")
)
values = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=100).map(str.encode),
    st.sampled_from([b" lead", b":colon", b"<lt", b"trail ", b"\x00", b"\xff\xfe", b"", b"-", b"#x"]),
)


@st.composite
def records(draw):
    dn = draw(st.text(max_size=120))
    names = draw(st.lists(attribute_names, min_size=1, max_size=6, unique_by=str.lower))
    return dn, [(name, draw(st.lists(values, min_size=1, max_size=4))) for name in names]


@settings(max_examples=300, deadline=None)
@given(st.lists(records(), min_size=1, max_size=5), st.booleans())
def test_round_trip_format_then_parse(entries, version):
    """Whatever bytes a provider publishes, writing LDIF and reading it back gives them back."""
    parsed = parse_ldif(format_ldif(entries, version=version))
    assert [(r.dn, r.attributes) for r in parsed] == [
        (dn, tuple((name, tuple(vs)) for name, vs in attrs)) for dn, attrs in entries
    ]


@settings(max_examples=100, deadline=None)
@given(st.lists(records(), min_size=1, max_size=4), st.lists(st.integers(1, 50), max_size=30), st.booleans())
def test_streaming_gives_the_same_records_however_the_input_is_cut(entries, cuts, crlf):
    """Records do not depend on how a provider's output is split into reads."""
    text = format_ldif(entries)
    if crlf:
        text = text.replace(b"\n", b"\r\n")
    expected = parse_ldif(text)
    pieces, at = [], 0
    for size in itertools.cycle(cuts or [len(text) or 1]):
        if at >= len(text):
            break
        pieces.append(text[at : at + size])
        at += size
    assert list(iter_ldif(pieces)) == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(records(), min_size=1, max_size=4))
def test_reads_ldif_written_by_ldap3(entries):
    """LDIF from another implementation (ldap3's RFC 2849 writer) reads back exactly."""
    from ldap3.protocol.rfc2849 import operation_to_ldif

    responses = [
        {"type": "searchResEntry", "dn": dn, "raw_attributes": {name: list(vs) for name, vs in attrs}}
        for dn, attrs in entries
    ]
    text = "\n".join(operation_to_ldif("searchResponse", responses)) + "\n"
    parsed = parse_ldif(text)
    assert [(r.dn, r.attributes) for r in parsed] == [
        (dn, tuple((name, tuple(vs)) for name, vs in attrs)) for dn, attrs in entries
    ]
