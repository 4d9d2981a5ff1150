"""A GIIS's push links over real sockets: loss and stale marking, keepto, resuming with a cookie on the
injected clock's backoff, registration cycles, and a GRIS keeping on-demand providers current for
its subscribers.  Servers run in this process on the real reactor; the links' timers run on a
``task.Clock`` where the backoff is the subject."""

from __future__ import annotations

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from gridinfo.config import GIISConfig, StaticChildConfig
from gridinfo.giis.leases import parse_generalized_time
from gridinfo.ldap.registrar import registration_message
from gridinfo.service import make_giis_service
from tests.giis.support import LOOPBACK, Running, register_now, start_giis, start_gris
from tests.integration.test_giis_forwarding import GRISProcess, ShiftedClock, entries_by_dn, request

DEADLINE = 30.0


@defer.inlineCallbacks
def until(check, what: str, deadline: float = DEADLINE):
    """Wait (on the real reactor, for real sockets) until ``check()`` holds."""
    end = reactor.seconds() + deadline
    while not check():
        if reactor.seconds() > end:
            raise AssertionError(f"{what}: not within {deadline} s")
        yield task.deferLater(reactor, 0.02, lambda: None)


def the_child(giis: Running, port: int):
    return next(c for c in giis.backend.children.all() if c.port == port and "glue" not in c.suffix.lower())


class PushLinkTests(unittest.TestCase):
    def start(self, server):
        self.addCleanup(server.stop)
        return server

    @defer.inlineCallbacks
    def test_a_dead_pushed_child_is_served_stale_until_keepto_then_gone(self):
        """A killed GRIS's stream drops: its entries stay, Mds-validto in the past, until its keepto."""
        clock = ShiftedClock()
        site = self.start(Running(make_giis_service(GIISConfig(name="site", listen=(LOOPBACK,)), clock)))
        gris = GRISProcess("a")
        self.addCleanup(gris.kill)
        site.backend.add(
            "Mds-Vo-Op-name=register,mds-vo-name=site,o=grid",
            registration_message(host="127.0.0.1", port=gris.port, suffix="mds-vo-name=local,o=grid",
                                 now=clock.seconds(), ttl=60, keepto=120, cachettl=10, timeout=5),
            "",
        )
        site.backend.search(request("mds-vo-name=site,o=grid"))  # makes the child, which subscribes
        child = the_child(site, gris.port)
        yield until(lambda: child.push is not None and child.push.live, "the stream live")
        fresh = site.backend.search(request("mds-vo-name=site,o=grid"))
        assert not isinstance(fresh, defer.Deferred) and len(fresh.entries) == 2  # from what we hold
        assert all("mds-validto" not in a for a in entries_by_dn(fresh).values())
        gris.kill()
        yield until(lambda: child.push.state == "lost", "the loss noticed")
        stale = entries_by_dn(site.backend.search(request("mds-vo-name=site,o=grid")))
        assert len(stale) == 2
        assert all(parse_generalized_time(a["mds-validto"][0].decode()) < clock.seconds() for a in stale.values())
        assert child.stats.state == "unreachable"
        clock.offset = 181  # past keepto (validto + 120 s)
        assert site.backend.search(request("mds-vo-name=site,o=grid")).entries == []
        assert site.backend.tree.lookup("GlueCEUniqueID=a-ce0.example.org:2119/jobmanager-pbs-q,mds-vo-name=site,o=grid") is None

    @defer.inlineCallbacks
    def test_a_dropped_stream_is_resumed_with_its_cookie_after_the_backoff(self):
        """The connection drops; the resubscription waits for the backoff (1 s on the injected clock),
        resumes with the cookie, receives only what changed meanwhile, and unmarks the rest."""
        site = self.start(start_giis("site"))
        clock = task.Clock()
        site.backend.push_clock = clock
        gris = self.start(start_gris("a", register=site.url("mds-vo-name=site,o=grid")))
        yield register_now(gris)
        site.backend.search(request("mds-vo-name=site,o=grid"))
        child = the_child(site, gris.port)
        link = child.push
        yield until(lambda: link.live, "the stream live")
        assert link.upserts >= 2
        cookie = link.consumer.cookie
        assert cookie
        child.client.close()  # the connection drops
        yield until(lambda: link.state == "lost", "the loss noticed")
        held = entries_by_dn(site.backend.search(request("mds-vo-name=site,o=grid")))
        assert all("mds-validto" in a for a in held.values())  # marked stale meanwhile
        tree = gris.backend.tree
        tree.add(tree.build("GlueCEUniqueID=new,mds-vo-name=local,o=grid",
                            [("objectClass", [b"GlueCETop", b"GlueCE"]), ("GlueCEUniqueID", [b"new"])], source="test"))
        [call] = clock.getDelayedCalls()
        assert call.getTime() == 1.0  # the first backoff step
        before = link.upserts
        clock.advance(1.0)
        yield until(lambda: link.live, "the stream resumed")
        assert link.upserts - before == 1  # only the new entry travelled
        now = entries_by_dn(site.backend.search(request("mds-vo-name=site,o=grid")))
        assert len(now) == 3 and all("mds-validto" not in a for a in now.values())

    @defer.inlineCallbacks
    def test_a_registration_cycle_of_pushed_giises_stays_bounded(self):
        """A registers with B and B with A: neither takes its own data back round the cycle."""
        a = self.start(start_giis("a"))
        b = self.start(start_giis("b", register=a.url("mds-vo-name=a,o=grid")))
        gris = self.start(start_gris("g", register=a.url("mds-vo-name=a,o=grid")))
        yield register_now(b)
        yield register_now(gris)
        # close the cycle: A registers with B (by hand: the registration a misconfigured A would send)
        b.backend.add(
            "Mds-Vo-Op-name=register,mds-vo-name=b,o=grid",
            registration_message(host="127.0.0.1", port=a.port, suffix="mds-vo-name=a,o=grid",
                                 now=reactor.seconds(), ttl=600, keepto=0, cachettl=10, timeout=5),
            "",
        )
        for server in (a, b):
            server.backend.search(request("o=grid"))
        at_b = "GlueCEUniqueID=g-ce0.example.org:2119/jobmanager-pbs-q,mds-vo-name=a,mds-vo-name=b,o=grid"
        yield until(lambda: b.backend.tree.lookup(at_b) is not None, "the GRIS's CE at B, through A")
        yield task.deferLater(reactor, 1.0, lambda: None)  # time for anything that would go round again
        sizes = [len(a.backend.tree), len(b.backend.tree)]
        yield task.deferLater(reactor, 1.0, lambda: None)
        assert [len(a.backend.tree), len(b.backend.tree)] == sizes
        for server, own in ((a, "mds-vo-name=a"), (b, "mds-vo-name=b")):
            for entry in server.backend.tree.entries.values():
                assert entry.dn.lower().count(own) <= 1, entry.dn
