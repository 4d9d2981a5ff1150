"""BDII's layout (``layout: bdii``): the mapping table of gridinfo.giis.namespace, row by row,
checked against BDII's own renaming (tests/giis/bdii_rules.py), both ways."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gridinfo.config import GIISConfig, StaticChildConfig, validate
from gridinfo.directory.dn import DNNormaliser
from gridinfo.directory.query import Scope
from gridinfo.errors import ConfigError
from gridinfo.giis.forwarder import mark_stale
from gridinfo.giis.namespace import BDIILayout, Route, glue_base_for
from gridinfo.ldap.client import decode_entry
from gridinfo import ber
from tests.giis.bdii_rules import bdii_glue_base, bdii_rename

N = DNNormaliser(None)
SITE = BDIILayout("site", "CERN-PROD")
TOP = BDIILayout("top")

# (layout, child base, a child DN under it, the DN at the GIIS): the docstring's table
ROWS = [
    (SITE, "mds-vo-name=local,o=grid", "GlueCEUniqueID=ce1,mds-vo-name=local,o=grid",
     "GlueCEUniqueID=ce1,mds-vo-name=CERN-PROD,o=grid"),
    (SITE, "mds-vo-name=resource,o=grid", "GlueSEUniqueID=se1,mds-vo-name=resource,o=grid",
     "GlueSEUniqueID=se1,mds-vo-name=CERN-PROD,o=grid"),
    (SITE, "GLUE2GroupID=resource,o=glue", "GLUE2ServiceID=s1,GLUE2GroupID=resource,o=glue",
     "GLUE2ServiceID=s1,GLUE2GroupID=resource,GLUE2DomainID=CERN-PROD,o=glue"),
    (SITE, "mds-vo-name=T2,o=grid", "GlueSiteUniqueID=T2,mds-vo-name=T2,o=grid",
     "GlueSiteUniqueID=T2,mds-vo-name=T2,mds-vo-name=CERN-PROD,o=grid"),
    (SITE, "GLUE2DomainID=T2,o=glue", "GLUE2ServiceID=s,GLUE2GroupID=resource,GLUE2DomainID=T2,o=glue",
     "GLUE2ServiceID=s,GLUE2GroupID=resource,GLUE2DomainID=T2,GLUE2DomainID=CERN-PROD,o=glue"),
    (TOP, "mds-vo-name=CERN-PROD,o=grid", "GlueSEUniqueID=se1,mds-vo-name=CERN-PROD,o=grid",
     "GlueSEUniqueID=se1,mds-vo-name=CERN-PROD,mds-vo-name=local,o=grid"),
    (TOP, "GLUE2DomainID=CERN-PROD,o=glue", "GLUE2ServiceID=s1,GLUE2GroupID=resource,GLUE2DomainID=CERN-PROD,o=glue",
     "GLUE2ServiceID=s1,GLUE2GroupID=resource,GLUE2DomainID=CERN-PROD,GLUE2GroupID=grid,o=glue"),
    (TOP, "mds-vo-name=resource,o=grid", "GlueSEUniqueID=se1,mds-vo-name=resource,o=grid",
     "GlueSEUniqueID=se1,mds-vo-name=local,o=grid"),
    (TOP, "GLUE2GroupID=resource,o=glue", "GLUE2ServiceID=s1,GLUE2GroupID=resource,o=glue",
     "GLUE2ServiceID=s1,GLUE2GroupID=resource,GLUE2GroupID=grid,o=glue"),
]


@pytest.mark.parametrize("layout,base,child_dn,giis_dn", ROWS, ids=[f"{r[0].level}:{r[1]}" for r in ROWS])
def test_each_layout_row_renames_up_to_the_giis_and_back_down(layout: BDIILayout, base: str, child_dn: str, giis_dn: str) -> None:
    """Up (child -> GIIS) as the table says and as BDII renames; down (GIIS -> child) back again."""
    ns = layout.namespace(base, N)
    assert ns.to_giis(child_dn) == giis_dn
    assert bdii_rename(child_dn, layout.level, layout.site) == giis_dn  # the table is BDII's rule
    assert ns.to_child(giis_dn) == child_dn
    # the base entry itself lands on the mount point (or, collapsed, on the GIIS's own root)
    assert ns.to_giis(base) == bdii_rename(base, layout.level, layout.site)


def test_case_is_kept_both_ways() -> None:
    """A case-only change at the child shows at the GIIS (DNs are rewritten, never re-cased)."""
    ns = SITE.namespace("GLUE2GroupID=resource,o=glue", N)
    assert ns.to_giis("GLUE2ServiceID=Srv1,glue2groupid=Resource,O=Glue") == (
        "GLUE2ServiceID=Srv1,GLUE2GroupID=resource,GLUE2DomainID=CERN-PROD,o=glue"
    )
    assert ns.to_giis("GLUE2ServiceID=SRV1,glue2groupid=Resource,O=Glue").startswith("GLUE2ServiceID=SRV1,")


def test_recursion_guard_skips_our_own_data() -> None:
    """BDII skips an entry naming the level's own name above its own RDN; so does the GIIS."""
    back = "GLUE2ServiceID=s,GLUE2DomainID=CERN-PROD,GLUE2DomainID=T2,o=glue"
    assert bdii_rename(back, "site", "CERN-PROD") is None
    assert SITE.namespace("GLUE2DomainID=T2,o=glue", N).to_giis(back) is None
    grid_back = "GlueSEUniqueID=x,mds-vo-name=cern-prod,mds-vo-name=T2,o=grid"
    assert bdii_rename(grid_back, "site", "CERN-PROD") is None
    assert SITE.namespace("mds-vo-name=T2,o=grid", N).to_giis(grid_back) is None
    # a top level's children are sites: a GRIS's mds-vo-name=local data is skipped there, as by BDII
    gris = "GlueCEUniqueID=ce1,mds-vo-name=local,o=grid"
    assert bdii_rename(gris, "top") is None
    assert TOP.namespace("mds-vo-name=local,o=grid", N).to_giis(gris) is None


