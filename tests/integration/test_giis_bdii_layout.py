"""GIISes in BDII's layout over real sockets: a site GIIS over a gridinfo GRIS and a real slapd
loaded as a BDII resource level, and a top GIIS over the site.  At each level ``ldapsearch -b
o=grid`` / ``-b o=glue`` returns every entry with the DN a BDII at that level would hold,
worked out from BDII's renaming rules (tests/giis/bdii_rules.py) applied to what the children
themselves answer.  Then stale data says Unknown, on an injected clock.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from gridinfo.config import GIISConfig, GRISConfig, StaticChildConfig
from gridinfo.directory.query import Scope, SearchRequest
from gridinfo.directory.schema import load_schema
from gridinfo.directory.tree import DirectoryTree
from gridinfo.directory import filters as F
from gridinfo.giis.backend import GIISBackend
from gridinfo.giis.children import bdii_layout
from gridinfo.giis.namespace import bdii_entry_attributes
from gridinfo.ldap.client import LDAPClient, decode_entry
from gridinfo.ldap.tree_backend import add_base_entries
from gridinfo.service import make_gris_service
from gridinfo_dev import glue2
from gridinfo_dev.gendit import format_entry
from gridinfo_dev.slapd import GLUE_SCHEMAS, SCHEMA_DIR
from tests.giis.bdii_rules import bdii_glue_base, bdii_rename
from tests.giis.support import LOOPBACK, Running, ce_ldif, ldapsearch, register_now, start_giis, start_gris
from tests.support.slapd import Slapd

SITE = "CERN-PROD"
RESOURCE_GRID = "mds-vo-name=resource,o=grid"
LOCAL_GRID = "mds-vo-name=local,o=grid"


def glue_resource_ldif(site: str, seed: str, app_env: bool = False) -> bytes:
    """o=glue, BDII's two groups and one resource's GLUE 2 entries under GLUE2GroupID=resource,o=glue."""
    entries = list(glue2._top()) + list(glue2._site(site, glue2.RESOURCE, random.Random(seed)))
    if app_env:
        entries.append((f"GLUE2ApplicationEnvironmentID={site}-app,{glue2.RESOURCE}", [
            ("objectClass", [b"GLUE2ApplicationEnvironment"]),
            ("GLUE2ApplicationEnvironmentID", [f"{site}-app".encode()]),
            ("GLUE2ApplicationEnvironmentAppName", [b"VO-atlas-release"]),
            ("GLUE2ApplicationEnvironmentComputingManagerForeignKey", [b"m"]),
            ("GLUE2ApplicationEnvironmentState", [b"installedandverified"]),
        ]))
    return b"".join(format_entry(dn, attrs) for dn, attrs in entries)


def dns(out: bytes) -> set[str]:
    return {line[4:] for line in out.decode().splitlines() if line.startswith("dn: ")}


def start_gris_with_glue(folder: Path) -> Running:
    """A gridinfo GRIS serving mds-vo-name=local,o=grid and GLUE2GroupID=resource,o=glue."""
    (folder / "ce.ldif").write_bytes(
        ce_ldif("gris", 2).replace(b"GlueCEStateFreeCPUs", b"GlueCEStateStatus: Production\nGlueCEStateFreeCPUs")
    )
    (folder / "glue2.ldif").write_bytes(glue_resource_ldif("GRIS-HOST", "gris", app_env=True))
    return Running(make_gris_service(GRISConfig(listen=(LOOPBACK,), ldif=(str(folder),)), reactor))


@pytest.mark.slapd
class BDIILayoutTests(unittest.TestCase):
    def setUp(self) -> None:
        ldif = (
            b"dn: o=grid\nobjectClass: organization\no: grid\n\n"
            b"dn: mds-vo-name=resource,o=grid\nobjectClass: MDSVO\nMds-Vo-name: resource\n\n"
            + ce_ldif("bdii", 3, suffix=RESOURCE_GRID)
            + glue_resource_ldif("BDII-HOST", "bdii")
        )
        self.slapd = Slapd(ldif, suffixes=("o=grid", "o=glue"), schemas=(*GLUE_SCHEMAS, SCHEMA_DIR / "GLUE20.schema"))
        self.slapd.start()
        self.addCleanup(self.slapd.stop)
        self.gris = self.start(start_gris_with_glue(Path(tempfile.mkdtemp(prefix="gridinfo-bdiilayout-"))))

    def start(self, server: Running) -> Running:
        self.addCleanup(server.stop)
        return server

    def site_giis(self, mode: str = "forward") -> Running:
        return self.start(start_giis("ignored", layout="bdii", site_name=SITE, children=(
            StaticChildConfig(url=self.gris.url(LOCAL_GRID), name="gris", timeout=5, mode=mode, period=3600),
            StaticChildConfig(url=f"{self.slapd.url}{RESOURCE_GRID}", name="resource", timeout=5, mode=mode,
                              period=3600),
        )))

    @defer.inlineCallbacks
    def held(self, port: int, base: str) -> Any:
        out, err, code = yield ldapsearch(port, "-b", base, "dn")
        assert code == 0, (base, err)
        return dns(out)

    @defer.inlineCallbacks
    def expected(self, level: str, site: str, own: set[str], children: list[tuple[int, str]], tree: str,
                 dropped: set[str] = frozenset()) -> Any:  # type: ignore[assignment]
        """What a BDII at ``level`` holds under ``tree``: its own entries, and every child entry at
        the bases BDII asks for (the url line's base; for o=glue, BDII's derived one), renamed by
        BDII's rule, less the ones it skips as recursive and the dropped classes."""
        want = {dn for dn in own if dn.lower().endswith(tree)}
        for port, base in children:
            if tree == "o=glue":
                base = "GLUE2GroupID=resource,o=glue" if base == LOCAL_GRID else bdii_glue_base(base)
            got = yield self.held(port, base)
            for dn in got:
                renamed = bdii_rename(dn, level, site)
                if renamed is not None and dn not in dropped:
                    want.add(renamed)
        return want

    @defer.inlineCallbacks
    def test_site_and_top_hold_what_bdii_would(self):
        site = self.site_giis()
        layout = bdii_layout(site.backend.config)
        site_own = set(layout.default_entries())
        children = [(self.gris.port, LOCAL_GRID), (self.slapd.port, RESOURCE_GRID)]
        dropped = {f"GLUE2ApplicationEnvironmentID=GRIS-HOST-app,{glue2.RESOURCE}"}  # drop_objectclasses
        for tree in ("o=grid", "o=glue"):
            want = yield self.expected("site", SITE, site_own, children, tree, dropped)
            got = yield self.held(site.port, tree)
            assert got == want, (tree, sorted(got ^ want)[:10])
        # the BDII layout's DNs, spelled out once
        assert f"GLUE2ServiceID=ce.bdii-host.example.org_ComputingElement,GLUE2GroupID=resource,GLUE2DomainID={SITE},o=glue" in got
        site_grid = yield self.held(site.port, "o=grid")
        assert "GlueCEUniqueID=bdii-ce0.example.org:2119/jobmanager-pbs-q,mds-vo-name=CERN-PROD,o=grid" in site_grid
        # all three suffixes in the root DSE
        out, _, code = yield ldapsearch(site.port, "-b", "", "-s", "base", "namingContexts")
        assert code == 0
        assert [line for line in out.decode().splitlines() if line.startswith("namingContexts")] == [
            "namingContexts: o=grid", "namingContexts: o=glue", "namingContexts: o=infosys"]

        top = self.start(start_giis("ignored", layout="bdii", level="top", children=(
            StaticChildConfig(url=site.url(f"mds-vo-name={SITE},o=grid"), name=SITE, timeout=5),
        )))
        top_own = set(bdii_layout(top.backend.config).default_entries())  # type: ignore[union-attr]
        for tree in ("o=grid", "o=glue"):
            want = yield self.expected("top", "", top_own, [(site.port, f"mds-vo-name={SITE},o=grid")], tree)
            got = yield self.held(top.port, tree)
            assert got == want, (tree, sorted(got ^ want)[:10])
        assert (f"GLUE2EndpointID=ce.gris-host.example.org_ComputingElement_endpoint-0,"
                f"GLUE2ServiceID=ce.gris-host.example.org_ComputingElement,GLUE2GroupID=resource,"
                f"GLUE2DomainID={SITE},GLUE2GroupID=grid,o=glue") in got
        grid = yield self.held(top.port, "o=grid")
        assert f"GlueCEUniqueID=gris-ce1.example.org:2119/jobmanager-pbs-q,mds-vo-name={SITE},mds-vo-name=local,o=grid" in grid
        # a filtered search at the top reaches the resource level two hops down
        out, err, code = yield ldapsearch(top.port, "-b", "o=glue", "(GLUE2EndpointHealthState=*)", "GLUE2EndpointHealthState")
        assert code == 0, err
        assert len(dns(out)) == 4  # two endpoints from each resource

    @defer.inlineCallbacks
    def test_a_mirroring_site_holds_the_same(self):
        """mode: mirror (BDII's way: pull every period, answer locally) gives the same DNs."""
        forward = self.site_giis()
        mirror = self.site_giis("mirror")
        for child in mirror.backend.children.all():
            yield mirror.backend.pull_mirror(child)
            assert child.stats.state == "ok", (child.url, child.stats.last_error)
        for tree in ("o=grid", "o=glue"):
            want = yield self.held(forward.port, tree)
            got = yield self.held(mirror.port, tree)
            assert got == want, (tree, sorted(got ^ want)[:10])
            assert len(got) >= 9  # o=grid: 4 own entries and 5 CEs; o=glue: many more

    @defer.inlineCallbacks
    def test_stale_data_says_unknown(self):
        """The GRIS stops answering; past cachettl the GIIS serves its last answer with the state
        attributes Unknown (and Mds-validto in the past), creation times kept; the clock is injected."""
        clock = task.Clock()
        clock.advance(1_000_000)
        config = GIISConfig(layout="bdii", site_name=SITE, children=(
            StaticChildConfig(url=self.gris.url(LOCAL_GRID), name="gris", timeout=5, cachettl=30, keep=600),
        ))
        tree = DirectoryTree(load_schema(()), indexed=("objectClass",))
        add_base_entries(tree, config.suffix)
        for dn in bdii_layout(config).default_entries():  # type: ignore[union-attr]
            if tree.lookup(dn) is None:
                tree.add(tree.build(dn, bdii_entry_attributes(dn), source="gridinfo"))
        backend = GIISBackend(tree, config, clock,
                              client_factory=lambda host, port, **kw: LDAPClient(reactor, host, port, **kw))
        self.addCleanup(backend.stop)

        def search(base: str) -> Any:
            return defer.maybeDeferred(backend.search, SearchRequest(base, Scope.SUB, F.Present("objectClass")))

        def states(result: Any) -> dict[str, dict[str, list[bytes]]]:
            out = {}
            for op in result.entries:
                dn, attrs = decode_entry(op)
                out[dn] = {name.lower(): vals for name, vals in attrs}
            return out

        fresh = states((yield search("o=glue")))
        fresh.update(states((yield search("o=grid"))))
        endpoint = next(dn for dn in fresh if dn.startswith("GLUE2EndpointID="))
        ce = next(dn for dn in fresh if dn.startswith("GlueCEUniqueID="))
        assert fresh[endpoint]["glue2endpointhealthstate"] != [b"Unknown"]
        assert fresh[ce]["gluecestatestatus"] == [b"Production"]

        yield self.gris.stop()  # no longer listening; and the GIIS's open connections to it go too
        for child in backend.children.all():
            child.client.close()
        clock.advance(31)  # past cachettl, before keep
        result = yield search("o=glue")
        stale = states(result)
        stale.update(states((yield search("o=grid"))))
        assert set(stale) == set(fresh)  # nothing lost
        assert stale[endpoint]["glue2endpointhealthstate"] == [b"Unknown"]
        assert stale[endpoint]["glue2endpointservingstate"] == [b"Unknown"]
        assert stale[endpoint]["glue2entitycreationtime"] == fresh[endpoint]["glue2entitycreationtime"]
        assert stale[ce]["gluecestatestatus"] == [b"Unknown"]
        assert "mds-validto" in stale[endpoint]
        assert "last answer (marked stale)" in result.message


