"""The GIIS lease registry: MDS2 registration messages, validation, and the lease life cycle."""

from __future__ import annotations

import pytest
from twisted.internet import task

from gridinfo.directory.dn import DNNormaliser
from gridinfo.errors import ConstraintViolation, InsufficientAccessRights, InvalidDNSyntax, ObjectClassViolation, ResultCode
from gridinfo.giis.leases import (
    LeaseState,
    LeaseTable,
    format_generalized_time,
    parse_generalized_time,
    parse_registration,
)

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
normalise = DNNormaliser(None).key


def message(now: float, ttl: float = 1200, keep: float | None = None, **overrides: object) -> list[tuple[str, list[bytes]]]:
    """A registration as grid-info-soft-register sent it (attribute names as MDS2 wrote them)."""
    attrs: dict[str, object] = {
        "objectclass": ["Mds", "MdsVoOp", "MdsService", "MdsServiceLdap"],
        "Mds-Vo-Op-name": "register",
        "Mds-Service-type": "ldap",
        "Mds-Service-hn": "ce01.example.org",
        "Mds-Service-port": "2135",
        "Mds-Service-Ldap-suffix": "Mds-Vo-name=local, o=Grid",
        "Mds-Service-Ldap-sizelimit": "0",
        "Mds-Service-Ldap-timeout": "20",
        "Mds-Service-Ldap-cachettl": "30",
        "Mds-Bind-Method-servers": "ANONYM-ONLY",
        "Mds-validfrom": format_generalized_time(now),
        "Mds-validto": format_generalized_time(now + ttl),
        "Mds-keepto": format_generalized_time(now + (ttl if keep is None else keep)),
    }
    for k, v in overrides.items():
        k = k.replace("_", "-")
        if v is None:
            attrs.pop(k, None)
        else:
            attrs[k] = v
    return [(k, [x.encode() for x in (v if isinstance(v, list) else [v])]) for k, v in attrs.items()]  # type: ignore[union-attr]


def parse(attrs: list[tuple[str, list[bytes]]], now: float, max_lease: float = 86400):
    return parse_registration(attrs, now=now, normalise_suffix=normalise, max_lease=max_lease)


def test_generalized_time_round_trip_and_variants() -> None:
    """Registrants write UTC generalized time, sometimes with fractions or offsets."""
    assert parse_generalized_time(b"20231114221320Z") == T0
    assert format_generalized_time(T0) == "20231114221320Z"
    assert parse_generalized_time("20231114221320.5Z") == T0 + 0.5
    assert parse_generalized_time("20231114231320+0100") == T0
    with pytest.raises(ConstraintViolation, match="Mds-validto"):
        parse_generalized_time("yesterday", "Mds-validto")
    with pytest.raises(ConstraintViolation):
        parse_generalized_time("20231399000000Z")


def test_an_mds2_registration_message_parses_into_host_port_suffix_and_times() -> None:
    """An MDS2 grid-info-soft-register message parses into host, port, suffix and lease times."""
    reg = parse(message(T0), T0)
    assert (reg.host, reg.port, reg.suffix) == ("ce01.example.org", 2135, "Mds-Vo-name=local, o=Grid")
    assert reg.key == ("ce01.example.org", 2135, "mds-vo-name=local,o=grid")
    assert (reg.valid_from, reg.valid_to, reg.keep_to) == (T0, T0 + 1200, T0 + 1200)
    assert (reg.timeout, reg.cachettl, reg.size_limit, reg.bind_methods) == (20.0, 30.0, 0, "ANONYM-ONLY")
    assert reg.url == "ldap://ce01.example.org:2135/Mds-Vo-name=local, o=Grid"


def test_lease_attributes_are_optional_and_keepto_defaults_to_validto() -> None:
    """cachettl, timeout, sizelimit and keepto are optional; keepto defaults to validto."""
    reg = parse(
        message(T0, Mds_Service_Ldap_cachettl=None, Mds_Service_Ldap_timeout=None, Mds_keepto=None), T0
    )
    assert (reg.timeout, reg.cachettl, reg.keep_to) == (20.0, 30.0, T0 + 1200)


@pytest.mark.parametrize(
    ("overrides", "error", "words"),
    [
        ({"objectclass": ["Mds", "MdsVoOp"]}, ObjectClassViolation, "MdsService"),
        ({"Mds_Service_hn": None}, ObjectClassViolation, "Mds-Service-hn"),
        ({"Mds_Service_port": None}, ObjectClassViolation, "Mds-Service-port"),
        ({"Mds_Service_Ldap_suffix": None}, ObjectClassViolation, "Mds-Service-Ldap-suffix"),
        ({"Mds_validto": None}, ConstraintViolation, "Mds-validto"),
        ({"Mds_Service_port": "http"}, ConstraintViolation, "Mds-Service-port"),
        ({"Mds_Service_port": "70000"}, ConstraintViolation, "Mds-Service-port"),
        ({"Mds_Service_hn": "a host"}, ConstraintViolation, "Mds-Service-hn"),
        ({"Mds_Service_Ldap_cachettl": "-5"}, ConstraintViolation, "cachettl"),
        ({"Mds_validto": "soon"}, ConstraintViolation, "Mds-validto"),
    ],
)
def test_bad_messages_are_refused_naming_the_attribute(overrides: dict, error: type, words: str) -> None:
    """A registrant with a broken message learns which attribute is wrong from the result."""
    with pytest.raises(error, match=words):
        parse(message(T0, **overrides), T0)


