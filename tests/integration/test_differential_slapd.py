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

from gridinfo_dev import gendit
from tests.support.gris import GrisProcess
from gridinfo_dev.slapd import Slapd

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


def test_battery_size():
    """The battery is at least 50 searches, as promised."""
    assert len(BATTERY) >= 50


@pytest.mark.parametrize("case", BATTERY, ids=[f"{i}:{c[2]}" for i, c in enumerate(BATTERY)])
def test_same_answer_as_slapd(servers, case):
    """gridinfo returns the same entries, attributes and result code as slapd."""
    base, scope, flt, attributes, extra = case
    code_s, matched_s, want = run(servers["slapd"], base, scope, flt, attributes, extra)
    code_g, matched_g, got = run(servers["gridinfo"], base, scope, flt, attributes, extra)
    assert code_g == code_s, f"result code: gridinfo {code_g}, slapd {code_s}"
    if code_s == 32:
        assert matched_g.lower() == matched_s.lower()
    if code_s == 4:
        assert len(got) == len(want)
        return
    assert set(got) == set(want), f"entries only in gridinfo: {sorted(set(got) - set(want))[:3]}, only in slapd: {sorted(set(want) - set(got))[:3]}"
    for dn in want:
        assert got[dn] == want[dn], dn
    if flt == "(objectClass=*)" and scope == SUB and base == SITE1:
        assert len(want) > 200  # the battery searches real data
