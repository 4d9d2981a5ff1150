"""Differential test: gridinfo answers like OpenLDAP's slapd on the same GLUE data.

The same generated GLUE DIT is loaded into a real slapd (back-mdb, Debian's GLUE schema files)
and into a gris (gridinfo's own bundled schema).  Each search of the battery goes to both with
ldap3; the entries (DN, attribute names, values), the result code and, where slapd gives one,
the matchedDN must be the same.  Where the order of entries is unspecified and a size limit
cuts the answer, only the number of entries and the code are compared.
"""

from __future__ import annotations

import ldap3
import pytest

from gridinfo_dev import gendit, glue2
from gridinfo_dev.slapd import GLUE_SCHEMAS, SCHEMA_DIR, Slapd
from tests.support.gris import GrisProcess

N_ENTRIES = 3000
SUFFIX = "mds-vo-name=local,o=grid"
SITE1 = gendit.site_dn(1)
SITE2 = gendit.site_dn(2)
CE = f"GlueCEUniqueID=ce3.site0001.example.org:8443/cream-pbs-queue4,{SITE1}"

BASE, ONE, SUB = ldap3.BASE, ldap3.LEVEL, ldap3.SUBTREE

# (base, scope, filter, attributes, extra) -- extra: size_limit, types_only
BATTERY: list[tuple[str, object, str, list[str] | None, dict]] = [
    # scopes
    ("o=grid", BASE, "(objectClass=*)", None, {}),
    ("o=grid", ONE, "(objectClass=*)", None, {}),
    (SUFFIX, ONE, "(objectClass=*)", None, {}),
    (SITE1, BASE, "(objectClass=*)", None, {}),
    (SITE1, ONE, "(objectClass=*)", None, {}),
    (SITE1, SUB, "(objectClass=*)", None, {}),
    (CE, SUB, "(objectClass=*)", None, {}),
    (CE, ONE, "(objectClass=GlueVOView)", None, {}),
    ("o=grid", SUB, "(objectClass=GlueSite)", None, {}),
    ("o=grid", SUB, "(objectClass=*)", None, {}),  # the whole DIT, streamed in chunks
    # objectClass: case, superclasses, auxiliaries
    (SITE1, SUB, "(objectClass=GlueCE)", None, {}),
    (SITE1, SUB, "(objectclass=gluece)", None, {}),
    (SITE1, SUB, "(objectClass=GlueCETop)", None, {}),
    (SITE1, SUB, "(objectClass=GlueTop)", None, {}),
    (SITE1, SUB, "(objectClass=GlueKey)", None, {}),
    (SITE1, SUB, "(!(objectClass=GlueCE))", None, {}),
    # integer ordering and equality
    ("o=grid", SUB, "(GlueCEStateFreeCPUs>=1500)", None, {}),
    ("o=grid", SUB, "(GlueCEStateFreeCPUs<=20)", None, {}),
    (SITE1, SUB, "(GlueCEStateFreeCPUs>=9)", None, {}),
    (SITE1, SUB, "(&(GlueCEStateFreeCPUs>=100)(GlueCEStateFreeCPUs<=999))", None, {}),
    (SITE1, SUB, "(GlueCEStateRunningJobs=0)", None, {}),
    ("o=grid", SUB, "(GlueCEStateFreeCPUs>=abc)", None, {}),
    ("o=grid", SUB, "(GlueCEStateFreeCPUs=-1)", None, {}),
    (SITE1, SUB, "(GlueSubClusterLogicalCPUs>=64)", None, {}),
    (SITE1, SUB, "(GlueSchemaVersionMajor=1)", None, {}),
    # strings: caseIgnoreIA5, spaces, substrings
    (SITE1, SUB, "(GlueCEStateStatus=production)", None, {}),
    (SITE1, SUB, "(GlueCEStateStatus=PRODUCTION)", None, {}),
    (SITE1, SUB, "(GlueCEStateStatus=  Production )", None, {}),
    (SITE1, SUB, "(!(GlueCEStateStatus=Production))", None, {}),
    ("o=grid", SUB, "(GlueCEUniqueID=ce1*)", None, {}),
    ("o=grid", SUB, "(GlueCEUniqueID=*queue1*)", None, {}),
    ("o=grid", SUB, "(GlueCEUniqueID=*:8443/cream-pbs-queue2)", None, {}),
    ("o=grid", SUB, "(GlueCEUniqueID=ce1*site0002*queue3)", None, {}),
    ("o=grid", SUB, "(GlueCEUniqueID=CE2.SITE0003*)", None, {}),
    (SITE1, SUB, "(GlueSiteUniqueID=site*1)", None, {}),
    (SITE1, SUB, "(GlueCEInfoHostName=*example*org)", None, {}),
    (SITE1, SUB, "(GlueChunkKey=GlueCEUniqueID=*)", None, {}),
    # present, approx, and/or/not, unknown attributes
    (SITE1, SUB, "(GlueCEStateFreeCPUs=*)", None, {}),
    (SITE1, SUB, "(GlueSEUniqueID=*)", None, {}),
    (SITE1, SUB, "(GlueCEName~=queue4)", None, {}),
    (SITE1, SUB, "(GlueCEInfoHostName~=ce3.site0001.example.org)", None, {}),
    (SITE1, SUB, "(GlueCEStateFreeCPUs~=17)", None, {}),
    (SITE1, SUB, "(|(objectClass=GlueSE)(objectClass=GlueSA))", None, {}),
    (SITE1, SUB, "(&(objectClass=GlueCE)(|(GlueCEStateStatus=Draining)(GlueCEStateFreeCPUs<=100)))", None, {}),
    (SITE1, SUB, "(&(objectClass=GlueVOView)(GlueVOViewLocalID=atlas))", None, {}),
    (SITE1, SUB, "(NoSuchAttribute=x)", None, {}),
    (SITE1, SUB, "(!(NoSuchAttribute=x))", None, {}),
    (SITE1, SUB, "(|(NoSuchAttribute=x)(objectClass=GlueSite))", None, {}),
    (SITE1, SUB, "(&(NoSuchAttribute=*)(objectClass=GlueSite))", None, {}),
    (SITE1, SUB, "(!(&(objectClass=GlueCE)(GlueCEStateFreeCPUs>=500)))", None, {}),
    # extensible match
    (SITE1, SUB, "(GlueCEStateStatus:caseIgnoreIA5Match:=production)", None, {}),
    (SITE1, SUB, "(GlueCEUniqueID:caseExactIA5Match:=ce3.site0001.example.org:8443/cream-pbs-queue4)", None, {}),
    (SITE1, SUB, "(GlueCEUniqueID:caseExactIA5Match:=CE3.site0001.example.org:8443/cream-pbs-queue4)", None, {}),
    (SITE1, SUB, "(GlueCEStateFreeCPUs:integerMatch:=17)", None, {}),
    # what lcg-infosites sends; an extensible match whose rule does not apply to IA5 strings
    ("o=grid", SUB, "(&(ObjectClass=GlueCE)(GlueCEAccessControlBaseRule=VO*:atlas))", ["GlueCEUniqueID"], {}),
    ("o=grid", SUB, "(GlueSiteName:caseIgnoreMatch:=site0001)", None, {}),
    ("o=grid", SUB, "(GlueSiteName:caseIgnoreIA5Match:=site0001)", None, {}),
    ("o=grid", SUB, "(GlueSiteName:caseExactMatch:=SITE0001)", None, {}),
    # attribute selection and typesOnly
    (SITE1, SUB, "(objectClass=GlueCE)", ["GlueCEStateFreeCPUs"], {}),
    (SITE1, SUB, "(objectClass=GlueCE)", ["gluecestatefreecpus", "GLUECEUNIQUEID"], {}),
    (SITE1, SUB, "(objectClass=GlueCE)", ["1.1"], {}),
    (SITE1, SUB, "(objectClass=GlueCE)", ["*"], {}),
    (SITE1, SUB, "(objectClass=GlueCE)", ["NoSuchAttribute"], {}),
    (SITE1, SUB, "(objectClass=GlueSite)", ["*"], {"types_only": True}),
    (CE, BASE, "(objectClass=*)", ["GlueCEName", "objectClass"], {"types_only": True}),
    # size limits
    (SITE1, SUB, "(objectClass=GlueCE)", ["1.1"], {"size_limit": 5}),
    (SITE1, SUB, "(objectClass=GlueCE)", ["1.1"], {"size_limit": 25}),
    (SITE1, SUB, "(objectClass=GlueCE)", ["1.1"], {"size_limit": 26}),
    (SITE2, ONE, "(objectClass=*)", ["1.1"], {"size_limit": 1}),
    # missing bases
    (f"GlueSiteUniqueID=nowhere,{SUFFIX}", SUB, "(objectClass=*)", None, {}),
    (f"GlueCEUniqueID=nothing,{SITE1}", BASE, "(objectClass=*)", None, {}),
    ("o=nothing", SUB, "(objectClass=*)", None, {}),
]


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    ldif = tmp_path_factory.mktemp("diff") / "glue.ldif"
    gendit.write_ldif(ldif, N_ENTRIES)
    with Slapd(ldif=ldif) as slapd, GrisProcess(["--ldif", str(ldif)]) as gris:
        yield {
            "slapd": ldap3.Connection(ldap3.Server("127.0.0.1", port=slapd.port, get_info=ldap3.NONE), auto_bind=True, check_names=False),
            "gridinfo": ldap3.Connection(ldap3.Server("127.0.0.1", port=gris.port, get_info=ldap3.NONE), auto_bind=True, check_names=False),
        }


