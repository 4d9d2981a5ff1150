"""The GIIS acceptance policy: filters over the registration entry, binds, refusals logged."""

from __future__ import annotations

import pytest
from twisted.logger import LogLevel, globalLogPublisher

from gridinfo.directory.dn import DNNormaliser
from gridinfo.directory.schema import default_schema
from gridinfo.errors import ConfigError, InsufficientAccessRights, InvalidCredentials, ResultCode
from gridinfo.giis.leases import parse_registration
from gridinfo.config import PolicyRuleConfig as PolicyRule
from gridinfo.giis.policy import RegistrationPolicy
from tests.giis.test_leases import T0, message

SCHEMA = default_schema()
DN = "Mds-Vo-Op-name=register,mds-vo-name=site,o=grid"


def reg(**overrides: object):
    return parse_registration(message(T0, **overrides), now=T0, normalise_suffix=DNNormaliser(SCHEMA).key)


@pytest.fixture
def logged():
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def test_open_policy_accepts_anyone() -> None:
    """The Globus default (Mds-Service-hn=*) lets every well-formed registration in."""
    policy = RegistrationPolicy.open(SCHEMA)
    assert policy.check(DN, reg()).filter == "(Mds-Service-hn=*)"


def test_host_port_and_suffix_patterns(logged: list[dict]) -> None:
    """Site policies restrict host, port (numerically) and suffix; others are refused and logged."""
    policy = RegistrationPolicy(
        [PolicyRule("(&(Mds-Service-hn=*.example.org)(Mds-Service-port>=2135)(Mds-Service-Ldap-suffix=*o=grid))")],
        SCHEMA,
    )
    policy.check(DN, reg())
    policy.check(DN, reg(Mds_Service_port="10000"))  # 10000 >= 2135 as numbers, not as strings
    with pytest.raises(InsufficientAccessRights, match="does not accept registrations of ldap://evil.example.com") as e:
        policy.check(DN, reg(Mds_Service_hn="evil.example.com"))
    assert e.value.code == ResultCode.INSUFFICIENT_ACCESS_RIGHTS
    with pytest.raises(InsufficientAccessRights):
        policy.check(DN, reg(Mds_Service_port="389"))
    with pytest.raises(InsufficientAccessRights):
        policy.check(DN, reg(Mds_Service_Ldap_suffix="o=elsewhere"))
    refusals = [ev for ev in logged if ev.get("log_level") == LogLevel.warn and "url" in ev]
    assert [ev["url"].split("/")[2] for ev in refusals] == ["evil.example.com:2135", "ce01.example.org:389", "ce01.example.org:2135"]


def test_rules_in_order_with_credentials() -> None:
    """A rule may demand a bind: anonymous gets invalidCredentials, someone else insufficientAccessRights."""
    policy = RegistrationPolicy(
        [
            PolicyRule("(Mds-Service-hn=giis.example.org)", bind_dn="cn=giis,o=grid"),
            PolicyRule("(Mds-Service-Ldap-suffix=mds-vo-name=local*)"),
        ],
        SCHEMA,
    )
    policy.check(DN, reg())  # a GRIS: second rule, anonymous is fine
    giis = dict(Mds_Service_hn="giis.example.org", Mds_Service_Ldap_suffix="mds-vo-name=sub,o=grid")
    assert policy.check(DN, reg(**giis), bind_dn="CN=giis, o=Grid").bind_dn == "cn=giis,o=grid"
    with pytest.raises(InvalidCredentials, match="bound as cn=giis,o=grid"):
        policy.check(DN, reg(**giis))
    with pytest.raises(InsufficientAccessRights, match="not cn=other"):
        policy.check(DN, reg(**giis), bind_dn="cn=other,o=grid")


def test_bad_filter_is_a_config_error() -> None:
    """A typo in a policy filter stops the GIIS at start with the rule named."""
    with pytest.raises(ConfigError, match="policy rule 2"):
        RegistrationPolicy([PolicyRule("(Mds-Service-hn=*)"), PolicyRule("(Mds-Service-hn=*")], SCHEMA, source="giis.yaml")


def test_bind_dn_with_spaces_around_separators_and_equals_passes_policy() -> None:
    """A registrant bound as ``cn = cloud, o = grid`` (which the server's bind accepts) also passes
    a rule written ``cn=cloud,o=grid``: both compare as the same DN."""
    policy = RegistrationPolicy([PolicyRule("(Mds-Service-hn=*)", bind_dn="cn=cloud,o=grid")], SCHEMA)
    assert policy.check(DN, reg(), bind_dn="cn = cloud, o = grid").bind_dn == "cn=cloud,o=grid"
    assert policy.check(DN, reg(), bind_dn="CN=Cloud , O=Grid").bind_dn == "cn=cloud,o=grid"
    with pytest.raises(InsufficientAccessRights):
        policy.check(DN, reg(), bind_dn="cn=cloud2,o=grid")
