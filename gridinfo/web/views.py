"""Pure: the rows of each page, built from decoded entries (``(dn, {attribute: [values]})``).

Attribute names are matched case-insensitively, as LDAP does; numbers that do not parse are
shown as missing (``None``), never as zero.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from gridinfo.directory.gtime import parse_generalized_time
from gridinfo.errors import LDAPError

Entry = tuple[str, dict[str, list[str]]]


class Attrs:
    """Case-insensitive access to one entry's attributes."""

    def __init__(self, attrs: dict[str, list[str]]):
        self.values = {k.lower(): v for k, v in attrs.items()}

    def all(self, name: str) -> list[str]:
        return self.values.get(name.lower(), [])

    def first(self, name: str, default: str = "") -> str:
        v = self.values.get(name.lower())
        return v[0] if v else default

    def number(self, name: str) -> float | None:
        return to_number(self.first(name))

    def integer(self, name: str) -> int | None:
        n = self.number(name)
        return int(n) if n is not None else None

    def has_class(self, name: str) -> bool:
        return name.lower() in {v.lower() for v in self.all("objectClass")}


def to_number(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if value == value and abs(value) != float("inf") else None


_RDN_SEPARATOR = re.compile(r"(?<!\\),")


def ancestors(dn: str) -> list[str]:
    """The DNs above ``dn``, nearest first, lower-cased (split at unescaped commas: used only to
    find the site entry above a queue, whose DN the same server wrote the same way)."""
    parts = _RDN_SEPARATOR.split(dn.lower())
    return [",".join(p.strip() for p in parts[i:]) for i in range(1, len(parts))]


def gtime(text: str) -> float | None:
    try:
        return parse_generalized_time(text) if text else None
    except (ValueError, LDAPError):
        return None


# -- hierarchy -----------------------------------------------------------------------------------


def hierarchy(
    kind: str, suffix: str, own: Sequence[Entry], children: Sequence[Entry], providers: Sequence[Entry],
    now: float, message: str = "",
) -> dict[str, Any]:
    """giis-tree's picture of this node: itself, its children (GIIS) or providers (GRIS).

    ``own``: the server status entry (``cn=giis`` / ``cn=<gris>`` under o=infosys);
    ``children``: GridinfoChildStatus entries; ``providers``: GridinfoProviderStatus entries.
    """
    server = Attrs(own[0][1]) if own else Attrs({})
    node: dict[str, Any] = {
        "kind": kind,
        "suffix": suffix,
        "entries": server.integer("GridinfoTotalEntries"),
        "connections": server.integer("GridinfoConnections"),
        "uptime": server.integer("GridinfoUptime"),
        "partial": message,
        "children": [],
        "providers": [],
    }
    for dn, attrs in children:
        a = Attrs(attrs)
        valid_to = gtime(a.first("Mds-validto"))
        keep_to = gtime(a.first("Mds-keepto"))
        state = a.first("GridinfoChildState")
        lease = a.first("Mds-Reg-status")
        node["children"].append({
            "dn": dn,
            "url": a.first("GridinfoChildURL"),
            "suffix": a.first("GridinfoChildSuffix") or a.first("Mds-Service-Ldap-suffix"),
            "host": a.first("Mds-Service-hn"),
            "port": a.integer("Mds-Service-port"),
            "mode": a.first("GridinfoChildMode"),
            "state": state,
            "lease": lease,
            "lease_left": round(valid_to - now, 1) if valid_to is not None else None,
            "keep_left": round(keep_to - now, 1) if keep_to is not None else None,
            "latency_ms": a.integer("GridinfoChildLatency"),
            "entries": a.integer("GridinfoChildEntries"),
            "cache_hits": a.integer("GridinfoChildCacheHits"),
            "stale": lease == "INVALID" or (valid_to is not None and valid_to < now),
            "healthy": state in ("ok", "new") and lease != "INVALID",
        })
    for dn, attrs in providers:
        a = Attrs(attrs)
        state = a.first("GridinfoProviderState")
        node["providers"].append({
            "dn": dn,
            "name": a.first("GridinfoProviderName"),
            "state": state,
            "runs": a.integer("GridinfoProviderRuns"),
            "failures": a.integer("GridinfoProviderFailures"),
            "entries": a.integer("GridinfoProviderEntries"),
            "duration_ms": a.integer("GridinfoProviderDuration"),
            "last_run": a.first("GridinfoProviderLastRun"),
            "last_error": a.first("GridinfoProviderLastError"),
            "stale": state not in ("fresh", "new"),
        })
    node["healthy"] = not message and all(c["healthy"] for c in node["children"]) and not any(
        p["last_error"] for p in node["providers"]
    )
    return node


# -- sites and queues ----------------------------------------------------------------------------


#: what each page reads (searches ask for these only: less to encode and decode)
QUEUE_ATTRIBUTES = (
    "objectClass", "GlueSiteName", "GlueSiteUniqueID", "GLUE2DomainID", "GlueCEUniqueID", "GlueCEName",
    "GlueCEInfoTotalCPUs", "GlueCEStateFreeCPUs", "GlueCEStateRunningJobs", "GlueCEStateWaitingJobs",
    "GlueCEStateStatus", "GLUE2ShareID", "GLUE2ComputingShareMappingQueue", "GLUE2EntityName",
    "GLUE2ComputingShareFreeSlots", "GLUE2ComputingShareUsedSlots", "GLUE2ComputingShareRunningJobs",
    "GLUE2ComputingShareWaitingJobs", "GLUE2ComputingShareServingState",
)
VM_ATTRIBUTES = (
    "objectClass", "GridinfoVMID", "GridinfoVMName", "GridinfoVMState", "GridinfoJobGenericState", "GridinfoVMOwner",
    "GridinfoVMHostName", "GridinfoVMPhysicalHost", "GridinfoVMUptime", "GridinfoVMJob", "GridinfoVMStateTime",
    "GridinfoVMLastEvent", "GridinfoVMRunCount", "GridinfoVMHostHistory", "GridinfoJobID", "GridinfoJobState",
    "GridinfoJobOwner", "GridinfoJobQueue", "GridinfoJobVM", "GridinfoJobStateTime", "GridinfoJobExecHost",
)
PATH_ATTRIBUTES = (
    "objectClass", "GridinfoPathID", "GridinfoPathSource", "GridinfoPathDestination", "GridinfoPathMethod",
    "GridinfoPathRTTMin", "GridinfoPathRTTAvg", "GridinfoPathRTTMax", "GridinfoPathLoss", "GridinfoPathProbes",
    "GridinfoPathHops", "GridinfoPathThroughput", "GridinfoPathMeasured", "GridinfoPathError",
)


def _load(total: float | None, free: float | None) -> float | None:
    if not total or free is None:
        return None
    return max(0.0, min(1.0, (total - free) / total))


def queues(entries: Iterable[Entry]) -> dict[str, Any]:
    """One row per site and per GlueCE / GLUE2ComputingShare, with the site of each queue."""
    entries = list(entries)
    sites: dict[str, dict[str, Any]] = {}
    by_dn: dict[str, str] = {}
    by_container: dict[str, str] = {}
    for dn, attrs in entries:
        a = Attrs(attrs)
        if a.has_class("GlueSite"):
            name = a.first("GlueSiteName") or a.first("GlueSiteUniqueID")
            sid = a.first("GlueSiteUniqueID") or name
        elif a.has_class("GLUE2AdminDomain"):
            sid = a.first("GLUE2DomainID")
            name = sid
        else:
            continue
        sites.setdefault(sid, {"id": sid, "name": name, "dn": dn, "schema": [], "queues": 0,
                               "total": 0.0, "free": 0.0, "running": 0, "waiting": 0})
        sites[sid]["schema"].append("GLUE2" if a.has_class("GLUE2AdminDomain") else "GLUE 1.3")
        by_dn[",".join(p.strip() for p in _RDN_SEPARATOR.split(dn.lower()))] = sid
        above = ancestors(dn)
        if above:
            by_container.setdefault(above[0], sid)
    rows: list[dict[str, Any]] = []
    for dn, attrs in entries:
        a = Attrs(attrs)
        row: dict[str, Any]
        if a.has_class("GlueCE"):
            total = a.number("GlueCEInfoTotalCPUs")
            free = a.number("GlueCEStateFreeCPUs")
            row = {
                "schema": "GLUE 1.3", "id": a.first("GlueCEUniqueID"), "name": a.first("GlueCEName"),
                "total": total, "free": free,
                "running": a.integer("GlueCEStateRunningJobs"), "waiting": a.integer("GlueCEStateWaitingJobs"),
                "state": a.first("GlueCEStateStatus"),
            }
        elif a.has_class("GLUE2ComputingShare"):
            free = a.number("GLUE2ComputingShareFreeSlots")
            used = a.number("GLUE2ComputingShareUsedSlots")
            total = free + used if free is not None and used is not None else None
            row = {
                "schema": "GLUE2", "id": a.first("GLUE2ShareID"),
                "name": a.first("GLUE2ComputingShareMappingQueue") or a.first("GLUE2EntityName"),
                "total": total, "free": free,
                "running": a.integer("GLUE2ComputingShareRunningJobs"),
                "waiting": a.integer("GLUE2ComputingShareWaitingJobs"),
                "state": a.first("GLUE2ComputingShareServingState"),
            }
        else:
            continue
        row["dn"] = dn
        row["load"] = _load(total, free)
        site = ""
        for up in ancestors(dn):
            site = by_dn.get(up) or by_container.get(up) or ""
            if site:
                break
        row["site"] = site
        rows.append(row)
        if site:
            s = sites[site]
            s["queues"] += 1
            for k in ("total", "free", "running", "waiting"):
                if row[k] is not None:
                    s[k] += row[k]
    for s in sites.values():
        s["load"] = _load(s["total"], s["free"])
    rows.sort(key=lambda r: (r["site"], r["name"], r["id"]))
    return {"sites": sorted(sites.values(), key=lambda s: s["name"]), "queues": rows}


# -- VMs and jobs --------------------------------------------------------------------------------


def _state_times(values: list[str]) -> list[dict[str, Any]]:
    out = []
    for v in values:
        state, _, when = v.partition("=")
        out.append({"state": state, "time": when, "epoch": gtime(when)})
    out.sort(key=lambda s: s["epoch"] or 0.0)
    return out


def vms_and_jobs(entries: Iterable[Entry], now: float) -> dict[str, Any]:
    vms: list[dict[str, Any]] = []
    jobs: list[dict[str, Any]] = []
    for dn, attrs in entries:
        a = Attrs(attrs)
        if a.has_class("GridinfoVM"):
            uptime = a.integer("GridinfoVMUptime")
            vms.append({
                "dn": dn, "id": a.first("GridinfoVMID"), "name": a.first("GridinfoVMName"),
                "state": a.first("GridinfoVMState"), "generic_state": a.first("GridinfoJobGenericState"),
                "owner": a.first("GridinfoVMOwner"), "host": a.first("GridinfoVMHostName"),
                "physical_host": a.first("GridinfoVMPhysicalHost"), "uptime": uptime,
                "jobs": a.all("GridinfoVMJob"), "history": _state_times(a.all("GridinfoVMStateTime")),
                "last_event": a.first("GridinfoVMLastEvent"),
                "runs": a.integer("GridinfoVMRunCount"),
                # "<host> <since> <until or ->", oldest first: the hosts it ran on
                "hosts": [h.split(" ", 1)[0] for h in a.all("GridinfoVMHostHistory")],
            })
        elif a.has_class("GridinfoJob"):
            jobs.append({
                "dn": dn, "id": a.first("GridinfoJobID"), "state": a.first("GridinfoJobState"),
                "generic_state": a.first("GridinfoJobGenericState"), "owner": a.first("GridinfoJobOwner"),
                "queue": a.first("GridinfoJobQueue"), "vms": a.all("GridinfoJobVM"),
                "exec_host": a.first("GridinfoJobExecHost"),
                "history": _state_times(a.all("GridinfoJobStateTime")),
            })
    vms.sort(key=lambda v: v["id"])
    jobs.sort(key=lambda j: j["id"])
    return {"vms": vms, "jobs": jobs}


def events(entries: Iterable[Entry]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for dn, attrs in entries:
        a = Attrs(attrs)
        out.append({
            "dn": dn, "id": a.first("GridinfoEventID"), "type": a.first("GridinfoEventType"),
            "source": a.first("GridinfoEventSource"), "seq": a.integer("GridinfoEventSeq"),
            "time": a.first("GridinfoEventTime"), "attributes": a.all("GridinfoEventAttribute"),
        })
    out.sort(key=lambda e: (e["time"], e["seq"] or 0))
    return out


# -- network paths -------------------------------------------------------------------------------


def paths(entries: Iterable[Entry]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for dn, attrs in entries:
        a = Attrs(attrs)
        if not a.has_class("GridinfoNetworkPath"):
            continue
        out.append({
            "dn": dn, "id": a.first("GridinfoPathID"), "source": a.first("GridinfoPathSource"),
            "destination": a.first("GridinfoPathDestination"), "method": a.first("GridinfoPathMethod"),
            "rtt_min": a.number("GridinfoPathRTTMin"), "rtt_avg": a.number("GridinfoPathRTTAvg"),
            "rtt_max": a.number("GridinfoPathRTTMax"), "loss": a.number("GridinfoPathLoss"),
            "probes": a.integer("GridinfoPathProbes"), "hops": a.integer("GridinfoPathHops"),
            "throughput": a.number("GridinfoPathThroughput"), "measured": a.first("GridinfoPathMeasured"),
            "error": a.first("GridinfoPathError"),
        })
    out.sort(key=lambda p: p["id"])
    return out


# -- the browser: foreign keys as links ----------------------------------------------------------

#: GLUE 2 foreign keys name an ID; the class it names is the end of the attribute's name
_GLUE2_TARGETS = (
    ("ExecutionEnvironment", "GLUE2ResourceID"), ("Endpoint", "GLUE2EndpointID"), ("Service", "GLUE2ServiceID"),
    ("Share", "GLUE2ShareID"), ("Manager", "GLUE2ManagerID"), ("Resource", "GLUE2ResourceID"),
    ("Location", "GLUE2LocationID"), ("Contact", "GLUE2ContactID"), ("Domain", "GLUE2DomainID"),
    ("Activity", "GLUE2ActivityID"), ("Benchmark", "GLUE2BenchmarkID"), ("Policy", "GLUE2PolicyID"),
    ("Application", "GLUE2ApplicationEnvironmentID"), ("Environment", "GLUE2ApplicationEnvironmentID"),
)
_GRIDINFO_LINKS = {"gridinfojobvm": "GridinfoVMID", "gridinfovmjob": "GridinfoJobID"}


def link_filter(attribute: str, value: str) -> str | None:
    """The filter that finds what a foreign-key value names, or None when it names nothing."""
    low = attribute.lower()
    if low in ("glueforeignkey", "gluechunkkey"):
        name, sep, target = value.partition("=")
        if not sep or not name.strip():
            return None
        return f"({name.strip()}={_escape_assertion(target.strip().encode())})"
    if low in _GRIDINFO_LINKS:
        return f"({_GRIDINFO_LINKS[low]}={_escape_assertion(value.encode())})"
    if low.startswith("glue2") and low.endswith("foreignkey"):
        stem = attribute[: -len("ForeignKey")]
        for ending, target_attr in _GLUE2_TARGETS:
            if stem.lower().endswith(ending.lower()):
                return f"({target_attr}={_escape_assertion(value.encode())})"
    return None


def _escape_assertion(value: bytes) -> str:
    """An assertion value for a filter string (RFC 4515: ``*()\\`` and non-printables as hex)."""
    return "".join(f"\\{b:02x}" if b in b"*()\\" or b < 0x20 or b >= 0x7F else chr(b) for b in value)


def entry_view(dn: str, attrs: dict[str, list[str]]) -> dict[str, Any]:
    out = []
    for name, values in attrs.items():
        out.append({"name": name, "values": [{"value": v, "link": link_filter(name, v)} for v in values]})
    return {"dn": dn, "attributes": out}