def test_bad_suffix_is_invalid_dn_syntax() -> None:
    """A suffix that is not a DN is refused with invalidDNSyntax."""
    with pytest.raises(InvalidDNSyntax):
        parse(message(T0, Mds_Service_Ldap_suffix="not a dn"), T0)


def test_validto_in_the_past_or_too_far_is_constraint_violation() -> None:
    """The GIIS's clock decides: a lease already over, or absurdly long, is refused with a reason."""
    with pytest.raises(ConstraintViolation, match="in the past") as past:
        parse(message(T0 - 5000, ttl=1200), T0)
    assert past.value.code == ResultCode.CONSTRAINT_VIOLATION
    with pytest.raises(ConstraintViolation, match="at most 86400 s"):
        parse(message(T0, ttl=10 * 86400), T0)
    with pytest.raises(ConstraintViolation, match="at most 3600 s"):
        parse(message(T0, ttl=7200), T0, max_lease=3600)


def test_lease_life_cycle_under_a_driven_clock() -> None:
    """VALID until validto, INVALID until keepto, then purged: on read, with sweeps off."""
    clock = task.Clock()
    clock.advance(T0)
    table = LeaseTable()
    lease, new = table.register(parse(message(clock.seconds(), ttl=100, keep=300), clock.seconds()), clock.seconds())
    assert new
    key = lease.key
    assert lease.state(clock.seconds()) is LeaseState.VALID
    assert [x.key for x in table.valid(clock.seconds())] == [key]
    clock.advance(99)
    assert lease.state(clock.seconds()) is LeaseState.VALID
    clock.advance(1)
    assert lease.state(clock.seconds()) is LeaseState.INVALID
    assert table.valid(clock.seconds()) == []
    assert [x.key for x in table.current(clock.seconds())] == [key]
    clock.advance(199)
    assert table.get(key, clock.seconds()) is lease
    clock.advance(1)
    assert lease.state(clock.seconds()) is LeaseState.PURGED
    assert table.get(key, clock.seconds()) is None
    assert len(table) == 0


def test_sweep_purges_and_reports() -> None:
    """A sweep removes leases past keepto and returns them so their cache can go too."""
    table = LeaseTable()
    short, _ = table.register(parse(message(T0, ttl=10, Mds_Service_hn="a"), T0), T0)
    long, _ = table.register(parse(message(T0, ttl=1000, Mds_Service_hn="b"), T0), T0)
    assert table.sweep(T0 + 5) == []
    assert table.sweep(T0 + 10) == [short]
    assert list(table.leases.values()) == [long]


def test_renewal_replaces_and_revives() -> None:
    """The same add renews (same key: new times, no second registrant), even once INVALID."""
    table = LeaseTable()
    first, new = table.register(parse(message(T0, ttl=100, keep=500), T0), T0)
    now = T0 + 150
    assert first.state(now) is LeaseState.INVALID
    again, new = table.register(parse(message(now, ttl=100, Mds_Service_Ldap_cachettl="60"), now), now)
    assert not new and again is first and len(table) == 1
    assert again.state(now) is LeaseState.VALID
    assert again.registration.cachettl == 60.0 and again.renewals == 1
    assert again.first_registered == T0 and again.last_renewed == now
    # same host and port, suffix written differently: the same registrant
    same, new = table.register(parse(message(now, Mds_Service_Ldap_suffix="mds-vo-name=LOCAL,o=grid"), now), now)
    assert not new and len(table) == 1
    # another suffix on the same host and port is another registrant
    _, new = table.register(parse(message(now, Mds_Service_Ldap_suffix="mds-vo-name=other,o=grid"), now), now)
    assert new and len(table) == 2


def test_a_registrant_cap_refuses_new_keys_and_lets_renewals_pass() -> None:
    """A cap on registrants refuses new keys but still lets existing ones renew."""
    table = LeaseTable(max_registrants=2)
    table.register(parse(message(T0, ttl=10, Mds_Service_hn="a"), T0), T0)
    table.register(parse(message(T0, Mds_Service_hn="b"), T0), T0)
    with pytest.raises(InsufficientAccessRights, match="at most 2 registrants"):
        table.register(parse(message(T0, Mds_Service_hn="c"), T0), T0)
    table.register(parse(message(T0 + 1, Mds_Service_hn="b"), T0 + 1), T0 + 1)  # renewal passes
    # once "a" is purged its place is free
    table.register(parse(message(T0 + 20, Mds_Service_hn="c"), T0 + 20), T0 + 20)
    assert sorted(k[0] for k in table.leases) == ["b", "c"]