def run(conn: ldap3.Connection, base, scope, flt, attributes, extra):
    conn.search(
        base,
        flt,
        search_scope=scope,
        attributes=attributes if attributes is not None else [ldap3.ALL_ATTRIBUTES],
        size_limit=extra.get("size_limit", 0),
        types_only=extra.get("types_only", False),
    )
    entries = {}
    for r in conn.response or []:
        if r["type"] != "searchResEntry":
            continue
        attrs = {k.lower(): sorted(v or []) for k, v in r["raw_attributes"].items()}
        entries[r["dn"].lower()] = attrs
    return conn.result["result"], conn.result.get("dn", ""), entries


def assert_same_answer(servers, case) -> dict:
    """Run ``case`` on both servers: same result code, matchedDN, entries and attributes.

    Returns slapd's entries (empty when the size limit cut both answers).
    """
    base, scope, flt, attributes, extra = case
    code_s, matched_s, want = run(servers["slapd"], base, scope, flt, attributes, extra)
    code_g, matched_g, got = run(servers["gridinfo"], base, scope, flt, attributes, extra)
    assert code_g == code_s, f"result code: gridinfo {code_g}, slapd {code_s}"
    if code_s == 32:
        assert matched_g.lower() == matched_s.lower()
    if code_s == 4:
        assert len(got) == len(want)
        return {}
    assert set(got) == set(want), f"entries only in gridinfo: {sorted(set(got) - set(want))[:3]}, only in slapd: {sorted(set(want) - set(got))[:3]}"
    for dn in want:
        assert got[dn] == want[dn], dn
    return want