class BDIIRegistrationTests(unittest.TestCase):
    """Registration (MDS2's GRRP, one suffix) in BDII's layout: GRIS -> site -> top."""

    def start(self, server: Running) -> Running:
        self.addCleanup(server.stop)
        return server

    @defer.inlineCallbacks
    def test_registered_gris_and_site(self):
        top = self.start(start_giis("ignored", layout="bdii", level="top"))
        site = self.start(start_giis("ignored", layout="bdii", site_name=SITE,
                                     register=top.url("mds-vo-name=local,o=grid")))
        a = self.start(start_gris("a", register=site.url(f"mds-vo-name={SITE},o=grid")))
        b = self.start(start_gris("b", register=site.url(f"mds-vo-name={SITE},o=grid")))
        for server in (a, b, site):
            yield register_now(server)
        out, err, code = yield ldapsearch(site.port, "-b", "o=grid", "(objectClass=GlueCE)", "dn")
        assert code == 0, err
        assert dns(out) == {f"GlueCEUniqueID={n}-ce{i}.example.org:2119/jobmanager-pbs-q,mds-vo-name={SITE},o=grid"
                            for n in "ab" for i in range(2)}
        # each registrant also has its o=glue companion (these GRISes have no o=glue data: nothing, no error)
        assert len(site.backend.children.current(reactor.seconds())) == 4
        out, err, code = yield ldapsearch(site.port, "-b", "o=glue", "dn")
        assert code == 0, err
        out, err, code = yield ldapsearch(top.port, "-b", "o=grid", "(objectClass=GlueCE)", "dn")
        assert code == 0, err
        assert dns(out) == {
            f"GlueCEUniqueID={n}-ce{i}.example.org:2119/jobmanager-pbs-q,mds-vo-name={SITE},mds-vo-name=local,o=grid"
            for n in "ab" for i in range(2)}
        out, err, code = yield ldapsearch(top.port, "-b", "o=glue", "dn")
        assert code == 0, err
        assert f"GLUE2DomainID={SITE},GLUE2GroupID=grid,o=glue" in dns(out)
