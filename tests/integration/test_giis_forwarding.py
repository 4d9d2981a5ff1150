"""Forwarding and caching at a GIIS: slow children, dead children, static and mirrored children,
a slapd child, and giis-tree on a live hierarchy."""

from __future__ import annotations

import json
import sys

import pytest
from twisted.internet import defer, reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest
from zope.interface import directlyProvides, providedBy

from gridinfo.cli.giis_tree import all_healthy, render, walk
from gridinfo.config import StaticChildConfig
from gridinfo.directory.filters import parse_filter
from gridinfo.directory.query import Scope, SearchRequest
from gridinfo.ldap.client import decode_entry
from gridinfo.giis.leases import parse_generalized_time
from gridinfo.ldap.registrar import registration_message
from tests.giis.support import ce_ldif, ldapsearch, register_now, start_giis, start_gris
from tests.support.slapd import Slapd



class ShiftedClock:
    """The real reactor, except that ``seconds()`` can be moved forward (leases, cachettl)."""

    def __init__(self) -> None:
        self.offset = 0.0
        directlyProvides(self, *providedBy(reactor))

    def seconds(self) -> float:
        return reactor.seconds() + self.offset

    def __getattr__(self, name: str):
        return getattr(reactor, name)


class SlowBackend:
    """A real GRIS backend whose answers take ``delay`` seconds (a child on a slow network)."""

    def __init__(self, inner, delay: float):
        self.inner = inner
        self.delay = delay

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def search(self, request):
        d = defer.Deferred()
        reactor.callLater(self.delay, lambda: d.callback(self.inner.search(request)))
        return d


def entries_by_dn(result) -> dict[str, dict[str, list[bytes]]]:
    out = {}
    for op in result.entries:
        dn, attrs = decode_entry(op)
        out[dn] = {k.lower(): v for k, v in attrs}
    return out


def request(base: str, flt: str = "(objectClass=GlueCE)", scope: Scope = Scope.SUB, **kw) -> SearchRequest:
    return SearchRequest(base, scope, parse_filter(flt), **kw)


