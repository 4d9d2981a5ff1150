"""Operational attributes kept by the tree: timestamps, entryCSN, entryUUID, contextCSN.

The tree's wall clock is injected (a list the test moves), so every stamp is known exactly.
Results are decoded with ldaptor, an independent BER decoder.
"""

from __future__ import annotations

import re
import uuid

import pytest

from gridinfo.directory.filters import parse_filter
from gridinfo.directory.query import Scope, SearchRequest
from gridinfo.directory.schema import default_schema
from gridinfo.directory.tree import (
    ENTRY_UUID_NAMESPACE,
    SOFTSTATE_STAMPS,
    DirectoryTree,
    entry_uuid,
)
from tests.directory.test_tree import decode

T0 = 1_796_083_200.0  # 2026-12-01 00:00:00 UTC
CSN = re.compile(r"\d{14}\.\d{6}Z#[0-9a-f]{6}#000#000000\Z")
SUFFIX = "mds-vo-name=local,o=grid"


class Wall:
    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def make(wall: Wall) -> DirectoryTree:
    return DirectoryTree(default_schema(), wallclock=wall)


def put(tree: DirectoryTree, dn: str, *pairs: tuple[str, str], **kw: object) -> None:
    attrs: dict[str, list[bytes]] = {}
    for a, v in pairs:
        attrs.setdefault(a, []).append(v.encode())
    tree.add(tree.build(dn, list(attrs.items())), **kw)  # type: ignore[arg-type]


def site(tree: DirectoryTree, name: str = "Site One", validfrom: str = "20261201000000Z") -> None:
    put(
        tree,
        f"GlueSiteUniqueID=site1,{SUFFIX}",
        ("objectClass", "GlueTop"),
        ("objectClass", "GlueSite"),
        ("objectClass", "GridinfoSoftState"),
        ("GlueSiteUniqueID", "site1"),
        ("GlueSiteName", name),
        ("Mds-validfrom", validfrom),
        ("Mds-validto", validfrom),
    )


def base_tree(wall: Wall) -> DirectoryTree:
    tree = make(wall)
    put(tree, "o=grid", ("objectClass", "organization"), ("o", "grid"))
    put(tree, SUFFIX, ("objectClass", "MdsVo"), ("Mds-Vo-name", "local"))
    site(tree)
    return tree


def read(tree: DirectoryTree, dn: str, *attributes: str, types_only: bool = False) -> dict[str, list[bytes]]:
    r = tree.search(
        SearchRequest(dn, Scope.BASE, parse_filter("(objectClass=*)"), attributes=attributes, types_only=types_only)
    )
    return decode(r.entries[0])[1]


def matches(tree: DirectoryTree, text: str, base: str = "") -> list[str]:
    r = tree.search(SearchRequest(base, Scope.SUB, parse_filter(text), attributes=("1.1",)))
    return sorted(decode(e)[0] for e in r.entries)


SITE = f"GlueSiteUniqueID=site1,{SUFFIX}"


def test_plus_returns_the_operational_attributes_star_does_not():
    tree = base_tree(Wall())
    plain = read(tree, SITE, "*")
    assert not {"createTimestamp", "modifyTimestamp", "entryUUID", "entryCSN"} & set(plain)
    ops = read(tree, SITE, "+")
    assert ops["createTimestamp"] == [b"20261201000000Z"]
    assert ops["modifyTimestamp"] == [b"20261201000000Z"]
    assert CSN.match(ops["entryCSN"][0].decode())
    assert ops["entryUUID"] == [entry_uuid(tree.key(SITE)).encode()]
    assert ops["structuralObjectClass"] == [b"GlueSite"]
    assert ops["hasSubordinates"] == [b"FALSE"]
    assert "contextCSN" not in ops  # only on naming contexts
    assert "GlueSiteName" not in ops
    both = read(tree, SITE, "*", "+")
    assert both["GlueSiteName"] == [b"Site One"] and "entryCSN" in both


def test_named_operational_attributes_and_types_only():
    tree = base_tree(Wall())
    named = read(tree, SITE, "modifyTimestamp", "entryUUID")
    assert set(named) == {"modifyTimestamp", "entryUUID"}
    types = read(tree, SITE, "createTimestamp", "entryCSN", types_only=True)
    assert types == {"createTimestamp": [], "entryCSN": []}


def test_same_content_keeps_modify_timestamp_and_csn_while_freshness_stamps_move():
    wall = Wall()
    tree = base_tree(wall)
    before = read(tree, SITE, "+")
    wall.now += 3600
    site(tree, validfrom="20261201010000Z")  # a refresh: same content, new Mds-validfrom/validto
    after = read(tree, SITE, "+")
    assert after["modifyTimestamp"] == before["modifyTimestamp"] == [b"20261201000000Z"]
    assert after["entryCSN"] == before["entryCSN"]
    assert read(tree, SITE, "Mds-validfrom")["Mds-validfrom"] == [b"20261201010000Z"]


