"""GLUE 2.0 entries as BDII publishes them (GFD.147 rendered in LDAP), shared by the bundled providers.

Layout (BDII's resource level; ``<g2>`` is the GLUE 2 suffix, ``GLUE2GroupID=resource,o=glue``
unless ``$GRIDINFO_GLUE2_SUFFIX`` / ``--glue2-suffix`` say otherwise)::

    GLUE2DomainID=<site>,<g2>                              GLUE2AdminDomain         site
      GLUE2LocationID=<site>-location,GLUE2DomainID=...   GLUE2Location            site
      GLUE2ContactID=<site>-<type>-<n>,GLUE2DomainID=...  GLUE2Contact             site
    GLUE2ServiceID=<ce>_ComputingElement,<g2>              GLUE2ComputingService    batch
      GLUE2EndpointID=<service>_<lrms>,GLUE2ServiceID=... GLUE2ComputingEndpoint   batch
        GLUE2PolicyID=<endpoint>_access,...                GLUE2AccessPolicy        batch
      GLUE2ManagerID=<service>_Manager,GLUE2ServiceID=... GLUE2ComputingManager    batch
      GLUE2ShareID=<partition>_<service>,GLUE2ServiceID=  GLUE2ComputingShare      batch, one per partition
        GLUE2PolicyID=<share>_mapping,GLUE2ShareID=...     GLUE2MappingPolicy       batch
    GLUE2ResourceID=<host>,<g2>                            GLUE2ExecutionEnvironment host
      GLUE2BenchmarkID=<host>_<type>,GLUE2ResourceID=...   GLUE2Benchmark           host (configured)
    GLUE2ServiceID=<host>_gridinfo,<g2>                    GLUE2Service             the GRIS itself
      GLUE2EndpointID=<host>_gridinfo_ldap,...             GLUE2Endpoint            the GRIS itself
        GLUE2PolicyID=<endpoint>_access,...                GLUE2AccessPolicy        the GRIS itself

The execution environment sits directly below ``<g2>`` (not below the manager, which another
provider publishes), so each provider's entries stand on their own; the foreign keys
(``GLUE2ExecutionEnvironmentComputingManagerForeignKey``, ``GLUE2ResourceManagerForeignKey``)
tie it to the manager.  The IDs the providers share are made here from the host name, so the
host and batch providers agree without talking to each other (:func:`computing_service_id`,
:func:`computing_manager_id`).

Values follow the EGI GLUE 2 profile: enumerations in the profile's spelling (``production``,
``ok``, ``linux``, ``org.glite.standard``), integers as decimal text, ExtendedBoolean as
``TRUE``/``FALSE``.  GLUE2EntityCreationTime and GLUE2EntityValidity are not written here: the
GRIS stamps them when it installs a run's entries.
"""

from __future__ import annotations

from gridinfo.providers_lib.output import LDIFEntry, child_dn

#: GLUE2PolicyScheme of every policy we publish (EGI profile: basic, gacl or org.glite.standard).
POLICY_SCHEME = "org.glite.standard"

#: os-release ID -> GLUE2ExecutionEnvironmentOSName, in the EGI profile's spelling.
OS_NAMES: dict[str, str] = {
    "debian": "Debian",
    "ubuntu": "Ubuntu",
    "centos": "CentOS",
    "rhel": "RedhatEnterpriseAS",
    "scientific": "ScientificSL",
    "sles": "SUSELINUX",
    "opensuse": "SUSELINUX",
    "opensuse-leap": "SUSELINUX",
    "fedora": "Fedoracore",
    "gentoo": "Gentoo",
}

#: Python's platform.machine() -> GLUE2ExecutionEnvironmentPlatform (EGI profile values).
PLATFORMS: dict[str, str] = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "i386": "i386",
    "i686": "i686",
    "ia64": "itanium",
    "ppc64": "powerpc",
    "ppc64le": "powerpc",
    "sparc64": "sparc",
}

#: GLUE2BenchmarkType values of the EGI profile.
BENCHMARK_TYPES = ("bogomips", "cfp2006", "cint2006", "linpack", "specfp2000", "specint2000", "hep-spec06")


def computing_service_id(host: str) -> str:
    """GLUE2ServiceID of the batch system's computing service on ``host``."""
    return f"{host}_ComputingElement"


def computing_manager_id(host: str) -> str:
    """GLUE2ManagerID of the batch system's manager on ``host`` (host and batch providers agree)."""
    return f"{computing_service_id(host)}_Manager"


def extended_boolean(value: bool | None) -> str:
    """GLUE 2 ExtendedBoolean: TRUE, FALSE or UNDEFINED."""
    return "UNDEFINED" if value is None else ("TRUE" if value else "FALSE")


def _policy(kind: str, owner_id: str, owner_dn: str, rules: list[str], suffix: str, foreign_key: str) -> LDIFEntry:
    """A GLUE2Policy of class ``kind`` below its owner, with the rules (``ALL`` when none)."""
    policy_id = f"{owner_id}_{suffix}"
    entry = LDIFEntry(child_dn("GLUE2PolicyID", policy_id, owner_dn))
    entry.add("objectClass", ["GLUE2Policy", kind])
    entry.add("GLUE2PolicyID", policy_id)
    entry.add("GLUE2PolicyScheme", POLICY_SCHEME)
    entry.add("GLUE2PolicyRule", rules or ["ALL"])
    entry.add(foreign_key, owner_id)
    return entry


def access_policy(endpoint_id: str, endpoint_dn: str, rules: list[str]) -> LDIFEntry:
    """The GLUE2AccessPolicy of an endpoint (the profile wants one beside every endpoint)."""
    return _policy("GLUE2AccessPolicy", endpoint_id, endpoint_dn, rules, "access", "GLUE2AccessPolicyEndpointForeignKey")


def mapping_policy(share_id: str, share_dn: str, rules: list[str]) -> LDIFEntry:
    """The GLUE2MappingPolicy of a share: who is mapped to it (``VO:<vo>`` rules)."""
    return _policy("GLUE2MappingPolicy", share_id, share_dn, rules, "mapping", "GLUE2MappingPolicyShareForeignKey")


__all__ = [
    "BENCHMARK_TYPES",
    "OS_NAMES",
    "PLATFORMS",
    "POLICY_SCHEME",
    "access_policy",
    "computing_manager_id",
    "computing_service_id",
    "extended_boolean",
    "mapping_policy",
]
