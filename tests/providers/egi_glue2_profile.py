"""What the EGI GLUE 2.0 profile asks of published entries, as our own table of facts, and a check.

The facts (attribute names, which ones the profile calls mandatory, the enumerations and value
ranges it accepts) are the EGI profile's; the table and the checks are ours.  :func:`problems`
returns one line per breach, naming the DN, the attribute and the rule, the way the profile's
validator reports an ERROR; :func:`missing_mandatory` lists mandatory attributes that are absent
(the validator reports those as warnings).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

Entry = Mapping[str, Sequence[str]]  # lower-cased attribute name -> values

#: Mandatory attributes by object class (the profile's "Mandatory" column).
MANDATORY: dict[str, tuple[str, ...]] = {
    "GLUE2Group": ("GLUE2GroupID",),
    "GLUE2Location": ("GLUE2LocationID",),
    "GLUE2Contact": ("GLUE2ContactID", "GLUE2ContactDetail", "GLUE2ContactType"),
    "GLUE2Domain": ("GLUE2DomainID",),
    "GLUE2Service": ("GLUE2ServiceID", "GLUE2ServiceType", "GLUE2ServiceQualityLevel", "GLUE2ServiceAdminDomainForeignKey"),
    "GLUE2Endpoint": (
        "GLUE2EndpointID", "GLUE2EndpointURL", "GLUE2EndpointInterfaceName", "GLUE2EndpointImplementationName",
        "GLUE2EndpointImplementationVersion", "GLUE2EndpointQualityLevel", "GLUE2EndpointHealthState",
        "GLUE2EndpointServingState",
    ),
    "GLUE2Policy": ("GLUE2PolicyID", "GLUE2PolicyScheme", "GLUE2PolicyRule"),
    "GLUE2Share": ("GLUE2ShareID",),
    "GLUE2Manager": ("GLUE2ManagerID", "GLUE2ManagerProductName", "GLUE2ManagerProductVersion"),
    "GLUE2Resource": ("GLUE2ResourceID",),
    "GLUE2ComputingShare": (
        "GLUE2ComputingShareDefaultWallTime", "GLUE2ComputingShareDefaultCPUTime", "GLUE2ComputingShareMaxSlotsPerJob",
        "GLUE2ComputingShareMaxMainMemory", "GLUE2ComputingShareGuaranteedMainMemory",
        "GLUE2ComputingShareMaxVirtualMemory", "GLUE2ComputingShareGuaranteedVirtualMemory",
        "GLUE2ComputingShareServingState", "GLUE2ComputingShareEstimatedAverageWaitingTime",
        "GLUE2ComputingShareEstimatedWorstWaitingTime", "GLUE2ComputingShareFreeSlots", "GLUE2ComputingShareUsedSlots",
    ),
    "GLUE2ComputingManager": (
        "GLUE2ComputingManagerTotalPhysicalCPUs", "GLUE2ComputingManagerTotalLogicalCPUs",
        "GLUE2ComputingManagerComputingServiceForeignKey",
    ),
    "GLUE2Benchmark": ("GLUE2BenchmarkID", "GLUE2BenchmarkType", "GLUE2BenchmarkValue"),
    "GLUE2ExecutionEnvironment": (
        "GLUE2ExecutionEnvironmentPlatform", "GLUE2ExecutionEnvironmentCPUTimeScalingFactor",
        "GLUE2ExecutionEnvironmentWallTimeScalingFactor", "GLUE2ExecutionEnvironmentMainMemorySize",
        "GLUE2ExecutionEnvironmentVirtualMemorySize", "GLUE2ExecutionEnvironmentOSFamily",
        "GLUE2ExecutionEnvironmentOSName", "GLUE2ExecutionEnvironmentOSVersion",
        "GLUE2ExecutionEnvironmentConnectivityIn", "GLUE2ExecutionEnvironmentConnectivityOut",
        "GLUE2ExecutionEnvironmentComputingManagerForeignKey",
    ),
}

_BOOL = ("true", "false", "undefined")  # ExtendedBoolean, compared case-insensitively

#: Closed vocabularies: attribute -> accepted values (case-sensitive unless noted in _BOOL).
ENUMERATIONS: dict[str, tuple[str, ...]] = {
    "GLUE2ContactType": ("general", "security", "sysadmin", "usersupport"),
    "GLUE2ServiceQualityLevel": ("development", "pre-production", "production", "testing"),
    "GLUE2EndpointQualityLevel": ("development", "pre-production", "production", "testing"),
    "GLUE2EndpointHealthState": ("critical", "ok", "other", "unknown", "warning"),
    "GLUE2EndpointServingState": ("closed", "draining", "production", "queueing"),
    "GLUE2ComputingShareServingState": ("closed", "draining", "production", "queueing"),
    "GLUE2PolicyScheme": ("basic", "gacl", "org.glite.standard"),
    "GLUE2ExecutionEnvironmentOSFamily": ("linux", "macosx", "solaris", "windows"),
    "GLUE2ExecutionEnvironmentPlatform": ("amd64", "i386", "i686", "itanium", "powerpc", "sparc", "x86_64"),
    "GLUE2ExecutionEnvironmentCPUMultiplicity": (
        "multicpu-multicore", "multicpu-singlecore", "singlecpu-multicore", "singlecpu-singlecore",
    ),
    "GLUE2BenchmarkType": ("bogomips", "cfp2006", "cint2006", "linpack", "specfp2000", "specint2000", "hep-spec06"),
}

EXTENDED_BOOLEANS = (
    "GLUE2AdminDomainDistributed", "GLUE2ExecutionEnvironmentVirtualMachine", "GLUE2ExecutionEnvironmentConnectivityIn",
    "GLUE2ExecutionEnvironmentConnectivityOut", "GLUE2ComputingSharePreemption",
)

#: Placeholder values the profile treats as "the provider did not know" (an ERROR when published).
PLACEHOLDERS: dict[str, str] = {
    "GLUE2ComputingShareWaitingJobs": "444444",
    "GLUE2ComputingShareEstimatedAverageWaitingTime": "2146660842",
    "GLUE2ComputingShareEstimatedWorstWaitingTime": "2146660842",
}

#: Object classes whose presence demands another somewhere in the same tree.
NEEDS: tuple[tuple[str, str], ...] = (
    ("GLUE2Domain", "GLUE2Location"),
    ("GLUE2Domain", "GLUE2Contact"),
    ("GLUE2ComputingService", "GLUE2Service"),
    ("GLUE2ComputingEndpoint", "GLUE2Endpoint"),
    ("GLUE2ComputingShare", "GLUE2Share"),
    ("GLUE2Share", "GLUE2MappingPolicy"),
    ("GLUE2Endpoint", "GLUE2AccessPolicy"),
    ("GLUE2ComputingService", "GLUE2ComputingManager"),
    ("GLUE2ComputingManager", "GLUE2ExecutionEnvironment"),
)

#: Foreign keys that must name the GLUE2DomainID in the entry's own DN.
DOMAIN_KEYS = ("GLUE2LocationDomainForeignKey", "GLUE2ContactDomainForeignKey")

_DATETIME = re.compile(r"^-?\d{4}-(0\d|1[0-2])-([0-2]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(Z)?$")
_UINT = re.compile(r"^\d+$")


def _classes(entry: Entry) -> set[str]:
    return set(entry.get("objectclass", ()))


def _values(entry: Entry, attribute: str) -> Sequence[str]:
    return entry.get(attribute.lower(), ())


def problems(entries: Mapping[str, Entry]) -> list[str]:
    """Every breach of the profile's ERROR rules in ``entries`` (DN -> entry), as "dn: attribute: rule"."""
    found: list[str] = []
    all_classes = set().union(*(_classes(e) for e in entries.values())) if entries else set()
    for need, needed in NEEDS:
        if need in all_classes and needed not in all_classes:
            found.append(f"<tree>: objectClass: {need} is published but no {needed} is")
    for dn, entry in entries.items():
        for cls in sorted(_classes(entry)):
            if not (cls.startswith("GLUE2") or (cls == "organization" and dn.lower() == "o=glue")):
                found.append(f"{dn}: objectClass: {cls} is not a GLUE 2 class")
        for attribute, allowed in ENUMERATIONS.items():
            for value in _values(entry, attribute):
                if value not in allowed:
                    found.append(f"{dn}: {attribute}: {value!r} is not one of {', '.join(allowed)}")
        for attribute in EXTENDED_BOOLEANS:
            for value in _values(entry, attribute):
                if value.lower() not in _BOOL:
                    found.append(f"{dn}: {attribute}: {value!r} is not an ExtendedBoolean")
        for attribute, placeholder in PLACEHOLDERS.items():
            if placeholder in _values(entry, attribute):
                found.append(f"{dn}: {attribute}: the placeholder {placeholder} is published")
        for attribute, low, high in (("GLUE2LocationLatitude", -90, 90), ("GLUE2LocationLongitude", -180, 180)):
            for value in _values(entry, attribute):
                if not low < float(value) < high:
                    found.append(f"{dn}: {attribute}: {value} is outside ({low}, {high})")
        for attribute in ("GLUE2EntityCreationTime", "GLUE2EndpointStartTime"):
            for value in _values(entry, attribute):
                if not _DATETIME.match(value):
                    found.append(f"{dn}: {attribute}: {value!r} is not a DateTime (YYYY-MM-DDThh:mm:ssZ)")
        for name, values in entry.items():
            if name.startswith("glue2") and ("jobs" in name or "slots" in name or "cpus" in name):
                for value in values:
                    if not _UINT.match(value):
                        found.append(f"{dn}: {name}: {value!r} is not a non-negative integer")
        match = re.search(r"GLUE2DomainID=([^,]*),", dn)
        for attribute in DOMAIN_KEYS:
            for value in _values(entry, attribute):
                if match is None or match.group(1) != value:
                    found.append(f"{dn}: {attribute}: {value!r} does not name the GLUE2DomainID in the DN")
    return found


def missing_mandatory(entries: Mapping[str, Entry]) -> dict[str, set[str]]:
    """object class -> mandatory attributes absent from some entry of that class."""
    missing: dict[str, set[str]] = {}
    for entry in entries.values():
        for cls in _classes(entry):
            for attribute in MANDATORY.get(cls, ()):
                if not _values(entry, attribute):
                    missing.setdefault(cls, set()).add(attribute)
    return missing


def as_entries(published: Iterable[tuple[str, Mapping[str, Sequence[str]]]]) -> dict[str, Entry]:
    """(dn, attributes with any case) pairs as the DN -> lower-cased-names mapping the checks read."""
    return {dn: {k.lower(): list(v) for k, v in attrs.items()} for dn, attrs in published}