def test_the_differential_battery_has_at_least_fifty_searches():
    """The battery is at least 50 searches, as promised."""
    assert len(BATTERY) >= 50


@pytest.mark.parametrize("case", BATTERY, ids=[f"{i}:{c[2]}" for i, c in enumerate(BATTERY)])
def test_same_answer_as_slapd(servers, case):
    """gridinfo returns the same entries, attributes and result code as slapd."""
    want = assert_same_answer(servers, case)
    base, scope, flt, _attributes, _extra = case
    if flt == "(objectClass=*)" and scope == SUB and base == SITE1:
        assert len(want) > 200  # the battery searches real data


# --- operational attributes ------------------------------------------------------------------

# Filters and selections where slapd (entries loaded with slapadd) and gridinfo must agree.
# Timestamps, CSNs and UUIDs differ in value, so they are compared by presence and syntax.
OPERATIONAL_BATTERY: list[tuple[str, object, str, list[str] | None, dict]] = [
    (SITE1, SUB, "(hasSubordinates=TRUE)", ["1.1"], {}),
    (SITE1, SUB, "(hasSubordinates=FALSE)", ["1.1"], {}),  # (slapd refuses "false"; gridinfo's booleanMatch takes any case)
    (SITE1, SUB, "(hasSubordinates=maybe)", ["1.1"], {}),
    (SITE1, SUB, "(!(hasSubordinates=TRUE))", ["1.1"], {}),
    (SITE1, SUB, "(entryUUID=*)", ["1.1"], {}),
    (SITE1, SUB, "(entryUUID=not-a-uuid)", ["1.1"], {}),
    (SITE1, SUB, "(entryUUID=00000000-0000-0000-0000-000000000000)", ["1.1"], {}),
    (SITE1, SUB, "(createTimestamp=*)", ["1.1"], {}),
    (SITE1, SUB, "(modifyTimestamp>=20000101000000Z)", ["1.1"], {}),
    (SITE1, SUB, "(modifyTimestamp<=20000101000000Z)", ["1.1"], {}),
    (SITE1, SUB, "(modifyTimestamp>=yesterday)", ["1.1"], {}),
    (SITE1, SUB, "(&(objectClass=GlueCE)(createTimestamp>=19991231230000-0100))", ["1.1"], {}),
    (SITE1, SUB, "(entryCSN=*)", ["1.1"], {}),
    (SITE1, SUB, "(contextCSN=*)", ["1.1"], {}),
    (SITE1, SUB, "(structuralObjectClass=*)", ["1.1"], {}),
    (SITE1, SUB, "(structuralObjectClass=GlueCE)", ["1.1"], {}),
    (SITE1, SUB, "(structuralObjectClass=gluevoview)", ["1.1"], {}),
    (SITE1, SUB, f"(entryDN={CE})", ["1.1"], {}),
    (SITE1, SUB, "(objectClass=GlueCE)", ["structuralObjectClass", "hasSubordinates", "entryDN"], {}),
    (SITE1, ONE, "(objectClass=*)", ["hasSubordinates", "subschemaSubentry"], {}),
    (CE, BASE, "(objectClass=*)", ["hasSubordinates", "structuralObjectClass", "entryUUID"], {"types_only": True}),
]


