"""Request decoding: round trips against ldaptor's encoder, strictness on malformed input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ldaptor.protocols import pureber
from ldaptor.protocols import pureldap as L

from gridinfo import ber
from gridinfo.directory import filters as F
from gridinfo.errors import ProtocolError
from gridinfo.ldap import wire


def _encode(op: object, message_id: int = 7, controls: list[tuple[str, bool, bytes | None]] | None = None) -> bytes:
    return L.LDAPMessage(op, id=message_id, controls=controls).toWire()


def _to_pureldap(flt: F.Filter) -> object:
    """The same filter as ldaptor objects (the independent encoder)."""
    if isinstance(flt, F.And):
        return L.LDAPFilter_and([_to_pureldap(f) for f in flt.filters])
    if isinstance(flt, F.Or):
        return L.LDAPFilter_or([_to_pureldap(f) for f in flt.filters])
    if isinstance(flt, F.Not):
        return L.LDAPFilter_not(_to_pureldap(flt.filter))
    if isinstance(flt, F.Present):
        return L.LDAPFilter_present(flt.attribute)
    if isinstance(flt, F.Substrings):
        parts: list[object] = []
        if flt.initial is not None:
            parts.append(L.LDAPFilter_substrings_initial(flt.initial))
        parts.extend(L.LDAPFilter_substrings_any(a) for a in flt.any)
        if flt.final is not None:
            parts.append(L.LDAPFilter_substrings_final(flt.final))
        return L.LDAPFilter_substrings(type=flt.attribute, substrings=parts)
    if isinstance(flt, F.Extensible):
        return L.LDAPFilter_extensibleMatch(
            matchingRule=flt.matching_rule,
            type=flt.attribute,
            matchValue=flt.value,
            dnAttributes=True if flt.dn_attributes else None,
        )
    classes = {
        F.Equality: L.LDAPFilter_equalityMatch,
        F.GreaterOrEqual: L.LDAPFilter_greaterOrEqual,
        F.LessOrEqual: L.LDAPFilter_lessOrEqual,
        F.Approx: L.LDAPFilter_approxMatch,
    }
    return classes[type(flt)](
        attributeDesc=L.LDAPAttributeDescription(flt.attribute),  # type: ignore[union-attr]
        assertionValue=L.LDAPAttributeValue(flt.value),  # type: ignore[union-attr]
    )


def _search(flt: F.Filter, **fields: object) -> bytes:
    request = L.LDAPSearchRequest(
        baseObject=fields.get("base", "mds-vo-name=local,o=grid"),
        scope=fields.get("scope", 2),
        derefAliases=fields.get("deref", 0),
        sizeLimit=fields.get("size_limit", 0),
        timeLimit=fields.get("time_limit", 0),
        typesOnly=fields.get("types_only", False),
        filter=_to_pureldap(flt),
        attributes=fields.get("attributes", []),
    )
    return _encode(request, controls=fields.get("controls"))  # type: ignore[arg-type]


# --- round trips ---------------------------------------------------------------------------------

attribute_names = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,15}", fullmatch=True)
values = st.binary(max_size=40)
leaf_filters = st.one_of(
    st.builds(F.Equality, attribute_names, values),
    st.builds(F.GreaterOrEqual, attribute_names, values),
    st.builds(F.LessOrEqual, attribute_names, values),
    st.builds(F.Approx, attribute_names, values),
    st.builds(F.Present, attribute_names),
    st.builds(
        F.Substrings,
        attribute_names,
        st.none() | values,
        st.lists(values, max_size=3).map(tuple),
        st.none() | values,
    ).filter(lambda s: s.initial is not None or s.any or s.final is not None),
    st.builds(
        F.Extensible,
        st.none() | st.sampled_from(["2.5.13.2", "caseIgnoreMatch", "1.2.840.113556.1.4.803"]),
        st.none() | attribute_names,
        values,
        st.booleans(),
    ).filter(lambda e: e.matching_rule is not None or e.attribute is not None),
)
any_filter = st.recursive(
    leaf_filters,
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(lambda fs: F.And(tuple(fs))),
        st.lists(children, max_size=4).map(lambda fs: F.Or(tuple(fs))),
        children.map(F.Not),
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(flt=any_filter)
def test_random_filters_round_trip_through_ldaptor_encoder(flt: F.Filter) -> None:
    """Any filter a client library encodes reaches the backend as the same filter AST."""
    message = wire.decode_message(_search(flt))
    assert isinstance(message.op, wire.SearchOp)
    assert message.op.filter == flt


def test_search_request_fields_round_trip() -> None:
    """Every SearchRequest field a client sends is decoded as sent."""
    data = _search(
        F.Equality("objectClass", b"GlueCE"),
        base="GlueCEUniqueID=ce.example.org:8443/cream-pbs-q,mds-vo-name=local,o=grid",
        scope=1,
        deref=3,
        size_limit=500,
        time_limit=2**31 - 1,
        types_only=True,
        attributes=["GlueCEStateFreeCPUs", "+", "1.1"],
    )
    message = wire.decode_message(data)
    assert message.message_id == 7
    assert message.controls == ()
    assert message.op == wire.SearchOp(
        base="GlueCEUniqueID=ce.example.org:8443/cream-pbs-q,mds-vo-name=local,o=grid",
        scope=1,
        deref_aliases=3,
        size_limit=500,
        time_limit=2**31 - 1,
        types_only=True,
        filter=F.Equality("objectClass", b"GlueCE"),
        attributes=("GlueCEStateFreeCPUs", "+", "1.1"),
    )


def test_utf8_base_and_long_lengths() -> None:
    """Non-ASCII DNs and elements over 127 bytes (long-form lengths) decode correctly."""
    base = "o=Grille de calcul é," + "ou=x," * 60 + "o=grid"
    message = wire.decode_message(_search(F.Equality("description", b"v" * 300), base=base))
    assert isinstance(message.op, wire.SearchOp)
    assert message.op.base == base
    assert message.op.filter == F.Equality("description", b"v" * 300)


def test_decoding_in_place_from_a_larger_buffer() -> None:
    """The server decodes messages where they sit in its read buffer."""
    one = _search(F.Present("objectClass"))
    two = _encode(L.LDAPUnbindRequest(), message_id=8)
    data = one + two
    first = wire.decode_message(data, 0, len(one))
    second = wire.decode_message(data, len(one), len(data))
    assert first.op.filter == F.Present("objectClass")  # type: ignore[union-attr]
    assert second == wire.Message(8, wire.UnbindOp(), ())


def test_request_controls_decode_with_oid_criticality_and_value() -> None:
    """Request controls arrive with their OID, criticality and value."""
    paged = ber.sequence([ber.integer(50), ber.octet_string(b"")])
    data = _search(
        F.Present("objectClass"),
        controls=[("1.2.840.113556.1.4.319", True, paged), ("1.3.6.1.4.1.42.2.27.8.5.1", False, None)],
    )
    message = wire.decode_message(data)
    assert message.controls == (
        wire.Control("1.2.840.113556.1.4.319", True, paged),
        wire.Control("1.3.6.1.4.1.42.2.27.8.5.1", False, None),
    )
    assert wire.decode_paged_control(paged) == (50, b"")


def test_simple_v2_v3_and_sasl_bind_requests_decode_with_credentials() -> None:
    """Simple binds (v2, v3) and SASL binds decode with their credentials."""
    simple = wire.decode_message(_encode(L.LDAPBindRequest(version=3, dn="cn=admin,o=grid", auth=b"secret")))
    assert simple.op == wire.BindOp(3, "cn=admin,o=grid", b"secret")
    anonymous = wire.decode_message(_encode(L.LDAPBindRequest(version=2, dn="", auth=b"")))
    assert anonymous.op == wire.BindOp(2, "", b"")
    sasl = wire.decode_message(_encode(L.LDAPBindRequest(dn="", auth=("EXTERNAL", None), sasl=True)))
    assert sasl.op == wire.BindOp(3, "", None, "EXTERNAL", None)
    sasl2 = wire.decode_message(_encode(L.LDAPBindRequest(dn="", auth=("PLAIN", b"\0u\0p"), sasl=True)))
    assert sasl2.op == wire.BindOp(3, "", None, "PLAIN", b"\0u\0p")


def test_abandon_compare_add_delete_modify_moddn_and_extended_requests_decode() -> None:
    """Abandon, Compare, Add, Delete, Modify, ModifyDN and Extended requests decode."""
    assert wire.decode_message(_encode(L.LDAPAbandonRequest(id=300))).op == wire.AbandonOp(300)
    compare = L.LDAPCompareRequest(
        entry="o=grid", ava=L.LDAPAttributeValueAssertion(L.BEROctetString("o"), L.BEROctetString("grid"))
    )
    assert wire.decode_message(_encode(compare)).op == wire.CompareOp("o=grid", "o", b"grid")
    add = L.LDAPAddRequest(
        entry="Mds-Vo-Op-name=register,mds-vo-name=site,o=grid",
        attributes=[
            (L.LDAPAttributeDescription("objectClass"), pureber.BERSet([L.LDAPAttributeValue("Mds"), L.LDAPAttributeValue("MdsVoOp")])),
            (L.LDAPAttributeDescription("Mds-Service-port"), pureber.BERSet([L.LDAPAttributeValue("2135")])),
        ],
    )
    assert wire.decode_message(_encode(add)).op == wire.AddOp(
        "Mds-Vo-Op-name=register,mds-vo-name=site,o=grid",
        [("objectClass", [b"Mds", b"MdsVoOp"]), ("Mds-Service-port", [b"2135"])],
    )
    assert wire.decode_message(_encode(L.LDAPDelRequest(entry="cn=x,o=grid"))).op == wire.DeleteOp("cn=x,o=grid")
    modify = L.LDAPModifyRequest(object="cn=x,o=grid", modification=[])
    assert wire.decode_message(_encode(modify)).op == wire.ModifyOp("cn=x,o=grid")
    moddn = L.LDAPModifyDNRequest(entry="cn=x,o=grid", newrdn="cn=y", deleteoldrdn=True)
    assert wire.decode_message(_encode(moddn)).op == wire.ModifyDNOp("cn=x,o=grid")
    whoami = L.LDAPExtendedRequest(requestName="1.3.6.1.4.1.4203.1.11.3")
    assert wire.decode_message(_encode(whoami)).op == wire.ExtendedOp("1.3.6.1.4.1.4203.1.11.3", None)
    with_value = L.LDAPExtendedRequest(requestName="1.2.3", requestValue=b"\x01\x02")
    assert wire.decode_message(_encode(with_value)).op == wire.ExtendedOp("1.2.3", b"\x01\x02")


# --- framing -------------------------------------------------------------------------------------


def test_pdu_header_needs_all_its_bytes() -> None:
    """The framing waits for a complete header and reports the PDU's extent."""
    data = _search(F.Equality("description", b"x" * 300))
    assert wire.read_pdu_header(data, 0, 1) is None
    assert wire.read_pdu_header(data, 0, 3) is None  # long form, length octets missing
    header = wire.read_pdu_header(data, 0, len(data))
    assert header is not None and header[0] + header[1] == len(data)
    assert wire.read_pdu_header(b"\x30\x05", 0, 2) == (2, 5)


