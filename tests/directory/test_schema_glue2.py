"""GLUE 2.0: gridinfo's own schema file, Debian's GLUE20.schema, and matching as they say.

BDII users query o=glue with GLUE 2 names; their filters must match exactly as on a BDII's
slapd: caseExact strings, integer counts, and the three names of GLUE2GroupID.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gridinfo.directory.filters import parse_filter
from gridinfo.directory.query import Scope, SearchRequest
from gridinfo.directory.schema import default_schema, load_schema
from gridinfo.directory.tree import DirectoryTree
from tests.directory.test_tree import decode

REPO = Path(__file__).resolve().parents[2]
OURS = REPO / "schemas" / "glue-2.0.schema"
DEBIAN = Path("/etc/ldap/schema/GLUE20.schema")


def glue2(schema):
    ats = {at.oid: at for at in schema.attribute_types() if at.name.startswith("GLUE2")}
    ocs = {oc.oid: oc for oc in schema.object_classes() if oc.name.startswith("GLUE2")}
    return ats, ocs


def test_glue2_is_loaded_by_default_beside_glue13_and_mds():
    """A GRIS serves o=glue with no schema configured: GLUE 2, GLUE 1.3 and MDS are all there."""
    schema = default_schema()
    ats, ocs = glue2(schema)
    assert len(ats) == 315 and len(ocs) == 36
    assert {Path(at.source.rsplit(":", 1)[0]).name for at in ats.values()} == {"glue-2.0.schema"}
    for name in ("GLUE2ComputingShare", "GLUE2MappingPolicy", "GLUE2AdminDomain", "GlueCE", "MdsVo"):
        assert schema.object_class(name) is not None, name


def test_ours_and_debians_agree_on_every_glue2_fact():
    """Every GLUE 2 attribute and class has the OID, names, syntax and rules BDIIs use."""
    ours_ats, ours_ocs = glue2(load_schema([OURS], include_default=False))
    theirs_ats, theirs_ocs = glue2(load_schema([DEBIAN], include_default=False))
    assert set(ours_ats) == set(theirs_ats)
    assert set(ours_ocs) == set(theirs_ocs)

    def facts(at):
        return (at.names, at.sup, at.syntax, at.equality, at.ordering, at.substr, at.single_value, at.usage)

    for oid, at in theirs_ats.items():
        assert facts(ours_ats[oid]) == facts(at), at.name
    for oid, oc in theirs_ocs.items():
        mine = ours_ocs[oid]
        assert (mine.names, mine.kind, mine.must, mine.may) == (oc.names, oc.kind, oc.must, oc.may), oc.name
        assert [s.lower() for s in mine.sup] == [s.lower() for s in oc.sup], oc.name


def test_debians_glue20_loads_unchanged_after_ours():
    """--schema /etc/ldap/schema/GLUE20.schema (as a BDII host has it) loads with no clash."""
    both = load_schema([DEBIAN])
    ats, ocs = glue2(both)
    assert len(ats) == 315 and len(ocs) == 36
    assert {Path(at.source.rsplit(":", 1)[0]).name for at in ats.values()} == {"GLUE20.schema"}
    assert both.matching("GLUE2GroupName").key == "glue2groupid"


def test_the_schema_file_is_what_the_generator_writes_from_the_facts():
    """schemas/glue-2.0.schema is tools/glue2-schema's restatement of the facts, nothing else."""
    written = subprocess.run(
        [sys.executable, str(REPO / "tools" / "glue2-schema"), str(DEBIAN)], capture_output=True, check=True, text=True
    ).stdout
    assert written == OURS.read_text()
    assert "DESC" not in written and "Copyright" not in written