def test_searches_at_the_giis_reach_a_childs_subtree_in_its_namespace() -> None:
    """Searches at the GIIS reach a child's subtree in the child's namespace."""
    res = SITE.namespace("GLUE2GroupID=resource,o=glue", N)
    assert res.route("o=glue", Scope.SUB) == Route("GLUE2GroupID=resource,o=glue", Scope.SUB)
    assert res.route("GLUE2DomainID=CERN-PROD,o=glue", Scope.ONE) == Route("GLUE2GroupID=resource,o=glue", Scope.BASE)
    assert res.route("o=grid", Scope.SUB) is None  # the other tree
    assert res.route("GLUE2ServiceID=s1,GLUE2GroupID=resource,GLUE2DomainID=cern-prod,o=glue", Scope.BASE) == (
        Route("GLUE2ServiceID=s1,GLUE2GroupID=resource,o=glue", Scope.BASE)
    )
    gris = SITE.namespace("mds-vo-name=local,o=grid", N)
    assert gris.collapsed
    assert gris.route("mds-vo-name=CERN-PROD,o=grid", Scope.BASE) is None  # the GIIS's own entry
    assert gris.route("o=grid", Scope.SUB) == Route("mds-vo-name=local,o=grid", Scope.SUB)
    assert gris.route("mds-vo-name=local,o=grid", Scope.SUB) is None  # the GIIS's own (empty) local
    site = TOP.namespace("GLUE2DomainID=CERN-PROD,o=glue", N)
    assert site.route("GLUE2GroupID=grid,o=glue", Scope.SUB) == Route("GLUE2DomainID=CERN-PROD,o=glue", Scope.SUB)


def test_a_base_under_neither_tree_is_refused() -> None:
    with pytest.raises(ValueError, match="neither o=grid nor o=glue"):
        SITE.namespace("dc=example,dc=org", N)


@pytest.mark.parametrize("base,glue", [
    ("mds-vo-name=resource,o=grid", "GLUE2GroupID=resource,o=glue"),
    ("mds-vo-name=CERN-PROD,o=grid", "GLUE2DomainID=CERN-PROD,o=glue"),
    ("mds-vo-name=local,o=grid", "GLUE2GroupID=resource,o=glue"),  # gridinfo's GRIS (not BDII's rule)
    ("GLUE2DomainID=T2,o=glue", None),
])
def test_each_o_grid_base_maps_to_its_glue2_base_or_none(base: str, glue: str | None) -> None:
    """Each o=grid base maps to the GLUE 2 base BDII gives it (gridinfo's own GRIS suffix to GLUE2GroupID=resource); an o=glue base to None."""
    assert glue_base_for(base, N) == glue
    if glue is not None and "local" not in base:
        assert N.key(bdii_glue_base(base)) == N.key(glue)


