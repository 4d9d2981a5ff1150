"""A deterministic, GLUE 1.3-shaped directory tree for tests and benchmarks.

The tree looks like a WLCG top-level index: ``o=grid``, the suffix entry
(``mds-vo-name=local,o=grid`` by default), then about one site per 250 entries.  Each site
subtree, in the order written (parents always before children)::

    GlueSiteUniqueID=siteNNNN                                          1
      GlueClusterUniqueID=ce1.siteNNNN.example.org                     1
        GlueSubClusterUniqueID=ce1.siteNNNN.example.org-scJ            2
      GlueCEUniqueID=ceH.siteNNNN.example.org:8443/cream-pbs-queueK   25  (5 hosts x 5 queues)
        GlueVOViewLocalID=<vo>                                     25x6
      GlueSEUniqueID=seJ.siteNNNN.example.org                          2
        GlueSALocalID=<vo>:<token>                                  2x12
      GlueServiceUniqueID=...                                  the rest (45 in a full site)

so about 10% of the entries are GlueCE.  Every entry is valid under Debian's glue-schema
(Glue-CORE, Glue-CE, Glue-SE, Glue-MDS) plus core.schema: slapadd loads it without ``-s``.

Sizes are exact: ``generate(n)`` yields exactly ``n`` entries.  The entries left after the two
top entries are shared as evenly as possible between ``max(1, round((n - 2) / 250))`` sites;
a site with a smaller share is cut at the end of the order above (services first), a larger
share gets more services.  Values come from a per-site RNG seeded with ``(seed, site number)``,
so a given site looks the same whatever ``n`` is, and the same ``n`` and ``seed`` always give
byte-identical LDIF.
"""

from __future__ import annotations

import base64
import os
import random
from collections.abc import Iterator
from pathlib import Path

Attributes = list[tuple[str, list[bytes]]]
Entry = tuple[str, Attributes]

ENTRIES_PER_SITE = 250
CE_HOSTS_PER_SITE = 5
QUEUES_PER_CE_HOST = 5
SUBCLUSTERS_PER_SITE = 2
SES_PER_SITE = 2
VOS = ("atlas", "cms", "lhcb", "alice", "ops", "dteam")
SPACE_TOKENS = ("DATADISK", "SCRATCHDISK")
CE_STATES = ("Production",) * 8 + ("Draining", "Closed")
SERVICE_TYPES = (
    "org.glite.ce.CREAM",
    "SRM",
    "bdii_site",
    "org.glite.wms.WMProxy",
    "org.glite.lb.Server",
    "MyProxy",
    "org.glite.FTS",
    "gLExec",
    "APEL",
    "Squid",
)
DEFAULT_SUFFIX = "mds-vo-name=local,o=grid"

_SCHEMA_VERSION: Attributes = [("GlueSchemaVersionMajor", [b"1"]), ("GlueSchemaVersionMinor", [b"3"])]


def _vals(*values: object) -> list[bytes]:
    return [str(v).encode("ascii") for v in values]


def _top_entry(dn: str) -> Entry:
    """The entry for a single-RDN-deep naming entry: ``o=...`` or ``mds-vo-name=...``."""
    attr, _, value = dn.split(",", 1)[0].partition("=")
    kind = attr.strip().lower()
    if kind == "o":
        return dn, [("objectClass", [b"organization"]), ("o", _vals(value.strip()))]
    if kind == "mds-vo-name":
        return dn, [("objectClass", [b"MdsVo"]), ("Mds-Vo-name", _vals(value.strip()))]
    raise ValueError(f"cannot make a naming entry for {dn!r}: only o= and mds-vo-name= are supported")


def site_count(n_entries: int, suffix: str = DEFAULT_SUFFIX) -> int:
    """How many sites ``generate(n_entries)`` produces."""
    rest = n_entries - len(_top_dns(suffix))
    return max(1, round(rest / ENTRIES_PER_SITE)) if rest > 0 else 0


def site_dn(index: int, suffix: str = DEFAULT_SUFFIX) -> str:
    """DN of site number ``index`` (1-based)."""
    return f"GlueSiteUniqueID=site{index:04d},{suffix}"


def _top_dns(suffix: str) -> list[str]:
    """The naming entries above the sites: the suffix and its parents (root first)."""
    rdns = suffix.split(",")
    return [",".join(rdns[i:]) for i in range(len(rdns) - 1, -1, -1)]