def test_pdu_header_rejects_what_is_not_an_ldap_message() -> None:
    """Wrong outer tag, indefinite length, absurd length fields are protocol errors."""
    with pytest.raises(ProtocolError, match="tag 0x30"):
        wire.read_pdu_header(b"GET / HTTP/1.1\r\n", 0, 16)
    with pytest.raises(ProtocolError, match="indefinite"):
        wire.read_pdu_header(b"\x30\x80\x02\x01\x01", 0, 5)
    with pytest.raises(ProtocolError, match="9 octets"):
        wire.read_pdu_header(b"\x30\x89" + b"\xff" * 9, 0, 11)
    # A header claiming gigabytes is read so the size limit can name the size.
    assert wire.read_pdu_header(b"\x30\x84\x80\x00\x00\x00", 0, 6) == (6, 2**31)


# --- strictness ----------------------------------------------------------------------------------


def _patched(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1
    return data.replace(old, new)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(_search(F.Present("objectClass"))[:-3], "claims", id="truncated"),
        pytest.param(b"\x30\x03\x02\x01", "claims", id="truncated-message-id"),
        pytest.param(b"\x30\x05\x02\x01\x01\x7f\x00", r"unknown protocol operation \(tag 0x7f\)", id="unknown-op"),
        pytest.param(b"\x30\x05\x02\x01\x01\x61\x00", "may not send BindResponse", id="response-from-client"),
        pytest.param(b"\x30\x06\x02\x01\x01\x42\x01\x00", "UnbindRequest must be empty", id="unbind-with-body"),
        pytest.param(b"\x30\x05\x02\x00\x42\x00\x00", "messageID at offset 2 is empty", id="empty-integer"),
        pytest.param(b"\x30\x05\x02\x01\xff\x42\x00", r"messageID -1 is outside", id="negative-id"),
        pytest.param(b"\x30\x07\x02\x01\x01\x42\x00\x04\x00", "controls", id="junk-after-op"),
        pytest.param(_search(F.Present("objectClass")) + b"\x00", "unexpected bytes at the end of the PDU", id="trailing"),
        pytest.param(
            _patched(_search(F.Present("objectClass")), b"\x87\x0bobjectClass", b"\x8f\x0bobjectClass"),
            r"unknown filter choice \(tag 0x8f\)",
            id="unknown-filter",
        ),
        pytest.param(
            _patched(_search(F.Equality("cn", b"x"), size_limit=5), b"\x02\x01\x05", b"\x02\x01\xfb"),
            "sizeLimit -5 is outside",
            id="negative-size-limit",
        ),
        pytest.param(
            _patched(_search(F.Equality("cn", b"x"), scope=2), b"\x0a\x01\x02", b"\x0a\x01\x07"),
            "scope 7 is outside",
            id="bad-scope",
        ),
        pytest.param(
            _patched(_search(F.Equality("cn", b"x"), base="o=gr\x7fd"), b"o=gr\x7fd", b"o=gr\xffd"),
            "baseObject is not valid UTF-8",
            id="bad-utf8",
        ),
        pytest.param(
            _patched(_search(F.Equality("cn", b"x")), b"\xa3\x07\x04\x02cn\x04\x01x", b"\xa3\x80\x04\x02cn\x04\x01x"),
            "indefinite length in filter",
            id="indefinite-inner",
        ),
        pytest.param(
            _patched(_search(F.Equality("cn", b"x")), b"\xa3\x07\x04\x02cn\x04\x01x", b"\xa3\x85\x04\x02cn\x04\x01x"),
            "length field of 5 octets",
            id="long-length-inner",
        ),
        pytest.param(
            _patched(_search(F.Equality("cn", b"x")), b"\xa3\x07\x04\x02cn\x04\x01x", b"\xa3\x07\x04\x02cn\x04\x09x"),
            "claims 9 bytes",
            id="inner-length-overrun",
        ),
        pytest.param(
            _search(F.Substrings("cn", None, (b"a",), b"z")).replace(b"\x81\x01a\x82\x01z", b"\x82\x01z\x81\x01a"),
            "element after 'final'",
            id="substring-after-final",
        ),
    ],
)
def test_malformed_requests_are_protocol_errors(data: bytes, expected: str) -> None:
    """Malformed requests are refused with a message that says what is wrong."""
    with pytest.raises(ProtocolError, match=expected):
        wire.decode_message(data)