def test_every_level_ships_a_default_ldif_and_a_site_adds_two_roots() -> None:
    """BDII ships one default LDIF for every level; a site adds the two roots its children land on."""
    assert TOP.default_entries() == ["o=grid", "mds-vo-name=local,o=grid", "mds-vo-name=resource,o=grid",
                                     "o=glue", "GLUE2GroupID=resource,o=glue", "GLUE2GroupID=grid,o=glue"]
    assert SITE.default_entries()[-2:] == ["mds-vo-name=CERN-PROD,o=grid", "GLUE2DomainID=CERN-PROD,o=glue"]
    assert SITE.suffixes() == ["o=grid", "o=glue", "o=infosys"]


def test_stale_entries_say_unknown() -> None:
    """A stale entry's state attributes read Unknown (as at a BDII site); creation times stay."""
    op = ber.search_result_entry(b"GLUE2EndpointID=e1,GLUE2GroupID=resource,o=glue", [
        ber.partial_attribute(b"GLUE2EndpointHealthState", [b"ok"]),
        ber.partial_attribute(b"GLUE2EndpointServingState", [b"production"]),
        ber.partial_attribute(b"GLUE2EntityCreationTime", [b"2026-12-02T01:00:00Z"]),
        ber.partial_attribute(b"GlueCEStateStatus", [b"Production"]),
    ])
    _, attrs = decode_entry(mark_stale(op, 0.0))
    got = dict(attrs)
    assert got["GLUE2EndpointHealthState"] == [b"Unknown"]
    assert got["GLUE2EndpointServingState"] == [b"Unknown"]
    assert got["GlueCEStateStatus"] == [b"Unknown"]
    assert got["GLUE2EntityCreationTime"] == [b"2026-12-02T01:00:00Z"]
    assert got["Mds-validto"] == [b"19700101000000Z"]