@pytest.mark.parametrize("case", OPERATIONAL_BATTERY, ids=[f"{i}:{c[2]}" for i, c in enumerate(OPERATIONAL_BATTERY)])
def test_same_operational_answer_as_slapd(servers, case):
    assert_same_answer(servers, case)


#: slapd fills these from the writer's identity (slapadd: the rootdn); gridinfo's entries have no writer
WRITER_ATTRIBUTES = {"creatorsname", "modifiersname"}
SYNTAX = {
    "createtimestamp": r"\d{14}Z",
    "modifytimestamp": r"\d{14}Z",
    "entrycsn": r"\d{14}\.\d{6}Z#[0-9a-f]{6}#[0-9a-f]{3}#000000",
    "entryuuid": r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
}


@pytest.mark.parametrize("base", [CE, SITE1, "o=grid"])
def test_plus_gives_the_same_operational_attributes_as_slapd(servers, base):
    """``+`` lists the same attributes; the stamps have the same syntax (their values differ)."""
    import re

    answers = {}
    for name in ("slapd", "gridinfo"):
        code, _, entries = run(servers[name], base, BASE, "(objectClass=*)", ["+"], {})
        assert code == 0
        (attrs,) = entries.values()
        answers[name] = attrs
    want, got = answers["slapd"], answers["gridinfo"]
    want.pop("contextcsn", None)  # slapd has it on the suffix only with syncprov; gridinfo always
    got.pop("contextcsn", None)
    assert set(got) == set(want) - WRITER_ATTRIBUTES
    for k in ("structuralobjectclass", "hassubordinates", "entrydn", "subschemasubentry"):
        assert [v.lower() for v in got[k]] == [v.lower() for v in want[k]], k
    for k, pattern in SYNTAX.items():
        for side in (want, got):
            assert re.fullmatch(pattern.encode(), side[k][0]), (k, side[k])