def test_changed_value_moves_modify_timestamp_and_csn_not_create():
    wall = Wall()
    tree = base_tree(wall)
    before = read(tree, SITE, "+")
    wall.now += 90
    site(tree, name="Site Renamed")
    after = read(tree, SITE, "+")
    assert after["modifyTimestamp"] == [b"20261201000130Z"]
    assert after["createTimestamp"] == before["createTimestamp"] == [b"20261201000000Z"]
    assert after["entryCSN"][0] > before["entryCSN"][0]
    assert after["entryUUID"] == before["entryUUID"]


def test_creation_time_stamp_is_content_only_when_the_provider_wrote_it():
    wall = Wall()
    tree = make(wall)
    dn = "GLUE2ServiceID=svc1,GLUE2GroupID=resource,o=glue"

    def svc(created: str, *, ours: bool) -> None:
        put(
            tree,
            dn,
            ("objectClass", "GLUE2Service"),
            ("GLUE2ServiceID", "svc1"),
            ("GLUE2ServiceCapability", "executionmanagement.jobexecution"),
            ("GLUE2ServiceType", "org.example"),
            ("GLUE2ServiceQualityLevel", "production"),
            ("GLUE2ServiceComplexity", "endpointType=1"),
            ("GLUE2EntityCreationTime", created),
            stamps=SOFTSTATE_STAMPS if ours else frozenset(),
        )

    svc("20261201000000Z", ours=True)
    wall.now += 60
    svc("20261201000100Z", ours=True)  # soft state's stamp of the new run: not a change
    assert read(tree, dn, "modifyTimestamp")["modifyTimestamp"] == [b"20261201000000Z"]
    wall.now += 60
    svc("20261201000200Z", ours=False)  # the provider's own value changed: a change
    assert read(tree, dn, "modifyTimestamp")["modifyTimestamp"] == [b"20261201000200Z"]


def test_entry_uuid_is_stable_across_trees_and_removal_gives_new_create_timestamp():
    wall = Wall()
    first = base_tree(wall)
    uid = read(first, SITE, "entryUUID")["entryUUID"][0]
    assert uuid.UUID(uid.decode()).version == 5
    assert uid.decode() == str(uuid.uuid5(ENTRY_UUID_NAMESPACE, first.key(SITE)))
    wall.now += 86400
    restarted = base_tree(wall)  # a restart: a new tree, later
    assert read(restarted, SITE, "entryUUID")["entryUUID"] == [uid]
    # DN spelled differently, same entry
    assert read(restarted, SITE.upper().replace("GLUESITEUNIQUEID", "gluesiteuniqueid"), "entryUUID")["entryUUID"] == [uid]
    restarted.remove(restarted.key(SITE))
    wall.now += 5
    site(restarted)
    again = read(restarted, SITE, "+")
    assert again["entryUUID"] == [uid]
    assert again["createTimestamp"] == [b"20261202000005Z"]


def test_csns_strictly_increase_even_when_the_clock_stands_still_or_steps_back():
    wall = Wall()
    tree = make(wall)
    seen = []
    for i in range(5):
        put(tree, f"o=t{i}", ("objectClass", "organization"), ("o", f"t{i}"))
        seen.append(read(tree, f"o=t{i}", "entryCSN")["entryCSN"][0])
        if i == 2:
            wall.now -= 10  # a clock step back
    assert seen == sorted(seen) and len(set(seen)) == 5
    assert seen[1] == b"20261201000000.000000Z#000001#000#000000"
    assert tree.context_csn > 0


def test_context_csn_on_naming_contexts_is_the_newest_csn():
    wall = Wall()
    tree = base_tree(wall)
    wall.now += 7
    site(tree, name="Changed")
    newest = read(tree, SITE, "entryCSN")["entryCSN"]
    assert read(tree, "o=grid", "contextCSN")["contextCSN"] == newest
    assert "contextCSN" not in read(tree, SUFFIX, "+")
    wall.now += 1
    tree.remove(tree.key(SITE))  # a deletion moves the tree's CSN too
    assert read(tree, "o=grid", "contextCSN")["contextCSN"][0] > newest[0]


def test_touch_moves_modify_timestamp_whatever_the_content():
    wall = Wall()
    tree = base_tree(wall)
    wall.now += 30
    tree.touch(tree.key(SITE))
    assert read(tree, SITE, "modifyTimestamp")["modifyTimestamp"] == [b"20261201000030Z"]