def test_filter_nesting_is_bounded() -> None:
    """A filter nested past the depth limit is refused instead of exhausting the stack."""
    flt: F.Filter = F.Present("objectClass")
    for _ in range(wire.MAX_FILTER_DEPTH):
        flt = F.Not(flt)
    assert wire.decode_message(_search(flt)).op.filter == flt  # type: ignore[union-attr]
    deep_body = ber.tlv(0x87, b"cn")
    for _ in range(5000):
        deep_body = ber.tlv(0xA2, deep_body)
    with pytest.raises(ProtocolError, match="nested deeper than 100"):
        wire.decode_filter(deep_body, 0, len(deep_body))


def test_extensible_match_needs_a_value_and_a_rule_or_type() -> None:
    """extensibleMatch follows RFC 4511's constraints."""
    no_value = ber.tlv(0xA9, ber.tlv(0x82, b"cn"))
    with pytest.raises(ProtocolError, match="without matchValue"):
        wire.decode_filter(no_value, 0, len(no_value))
    neither = ber.tlv(0xA9, ber.tlv(0x83, b"x"))
    with pytest.raises(ProtocolError, match="matchingRule or a type"):
        wire.decode_filter(neither, 0, len(neither))
    out_of_order = ber.tlv(0xA9, ber.tlv(0x82, b"cn") + ber.tlv(0x81, b"2.5.13.2") + ber.tlv(0x83, b"x"))
    with pytest.raises(ProtocolError, match="out of order"):
        wire.decode_filter(out_of_order, 0, len(out_of_order))