# --- compare ---------------------------------------------------------------------------------

# (dn, attribute, value)
COMPARES: list[tuple[str, str, str]] = [
    (CE, "GlueCEStateStatus", "production"),
    (CE, "GlueCEUniqueID", "CE3.site0001.example.org:8443/cream-pbs-queue4"),
    (CE, "GlueCEStateFreeCPUs", "abc"),  # invalid INTEGER: invalidAttributeSyntax (21)
    (CE, "GlueCEStateFreeCPUs", "-1"),
    (CE, "GlueCEName", "nothing"),
    (CE, "NoSuchAttribute", "x"),
    (CE, "GlueSEUniqueID", "x"),  # allowed by no class of the entry: noSuchAttribute
    (f"GlueCEUniqueID=nothing,{SITE1}", "GlueCEName", "x"),
    (f"GlueCEUniqueID=nothing,{SITE1}", "GlueCEStateFreeCPUs", "abc"),  # syntax checked first
    (CE, "objectClass", "GlueTop"),
    # operational attributes
    (CE, "hasSubordinates", "TRUE"),
    (SITE1, "hasSubordinates", "TRUE"),
    (CE, "structuralObjectClass", "GlueCE"),
    (CE, "entryDN", CE),
    (CE, "entryUUID", "00000000-0000-0000-0000-000000000000"),
    (CE, "entryUUID", "not-a-uuid"),
    (CE, "modifyTimestamp", "20000101000000Z"),
]


def compare(conn: ldap3.Connection, dn, attribute, value):
    conn.compare(dn, attribute, value)
    return conn.result["result"]


@pytest.mark.parametrize("case", COMPARES, ids=[f"{i}:{c[1]}={c[2]}" for i, c in enumerate(COMPARES)])
def test_same_compare_as_slapd(servers, case):
    """A compare gives the code slapd gives: 5/6, and 16, 17, 21, 32 for what cannot be compared."""
    assert compare(servers["gridinfo"], *case) == compare(servers["slapd"], *case)


# --- GLUE 2.0 under o=glue -------------------------------------------------------------------

N_GLUE2 = 10_000
GLUE2_SITE = glue2.site_dn(3)
GLUE2_SITE_RESOURCE = f"GLUE2GroupID=resource,{GLUE2_SITE}"
GLUE2_SERVICE = f"GLUE2ServiceID=ce.site-0003.example.org_ComputingElement,{GLUE2_SITE_RESOURCE}"
GLUE2_SHARE = f"GLUE2ShareID=atlas_long_site-0003,{GLUE2_SERVICE}"
#: DIRAC asks for its execution environments by ID, a thousand at a time (some long gone)
DIRAC_OR = "(&(objectClass=GLUE2ExecutionEnvironment)(|" + "".join(
    f"(GLUE2ResourceID={glue2.ee_id(glue2.site_name(1 + (i * 7) % 250), i % 25)})" for i in range(1000)
) + "))"