def test_change_counters_count_adds_modifies_and_deletes_but_not_rewrites():


    """tree.changes counts new, modified and deleted entries; republishing the same content counts nothing."""
    wall = Wall()
    tree = base_tree(wall)
    assert tree.changes == [3, 0, 0]
    site(tree)  # same content
    site(tree, name="Other")
    tree.remove(tree.key(SITE))
    assert tree.changes == [3, 1, 1]


@pytest.mark.parametrize(
    "text,expected",
    [
        ("(modifyTimestamp>=20261201000100Z)", [SITE]),
        ("(modifyTimestamp<=20261201000000Z)", ["o=grid", SUFFIX]),
        ("(modifyTimestamp=20261201000100Z)", [SITE]),
        ("(createTimestamp=*)", ["o=grid", SITE, SUFFIX]),
        ("(modifyTimestamp>=20261201020100+0200)", [SITE]),  # generalizedTime, not strings
        ("(hasSubordinates=TRUE)", ["o=grid", SUFFIX]),
        ("(hasSubordinates=false)", [SITE]),
        ("(!(hasSubordinates=TRUE))", [SITE]),
        ("(structuralObjectClass=gluesite)", [SITE]),
        ("(entryDN=mds-vo-name=LOCAL, o=grid)", [SUFFIX]),
        ("(contextCSN=*)", ["o=grid"]),
        ("(entryCSN>=20261201000100.000000Z#000000#000#000000)", [SITE]),
        ("(&(objectClass=GlueSite)(modifyTimestamp>=20261201000000Z))", [SITE]),
        ("(|(entryUUID=00000000-0000-0000-0000-000000000000)(entryUUID=11111111-1111-1111-1111-111111111111)"
         "(modifyTimestamp>=20261201000100Z))", [SITE]),
        # bad assertion values are Undefined, as for any attribute: nothing matches, no error
        ("(modifyTimestamp>=yesterday)", []),
        ("(entryUUID=not-a-uuid)", []),
        ("(entryCSN=20261201)", []),
        ("(hasSubordinates=maybe)", []),
        # attributes gridinfo entries never have
        ("(creatorsName=*)", []),
    ],
)
def test_filters_on_operational_attributes(text, expected):
    wall = Wall()
    tree = base_tree(wall)
    wall.now += 60
    site(tree, name="Changed")
    assert matches(tree, text) == sorted(expected)


def test_filter_on_entry_uuid_equality_and_ordering():
    tree = base_tree(Wall())
    uid = entry_uuid(tree.key(SITE))
    assert matches(tree, f"(entryUUID={uid.upper()})") == [SITE]
    lowest = min(entry_uuid(tree.key(dn)) for dn in ("o=grid", SUFFIX, SITE))
    assert len(matches(tree, f"(entryUUID>={lowest})")) == 3


def test_operational_attributes_are_never_indexed():
    """Naming one in ``index`` must not turn it into an (always empty) index."""
    tree = DirectoryTree(default_schema(), indexed=("modifyTimestamp", "entryUUID"), wallclock=Wall())
    put(tree, "o=grid", ("objectClass", "organization"), ("o", "grid"))
    assert not tree.eq_indexes
    assert matches(tree, f"(entryUUID={entry_uuid(tree.key('o=grid'))})") == ["o=grid"]


def test_compare_on_operational_attributes():
    """Compare reads the tree's values: TRUE/FALSE, noSuchAttribute (16) when the entry has none."""
    from gridinfo.errors import LDAPError, ResultCode

    tree = base_tree(Wall())
    assert tree.compare(SITE, "hasSubordinates", b"FALSE") is True
    assert tree.compare("o=grid", "hasSubordinates", b"FALSE") is False
    assert tree.compare(SITE, "entryUUID", entry_uuid(tree.key(SITE)).upper().encode()) is True
    assert tree.compare(SITE, "modifyTimestamp", b"20261201000000Z") is True
    assert tree.compare(SITE, "structuralObjectClass", b"GlueSite") is True
    with pytest.raises(LDAPError) as e:
        tree.compare(SITE, "creatorsName", b"cn=x")
    assert e.value.code == ResultCode.NO_SUCH_ATTRIBUTE
    with pytest.raises(LDAPError) as e:
        tree.compare(SITE, "entryDN", SITE.encode())
    assert e.value.code == ResultCode.UNWILLING_TO_PERFORM  # as slapd answers
    with pytest.raises(LDAPError) as e:
        tree.compare(SITE, "entryUUID", b"not-a-uuid")
    assert e.value.code == ResultCode.INVALID_ATTRIBUTE_SYNTAX