def test_empty_substrings_filter_is_refused() -> None:
    """A substrings filter must hold at least one substring."""
    data = ber.tlv(0xA4, ber.octet_string(b"cn") + ber.sequence([]))
    with pytest.raises(ProtocolError, match="without any substring"):
        wire.decode_filter(data, 0, len(data))


def test_bad_paged_control_value() -> None:
    """A paged results control that is not a {size, cookie} sequence is refused."""
    with pytest.raises(ProtocolError, match="without a value"):
        wire.decode_paged_control(None)
    with pytest.raises(ProtocolError):
        wire.decode_paged_control(b"\x30\x03\x02\x01\x05")


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200))
def test_random_bytes_never_escape_as_other_exceptions(data: bytes) -> None:
    """Whatever a client sends, the decoder answers a message or a ProtocolError."""
    framed = b"\x30" + ber.encode_length(len(data)) + data
    try:
        wire.decode_message(framed)
    except ProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(flt=any_filter, cut=st.integers(min_value=1, max_value=400))
def test_truncated_searches_are_protocol_errors(flt: F.Filter, cut: int) -> None:
    """A search whose body is cut short anywhere is a ProtocolError, never a crash."""
    data = _search(flt)
    cut = min(cut, len(data) - 1)
    body = data[2:] if data[1] < 0x80 else data[2 + (data[1] & 0x7F) :]
    truncated = body[: len(body) - cut] if cut < len(body) else b""
    with pytest.raises(ProtocolError):
        wire.decode_message(b"\x30" + ber.encode_length(len(truncated)) + truncated)