GLUE2_BATTERY: list[tuple[str, object, str, list[str] | None, dict]] = [
    ("o=glue", BASE, "(objectClass=*)", None, {}),
    ("o=glue", ONE, "(objectClass=*)", None, {}),
    ("o=glue", SUB, "(objectClass=*)", None, {}),  # the whole GLUE 2 tree
    (GLUE2_SITE_RESOURCE, ONE, "(objectClass=*)", None, {}),
    (GLUE2_SERVICE, SUB, "(objectClass=*)", None, {}),
    # what ginfo, DIRAC and BDII's aggregation send
    ("o=glue", SUB, "(&(objectClass=GLUE2MappingPolicy)(GLUE2PolicyRule=vo:atlas))", None, {}),
    ("o=glue", SUB, "(&(objectClass=GLUE2MappingPolicy)(GLUE2PolicyRule=VO:atlas))", ["GLUE2PolicyID"], {}),
    ("o=glue", SUB, DIRAC_OR, None, {}),
    ("o=glue", SUB, "(&(objectClass=GLUE2ComputingShare)(GLUE2DomainID:dn:=SITE-0003))", None, {}),
    ("o=glue", SUB, "(&(objectClass=GLUE2ComputingShare)(GLUE2DomainID:dn:=site-0003))", None, {}),
    ("o=glue", SUB, "(!(|(objectClass=GLUE2ApplicationEnvironment)(objectClass=GLUE2Activity)))", ["1.1"], {}),
    # caseExact strings, substrings
    ("o=glue", SUB, "(GLUE2EndpointHealthState=ok)", ["GLUE2EndpointID"], {}),
    ("o=glue", SUB, "(GLUE2EndpointHealthState=OK)", ["GLUE2EndpointID"], {}),
    ("o=glue", SUB, "(GLUE2ServiceType=org.glite.ce.cream)", None, {}),
    ("o=glue", SUB, "(GLUE2PolicyRule=vo:*)", ["GLUE2PolicyRule"], {}),
    ("o=glue", SUB, "(&(objectClass=GLUE2AccessPolicy)(GLUE2PolicyRule=VO*:atlas))", ["1.1"], {}),
    ("o=glue", SUB, "(GLUE2EndpointURL=*://ce.site-0001*)", None, {}),
    ("o=glue", SUB, "(GLUE2PolicyRule:caseIgnoreMatch:=vo:atlas)", ["GLUE2PolicyRule"], {}),
    ("o=glue", SUB, "(GLUE2PolicyRule:caseIgnoreIA5Match:=vo:atlas)", ["1.1"], {}),
    ("o=glue", SUB, "(GLUE2PolicyRule:caseExactMatch:=VO:atlas)", ["1.1"], {}),
    # integer counts
    ("o=glue", SUB, "(GLUE2ComputingShareRunningJobs>=1000)", ["GLUE2ComputingShareRunningJobs"], {}),
    ("o=glue", SUB, "(&(objectClass=GLUE2ComputingShare)(GLUE2ComputingShareWaitingJobs<=10))", None, {}),
    ("o=glue", SUB, "(GLUE2ExecutionEnvironmentLogicalCPUs>=64)", ["1.1"], {}),
    ("o=glue", SUB, "(GLUE2ExecutionEnvironmentMainMemorySize>=abc)", None, {}),
    ("o=glue", SUB, "(GLUE2ComputingShareFreeSlots:integerMatch:=7)", None, {}),
    ("o=glue", SUB, "(&(GLUE2ComputingShareTotalJobs>=100)(!(GLUE2ComputingShareTotalJobs>=2000)))", ["1.1"], {}),
    # the three names of GLUE2GroupID, superclasses
    ("o=glue", SUB, "(GLUE2GroupName=resource)", None, {}),
    ("o=glue", SUB, "(GLUE2GroupLocalID=grid)", None, {}),
    (f"GLUE2GroupName=resource,{GLUE2_SITE}", ONE, "(objectClass=GLUE2Service)", ["GLUE2ServiceID"], {}),
    ("o=glue", SUB, "(objectClass=GLUE2Group)", ["GLUE2GroupName"], {}),
    ("o=glue", SUB, "(objectClass=GLUE2Group)", ["glue2grouplocalid", "objectClass"], {}),
    (GLUE2_SITE, SUB, "(objectClass=GLUE2Entity)", ["1.1"], {}),
    (GLUE2_SITE, SUB, "(objectClass=GLUE2Domain)", None, {}),
    # attribute lists, typesOnly, size limits, missing bases
    (GLUE2_SHARE, BASE, "(objectClass=*)", ["GLUE2ComputingShareRunningJobs", "GLUE2ComputingShareWaitingJobs"], {}),
    (GLUE2_SHARE, SUB, "(objectClass=*)", ["*"], {"types_only": True}),
    ("o=glue", SUB, "(objectClass=GLUE2ExecutionEnvironment)", ["1.1"], {"size_limit": 10}),
    (f"GLUE2DomainID=NOWHERE,{glue2.SUFFIX}", SUB, "(objectClass=*)", None, {}),
]