@pytest.mark.parametrize("config,problem", [
    (GIISConfig(layout="bdii"), "site_name: layout: bdii with level: site needs the site's name"),
    (GIISConfig(layout="bdii", level="top", site_name="X"), "site_name: a top-level BDII"),
    (GIISConfig(site_name="X"), "site_name: only meaningful with layout: bdii"),
    (GIISConfig(layout="bdii", site_name="X", children=(StaticChildConfig(url="ldap://h:2170/dc=example,dc=org"),)),
     "children[0].url: layout: bdii serves o=grid and o=glue"),
    (GIISConfig(layout="bdii", site_name="X", children=(StaticChildConfig(url="ldap://h:2170/mds-vo-name=resource,o=grid", glue_base="o=grid"),)),
     "children[0].glue_base: expected a base under o=glue"),
    (GIISConfig(layout="bdii", site_name="X", children=(StaticChildConfig(url="ldap://h:2170/mds-vo-name=resource,o=grid", name="a b"),)),
     "children[0].name: expected a name"),
])
def test_each_bad_layout_key_is_refused_by_validate_naming_the_key(config: GIISConfig, problem: str) -> None:
    """Each bad key is refused by validate(), naming the key."""
    with pytest.raises(ConfigError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        validate(config)


def test_config_suffix_per_layout() -> None:
    assert GIISConfig(name="x").suffix == "mds-vo-name=x,o=grid"
    assert validate(GIISConfig(layout="bdii", site_name="CERN-PROD")).suffix == "mds-vo-name=CERN-PROD,o=grid"
    assert validate(GIISConfig(layout="bdii", level="top")).suffix == "mds-vo-name=local,o=grid"


# -- collisions (bad input): refused, with a log line naming both ------------------------------

from typing import Any  # noqa: E402

from twisted.logger import globalLogPublisher  # noqa: E402

from gridinfo.errors import UnwillingToPerform  # noqa: E402
from gridinfo.ldap.registrar import registration_message  # noqa: E402
from tests.giis.test_admission import make  # noqa: E402


def add(backend: Any, clock: Any, *, host: str = "127.0.0.1", port: int = 2135, suffix: str, peer: str = "127.0.0.1") -> Any:
    """A registration add at the GIIS's own suffix (mds-vo-name=<SITE>,o=grid in BDII's layout)."""
    return backend.add(f"Mds-Vo-Op-name=register,{backend.suffix}",
                       registration_message(host=host, port=port, suffix=suffix, now=clock.seconds(), ttl=600), "", peer)

BDII_SITE = GIISConfig(layout="bdii", site_name="CERN-PROD", children=(
    StaticChildConfig(url="ldap://192.0.2.10:2170/mds-vo-name=T2,o=grid", name="T2"),
))


@pytest.fixture
def logged() -> Any:
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def test_a_static_child_contributes_both_subtrees() -> None:
    backend, _, _ = make(BDII_SITE)
    assert sorted(c.suffix for c in backend.children.all()) == ["GLUE2DomainID=T2,o=glue", "mds-vo-name=T2,o=grid"]
    assert backend.naming_contexts() == ["o=grid", "o=glue", "o=infosys"]


def test_two_static_sites_claiming_one_name_keep_the_first(logged: list[dict[str, Any]]) -> None:
    """The second static child whose subtree lands on the first's is left out; the log names both."""
    config = replace(BDII_SITE, children=(*BDII_SITE.children,
                                          StaticChildConfig(url="ldap://192.0.2.11:2170/GLUE2DomainID=T2,o=glue", name="T2b")))
    backend, _, _ = make(config)
    assert {c.host for c in backend.children.all()} == {"192.0.2.10"}
    (line,) = [e for e in logged if "left out" in str(e.get("log_format", ""))]
    assert "192.0.2.11" in line["url"] and "192.0.2.10" in line["holder"]


def test_a_registration_claiming_a_static_sites_domain_is_refused(logged: list[dict[str, Any]]) -> None:
    """GLUE2DomainID=T2 is the static site's (its o=glue subtree): a registrant may not serve it."""
    backend, clock, _ = make(BDII_SITE)
    with pytest.raises(UnwillingToPerform) as e:
        add(backend, clock, host="192.0.2.66", peer="192.0.2.66", suffix="GLUE2DomainID=T2,o=glue")
    assert "192.0.2.10" in e.value.message
    collision = [ev for ev in logged if "suffix collision" in str(ev.get("log_format", ""))]
    assert "192.0.2.66" in collision[0]["new"] and "192.0.2.10" in collision[0]["holder"]
    # a base under neither tree is refused too
    with pytest.raises(UnwillingToPerform, match="neither o=grid nor o=glue"):
        add(backend, clock, host="192.0.2.67", peer="192.0.2.67", suffix="dc=example,dc=org")
    assert len(backend.leases) == 0


def test_gris_children_share_the_site_root() -> None:
    """GRIS children (mds-vo-name=local) land on the site's root and never collide."""
    backend, clock, _ = make(BDII_SITE)
    add(backend, clock, port=1, suffix="mds-vo-name=local,o=grid")
    add(backend, clock, port=2, suffix="mds-vo-name=local,o=grid")
    assert len(backend.leases) == 2
    live = backend.children.current(clock.seconds())
    assert sorted(c.suffix for c in live if c.lease is not None) == [
        "GLUE2GroupID=resource,o=glue", "GLUE2GroupID=resource,o=glue",
        "mds-vo-name=local,o=grid", "mds-vo-name=local,o=grid",
    ]


def test_a_case_only_change_at_the_child_propagates_through_a_mirror() -> None:
    """A mirror pull that sees a DN respelled (case only) serves the new spelling; dropped classes stay out."""
    from gridinfo.directory import filters as F
    from gridinfo.directory.query import SearchRequest
    from gridinfo.ldap.client import ClientResult, entry_dn
    from tests.giis.fakes import entry

    config = GIISConfig(layout="bdii", site_name="CERN-PROD", children=(
        StaticChildConfig(url="ldap://192.0.2.20:2170/GLUE2GroupID=resource,o=glue", mode="mirror"),
    ))
    backend, clock, clients = make(config)
    (child,) = backend.children.all()
    client = clients.made[("192.0.2.20", 2170)]

    def pull(service_id: str) -> list[str]:
        backend.pull_mirror(child)
        client.searches[-1][2].callback(ClientResult(code=0, entries=[
            entry("GLUE2GroupID=resource,o=glue", objectClass="GLUE2Group", GLUE2GroupID="resource"),
            entry(f"GLUE2ServiceID={service_id},GLUE2GroupID=resource,o=glue", objectClass="GLUE2Service"),
            entry("GLUE2ApplicationEnvironmentID=app,GLUE2GroupID=resource,o=glue",
                  objectClass="GLUE2ApplicationEnvironment"),
        ]))
        result = backend.search(SearchRequest("GLUE2GroupID=resource,GLUE2DomainID=CERN-PROD,o=glue", Scope.SUB,
                                              F.Present("objectClass")))
        return sorted(entry_dn(op) for op in result.entries)  # type: ignore[union-attr]

    assert pull("srv1") == ["GLUE2GroupID=resource,GLUE2DomainID=CERN-PROD,o=glue",
                            "GLUE2ServiceID=srv1,GLUE2GroupID=resource,GLUE2DomainID=CERN-PROD,o=glue"]
    assert pull("SRV1") == ["GLUE2GroupID=resource,GLUE2DomainID=CERN-PROD,o=glue",
                            "GLUE2ServiceID=SRV1,GLUE2GroupID=resource,GLUE2DomainID=CERN-PROD,o=glue"]