def _site_entries(index: int, seed: int, suffix: str) -> Iterator[Entry]:
    """All entries of one site, in order, with services continuing without end."""
    rng = random.Random(f"gendit:{seed}:{index}")
    site = f"site{index:04d}"
    domain = f"{site}.example.org"
    site_dn_ = site_dn(index, suffix)
    site_key = f"GlueSiteUniqueID={site}".encode()
    lat, lon = rng.uniform(-60, 70), rng.uniform(-180, 180)
    yield site_dn_, [
        ("objectClass", [b"GlueTop", b"GlueSite", b"GlueKey", b"GlueSchemaVersion"]),
        ("GlueSiteUniqueID", _vals(site)),
        ("GlueSiteName", _vals(site.upper())),
        ("GlueSiteDescription", _vals(f"LCG site {site}")),
        ("GlueSiteUserSupportContact", _vals(f"mailto:support@{domain}")),
        ("GlueSiteSysAdminContact", _vals(f"mailto:admin@{domain}")),
        ("GlueSiteSecurityContact", _vals(f"mailto:security@{domain}")),
        ("GlueSiteLocation", _vals(f"City {index}, Country {index % 40}")),
        ("GlueSiteLatitude", _vals(f"{lat:.4f}")),
        ("GlueSiteLongitude", _vals(f"{lon:.4f}")),
        ("GlueSiteWeb", _vals(f"http://www.{domain}/")),
        ("GlueSiteOtherInfo", _vals("GRID=WLCG", f"TIER={1 + index % 3}")),
        *_SCHEMA_VERSION,
    ]

    cluster_id = f"ce1.{domain}"
    cluster_dn = f"GlueClusterUniqueID={cluster_id},{site_dn_}"
    ce_ids = [
        f"ce{h}.{domain}:8443/cream-pbs-queue{k}"
        for h in range(1, CE_HOSTS_PER_SITE + 1)
        for k in range(1, QUEUES_PER_CE_HOST + 1)
    ]
    yield cluster_dn, [
        ("objectClass", [b"GlueClusterTop", b"GlueCluster", b"GlueInformationService", b"GlueKey",
                         b"GlueSchemaVersion"]),
        ("GlueClusterUniqueID", _vals(cluster_id)),
        ("GlueClusterName", _vals(cluster_id)),
        ("GlueClusterService", _vals(*ce_ids)),
        ("GlueClusterTmpDir", [b"/tmp"]),
        ("GlueClusterWNTmpDir", [b"/tmp"]),
        ("GlueForeignKey", [site_key] + [f"GlueCEUniqueID={c}".encode() for c in ce_ids]),
        ("GlueInformationServiceURL", _vals(f"ldap://{cluster_id}:2170/mds-vo-name=resource,o=grid")),
        *_SCHEMA_VERSION,
    ]

    for j in range(1, SUBCLUSTERS_PER_SITE + 1):
        sub_id = f"{cluster_id}-sc{j}"
        physical = rng.choice((64, 128, 256, 512, 1024))
        cores = rng.choice((4, 8, 16))
        yield f"GlueSubClusterUniqueID={sub_id},{cluster_dn}", [
            ("objectClass", [b"GlueClusterTop", b"GlueSubCluster", b"GlueHostApplicationSoftware",
                             b"GlueHostArchitecture", b"GlueHostBenchmark", b"GlueHostMainMemory",
                             b"GlueHostNetworkAdapter", b"GlueHostOperatingSystem", b"GlueHostProcessor",
                             b"GlueInformationService", b"GlueKey", b"GlueSchemaVersion"]),
            ("GlueSubClusterUniqueID", _vals(sub_id)),
            ("GlueSubClusterName", _vals(sub_id)),
            ("GlueSubClusterPhysicalCPUs", _vals(physical)),
            ("GlueSubClusterLogicalCPUs", _vals(physical * cores)),
            ("GlueSubClusterTmpDir", [b"/tmp"]),
            ("GlueSubClusterWNTmpDir", [b"/scratch"]),
            ("GlueHostApplicationSoftwareRunTimeEnvironment",
             _vals("LCG-2", "GLITE-3_2_0", "R-GMA", *(f"VO-{vo}-release-{rng.randint(10, 30)}" for vo in VOS))),
            ("GlueHostArchitecturePlatformType", [b"x86_64"]),
            ("GlueHostArchitectureSMPSize", _vals(cores)),
            ("GlueHostBenchmarkSI00", _vals(rng.randint(1000, 3000))),
            ("GlueHostBenchmarkSF00", _vals(rng.randint(1000, 3000))),
            ("GlueHostMainMemoryRAMSize", _vals(rng.choice((16384, 32768, 65536, 131072)))),
            ("GlueHostMainMemoryVirtualSize", _vals(rng.choice((32768, 65536, 131072)))),
            ("GlueHostNetworkAdapterInboundIP", [b"FALSE"]),
            ("GlueHostNetworkAdapterOutboundIP", [b"TRUE"]),
            ("GlueHostOperatingSystemName", [b"ScientificSL"]),
            ("GlueHostOperatingSystemRelease", _vals(rng.choice(("5.5", "6.4", "6.10")))),
            ("GlueHostOperatingSystemVersion", [b"Boron"]),
            ("GlueHostProcessorVendor", _vals(rng.choice(("GenuineIntel", "AuthenticAMD")))),
            ("GlueHostProcessorModel", _vals(rng.choice(("Xeon E5-2650", "Opteron 6274", "Xeon X5650")))),
            ("GlueHostProcessorClockSpeed", _vals(rng.choice((2000, 2200, 2600, 3000)))),
            ("GlueChunkKey", _vals(f"GlueClusterUniqueID={cluster_id}")),
            ("GlueInformationServiceURL", _vals(f"ldap://{cluster_id}:2170/mds-vo-name=resource,o=grid")),
            *_SCHEMA_VERSION,
        ]

    for ce_id in ce_ids:
        host, _, queue_part = ce_id.partition(":")
        queue = queue_part.rsplit("-", 1)[1]
        ce_dn = f"GlueCEUniqueID={ce_id},{site_dn_}"
        running, waiting = rng.randint(0, 1000), rng.randint(0, 1000)
        free = rng.randint(0, 2000)
        total_cpus = free + running
        yield ce_dn, [
            ("objectClass", [b"GlueCETop", b"GlueCE", b"GlueCEAccessControlBase", b"GlueCEInfo",
                             b"GlueCEPolicy", b"GlueCEState", b"GlueInformationService", b"GlueKey",
                             b"GlueSchemaVersion"]),
            ("GlueCEUniqueID", _vals(ce_id)),
            ("GlueCEName", _vals(queue)),
            ("GlueCEHostingCluster", _vals(cluster_id)),
            ("GlueCEImplementationName", [b"CREAM"]),
            ("GlueCEImplementationVersion", [b"1.16.4"]),
            ("GlueCECapability", _vals(f"CPUScalingReferenceSI00={rng.randint(1000, 3000)}")),
            ("GlueCEInfoHostName", _vals(host)),
            ("GlueCEInfoGatekeeperPort", [b"8443"]),
            ("GlueCEInfoLRMSType", [b"pbs"]),
            ("GlueCEInfoLRMSVersion", [b"2.5.7"]),
            ("GlueCEInfoJobManager", [b"pbs"]),
            ("GlueCEInfoTotalCPUs", _vals(total_cpus)),
            ("GlueCEInfoContactString", _vals(f"https://{host}:8443/ce-cream/services")),
            ("GlueCEInfoApplicationDir", [b"/opt/exp_soft"]),
            ("GlueCEInfoDataDir", [b"unset"]),
            ("GlueCEInfoDefaultSE", _vals(f"se1.{domain}")),
            ("GlueCEStateStatus", _vals(rng.choice(CE_STATES))),
            ("GlueCEStateRunningJobs", _vals(running)),
            ("GlueCEStateWaitingJobs", _vals(waiting)),
            ("GlueCEStateTotalJobs", _vals(running + waiting)),
            ("GlueCEStateFreeCPUs", _vals(free)),
            ("GlueCEStateFreeJobSlots", _vals(free)),
            ("GlueCEStateEstimatedResponseTime", _vals(rng.randint(0, 86400))),
            ("GlueCEStateWorstResponseTime", _vals(rng.randint(0, 172800))),
            ("GlueCEPolicyMaxCPUTime", _vals(rng.choice((1440, 2880, 4320)))),
            ("GlueCEPolicyMaxWallClockTime", _vals(rng.choice((2160, 4320, 5760)))),
            ("GlueCEPolicyMaxRunningJobs", _vals(rng.randint(100, 2000))),
            ("GlueCEPolicyMaxTotalJobs", _vals(rng.randint(2000, 10000))),
            ("GlueCEPolicyPriority", [b"1"]),
            ("GlueCEPolicyAssignedJobSlots", _vals(total_cpus)),
            ("GlueCEPolicyMaxSlotsPerJob", [b"1"]),
            ("GlueCEPolicyPreemption", [b"0"]),
            ("GlueCEAccessControlBaseRule", _vals(*(f"VO:{vo}" for vo in VOS))),
            ("GlueForeignKey", _vals(f"GlueClusterUniqueID={cluster_id}")),
            ("GlueInformationServiceURL", _vals(f"ldap://{host}:2170/mds-vo-name=resource,o=grid")),
            *_SCHEMA_VERSION,
        ]
        for vo in VOS:
            vo_running, vo_waiting = rng.randint(0, running // len(VOS) + 1), rng.randint(0, waiting // len(VOS) + 1)
            yield f"GlueVOViewLocalID={vo},{ce_dn}", [
                ("objectClass", [b"GlueCETop", b"GlueVOView", b"GlueCEInfo", b"GlueCEState",
                                 b"GlueCEAccessControlBase", b"GlueCEPolicy", b"GlueKey", b"GlueSchemaVersion"]),
                ("GlueVOViewLocalID", _vals(vo)),
                ("GlueCEAccessControlBaseRule", _vals(f"VO:{vo}")),
                ("GlueCEStateRunningJobs", _vals(vo_running)),
                ("GlueCEStateWaitingJobs", _vals(vo_waiting)),
                ("GlueCEStateTotalJobs", _vals(vo_running + vo_waiting)),
                ("GlueCEStateFreeJobSlots", _vals(rng.randint(0, free // len(VOS) + 1))),
                ("GlueCEStateEstimatedResponseTime", _vals(rng.randint(0, 86400))),
                ("GlueCEStateWorstResponseTime", _vals(rng.randint(0, 172800))),
                ("GlueCEInfoDefaultSE", _vals(f"se1.{domain}")),
                ("GlueCEInfoApplicationDir", _vals(f"/opt/exp_soft/{vo}")),
                ("GlueCEInfoDataDir", [b"unset"]),
                ("GlueChunkKey", _vals(f"GlueCEUniqueID={ce_id}")),
                *_SCHEMA_VERSION,
            ]

    for j in range(1, SES_PER_SITE + 1):
        se_id = f"se{j}.{domain}"
        se_dn = f"GlueSEUniqueID={se_id},{site_dn_}"
        total_gb = rng.randint(100_000, 5_000_000)
        used_gb = rng.randint(0, total_gb)
        yield se_dn, [
            ("objectClass", [b"GlueSETop", b"GlueSE", b"GlueInformationService", b"GlueKey",
                             b"GlueSchemaVersion"]),
            ("GlueSEUniqueID", _vals(se_id)),
            ("GlueSEName", _vals(f"{site}:srm")),
            ("GlueSEPort", [b"8443"]),
            ("GlueSESizeTotal", _vals(total_gb)),
            ("GlueSESizeFree", _vals(total_gb - used_gb)),
            ("GlueSEArchitecture", [b"multidisk"]),
            ("GlueSEImplementationName", _vals(rng.choice(("dCache", "DPM", "StoRM")))),
            ("GlueSEImplementationVersion", [b"2.10.61"]),
            ("GlueSEStatus", [b"Production"]),
            ("GlueSETotalOnlineSize", _vals(total_gb)),
            ("GlueSEUsedOnlineSize", _vals(used_gb)),
            ("GlueSETotalNearlineSize", [b"0"]),
            ("GlueSEUsedNearlineSize", [b"0"]),
            ("GlueForeignKey", [site_key]),
            ("GlueInformationServiceURL", _vals(f"ldap://{se_id}:2170/mds-vo-name=resource,o=grid")),
            *_SCHEMA_VERSION,
        ]
        for vo in VOS:
            for token in SPACE_TOKENS:
                local_id = f"{vo}:{token}"
                sa_total = rng.randint(1_000, total_gb // 10)
                sa_used = rng.randint(0, sa_total)
                yield f"GlueSALocalID={local_id},{se_dn}", [
                    ("objectClass", [b"GlueSATop", b"GlueSA", b"GlueSAAccessControlBase", b"GlueSAPolicy",
                                     b"GlueSAState", b"GlueKey", b"GlueSchemaVersion"]),
                    ("GlueSALocalID", _vals(local_id)),
                    ("GlueSAName", _vals(f"{vo.upper()}{token}")),
                    ("GlueSAPath", _vals(f"/pnfs/{domain}/data/{vo}/{token.lower()}")),
                    ("GlueSAType", [b"permanent"]),
                    ("GlueSARetentionPolicy", [b"replica"]),
                    ("GlueSAAccessLatency", [b"online"]),
                    ("GlueSAExpirationMode", [b"neverExpire"]),
                    ("GlueSATotalOnlineSize", _vals(sa_total)),
                    ("GlueSAUsedOnlineSize", _vals(sa_used)),
                    ("GlueSAFreeOnlineSize", _vals(sa_total - sa_used)),
                    ("GlueSAReservedOnlineSize", _vals(sa_total)),
                    ("GlueSAStateAvailableSpace", _vals((sa_total - sa_used) * 1_000_000)),
                    ("GlueSAStateUsedSpace", _vals(sa_used * 1_000_000)),
                    ("GlueSAAccessControlBaseRule", _vals(f"VO:{vo}")),
                    ("GlueChunkKey", _vals(f"GlueSEUniqueID={se_id}")),
                    *_SCHEMA_VERSION,
                ]

    number = 0
    while True:
        number += 1
        kind = SERVICE_TYPES[(number - 1) % len(SERVICE_TYPES)]
        host = f"svc{number}.{domain}"
        service_id = f"{host}_{kind}_{number}"
        yield f"GlueServiceUniqueID={service_id},{site_dn_}", [
            ("objectClass", [b"GlueTop", b"GlueService", b"GlueKey", b"GlueSchemaVersion"]),
            ("GlueServiceUniqueID", _vals(service_id)),
            ("GlueServiceName", _vals(f"{site}-{kind}-{number}")),
            ("GlueServiceType", _vals(kind)),
            ("GlueServiceVersion", _vals(f"{rng.randint(1, 3)}.{rng.randint(0, 9)}.{rng.randint(0, 20)}")),
            ("GlueServiceEndpoint", _vals(f"https://{host}:8443/{kind.lower()}")),
            ("GlueServiceStatus", _vals(rng.choice(("OK", "OK", "OK", "Warning", "Critical")))),
            ("GlueServiceStatusInfo", _vals(f"{kind} on {host}")),
            ("GlueServiceAccessControlBaseRule", _vals(*(f"VO:{vo}" for vo in VOS))),
            ("GlueServiceOwner", _vals(*VOS[:3])),
            ("GlueForeignKey", [site_key]),
            *_SCHEMA_VERSION,
        ]


def generate(n_entries: int, seed: int = 1, suffix: str = DEFAULT_SUFFIX) -> Iterator[Entry]:
    """Yield exactly ``n_entries`` entries, parents before children, as (DN, attributes)."""
    if n_entries < 0:
        raise ValueError("n_entries must not be negative")
    tops = _top_dns(suffix)
    for dn in tops[:n_entries]:
        yield _top_entry(dn)
    rest = n_entries - len(tops)
    if rest <= 0:
        return
    sites = site_count(n_entries, suffix)
    share, extra = divmod(rest, sites)
    for index in range(1, sites + 1):
        budget = share + (1 if index <= extra else 0)
        entries = _site_entries(index, seed, suffix)
        for _ in range(budget):
            yield next(entries)


def dns(n_entries: int, seed: int = 1, suffix: str = DEFAULT_SUFFIX) -> list[str]:
    """The DNs of ``generate(n_entries, seed, suffix)``, in order."""
    return [dn for dn, _attrs in generate(n_entries, seed, suffix)]


# -- LDIF ---------------------------------------------------------------------------------------

_SAFE_INIT = set(range(0x01, 0x80)) - {0x0A, 0x0D, 0x20, 0x3A, 0x3C}
_SAFE = set(range(0x01, 0x80)) - {0x0A, 0x0D}


def _line(attr: str, value: bytes) -> bytes:
    safe = (not value or (value[0] in _SAFE_INIT and all(b in _SAFE for b in value) and value[-1] != 0x20))
    if safe:
        return attr.encode() + b": " + value + b"\n"
    return attr.encode() + b":: " + base64.b64encode(value) + b"\n"


def format_entry(dn: str, attributes: Attributes) -> bytes:
    """One LDIF record (RFC 2849 content form) including its terminating blank line."""
    out = [_line("dn", dn.encode("utf-8"))]
    for attr, values in attributes:
        out.extend(_line(attr, value) for value in values)
    out.append(b"\n")
    return b"".join(out)


def write_ldif(
    path: str | os.PathLike[str], n_entries: int, seed: int = 1, suffix: str = DEFAULT_SUFFIX
) -> Path:
    """Write ``generate(n_entries, seed, suffix)`` as LDIF to ``path`` and return the path."""
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "wb") as f:
        batch: list[bytes] = []
        for dn, attributes in generate(n_entries, seed, suffix):
            batch.append(format_entry(dn, attributes))
            if len(batch) >= 1000:
                f.write(b"".join(batch))
                batch.clear()
        f.write(b"".join(batch))
    os.replace(tmp, target)
    return target
