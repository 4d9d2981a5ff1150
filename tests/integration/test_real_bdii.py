"""gridinfo beside a real BDII (Debian's bdii package: BDII's slapd configuration plus bdii-update).

What operators rely on when they replace a resource BDII by ``gris --bdii-config``:

* the GRIS serves the same entries, on the same DNs, from the same ldif/, provider/ and plugin/
  folders as the BDII it replaces (``test_gris_serves_what_a_real_resource_bdii_serves``);
* a real site BDII pulling it through a ``site-urls.conf`` line gets every entry with the DN it
  expects, exactly as if the source were a resource BDII (``test_a_real_site_bdii_aggregates_the_gris``),
  and so does a real top BDII above that site (``test_a_real_top_bdii_over_the_site_holds_the_gris_entries``);
* ``giis --bdii-urls site-urls.conf`` pulls a real resource BDII named on a line
  (``test_a_giis_mirrors_a_real_resource_bdii_named_in_site_urls_conf``).

The BDIIs are real processes; the tests wait for them by polling slapd (bounded) for
bdii-update's UpdateStats entry, never by sleeping.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import time
from dataclasses import fields
from pathlib import Path

import pytest

from gridinfo.config import GRISConfig
from tests.support.bdii import RealBDII, bdii_available
from tests.support.gris import GrisProcess

pytestmark = pytest.mark.skipif(not bdii_available(), reason="Debian's bdii package (and slapd) not installed")

#: The GRIS serves o=glue once it has a GLUE 2 suffix (another branch adds ``glue2_suffix``).
GRIS_SERVES_GLUE2 = "glue2_suffix" in {f.name for f in fields(GRISConfig)}

SERVICE_LDIF = """\
dn: GlueServiceUniqueID=bdii.example.org_bdii_resource,mds-vo-name=resource,o=grid
objectClass: GlueTop
objectClass: GlueService
objectClass: GlueKey
objectClass: GlueSchemaVersion
GlueServiceUniqueID: bdii.example.org_bdii_resource
GlueServiceName: EXAMPLE-bdii_resource
GlueServiceType: bdii_resource
GlueServiceVersion: 6.0.0
GlueServiceEndpoint: ldap://bdii.example.org:2170/mds-vo-name=resource,o=grid
GlueServiceStatus: OK
GlueServiceStatusInfo: BDII running
GlueForeignKey: GlueSiteUniqueID=EXAMPLE-SITE
GlueSchemaVersionMajor: 1
GlueSchemaVersionMinor: 3
"""

PROVIDER = """\
#!/bin/sh
# a GIP provider as BDII runs them: complete LDIF on stdout (GLUE 1.3, then GLUE 2)
cat <<'EOF'
dn: GlueClusterUniqueID=ce.example.org,mds-vo-name=resource,o=grid
objectClass: GlueClusterTop
objectClass: GlueCluster
objectClass: GlueKey
objectClass: GlueSchemaVersion
GlueClusterUniqueID: ce.example.org
GlueClusterName: Example cluster
GlueForeignKey: GlueSiteUniqueID=EXAMPLE-SITE
GlueForeignKey: GlueCEUniqueID=ce.example.org:8443/cream-slurm-short
GlueSchemaVersionMajor: 1
GlueSchemaVersionMinor: 3

dn: GlueCEUniqueID=ce.example.org:8443/cream-slurm-short,mds-vo-name=resource,o=grid
objectClass: GlueCETop
objectClass: GlueCE
objectClass: GlueCEInfo
objectClass: GlueCEState
objectClass: GlueKey
objectClass: GlueSchemaVersion
GlueCEUniqueID: ce.example.org:8443/cream-slurm-short
GlueCEName: short
GlueCEInfoHostName: ce.example.org
GlueCEInfoLRMSType: slurm
GlueCEInfoTotalCPUs: 128
GlueCEStateStatus: Production
GlueCEStateFreeCPUs: 12
GlueCEStateRunningJobs: 116
GlueCEStateWaitingJobs: 3
GlueForeignKey: GlueClusterUniqueID=ce.example.org
GlueSchemaVersionMajor: 1
GlueSchemaVersionMinor: 3

