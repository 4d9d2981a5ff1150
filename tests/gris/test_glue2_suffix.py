"""GLUE 2.0 beside GLUE 1.3 in one GRIS: the o=glue suffix, its base entries, providers owning
several subtrees, the GRIS's own GLUE2Service, and the config keys that steer them."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet import task

from gridinfo.config import GRISConfig, ProviderConfig, load_config, validate
from gridinfo.errors import ConfigError
from gridinfo.gris.glue2 import GLUE2SelfPublisher, ListenerAddress
from gridinfo.gris.providers import make_definition
from gridinfo.gris.softstate import ProviderDefinition, RunOutput, SoftStateTable, interpret_output
from gridinfo.service import gris_naming_contexts, make_gris_service, make_gris_tree

SUFFIX = "mds-vo-name=local,o=grid"
G2 = "GLUE2GroupID=resource,o=glue"
SITE = f"dn: GlueSiteUniqueID=s,{SUFFIX}\nobjectClass: GlueTop\nobjectClass: GlueSite\nGlueSiteUniqueID: s\n\n"
LOCATION = f"dn: GLUE2LocationID=l,{G2}\nobjectClass: GLUE2Location\nGLUE2LocationID: l\n\n"
STRAY = "dn: GLUE2LocationID=x,GLUE2GroupID=grid,o=glue\nobjectClass: GLUE2Location\nGLUE2LocationID: x\n\n"


def test_the_root_dse_lists_o_glue_unless_glue2_is_off() -> None:
    """namingContexts: o=grid, o=glue, o=infosys; with glue2_suffix "" no o=glue (and no o=glue entries)."""
    assert gris_naming_contexts(GRISConfig()) == ("o=grid", "o=glue", "o=infosys")
    assert gris_naming_contexts(GRISConfig(glue2_suffix="")) == ("o=grid", "o=infosys")
    top = make_gris_service(GRISConfig(listen=()), task.Clock())
    assert top.backend.naming_contexts() == ["o=grid", "o=glue", "o=infosys"]
    assert make_gris_tree(GRISConfig(glue2_suffix="")).lookup("o=glue") is None


def test_base_entries_of_the_glue2_suffix() -> None:
    """o=glue (an organization) and GLUE2GroupID=resource,o=glue (a GLUE2Group), GLUE 2 classes only."""
    tree = make_gris_tree(GRISConfig())
    assert sorted(tree.lookup("o=glue").get("objectclass")) == [b"organization"]
    group = tree.lookup(G2)
    assert list(group.get("objectclass")) == [b"GLUE2Group"] and list(group.get("glue2groupid")) == [b"resource"]
    # a site-level suffix: the GLUE2DomainID entry is the site's to publish, it is not made up
    site_tree = make_gris_tree(GRISConfig(glue2_suffix="GLUE2GroupID=resource,GLUE2DomainID=SITE,o=glue"))
    assert site_tree.lookup("o=glue") is not None and site_tree.lookup("GLUE2DomainID=SITE,o=glue") is None


def test_glue2_suffix_is_validated(tmp_path: Path) -> None:
    """glue2_suffix must be a DN ending in o=glue; a bad one is refused naming the key."""
    bad = tmp_path / "gris.yaml"
    bad.write_text('glue2_suffix: "GLUE2GroupID=resource,o=grid"\n')
    with pytest.raises(ConfigError, match=r"glue2_suffix: expected a DN ending in o=glue"):
        validate(load_config(bad, GRISConfig))
    bad.write_text('glue2_suffix: "not a dn"\n')
    with pytest.raises(ConfigError, match=r"glue2_suffix: expected a DN"):
        validate(load_config(bad, GRISConfig))
    bad.write_text('glue2_suffix: ""\n')
    assert validate(load_config(bad, GRISConfig)).glue2_suffix == ""


def test_base_may_be_one_dn_or_a_list(tmp_path: Path) -> None:
    """`base:` reads as one DN or a list of DNs; a bad DN in a list is refused with its index."""
    path = tmp_path / "gris.yaml"
    path.write_text(f"provider:\n  a: {{base: '{SUFFIX}'}}\n  b: {{base: ['{SUFFIX}', '{G2}']}}\n")
    config = validate(load_config(path, GRISConfig))
    assert config.provider["a"].base == SUFFIX
    assert config.provider["b"].base == (SUFFIX, G2)
    path.write_text(f"provider:\n  b: {{base: ['{SUFFIX}', 'not a dn']}}\n")
    with pytest.raises(ConfigError, match=r"provider\.b\.base\[1\]: expected a DN"):
        validate(load_config(path, GRISConfig))


def test_a_provider_owns_both_suffixes_by_default(tmp_path: Path) -> None:
    """Without `base`, a provider owns the o=grid suffix and the GLUE 2 suffix; with GLUE 2 off, only o=grid;
    an explicit base replaces both."""
    script = tmp_path / "p"
    assert make_definition(script, "provider", GRISConfig()).bases == (SUFFIX, G2)
    assert make_definition(script, "provider", GRISConfig(glue2_suffix="")).bases == (SUFFIX,)
    only = GRISConfig(provider={"p": ProviderConfig(base=G2)})
    assert make_definition(script, "provider", only).bases == (G2,)


def _interpret(definition: ProviderDefinition, ldif: str):
    tree = make_gris_tree(GRISConfig())
    return interpret_output(definition, RunOutput(stdout=ldif.encode()), tree), tree


def test_one_run_publishes_under_both_subtrees_and_drops_the_rest() -> None:
    """A BDII-style GIP printing o=grid and o=glue entries in one run: both are installed; an entry
    outside both subtrees is dropped and reported; a run with nothing inside fails naming both."""
    d = ProviderDefinition(name="gip", path="/p/gip", base=(SUFFIX, G2))
    report, tree = _interpret(d, SITE + LOCATION + STRAY)
    assert report.ok and {e.dn for e in report.entries} == {f"GlueSiteUniqueID=s,{SUFFIX}", f"GLUE2LocationID=l,{G2}"}
    assert report.outside == ("GLUE2LocationID=x,GLUE2GroupID=grid,o=glue",)
    table = SoftStateTable(tree)
    table.define(d)
    table.start("gip", 100.0)
    table.succeed("gip", 100.0, report, RunOutput())
    glue2 = tree.lookup(f"GLUE2LocationID=l,{G2}")
    grid = tree.lookup(f"GlueSiteUniqueID=s,{SUFFIX}")
    assert b"GridinfoSoftState" in list(grid.get("objectclass"))  # GLUE 1.3 keeps its Mds-valid* stamps
    assert list(glue2.get("objectclass")) == [b"GLUE2Location"]  # GLUE 2: GLUE 2 classes only
    failed, _ = _interpret(d, STRAY)
    assert failed.error == (
        f"every entry is outside its subtrees {SUFFIX} and {G2}: GLUE2LocationID=x,GLUE2GroupID=grid,o=glue"
    )


def test_searches_under_either_subtree_wake_the_provider() -> None:
    """A search below o=glue (or of o=glue itself) needs a provider owning the GLUE 2 suffix."""
    from gridinfo.directory.query import Scope

    tree = make_gris_tree(GRISConfig())
    table = SoftStateTable(tree)
    table.define(ProviderDefinition(name="both", path="/p/both", base=(SUFFIX, G2)))
    table.define(ProviderDefinition(name="grid", path="/p/grid", base=SUFFIX))
    assert table.overlapping(tree.key("o=glue"), Scope.SUB) == ["both"]
    assert table.overlapping(tree.key(f"GLUE2ShareID=x,{G2}"), Scope.BASE) == ["both"]
    assert sorted(table.overlapping(tree.key("o=grid"), Scope.SUB)) == ["both", "grid"]


def test_the_gris_describes_itself_in_glue2() -> None:
    """One GLUE2Service, one GLUE2Endpoint (+ AccessPolicy) per bound listener, schema-clean; health
    follows the providers; an endpoint whose listener went away goes."""
    tree = make_gris_tree(GRISConfig())
    table = SoftStateTable(tree)
    listeners = [ListenerAddress("ldap", "gris.example.org", 2135), ListenerAddress("ldaps", "gris.example.org", 2136)]
    publisher = GLUE2SelfPublisher(
        tree, table, G2, host="gris.example.org", start_time=1_700_000_000.0, site_id="EXAMPLE-SITE",
        listeners=lambda: listeners,
    )
    publisher.publish(1_700_000_100.0)
    service_dn = f"GLUE2ServiceID=gris.example.org_gridinfo,{G2}"
    service = tree.lookup(service_dn)
    assert list(service.get("glue2serviceadmindomainforeignkey")) == [b"EXAMPLE-SITE"]
    endpoint = tree.lookup(f"GLUE2EndpointID=gris.example.org_gridinfo_ldap_2135,{service_dn}")
    assert list(endpoint.get("glue2endpointurl")) == [b"ldap://gris.example.org:2135/"]
    assert list(endpoint.get("glue2endpointimplementationname")) == [b"gridinfo"]
    assert list(endpoint.get("glue2endpointhealthstate")) == [b"unknown"]  # no provider ran yet
    assert list(endpoint.get("glue2endpointstarttime")) == [b"2023-11-14T22:13:20Z"]
    ldaps = tree.lookup(f"GLUE2EndpointID=gris.example.org_gridinfo_ldaps_2136,{service_dn}")
    assert list(ldaps.get("glue2endpointurl")) == [b"ldaps://gris.example.org:2136/"]
    for dn, attrs in publisher.entries(1_700_000_100.0):
        assert tree.schema.check_entry(dict(attrs)) == [], dn
    d = ProviderDefinition(name="bad", path="/p/bad")
    table.define(d)
    table.start("bad", 1.0)
    table.fail("bad", 1.0, "exited with status 1", RunOutput(exit_code=1))
    listeners.pop()
    publisher.publish(1_700_000_200.0)
    endpoint = tree.lookup(f"GLUE2EndpointID=gris.example.org_gridinfo_ldap_2135,{service_dn}")
    assert list(endpoint.get("glue2endpointhealthstate")) == [b"warning"]
    assert list(endpoint.get("glue2endpointhealthstateinfo")) == [b"providers failing: bad"]
    assert tree.lookup(f"GLUE2EndpointID=gris.example.org_gridinfo_ldaps_2136,{service_dn}") is None