class GRISProcess:
    """A real ``gris`` process on loopback: killing it closes its connections, as in production."""

    def __init__(self, name: str):
        import subprocess
        import tempfile
        from pathlib import Path

        from gridinfo_dev.loadgen import wait_for_ldap
        from tests.support.ports import free_port

        folder = Path(tempfile.mkdtemp(prefix=f"gridinfo-gris-{name}-"))
        (folder / "ce.ldif").write_bytes(ce_ldif(name))
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gridinfo.cli.gris", "--listen", f"tcp:{self.port}:interface=127.0.0.1",
             "--ldif", str(folder), "--log-level", "error"],
            stdin=subprocess.DEVNULL,
        )
        wait_for_ldap("127.0.0.1", self.port, 30, alive=lambda: self.proc.poll() is None)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class ForwardingTests(unittest.TestCase):
    def start(self, server):
        self.addCleanup(server.stop)
        return server

    @defer.inlineCallbacks
    def test_slow_child_answers_late_and_serves_the_next_query(self):
        """One slow child: the answer comes within its timeout with the others' data; its late answer serves the next query."""
        site = self.start(start_giis("site", push=False))  # forwarding is the subject here
        fast = self.start(start_gris("fast", register=site.url("mds-vo-name=site,o=grid"), timeout=1))
        slow = self.start(start_gris("slow", register=site.url("mds-vo-name=site,o=grid"), timeout=1))
        slow.top.factory.backend = SlowBackend(slow.top.factory.backend, 1.5)
        yield register_now(fast)
        yield register_now(slow)
        first = yield site.backend.search(request("mds-vo-name=site,o=grid"))
        # the answer came at the slow child's timeout, not with its answer: it holds only the fast
        # child's entries, and the slow answer is still in flight (below)
        assert sorted(dn.split(".")[0] for dn in entries_by_dn(first)) == ["GlueCEUniqueID=fast-ce0", "GlueCEUniqueID=fast-ce1"]
        assert first.code == 0  # MDS2 answers with what it has, and says it is partial
        slow_child = next(c for c in site.backend.children.all() if c.port == slow.port)
        assert first.message == f"partial answer: 1 of 2 children failed; no data from {slow_child.url}"
        assert slow_child.stats.state == "slow"
        # the slow child's answer is still on its way; once it lands it is cached
        (pending,) = list(slow_child.inflight.values())
        yield pending
        assert slow_child.stats.late_answers == 1
        second = site.backend.search(request("mds-vo-name=site,o=grid"))
        assert not isinstance(second, defer.Deferred)  # both answers come from the cache now
        assert len(entries_by_dn(second)) == 4
        assert second.message == ""
        assert slow_child.stats.cache_hits == 1

    @defer.inlineCallbacks
    def test_dead_child_served_stale_until_keepto_then_gone(self):
        """A killed GRIS's data stays (Mds-validto in the past) until its keepto, then disappears."""
        from gridinfo.config import GIISConfig
        from gridinfo.service import make_giis_service
        from tests.giis.support import LOOPBACK, Running

        clock = ShiftedClock()
        site = self.start(Running(make_giis_service(GIISConfig(name="site", listen=(LOOPBACK,), push=False), clock)))
        gris = GRISProcess("a")
        self.addCleanup(gris.kill)
        now = clock.seconds()
        site.backend.add(
            "Mds-Vo-Op-name=register,mds-vo-name=site,o=grid",
            registration_message(host="127.0.0.1", port=gris.port, suffix="mds-vo-name=local,o=grid",
                                 now=now, ttl=60, keepto=120, cachettl=10, timeout=5),
            "",
        )
        fresh = yield site.backend.search(request("mds-vo-name=site,o=grid"))
        assert len(fresh.entries) == 2
        gris.kill()
        # past cachettl: the child is asked, fails, and its last answer is served marked stale
        clock.offset = 11
        stale = yield site.backend.search(request("mds-vo-name=site,o=grid"))
        got = entries_by_dn(stale)
        assert len(got) == 2
        for attrs in got.values():
            assert parse_generalized_time(attrs["mds-validto"][0]) < clock.seconds()
        (child,) = site.backend.children.all()
        assert child.stats.state == "unreachable"
        status = site.backend.registration_status(clock.seconds())
        assert b"unreachable" in status.entries[0]
        # past validto: INVALID, not asked any more, still served stale
        clock.offset = 61
        result = site.backend.search(request("mds-vo-name=site,o=grid"))
        assert not isinstance(result, defer.Deferred) and len(result.entries) == 2
        assert b"INVALID" in site.backend.registration_status(clock.seconds()).entries[0]
        # past keepto (validto + 120 s): gone, and so is the registration
        clock.offset = 181
        result = site.backend.search(request("mds-vo-name=site,o=grid"))
        assert len(result.entries) == 0
        assert site.backend.registration_status(clock.seconds()).entries == []

    @defer.inlineCallbacks
    def test_static_children_and_status_under_infosys(self):
        """Children listed in giis.yaml need no registration; their health is published under o=infosys."""
        a = self.start(start_gris("a"))
        b = self.start(start_gris("b"))
        site = self.start(
            start_giis(
                "site",
                push=False,  # asked per search: the cache counters below
                children=(
                    StaticChildConfig(url=a.url("mds-vo-name=local,o=grid"), timeout=5),
                    StaticChildConfig(url=b.url("mds-vo-name=local,o=grid"), timeout=5),
                ),
            )
        )
        out, err, code = yield ldapsearch(site.port, "-b", "o=grid", "(GlueCEStateFreeCPUs>=20)", "dn")
        assert code == 0, err
        assert out.decode().count("dn: ") == 2
        out, err, code = yield ldapsearch(site.port, "-b", "o=infosys", "(objectClass=GridinfoChildStatus)")
        assert code == 0, err
        text = out.decode()
        assert text.count("GridinfoChildState: ok") == 2 and "Mds-Reg-status: STATIC" in text
        assert "GridinfoChildCacheMisses: 1" in text

    @defer.inlineCallbacks
    def test_size_limit_holds_across_children(self):
        """sizeLimit counts the merged result: own entries and every child's."""
        site = self.start(start_giis("site"))
        for name in "ab":
            g = self.start(start_gris(name, register=site.url("mds-vo-name=site,o=grid"), count=3))
            yield register_now(g)
        out, err, code = yield ldapsearch(site.port, "-z", "4", "-b", "o=grid", "(objectClass=GlueCE)", "dn")
        assert code == 4, (code, err)
        assert out.decode().count("dn: ") == 4

    @defer.inlineCallbacks
    def test_giis_tree_on_a_live_hierarchy_with_a_node_killed(self):
        """giis-tree draws top -> site -> two GRIS, marks the killed GRIS, and exits non-zero."""
        top = self.start(start_giis("top"))
        site = self.start(start_giis("site", register=top.url("mds-vo-name=top,o=grid")))
        a = self.start(start_gris("a", register=site.url("mds-vo-name=site,o=grid")))
        b = self.start(start_gris("b", register=site.url("mds-vo-name=site,o=grid")))
        for s in (site, a, b):
            yield register_now(s)
        root = yield walk(reactor, top.url("mds-vo-name=top,o=grid"), depth=5, timeout=5, count=True)
        assert all_healthy(root)
        (site_node,) = root.children
        assert site_node.name == "site" and site_node.reg_status == "VALID"
        assert sorted(c.port for c in site_node.children) == sorted([a.port, b.port])
        assert all(c.entries == 3 for c in site_node.children)  # suffix entry + 2 CEs
        yield b.stop()
        root = yield walk(reactor, top.url("mds-vo-name=top,o=grid"), depth=5, timeout=5, count=False)
        assert not all_healthy(root)
        text = render(root, colour=True)
        dead_line = next(line for line in text.splitlines() if f":{b.port}/" in line)
        assert "UNREACHABLE" in dead_line and "\033[31m" in dead_line
        # the command itself: JSON for scripts, exit status 1
        out, err, code = yield getProcessOutputAndValue(
            sys.executable,
            ["-m", "gridinfo.cli.giis_tree", "--json", "--timeout", "5", top.url("mds-vo-name=top,o=grid")],
            env={"PYTHONPATH": ":".join(sys.path)},
        )
        assert code == 1, err
        tree = json.loads(out)
        kids = tree["children"][0]["children"]
        assert sorted(k["healthy"] for k in kids) == [False, True]
        assert all(k["lease_seconds_left"] > 1000 for k in kids)