def glue_tree() -> DirectoryTree:
    tree = DirectoryTree(default_schema(), indexed=("objectClass", "GLUE2GroupID"))

    def add(dn, **attrs):
        tree.add(tree.build(dn, [(k, [v.encode() for v in (vs if isinstance(vs, list) else [vs])]) for k, vs in attrs.items()]))

    add("o=glue", objectClass="organization", o="glue")
    add("GLUE2GroupID=resource,o=glue", objectClass="GLUE2Group", GLUE2GroupID="resource")
    add("o=grid", objectClass="organization", o="grid")
    add("Mds-Vo-name=local,o=grid", objectClass="MdsVo", **{"Mds-Vo-name": "local"})
    add(
        "GlueCEUniqueID=ce1.example.org:8443/q,Mds-Vo-name=local,o=grid",
        objectClass=["GlueCETop", "GlueCE"],
        GlueCEUniqueID="ce1.example.org:8443/q",
        GlueCEAccessControlBaseRule="VO:atlas",
    )
    for i, (rule, running) in enumerate([("VO:lhcb", "9"), ("vo:lhcb", "10"), ("VO:atlas", "100")]):
        share = f"GLUE2ShareID=share{i},GLUE2GroupID=resource,o=glue"
        add(
            share,
            objectClass=["GLUE2Share", "GLUE2ComputingShare"],
            GLUE2ShareID=f"share{i}",
            GLUE2ComputingShareRunningJobs=running,
            GLUE2ShareServiceForeignKey="svc",
        )
        add(
            f"GLUE2PolicyID=policy{i},{share}",
            objectClass=["GLUE2Policy", "GLUE2MappingPolicy"],
            GLUE2PolicyID=f"policy{i}",
            GLUE2PolicyScheme="org.glite.standard",
            GLUE2PolicyRule=rule,
            GLUE2MappingPolicyShareForeignKey=f"share{i}",
        )
    return tree


def dns(tree, flt, base="o=glue", scope=Scope.SUB, attributes=()):
    result = tree.search(SearchRequest(base, scope, parse_filter(flt), tuple(attributes)))
    return sorted(decode(e)[0].split(",", 1)[0] for e in result.entries)


def test_glue2_strings_are_case_exact_and_glue13_case_ignore():
    """(GLUE2PolicyRule=vo:lhcb) and (GLUE2PolicyRule=VO:lhcb) are different VOs; GLUE 1.3 is not."""
    tree = glue_tree()
    assert dns(tree, "(&(objectClass=GLUE2MappingPolicy)(GLUE2PolicyRule=vo:lhcb))") == ["GLUE2PolicyID=policy1"]
    assert dns(tree, "(GLUE2PolicyRule=VO:lhcb)") == ["GLUE2PolicyID=policy0"]
    assert dns(tree, "(GLUE2PolicyRule=VO:*)") == ["GLUE2PolicyID=policy0", "GLUE2PolicyID=policy2"]
    assert dns(tree, "(GlueCEAccessControlBaseRule=vo:ATLAS)", base="o=grid") == ["GlueCEUniqueID=ce1.example.org:8443/q"]


def test_glue2_counts_compare_as_integers():
    """(GLUE2ComputingShareRunningJobs>=10) is numeric: 9 is not >= 10, 100 is."""
    tree = glue_tree()
    assert dns(tree, "(GLUE2ComputingShareRunningJobs>=10)") == ["GLUE2ShareID=share1", "GLUE2ShareID=share2"]
    assert dns(tree, "(GLUE2ComputingShareRunningJobs<=9)") == ["GLUE2ShareID=share0"]


@pytest.mark.parametrize("name", ["GLUE2GroupID", "GLUE2GroupName", "GLUE2GroupLocalID", "glue2groupname"])
def test_group_id_aliases_work_in_filters_dns_and_attribute_lists(name):
    """GLUE2GroupID, GLUE2GroupName and GLUE2GroupLocalID name one attribute everywhere."""
    tree = glue_tree()
    assert dns(tree, f"({name}=resource)") == ["GLUE2GroupID=resource"]
    assert len(dns(tree, "(objectClass=GLUE2ComputingShare)", base=f"{name}=resource,o=glue", scope=Scope.ONE)) == 3
    result = tree.search(SearchRequest("GLUE2GroupID=resource,o=glue", Scope.BASE, parse_filter("(objectClass=*)"), (name,)))
    assert decode(result.entries[0])[1] == {"GLUE2GroupID": [b"resource"]}


def test_mds_and_mdsvo_are_one_class():
    """(objectClass=Mds) finds MdsVo entries: the schema gives the class both names."""
    tree = glue_tree()
    assert dns(tree, "(objectClass=Mds)", base="o=grid") == ["Mds-Vo-name=local"]