GLUE2_COMPARES: list[tuple[str, str, str]] = [
    (GLUE2_SHARE, "GLUE2ComputingShareRunningJobs", "abc"),  # invalid INTEGER: 21
    (GLUE2_SHARE, "GLUE2ShareID", "ATLAS_long_site-0003"),  # caseExact: compareFalse
    (GLUE2_SHARE, "GLUE2ShareID", "atlas_long_site-0003"),
    (GLUE2_SHARE, "GLUE2ComputingShareMappingQueue", "long"),
    (f"GLUE2GroupName=resource,{GLUE2_SITE}", "GLUE2GroupLocalID", "resource"),
]


@pytest.fixture(scope="module")
def glue2_servers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("diff-glue2")
    ldif = glue2.write_ldif(folder / "glue2.ldif", N_GLUE2)
    # slapd holds only the LDIF: without GLUE 2 of its own, the GRIS adds no GLUE2Service of itself
    (folder / "gris.yaml").write_text('glue2_suffix: ""\n')
    schemas = (*GLUE_SCHEMAS, SCHEMA_DIR / "GLUE20.schema")
    gris_args = ["--config", str(folder / "gris.yaml"), "--ldif", str(ldif)]
    with Slapd(ldif=ldif, suffixes=("o=glue",), schemas=schemas) as slapd, GrisProcess(gris_args) as gris:
        yield {
            "slapd": ldap3.Connection(ldap3.Server("127.0.0.1", port=slapd.port, get_info=ldap3.NONE), auto_bind=True, check_names=False),
            "gridinfo": ldap3.Connection(ldap3.Server("127.0.0.1", port=gris.port, get_info=ldap3.NONE), auto_bind=True, check_names=False),
        }


@pytest.mark.parametrize("case", GLUE2_BATTERY, ids=[f"{i}:{c[2][:80]}" for i, c in enumerate(GLUE2_BATTERY)])
def test_same_glue2_answer_as_slapd(glue2_servers, case):
    """On GLUE 2 data, gridinfo answers the searches real clients send exactly as slapd does."""
    assert_same_answer(glue2_servers, case)


def test_glue2_battery_searches_real_data(glue2_servers):
    """The GLUE 2 tree is BDII-sized and the client queries find something in it."""
    _, _, everything = run(glue2_servers["slapd"], "o=glue", SUB, "(objectClass=*)", ["1.1"], {})
    assert len(everything) > 9_000
    for flt in (DIRAC_OR, "(&(objectClass=GLUE2MappingPolicy)(GLUE2PolicyRule=vo:atlas))",
                "(&(objectClass=GLUE2ComputingShare)(GLUE2DomainID:dn:=SITE-0003))"):
        _, _, found = run(glue2_servers["gridinfo"], "o=glue", SUB, flt, ["1.1"], {})
        assert 0 < len(found) < len(everything), flt


@pytest.mark.parametrize("case", GLUE2_COMPARES, ids=[f"{i}:{c[1]}={c[2]}" for i, c in enumerate(GLUE2_COMPARES)])
def test_same_glue2_compare_as_slapd(glue2_servers, case):
    """Compares on GLUE 2 attributes give slapd's codes (caseExact, integer syntax, aliases)."""
    assert compare(glue2_servers["gridinfo"], *case) == compare(glue2_servers["slapd"], *case)


def test_gris_with_debians_glue20_answers_the_same(glue2_servers, tmp_path):
    """A GRIS started with --schema /etc/ldap/schema/GLUE20.schema (a BDII host's file) answers as slapd."""
    ldif = glue2.write_ldif(tmp_path / "glue2.ldif", N_GLUE2)
    (tmp_path / "gris.yaml").write_text('glue2_suffix: ""\n')
    args = ["--config", str(tmp_path / "gris.yaml"), "--ldif", str(ldif), "--schema", str(SCHEMA_DIR / "GLUE20.schema")]
    with GrisProcess(args) as gris:
        conn = ldap3.Connection(ldap3.Server("127.0.0.1", port=gris.port, get_info=ldap3.NONE), auto_bind=True, check_names=False)
        for case in GLUE2_BATTERY[5:12]:
            assert run(conn, *case[:4], case[4]) == run(glue2_servers["slapd"], *case[:4], case[4]), case[2][:80]
