"""gridinfo.ber: the one BER reader and encoder set shared by the server, the client and tools."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridinfo import ber
from gridinfo.errors import ProtocolError
from gridinfo.ldap.client import PeerProtocolError, decode_entry, entry_dn, rename_entry


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_encoded_lengths_read_back(n: int) -> None:
    """Every length the encoders write is read back, by the element reader and the framing."""
    header = b"\x30" + ber.encode_length(n)
    assert ber.read_header(header + b"\x00" * min(n, 300), 0, len(header) + n)[1:] == (len(header), len(header) + n)
    assert ber.read_pdu_header(header, 0, len(header)) == (len(header), n)


@given(st.binary(max_size=300), st.sampled_from([ber.OCTET_STRING, ber.SEQUENCE, ber.APP_SEARCH_RESULT_ENTRY]))
def test_any_tlv_element_reads_back_its_tag_and_value(value: bytes, tag: int) -> None:
    """Any TLV element the encoder writes reads back as its tag and value, spanning the whole element."""
    element = ber.tlv(tag, value)
    got, start, stop = ber.read_header(element, 0, len(element))
    assert (got, element[start:stop], stop) == (tag, value, len(element))
    assert ber.expect(element, 0, len(element), tag, "x") == (start, stop)


def test_incomplete_length_is_none_for_framing() -> None:
    """Framing waits for more bytes: an incomplete length field is None, not an error."""
    assert ber.read_pdu_header(b"\x30", 0, 1) is None
    assert ber.read_pdu_header(b"\x30\x82\x01", 0, 3) is None


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(b"\x04", "truncated element at offset 0", id="no-length"),
        pytest.param(b"\x04\x82\x01", "truncated element at offset 0", id="length-cut"),
        pytest.param(b"\x04\x80abc", r"indefinite length in element at offset 0 \(RFC 4511", id="indefinite"),
        pytest.param(b"\x04\x85\x00\x00\x00\x00\x01a", "length field of 5 octets in element at offset 0", id="long-field"),
        pytest.param(b"\x04\x05abc", "element at offset 0 claims 5 bytes but only 3 remain", id="overrun"),
    ],
)
def test_bad_elements_name_what_and_where(data: bytes, expected: str) -> None:
    """Each malformed element is a ProtocolError naming the element and its offset."""
    with pytest.raises(ProtocolError, match=expected):
        ber.read_header(data, 0, len(data), "element")


def test_expect_names_the_wrong_tag() -> None:
    with pytest.raises(ProtocolError, match=r"expected name \(tag 0x04\) at offset 0, got tag 0x30"):
        ber.expect(b"\x30\x00", 0, 2, ber.OCTET_STRING, "name")


def test_pdu_header_length_fields() -> None:
    """A PDU header may have up to 8 length octets (so the size limit can name the size)."""
    assert ber.read_pdu_header(b"\x30\x88" + b"\x00" * 7 + b"\x05", 0, 10) == (10, 5)
    with pytest.raises(ProtocolError, match="9 octets in LDAPMessage"):
        ber.read_pdu_header(b"\x30\x89" + b"\x00" * 9, 0, 11)


_ENTRY = ber.search_result_entry(b"cn=a,o=grid", [ber.partial_attribute(b"cn", [b"a"]), ber.partial_attribute(b"x", [b"1", b"2"])])


def test_client_readers_share_the_reader() -> None:
    assert entry_dn(_ENTRY) == "cn=a,o=grid"
    assert decode_entry(_ENTRY) == ("cn=a,o=grid", [("cn", [b"a"]), ("x", [b"1", b"2"])])
    assert decode_entry(rename_entry(_ENTRY, "cn=b,o=grid"))[0] == "cn=b,o=grid"


@pytest.mark.parametrize("cut", [1, 3, 10, len(_ENTRY) - 1])
def test_a_broken_answer_is_the_peers_fault(cut: int) -> None:
    """A child's malformed entry is a PeerProtocolError (its fault) saying what is wrong."""
    broken = _ENTRY[:2] + _ENTRY[2:cut]  # the outer length still claims the whole entry
    with pytest.raises(PeerProtocolError, match="SearchResultEntry|objectName|attribute|truncated|claims"):
        decode_entry(broken)