@pytest.mark.slapd
class SlapdChildTests(unittest.TestCase):
    slapd: Slapd

    def setUp(self) -> None:
        ldif = (
            b"dn: o=grid\nobjectClass: organization\no: grid\n\n"
            b"dn: Mds-Vo-name=resource,o=grid\nobjectClass: MdsVo\nMds-Vo-name: resource\n\n"
            + ce_ldif("bdii", 3, suffix="Mds-Vo-name=resource,o=grid")
        )
        self.slapd = Slapd(ldif)
        self.slapd.start()
        self.addCleanup(self.slapd.stop)

    def start(self, server):
        self.addCleanup(server.stop)
        return server

    @defer.inlineCallbacks
    def test_openldap_slapd_as_a_forwarded_child(self):
        """A slapd (a BDII, say) is a child like any other; its names are appended below the GIIS."""
        url = f"{self.slapd.url}Mds-Vo-name=resource,o=grid"
        site = self.start(start_giis("site", children=(StaticChildConfig(url=url, timeout=5),)))
        out, err, code = yield ldapsearch(site.port, "-b", "mds-vo-name=site,o=grid", "(GlueCEStateFreeCPUs>=20)", "dn")
        assert code == 0, err
        dns = sorted(line for line in out.decode().splitlines() if line.startswith("dn:"))
        assert dns == [
            f"dn: GlueCEUniqueID=bdii-ce{i}.example.org:2119/jobmanager-pbs-q,Mds-Vo-name=resource,mds-vo-name=site,o=grid"
            for i in (1, 2)
        ]

    @defer.inlineCallbacks
    def test_mirror_mode_pulls_the_subtree_and_touches_only_changes(self):
        """Mirror mode: the whole subtree is pulled and answered locally; an unchanged pull touches nothing."""
        url = f"{self.slapd.url}Mds-Vo-name=resource,o=grid"
        site = self.start(start_giis("site", children=(StaticChildConfig(url=url, mode="mirror", period=3600, timeout=5),)))
        (child,) = site.backend.children.all()
        changes = yield site.backend.pull_mirror(child)
        assert changes in (0, 4)  # the service's own first pull may have run already
        assert len(child.mirror) == 4
        before = {k: e for k, e in child.mirror.entries.items()}
        changes = yield site.backend.pull_mirror(child)
        assert changes == 0
        assert all(child.mirror.entries[k] is e for k, e in before.items())  # untouched objects
        result = site.backend.search(request("mds-vo-name=site,o=grid", "(GlueCEStateFreeCPUs<=20)"))
        assert not isinstance(result, defer.Deferred)  # answered locally, no forwarding
        assert len(result.entries) == 2
        # the child stops answering: its mirrored entries stay, marked stale (Mds-validto past)
        import socket

        from gridinfo.ldap.client import LDAPClient

        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
        probe.close()
        child.client = LDAPClient(reactor, "127.0.0.1", closed_port, connect_timeout=2)
        yield site.backend.pull_mirror(child)
        assert child.stats.state == "unreachable"
        result = site.backend.search(request("mds-vo-name=site,o=grid", "(GlueCEStateFreeCPUs<=20)"))
        stale = entries_by_dn(result)
        assert len(stale) == 2
        now = reactor.seconds()
        assert all(parse_generalized_time(a["mds-validto"][0].decode()) < now for a in stale.values())
