"""In-process GRIS and GIIS servers on loopback (port 0) for GIIS tests on the real reactor."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor

from gridinfo.config import GIISConfig, GRISConfig, RegisterConfig, StaticChildConfig
from gridinfo.ldap.registrar import bound_port
from gridinfo.service import make_giis_service, make_gris_service

LOOPBACK = "tcp:0:interface=127.0.0.1"


def ce_ldif(name: str, count: int = 2, suffix: str = "mds-vo-name=local,o=grid") -> bytes:
    """A GRIS's worth of GLUE CEs."""
    out = []
    for i in range(count):
        out.append(
            f"dn: GlueCEUniqueID={name}-ce{i}.example.org:2119/jobmanager-pbs-q,{suffix}\n"
            f"objectClass: GlueCETop\nobjectClass: GlueCE\nobjectClass: GlueCEState\n"
            f"GlueCEUniqueID: {name}-ce{i}.example.org:2119/jobmanager-pbs-q\nGlueCEName: q\n"
            f"GlueCEStateFreeCPUs: {10 * (i + 1)}\n\n"
        )
    return "".join(out).encode()


class Running:
    """A started service with its bound port."""

    def __init__(self, top: Any):
        self.top = top
        top.startService()
        listeners = [s for s in top if hasattr(s, "bound_port")]
        self.port = bound_port(listeners)()
        self.stopped = False

    @property
    def backend(self) -> Any:
        return self.top.backend

    def url(self, suffix: str) -> str:
        return f"ldap://127.0.0.1:{self.port}/{suffix}"

    def stop(self) -> defer.Deferred[Any]:
        if self.stopped:
            return defer.succeed(None)
        self.stopped = True
        return defer.maybeDeferred(self.top.stopService)


def start_gris(name: str, *, register: str = "", count: int = 2, regperiod: float = 600, ttl: float = 1200, cachettl: float = 30, timeout: float = 5) -> Running:
    folder = Path(tempfile.mkdtemp(prefix=f"gridinfo-gris-{name}-"))
    (folder / "ce.ldif").write_bytes(ce_ldif(name, count))
    config = GRISConfig(listen=(LOOPBACK,), ldif=(str(folder),))
    if register:
        config = replace(
            config,
            register=(RegisterConfig(url=register, regperiod=regperiod, ttl=ttl, cachettl=cachettl, timeout=timeout, hostname="127.0.0.1"),),
        )
    return Running(make_gris_service(config, reactor))


def start_giis(
    name: str,
    *,
    register: str = "",
    children: tuple[StaticChildConfig, ...] = (),
    ttl: float = 1200,
    timeout: float = 5,
    **kw: Any,
) -> Running:
    config = GIISConfig(name=name, listen=(LOOPBACK,), children=children, **kw)
    if register:
        config = replace(
            config,
            register=(RegisterConfig(url=register, ttl=ttl, timeout=timeout, hostname="127.0.0.1"),),
        )
    return Running(make_giis_service(config, reactor))


@defer.inlineCallbacks
def register_now(server: Running) -> Any:
    """Send the server's registrations now (instead of waiting for the first timer)."""
    for parent in server.top.registrar.parents:
        yield parent.register()
        assert parent.state == "registered", parent.last_error


def ldap3_search(url: str, base: str, scope: str = "SUBTREE", filter: str = "(objectClass=*)", attributes: Any = None) -> defer.Deferred[Any]:
    """Search with ldap3 in a thread (the servers run in this reactor)."""
    from twisted.internet.threads import deferToThread

    def run() -> tuple[list[tuple[str, dict[str, list[bytes]]]], dict[str, Any]]:
        import ldap3

        conn = ldap3.Connection(ldap3.Server(url.rsplit("/", 1)[0], connect_timeout=10), auto_bind=True, receive_timeout=20)
        conn.search(base, filter, search_scope=getattr(ldap3, scope), attributes=attributes or [ldap3.ALL_ATTRIBUTES])
        entries = [(r["dn"], dict(r["raw_attributes"])) for r in conn.response if r["type"] == "searchResEntry"]
        result = dict(conn.result)
        conn.unbind()
        return entries, result

    return deferToThread(run)


def ldapsearch(port: int, *args: str) -> defer.Deferred[tuple[bytes, bytes, int]]:
    """OpenLDAP's ldapsearch, run without blocking the reactor."""
    from twisted.internet.utils import getProcessOutputAndValue

    return getProcessOutputAndValue(
        "/usr/bin/ldapsearch", ["-x", "-LLL", "-o", "ldif-wrap=no", "-H", f"ldap://127.0.0.1:{port}", *args], env={}
    )