dn: GLUE2ServiceID=urn:ogf:ComputingService:ce.example.org,GLUE2GroupID=resource,o=glue
objectClass: GLUE2Service
objectClass: GLUE2ComputingService
GLUE2ServiceID: urn:ogf:ComputingService:ce.example.org
GLUE2EntityName: ce.example.org
GLUE2ServiceCapability: executionmanagement.jobexecution
GLUE2ServiceType: org.glite.ce.CREAM
GLUE2ServiceQualityLevel: production
GLUE2ServiceComplexity: endpoint=1,share=1,resource=1
GLUE2ServiceAdminDomainForeignKey: EXAMPLE-SITE
GLUE2ComputingServiceRunningJobs: 116
GLUE2ComputingServiceWaitingJobs: 3
EOF
"""

PLUGIN = """\
#!/bin/sh
# a BDII plugin: modify-LDIF applied to what the providers printed
cat <<'EOF'
dn: GlueCEUniqueID=ce.example.org:8443/cream-slurm-short,mds-vo-name=resource,o=grid
changetype: modify
replace: GlueCEStateStatus
GlueCEStateStatus: Draining
EOF
"""

SITE = "SITE-A"
SITE_LDIF = f"""\
dn: GLUE2DomainID={SITE},o=glue
objectClass: GLUE2Domain
objectClass: GLUE2AdminDomain
GLUE2DomainID: {SITE}
"""

GLUE13_TOP_CLASSES = {c.lower() for c in (
    "GlueTop", "MDS", "GlueClusterTop", "GlueCETop", "GlueGeneralTop", "GlueSETop", "GlueSATop")}


def make_gip(root: Path) -> Path:
    """A BDII-style GIP folder: ldif/ (BDII's default.ldif + one static service), provider/, plugin/."""
    gip = root / "gip"
    for sub in ("ldif", "provider", "plugin"):
        (gip / sub).mkdir(parents=True)
    shutil.copy("/usr/share/bdii/default.ldif", gip / "ldif" / "default.ldif")
    (gip / "ldif" / "service.ldif").write_text(SERVICE_LDIF)
    for folder, name, text in (("provider", "glue-provider", PROVIDER), ("plugin", "ce-status", PLUGIN)):
        path = gip / folder / name
        path.write_text(text)
        path.chmod(0o755)
    return gip


def bdii_conf(root: Path, gip: Path) -> Path:
    path = root / "bdii.conf"
    path.write_text(
        f"BDII_LDIF_DIR={gip}/ldif\nBDII_PROVIDER_DIR={gip}/provider\nBDII_PLUGIN_DIR={gip}/plugin\n"
        "BDII_PORT=2170\nBDII_BREATHE_TIME=120\nBDII_READ_TIMEOUT=60\nBDII_DELETE_DELAY=0\nBDII_LOG_LEVEL=INFO\n"
    )
    return path


def norm_dn(dn: str) -> str:
    return ",".join("=".join(p.strip().lower() for p in rdn.split("=", 1)) for rdn in dn.split(","))


def entries(url: str, base: str, *filter_: str) -> dict[str, dict[str, set[str]]]:
    """normalised DN -> lower-cased attribute -> values, from ``ldapsearch -LLL`` (no referrals followed)."""
    out = subprocess.run(["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", url, "-b", base, *filter_],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode in (0, 32), out.stderr
    found: dict[str, dict[str, set[str]]] = {}
    for record in out.stdout.strip().split("\n\n"):
        attrs: dict[str, set[str]] = {}
        dn = ""
        for line in record.splitlines():
            if line.startswith("#") or not line:
                continue
            name, _, value = line.partition(":")
            if value.startswith(":"):
                value = base64.b64decode(value[1:].strip()).decode()
            else:
                value = value.strip()
            if name.lower() == "dn":
                dn = value
            else:
                # objectClass values are names matched case-insensitively (objectIdentifierMatch):
                # slapd prints its schema's spelling (``Mds`` for ``MDS``)
                attrs.setdefault(name.lower(), set()).add(value.lower() if name.lower() == "objectclass" else value)
        if dn:
            found[norm_dn(dn)] = attrs
    return found


@pytest.fixture(scope="module")
def gip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_gip(tmp_path_factory.mktemp("bdii-folders"))


@pytest.fixture(scope="module")
def resource_bdii(gip: Path):
    with RealBDII(gip, level="resource") as bdii:
        bdii.wait_for_update()
        assert bdii.write_errors() == [], bdii.logs()
        yield bdii


@pytest.fixture(scope="module")
def gris(gip: Path, tmp_path_factory: pytest.TempPathFactory):
    conf = bdii_conf(tmp_path_factory.mktemp("etc-bdii"), gip)
    with GrisProcess(["--bdii-config", str(conf)]) as g:
        yield g


def test_gris_serves_what_a_real_resource_bdii_serves(gris: GrisProcess, resource_bdii: RealBDII) -> None:
    """Same folders, same DNs, same attributes, under o=grid (and o=glue when the GRIS serves it).

    Differences tolerated, and why:
    * ``o=shadow``: a BDII-internal base (in BDII's default.ldif) outside o=grid and o=glue; not compared.
    * under o=glue, while the GRIS has no GLUE 2 suffix (branch glue2prov adds it), the provider's
      GLUE 2 entries are dropped by the GRIS as outside its subtree: then only the o=glue entries
      the GRIS does serve are compared, and must be at the BDII with the same attributes.
    * attribute names and objectClass values are compared case-insensitively (slapd prints its
      schema's spelling: ``Mds-Vo-name``, ``Mds``), values as sets (LDAP values are unordered).
    * operational attributes are not asked for (``ldapsearch`` asks for user attributes only).
    * ``GLUE2EntityCreationTime`` / ``GLUE2EntityValidity``: the GRIS stamps a GLUE 2 entity whose
      provider did not (the time of the run, the provider's ttl); BDII leaves such entries as printed.
    * the GRIS's own GLUE2Service (type BDII) and its endpoint are left out: BDII publishes its own
      service with a separate provider, which this test's BDII does not run.
    """
    ours = entries(gris.url, "o=grid")
    theirs = entries(resource_bdii.url, "o=grid")
    assert sorted(ours) == sorted(theirs)
    for dn in theirs:
        assert ours[dn] == theirs[dn], dn
    ce = "glueceuniqueid=ce.example.org:8443/cream-slurm-short,mds-vo-name=resource,o=grid"
    assert ours[ce]["gluecestatestatus"] == {"Draining"}  # the plugin's modification, in both
    assert len(theirs) == 6  # o=grid, local, resource (default.ldif), the static service, cluster, CE

    ours_glue = entries(gris.url, "o=glue")
    # the GRIS publishes itself (GLUE2Service + Endpoint + AccessPolicy of its LDAP endpoint); a
    # BDII resource does that with a separate provider, which this BDII does not run
    own = [dn for dn, attrs in ours_glue.items() if attrs.get("glue2servicetype") == {"BDII"}]
    assert len(own) == 1
    ours_glue = {dn: a for dn, a in ours_glue.items() if not (dn == own[0] or dn.endswith("," + own[0]))}
    theirs_glue = entries(resource_bdii.url, "o=glue")
    assert ours_glue, "the static o=glue entries of default.ldif are served"
    for dn, attrs in ours_glue.items():
        theirs_attrs = theirs_glue.get(dn) or {}
        for stamp in ("glue2entitycreationtime", "glue2entityvalidity"):
            if stamp not in theirs_attrs:  # the GRIS stamps GLUE 2 entities its provider did not
                attrs.pop(stamp, None)
        assert theirs_glue.get(dn) == attrs, dn
    if GRIS_SERVES_GLUE2:
        assert sorted(ours_glue) == sorted(theirs_glue)
    else:
        assert set(theirs_glue) - set(ours_glue) == {
            "glue2serviceid=urn:ogf:computingservice:ce.example.org,glue2groupid=resource,o=glue"}


def site_dn(dn: str) -> str:
    """Where a site BDII named SITE puts an entry of a resource-level source (GLUE 1.3 and GLUE 2)."""
    if dn.endswith("mds-vo-name=resource,o=grid"):
        return dn[: -len("mds-vo-name=resource,o=grid")] + f"mds-vo-name={SITE.lower()},o=grid"
    assert dn.endswith("o=glue"), dn
    return dn[: -len("o=glue")] + f"glue2domainid={SITE.lower()},o=glue"


@pytest.fixture(scope="module")
def site_bdii(gris: GrisProcess):
    url = f"{gris.url}/mds-vo-name=resource,o=grid"
    with RealBDII(level="site", site_name=SITE, urls=[("GRIS", url)], static_ldif=SITE_LDIF) as site:
        site.wait_for_update()
        yield site


def test_a_real_site_bdii_aggregates_the_gris(gris: GrisProcess, site_bdii: RealBDII) -> None:
    """A site BDII with ``GRIS ldap://host:port/mds-vo-name=resource,o=grid`` in its site-urls.conf
    holds every entry the GRIS serves (GLUE 1.3 with a *Top/MDS class; every o=glue entry below
    GLUE2GroupID=resource), renamed into the site (``mds-vo-name=SITE-A,o=grid``,
    ``...,GLUE2DomainID=SITE-A,o=glue``), with the same attributes (``mds-vo-name`` becomes the
    site's name on the suffix entry, as BDII renames it)."""
    site = site_bdii
    # slapd refused none of what bdii-update loaded (gridinfo's own classes would be refused:
    # BDII's slapd knows only BDII's schemas; the bdii profile publishes no soft-state stamps)
    assert site.write_errors() == [], site.logs()
    at_site = entries(site.url, "o=grid") | entries(site.url, "o=glue")

    expected: dict[str, dict[str, set[str]]] = {}
    for dn, attrs in entries(gris.url, "mds-vo-name=resource,o=grid").items():
        if {c.lower() for c in attrs.get("objectclass", set())} & GLUE13_TOP_CLASSES:
            expected[site_dn(dn)] = attrs
    for dn, attrs in entries(gris.url, "GLUE2GroupID=resource,o=glue").items():
        expected[site_dn(dn)] = attrs
    expected[f"mds-vo-name={SITE.lower()},o=grid"]["mds-vo-name"] = {SITE}

    assert {f"glueceuniqueid=ce.example.org:8443/cream-slurm-short,mds-vo-name={SITE.lower()},o=grid",
            f"glueserviceuniqueid=bdii.example.org_bdii_resource,mds-vo-name={SITE.lower()},o=grid",
            f"glue2groupid=resource,glue2domainid={SITE.lower()},o=glue"} <= set(expected)
    for dn, attrs in expected.items():
        assert dn in at_site, f"{dn} missing at the site BDII\n{site.logs()}"
        assert at_site[dn] == attrs, dn
    # what else the site BDII holds is its own: default.ldif, its GLUE2Domain entry
    own = {"o=grid", "mds-vo-name=local,o=grid", "mds-vo-name=resource,o=grid", "o=glue",
           "glue2groupid=resource,o=glue", "glue2groupid=grid,o=glue", f"glue2domainid={SITE.lower()},o=glue"}
    assert set(at_site) - set(expected) <= own


def test_a_giis_mirrors_a_real_resource_bdii_named_in_site_urls_conf(resource_bdii: RealBDII, tmp_path: Path) -> None:
    """``giis --bdii-urls site-urls.conf``: each line is a child pulled whole, as a site BDII pulls it.

    Every entry below the real resource BDII's ``mds-vo-name=resource,o=grid`` arrives at the GIIS
    with the same attributes, its DN ending in the GIIS's namespace for that child (which suffix
    that is belongs to the GIIS's layout: MDS2's ``mds-vo-name=resource,mds-vo-name=site,o=grid``,
    or a BDII site's ``mds-vo-name=SITE,o=grid``).  Waiting is for the GIIS's first pull of a real
    process, polled with a deadline."""
    urls = tmp_path / "site-urls.conf"
    urls.write_text(f"# the resource BDII\nRES {resource_bdii.url}/mds-vo-name=resource,o=grid\n")
    below = {dn[: -len(",mds-vo-name=resource,o=grid")]: attrs
             for dn, attrs in entries(resource_bdii.url, "mds-vo-name=resource,o=grid").items()
             if dn != "mds-vo-name=resource,o=grid"}
    assert len(below) == 3  # the static service, the cluster, the CE
    with GrisProcess(["--name", "site", "--bdii-urls", str(urls)], module="gridinfo.cli.giis") as giis:
        deadline = time.monotonic() + 60
        while True:
            at_giis = entries(giis.url, "o=grid")
            found = {rel: [dn for dn in at_giis if dn.startswith(rel + ",")] for rel in below}
            if all(found.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert all(found.values()), f"{found}\n{giis.log[-2000:]}"
        for rel, dns in found.items():
            assert len(dns) == 1, dns
            assert at_giis[dns[0]] == below[rel], dns[0]


def test_a_real_top_bdii_over_the_site_holds_the_gris_entries(site_bdii: RealBDII) -> None:
    """The chain GRIS -> site BDII -> top BDII: a top BDII pulling the site
    (``SITE-A ldap://host:port/mds-vo-name=SITE-A,o=grid``) holds each site entry at
    ``...,mds-vo-name=SITE-A,mds-vo-name=local,o=grid`` and ``...,GLUE2DomainID=SITE-A,GLUE2GroupID=grid,o=glue``,
    with the same attributes: what a top BDII holds of a resource BDII, here of the GRIS."""
    url = f"{site_bdii.url}/mds-vo-name={SITE},o=grid"
    with RealBDII(level="top", urls=[(SITE, url)]) as top:
        top.wait_for_update()
        assert top.write_errors() == [], top.logs()
        at_top = entries(top.url, "o=grid") | entries(top.url, "o=glue")
        expected: dict[str, dict[str, set[str]]] = {}
        for dn, attrs in entries(site_bdii.url, f"mds-vo-name={SITE},o=grid").items():
            if {c.lower() for c in attrs.get("objectclass", set())} & GLUE13_TOP_CLASSES:
                expected[dn[: -len("o=grid")] + "mds-vo-name=local,o=grid"] = attrs
        for dn, attrs in entries(site_bdii.url, f"GLUE2DomainID={SITE},o=glue").items():
            expected[dn[: -len("o=glue")] + "glue2groupid=grid,o=glue"] = attrs
        assert {
            f"glueceuniqueid=ce.example.org:8443/cream-slurm-short,mds-vo-name={SITE.lower()},mds-vo-name=local,o=grid",
            f"glue2groupid=resource,glue2domainid={SITE.lower()},glue2groupid=grid,o=glue",
        } <= set(expected)
        for dn, attrs in expected.items():
            assert at_top.get(dn) == attrs, f"{dn}\n{top.logs()}"


def test_debian_bdii_update_as_shipped_loads_nothing_into_slapd() -> None:
    """Why the fixture wraps OpenLDAP's tools, and what docs/bdii.md says: bookworm's bdii-update
    passes ``-h``/``-p``, which OpenLDAP 2.5 refuses, so after a whole cycle slapd holds nothing,
    not even the UpdateStats entry.  (If Debian fixes it, this test says so: update docs/bdii.md.)"""
    with RealBDII(wrap_ldap_tools=False) as bdii:
        log = bdii.wait_for_cycle()
        assert "unrecognized option" in log
        assert bdii.search("o=grid", "dn") == ""
        assert bdii.update_stats() == {}


def giis_config(folder: Path, level: str, children: list[tuple[str, str]]) -> Path:
    """A GIIS in BDII's layout pulling ``children`` (NAME, URL), as site-urls.conf / top-urls.conf lines do."""
    lines = ["layout: bdii", f"level: {level}"]
    if level == "site":
        lines.append(f"site_name: {SITE}")
    lines.append("children:")
    lines += [f'  - {{name: {name}, url: "{url}"}}' for name, url in children]
    path = folder / f"giis-{level}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def wait_for_entries(url: str, bases: tuple[str, ...], want: set[str], log: str = "") -> dict[str, dict[str, set[str]]]:
    """Poll (bounded) until the server at ``url`` holds every DN of ``want`` below ``bases``."""
    deadline = time.monotonic() + 120
    while True:
        found: dict[str, dict[str, set[str]]] = {}
        for base in bases:
            found |= entries(url, base)
        if want <= set(found) or time.monotonic() > deadline:
            assert want <= set(found), f"missing: {sorted(want - set(found))[:5]}\n{log}"
            return found
        time.sleep(0.5)


def top_dn(dn: str) -> str:
    """Where a top BDII puts an entry of a site source named SITE (BDII's top-level renaming)."""
    if dn.endswith(f"mds-vo-name={SITE.lower()},o=grid"):
        return dn[: -len("o=grid")] + "mds-vo-name=local,o=grid"
    assert dn.endswith(f"glue2domainid={SITE.lower()},o=glue"), dn
    return dn[: -len("o=glue")] + "glue2groupid=grid,o=glue"


def test_a_real_top_bdii_aggregates_a_gridinfo_site_giis(gris: GrisProcess, site_bdii: RealBDII,
                                                         tmp_path: Path) -> None:
    """GRIS -> gridinfo site GIIS (``layout: bdii``) -> real top BDII: the top holds the GIIS's site
    entries at top-level DNs, and the same GLUE 1.3 and GLUE 2 DNs a real site BDII in the GIIS's
    place gives it (the site BDII's own default and domain entries aside)."""
    config = giis_config(tmp_path, "site", [("GRIS", f"{gris.url}/mds-vo-name=resource,o=grid")])
    with GrisProcess(["--config", str(config)], module="gridinfo.cli.giis") as giis:
        site_bases = (f"mds-vo-name={SITE},o=grid", f"GLUE2DomainID={SITE},o=glue")
        # the GIIS holds the same renamed GRIS entries as the real site BDII does
        real_site = {dn for base in site_bases for dn in entries(site_bdii.url, base)}
        at_giis = wait_for_entries(giis.url, site_bases, set(), giis.log)
        assert {dn for dn in real_site if "glueceuniqueid=" in dn or "glue2serviceid=" in dn} <= set(at_giis)
        with RealBDII(level="top", urls=[(SITE, f"{giis.url}/mds-vo-name={SITE},o=grid")]) as top:
            top.wait_for_update()
            assert top.write_errors() == [], top.logs()
            at_top = entries(top.url, "o=grid") | entries(top.url, "o=glue")
        expected = {top_dn(dn): attrs for dn, attrs in at_giis.items()
                    if dn.endswith("o=glue") or {c.lower() for c in attrs.get("objectclass", set())} & GLUE13_TOP_CLASSES}
        assert f"glueceuniqueid=ce.example.org:8443/cream-slurm-short,mds-vo-name={SITE.lower()},mds-vo-name=local,o=grid" in expected
        for dn, attrs in expected.items():
            assert at_top.get(dn) == attrs, f"{dn}\n{top.logs()[-2000:]}"


def test_a_gridinfo_top_giis_over_a_real_site_bdii_holds_what_a_real_top_bdii_holds(site_bdii: RealBDII,
                                                                                   tmp_path: Path) -> None:
    """Real site BDII -> gridinfo top GIIS (``layout: bdii``, ``level: top``): the same DNs and
    attributes as a real top BDII pulling the same site."""
    url = f"{site_bdii.url}/mds-vo-name={SITE},o=grid"
    with RealBDII(level="top", urls=[(SITE, url)]) as top:
        top.wait_for_update()
        theirs = {dn: a for dn, a in (entries(top.url, "o=grid") | entries(top.url, "o=glue")).items()
                  if f"mds-vo-name={SITE.lower()}," in dn or f"glue2domainid={SITE.lower()}," in dn
                  or dn.startswith(f"mds-vo-name={SITE.lower()},") or dn.startswith(f"glue2domainid={SITE.lower()},")}
    assert theirs
    config = giis_config(tmp_path, "top", [(SITE, url)])
    with GrisProcess(["--config", str(config)], module="gridinfo.cli.giis") as giis:
        ours = wait_for_entries(giis.url, ("o=grid", "o=glue"), set(theirs), giis.log)
    for dn, attrs in theirs.items():
        assert ours[dn] == attrs, dn
