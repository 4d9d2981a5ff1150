"""Soft state's stamps: GLUE 2 validity, and what a refresh does to modifyTimestamp/entryCSN.

Pure: runs are fed to the table with ``now`` and the tree's wall clock is the same number.
"""

from __future__ import annotations

from gridinfo.config import GRISConfig
from gridinfo.directory.gtime import format_generalized_time
from gridinfo.gris.softstate import ProviderDefinition, RunOutput, SoftStateTable, interpret_output
from gridinfo.service import make_gris_tree

T0 = 1_796_083_200.0  # 2026-12-01 00:00:00 UTC
GLUE2_BASE = "GLUE2GroupID=resource,o=glue"
SERVICE_DN = f"GLUE2ServiceID=svc1,{GLUE2_BASE}"


class Wall:
    now = T0

    def __call__(self) -> float:
        return self.now


def service(extra: str = "", capability: str = "executionmanagement.jobexecution") -> str:
    return (
        f"dn: {SERVICE_DN}\nobjectClass: GLUE2Service\nGLUE2ServiceID: svc1\n"
        f"GLUE2ServiceCapability: {capability}\nGLUE2ServiceType: org.example.ce\n"
        f"GLUE2ServiceQualityLevel: production\nGLUE2ServiceComplexity: endpointType=1\n"
        f"GLUE2ServiceAdminDomainForeignKey: site1\n{extra}\n"
        f"dn: GlueSiteUniqueID=site1,mds-vo-name=local,o=grid\nobjectClass: GlueTop\nobjectClass: GlueSite\n"
        f"GlueSiteUniqueID: site1\n\n"
    )


def setup(ttl: float = 300.0) -> tuple[SoftStateTable, Wall]:
    wall = Wall()
    tree = make_gris_tree(GRISConfig(), wallclock=wall)
    table = SoftStateTable(tree)
    table.define(ProviderDefinition(name="p", path="/providers/p", base="", ttl=ttl, keepto=600.0))
    return table, wall


def run(table: SoftStateTable, wall: Wall, now: float, ldif: str) -> None:
    wall.now = now
    d = table.records["p"].definition
    output = RunOutput(stdout=ldif.encode(), started=now, ended=now)
    assert table.start("p", now)
    report = interpret_output(d, output, table.tree)
    assert report.ok, report.error
    table.succeed("p", now, report, output)


def values(table: SoftStateTable, dn: str, *attributes: str) -> dict[str, list[bytes]]:
    tree = table.tree
    e = tree.lookup(dn)
    assert e is not None
    out = {}
    for a in attributes:
        m = tree.schema.matching(a)
        assert m is not None
        got = list(e.get(m.key)) or tree.operational_values(e, m.key)
        out[a] = got
    return out


def test_glue2_entities_get_creation_time_and_validity_of_their_run():
    table, wall = setup(ttl=300.0)
    run(table, wall, T0, service())
    v = values(table, SERVICE_DN, "GLUE2EntityCreationTime", "GLUE2EntityValidity", "Mds-validfrom", "Mds-validto")
    # creation + validity is the end of the soft-state TTL: the time of the run, and the ttl
    assert v["GLUE2EntityCreationTime"] == [b"2026-12-01T00:00:00Z"]  # GLUE 2's DateTime form
    assert v["GLUE2EntityValidity"] == [b"300"]
    # a GLUE 2 entry carries GLUE 2 classes only (the EGI profile): no GridinfoSoftState stamps
    assert v["Mds-validfrom"] == v["Mds-validto"] == []
    e = table.tree.lookup(SERVICE_DN)
    assert table.tree.schema.check_entry({e.names[k]: e.get(k) for k in e.names}) == []


def test_glue1_entries_are_not_stamped():
    table, wall = setup()
    run(table, wall, T0, service())
    e = table.tree.lookup("GlueSiteUniqueID=site1,mds-vo-name=local,o=grid")
    assert e is not None and not e.has("glue2entitycreationtime") and not e.has("glue2entityvalidity")


def test_provider_supplied_stamps_are_kept():
    table, wall = setup()
    run(table, wall, T0, service("GLUE2EntityCreationTime: 2026-11-30T10:00:00Z\nGLUE2EntityValidity: 3600\n"))
    v = values(table, SERVICE_DN, "GLUE2EntityCreationTime", "GLUE2EntityValidity")
    assert v == {"GLUE2EntityCreationTime": [b"2026-11-30T10:00:00Z"], "GLUE2EntityValidity": [b"3600"]}


def test_refresh_with_same_content_keeps_modify_timestamp_and_csn():
    table, wall = setup()
    run(table, wall, T0, service())
    first = values(table, SERVICE_DN, "modifyTimestamp", "entryCSN", "createTimestamp", "entryUUID")
    run(table, wall, T0 + 600, service())  # same output, ten minutes later
    again = values(table, SERVICE_DN, "modifyTimestamp", "entryCSN", "createTimestamp", "entryUUID",
                   "GLUE2EntityCreationTime")
    assert again["GLUE2EntityCreationTime"] == [b"2026-12-01T00:10:00Z"]  # the new run's time: not content
    assert {k: again[k] for k in first} == first
    assert first["modifyTimestamp"] == [b"20261201000000Z"]


def test_refresh_with_a_changed_value_moves_modify_timestamp():
    table, wall = setup()
    run(table, wall, T0, service())
    first = values(table, SERVICE_DN, "entryCSN", "createTimestamp")
    run(table, wall, T0 + 60, service(capability="executionmanagement.jobmanager"))
    again = values(table, SERVICE_DN, "modifyTimestamp", "entryCSN", "createTimestamp")
    assert again["modifyTimestamp"] == [b"20261201000100Z"]
    assert again["entryCSN"][0] > first["entryCSN"][0]
    assert again["createTimestamp"] == first["createTimestamp"]


def test_a_provider_creation_time_that_changes_is_a_change():
    table, wall = setup()
    run(table, wall, T0, service("GLUE2EntityCreationTime: 2026-11-30T10:00:00Z\n"))
    run(table, wall, T0 + 60, service("GLUE2EntityCreationTime: 2026-11-30T10:01:00Z\n"))
    assert values(table, SERVICE_DN, "modifyTimestamp")["modifyTimestamp"] == [b"20261201000100Z"]


def test_entry_that_goes_and_comes_back_has_a_new_create_timestamp_same_uuid():
    table, wall = setup()
    run(table, wall, T0, service())
    uid = values(table, SERVICE_DN, "entryUUID")["entryUUID"]
    run(table, wall, T0 + 60, "dn: GlueSiteUniqueID=site1,mds-vo-name=local,o=grid\nobjectClass: GlueTop\n"
        "objectClass: GlueSite\nGlueSiteUniqueID: site1\n")
    assert table.tree.lookup(SERVICE_DN) is None
    run(table, wall, T0 + 120, service())
    again = values(table, SERVICE_DN, "entryUUID", "createTimestamp")
    assert again == {"entryUUID": uid, "createTimestamp": [b"20261201000200Z"]}


def test_failed_adds_are_counted():
    """An entry another provider owns cannot be placed: a warning, and one failed add."""
    table, wall = setup()
    table.define(ProviderDefinition(name="q", path="/providers/q", base="", ttl=60.0))
    run(table, wall, T0, service())
    wall.now = T0 + 1
    output = RunOutput(stdout=service().encode(), started=wall.now, ended=wall.now)
    assert table.start("q", wall.now)
    report = interpret_output(table.records["q"].definition, output, table.tree)
    warnings = table.succeed("q", wall.now, report, output)
    assert len(warnings) == 2 and table.failed_adds == 2
