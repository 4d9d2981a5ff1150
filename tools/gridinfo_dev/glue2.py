"""A deterministic, GLUE 2.0-shaped directory tree under ``o=glue``, as a site BDII holds it.

Layout (BDII's): ``o=glue``, ``GLUE2GroupID=resource,o=glue`` and ``GLUE2GroupID=grid,o=glue``
(the default entries of every BDII); one resource-level site directly under
``GLUE2GroupID=resource,o=glue`` (what a resource BDII publishes); then site-level sites, each
``GLUE2DomainID=SITE,o=glue`` (the GLUE2AdminDomain) with its resources below
``GLUE2GroupID=resource,GLUE2DomainID=SITE,o=glue``.  Per site, parents before children::

    GLUE2DomainID=SITE                                        1  (site level only)
      GLUE2GroupID=resource                                   1  (site level only)
        GLUE2LocationID=SITE-location                         1
        GLUE2ContactID=SITE-contact-J                         2
        GLUE2ServiceID=ce.SITE.example.org_ComputingElement   1
          GLUE2EndpointID=..._endpoint-J                      2
            GLUE2PolicyID=..._access                          1 each
          GLUE2ShareID=<vo>_<queue>                          8
            GLUE2PolicyID=..._mapping                         1 each
          GLUE2ManagerID=..._Manager                          1
            GLUE2ResourceID=SITE-ee-KK                       20
        GLUE2ServiceID=se.SITE.example.org_StorageService     1

so 48 entries per site-level site.  ``generate(n)`` gives about ``n`` entries (whole sites),
every one valid under GLUE20.schema (slapadd loads it without ``-s``).  Values come from a
per-site RNG seeded with ``(seed, site)``: the same arguments give byte-identical LDIF.

What real clients query is there on purpose: mapping policy rules ``VO:<vo>`` with a few
lower-case ``vo:<vo>`` spellings (GLUE 2 strings are caseExact, so they are different rules),
integer counts (running/waiting jobs, free slots, memory, CPUs), execution environments for
DIRAC's ORs of ``GLUE2ResourceID``, and DNs carrying ``GLUE2DomainID=SITE`` for
``(GLUE2DomainID:dn:=SITE)``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

from gridinfo_dev.gendit import Attributes, Entry, format_entry

SUFFIX = "o=glue"
RESOURCE = "GLUE2GroupID=resource,o=glue"
ENTRIES_PER_SITE = 48
VOS = ("atlas", "cms", "lhcb", "alice", "ops", "dteam", "biomed", "belle")
QUEUES = ("long", "short")
EES_PER_SITE = 20
RESOURCE_SITE = "RESOURCE-SITE"


def _v(*values: object) -> list[bytes]:
    return [str(v).encode("utf-8") for v in values]


def site_name(index: int) -> str:
    return f"SITE-{index:04d}"


def site_dn(index: int) -> str:
    return f"GLUE2DomainID={site_name(index)},{SUFFIX}"


def ee_id(site: str, k: int) -> str:
    return f"{site}-ee-{k:02d}"


def _top() -> Iterator[Entry]:
    yield SUFFIX, [("objectClass", _v("top", "organization")), ("o", _v("glue"))]
    yield RESOURCE, [("objectClass", _v("top", "GLUE2Group")), ("GLUE2GroupID", _v("resource"))]
    yield f"GLUE2GroupID=grid,{SUFFIX}", [("objectClass", _v("top", "GLUE2Group")), ("GLUE2GroupID", _v("grid"))]


def _entity(rng: random.Random) -> Attributes:
    day = rng.randrange(1, 28)
    return [("GLUE2EntityCreationTime", _v(f"2026-11-{day:02d}T10:00:00Z")), ("GLUE2EntityValidity", _v(3600))]


def _site(site: str, base: str, rng: random.Random) -> Iterator[Entry]:
    host = site.lower()
    yield f"GLUE2LocationID={site}-location,{base}", [
        ("objectClass", _v("GLUE2Location")),
        ("GLUE2LocationID", _v(f"{site}-location")),
        ("GLUE2LocationCountry", _v(rng.choice(("Italy", "Germany", "France", "Spain", "UK")))),
        ("GLUE2LocationLatitude", _v(f"{rng.uniform(35, 60):.4f}")),
        ("GLUE2LocationLongitude", _v(f"{rng.uniform(-8, 25):.4f}")),
        ("GLUE2LocationDomainForeignKey", _v(site)),
        *_entity(rng),
    ]
    for j, kind in enumerate(("sysadmin", "security")):
        yield f"GLUE2ContactID={site}-contact-{j},{base}", [
            ("objectClass", _v("GLUE2Contact")),
            ("GLUE2ContactID", _v(f"{site}-contact-{j}")),
            ("GLUE2ContactDetail", _v(f"mailto:{kind}@{host}.example.org")),
            ("GLUE2ContactType", _v(kind)),
            ("GLUE2ContactDomainForeignKey", _v(site)),
        ]
    service = f"ce.{host}.example.org_ComputingElement"
    service_dn = f"GLUE2ServiceID={service},{base}"
    states = ("production",) * 6 + ("draining", "closed")
    yield service_dn, [
        ("objectClass", _v("GLUE2Service", "GLUE2ComputingService")),
        ("GLUE2ServiceID", _v(service)),
        ("GLUE2ServiceType", _v("org.glite.ce.ARC" if rng.random() < 0.3 else "org.glite.ce.CREAM")),
        ("GLUE2ServiceQualityLevel", _v("production")),
        ("GLUE2ServiceCapability", _v("executionmanagement.jobexecution")),
        ("GLUE2ServiceAdminDomainForeignKey", _v(site)),
        ("GLUE2ComputingServiceTotalJobs", _v(rng.randrange(0, 5000))),
        *_entity(rng),
    ]
    endpoints = []
    for j in range(2):
        endpoint = f"{service}_endpoint-{j}"
        endpoints.append(endpoint)
        endpoint_dn = f"GLUE2EndpointID={endpoint},{service_dn}"
        yield endpoint_dn, [
            ("objectClass", _v("GLUE2Endpoint", "GLUE2ComputingEndpoint")),
            ("GLUE2EndpointID", _v(endpoint)),
            ("GLUE2EndpointURL", _v(f"https://ce.{host}.example.org:{8443 + j}/ce")),
            ("GLUE2EndpointInterfaceName", _v("org.ogf.glue.emies.activitycreation" if j else "org.glite.ce.CREAM")),
            ("GLUE2EndpointQualityLevel", _v("production")),
            ("GLUE2EndpointHealthState", _v(rng.choice(("ok", "ok", "ok", "warning", "critical")))),
            ("GLUE2EndpointServingState", _v(rng.choice(states))),
            ("GLUE2EndpointServiceForeignKey", _v(service)),
            ("GLUE2ComputingEndpointRunningJobs", _v(rng.randrange(0, 2000))),
            ("GLUE2ComputingEndpointWaitingJobs", _v(rng.randrange(0, 2000))),
            *_entity(rng),
        ]
        yield f"GLUE2PolicyID={endpoint}_access,{endpoint_dn}", [
            ("objectClass", _v("GLUE2Policy", "GLUE2AccessPolicy")),
            ("GLUE2PolicyID", _v(f"{endpoint}_access")),
            ("GLUE2PolicyScheme", _v("org.glite.standard")),
            ("GLUE2PolicyRule", _v(*(f"VO:{vo}" for vo in VOS[:6]))),
            ("GLUE2AccessPolicyEndpointForeignKey", _v(endpoint)),
        ]
    for vo in VOS[:4]:
        for queue in QUEUES:
            share = f"{vo}_{queue}_{host}"
            share_dn = f"GLUE2ShareID={share},{service_dn}"
            total = rng.randrange(0, 3000)
            running = rng.randrange(0, total + 1)
            yield share_dn, [
                ("objectClass", _v("GLUE2Share", "GLUE2ComputingShare")),
                ("GLUE2ShareID", _v(share)),
                ("GLUE2ShareServiceForeignKey", _v(service)),
                ("GLUE2ComputingShareServingState", _v(rng.choice(states))),
                ("GLUE2ComputingShareMappingQueue", _v(queue)),
                ("GLUE2ComputingShareTotalJobs", _v(total)),
                ("GLUE2ComputingShareRunningJobs", _v(running)),
                ("GLUE2ComputingShareWaitingJobs", _v(total - running)),
                ("GLUE2ComputingShareFreeSlots", _v(rng.randrange(0, 500))),
                ("GLUE2ComputingShareMaxWallTime", _v(rng.choice((3600, 86400, 172800)))),
                ("GLUE2ComputingShareComputingEndpointForeignKey", _v(*endpoints)),
                *_entity(rng),
            ]
            # most sites spell the VO rule "VO:<vo>"; some write "vo:<vo>", a different value
            rule = f"vo:{vo}" if rng.random() < 0.15 else f"VO:{vo}"
            yield f"GLUE2PolicyID={share}_mapping,{share_dn}", [
                ("objectClass", _v("GLUE2Policy", "GLUE2MappingPolicy")),
                ("GLUE2PolicyID", _v(f"{share}_mapping")),
                ("GLUE2PolicyScheme", _v("org.glite.standard")),
                ("GLUE2PolicyRule", _v(rule)),
                ("GLUE2MappingPolicyShareForeignKey", _v(share)),
            ]
    manager = f"{service}_Manager"
    manager_dn = f"GLUE2ManagerID={manager},{service_dn}"
    yield manager_dn, [
        ("objectClass", _v("GLUE2Manager", "GLUE2ComputingManager")),
        ("GLUE2ManagerID", _v(manager)),
        ("GLUE2ManagerProductName", _v(rng.choice(("SLURM", "HTCondor", "PBSPro")))),
        ("GLUE2ManagerServiceForeignKey", _v(service)),
        ("GLUE2ComputingManagerTotalLogicalCPUs", _v(rng.randrange(64, 20000))),
        *_entity(rng),
    ]
    for k in range(EES_PER_SITE):
        resource = ee_id(site, k)
        cpus = rng.choice((8, 16, 32, 64, 128))
        yield f"GLUE2ResourceID={resource},{manager_dn}", [
            ("objectClass", _v("GLUE2Resource", "GLUE2ExecutionEnvironment")),
            ("GLUE2ResourceID", _v(resource)),
            ("GLUE2ResourceManagerForeignKey", _v(manager)),
            ("GLUE2ExecutionEnvironmentPlatform", _v("amd64")),
            ("GLUE2ExecutionEnvironmentMainMemorySize", _v(cpus * rng.choice((2000, 4000)))),
            ("GLUE2ExecutionEnvironmentOSFamily", _v("linux")),
            ("GLUE2ExecutionEnvironmentOSName", _v(rng.choice(("AlmaLinux", "CentOS", "Rocky")))),
            ("GLUE2ExecutionEnvironmentConnectivityIn", _v("FALSE")),
            ("GLUE2ExecutionEnvironmentConnectivityOut", _v("TRUE")),
            ("GLUE2ExecutionEnvironmentLogicalCPUs", _v(cpus)),
            ("GLUE2ExecutionEnvironmentTotalInstances", _v(rng.randrange(1, 200))),
            ("GLUE2ExecutionEnvironmentComputingManagerForeignKey", _v(manager)),
        ]
    storage = f"se.{host}.example.org_StorageService"
    yield f"GLUE2ServiceID={storage},{base}", [
        ("objectClass", _v("GLUE2Service", "GLUE2StorageService")),
        ("GLUE2ServiceID", _v(storage)),
        ("GLUE2ServiceType", _v("SRM")),
        ("GLUE2ServiceQualityLevel", _v("production")),
        ("GLUE2ServiceAdminDomainForeignKey", _v(site)),
        *_entity(rng),
    ]


def site_count(n_entries: int) -> int:
    return max(1, (n_entries - 3 - (ENTRIES_PER_SITE - 2)) // ENTRIES_PER_SITE)


def generate(n_entries: int, seed: int = 1) -> Iterator[Entry]:
    """About ``n_entries`` GLUE 2 entries (whole sites), parents before children."""
    yield from _top()
    yield from _site(RESOURCE_SITE, RESOURCE, random.Random(f"{seed}/resource"))
    for index in range(1, site_count(n_entries) + 1):
        site = site_name(index)
        rng = random.Random(f"{seed}/{index}")
        yield site_dn(index), [
            ("objectClass", _v("GLUE2Domain", "GLUE2AdminDomain")),
            ("GLUE2DomainID", _v(site)),
            ("GLUE2DomainDescription", _v(f"Site {index}")),
            ("GLUE2AdminDomainDistributed", _v("FALSE")),
        ]
        group = f"GLUE2GroupID=resource,{site_dn(index)}"
        yield group, [("objectClass", _v("GLUE2Group")), ("GLUE2GroupID", _v("resource"))]
        yield from _site(site, group, rng)


def write_ldif(path: str | os.PathLike[str], n_entries: int, seed: int = 1) -> Path:
    """Write ``generate(n_entries, seed)`` as LDIF to ``path`` and return the path."""
    target = Path(path)
    with open(target, "wb") as f:
        f.write(b"".join(format_entry(dn, attributes) for dn, attributes in generate(n_entries, seed)))
    return target
