"""The RFC 4533 consumer (gridinfo.ldap.syncclient) over real sockets: a real ``gris``, a real slapd with syncprov.

The GRIS is the one of test_change_streams.py: a provider printing a CE per line of a data file,
refreshed every second.  The replica records what the consumer fed it; a test waits for what it
expects with a Deferred that the replica fires (bounded by a deadline, since a real process is
on the other end).  While the consumer is disconnected, the tests wait for the provider's change
with ``wait_for`` on ldapsearch, as test_change_streams.py does.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial import unittest

from gridinfo import ber

from gridinfo.directory import filters as F
from gridinfo.ldap import wire
from gridinfo.ldap.client import ConnectionLost, LDAPClient, PeerProtocolError
from gridinfo.ldap.syncclient import SyncConsumer, SyncEnd, SyncProtocolError, read_root_dse, root_dse_supports_sync
from gridinfo_dev.daemon import wait_for
from tests.integration.test_change_streams import BASE, Site, free_cpus
from tests.support.gris import GrisProcess
from tests.support.ports import LOOPBACK
from tests.support.slapd import ldapmodify, syncprov

DEADLINE = 60.0
CE = F.parse_filter("(objectClass=GlueCE)")


def scratch(test: unittest.TestCase) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="gridinfo-sync-"))
    test.addCleanup(shutil.rmtree, folder, True)
    return folder


def ce(name: str) -> str:
    return f"GlueCEUniqueID={name},{BASE}".lower()


class Replica:
    """A SyncReplica that keeps the entries and a log of every call, and fires waiters."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, list[bytes]]] = {}
        self.log: list[tuple[str, str]] = []
        self.refreshes = 0
        self._waiters: list[tuple[Callable[[], bool], defer.Deferred[None]]] = []

    def sync_upsert(self, dn: str, attributes: list[tuple[str, list[bytes]]]) -> None:
        self.entries[dn.lower()] = {name.lower(): values for name, values in attributes}
        self.log.append(("upsert", dn.lower()))
        self._check()

    def sync_remove(self, dn: str) -> None:
        self.entries.pop(dn.lower(), None)
        self.log.append(("remove", dn.lower()))
        self._check()

    def sync_refreshed(self) -> None:
        self.refreshes += 1
        self.log.append(("refreshed", ""))
        self._check()

    def free(self) -> dict[str, str]:
        """GlueCEUniqueID -> GlueCEStateFreeCPUs of the CEs held."""
        return {
            attrs["glueceuniqueid"][0].decode(): attrs["gluecestatefreecpus"][0].decode()
            for attrs in self.entries.values()
            if "glueceuniqueid" in attrs
        }

    def _check(self) -> None:
        for item in list(self._waiters):
            predicate, d = item
            if predicate():
                self._waiters.remove(item)
                d.callback(None)

    def wait(self, what: str, predicate: Callable[[], bool]) -> defer.Deferred[None]:
        d: defer.Deferred[None] = defer.Deferred()
        if predicate():
            d.callback(None)
            return d
        item = (predicate, d)
        self._waiters.append(item)

        def expire() -> None:
            if item in self._waiters:
                self._waiters.remove(item)
                d.errback(AssertionError(f"not within {DEADLINE:g} s: {what}; the replica saw {self.log}"))

        call = reactor.callLater(DEADLINE, expire)
        d.addBoth(lambda r: (call.cancel() if call.active() else None, r)[1])
        return d


class GrisConsumerTests(unittest.TestCase):
    """A consumer of a real GRIS: refresh, persist, resume with the cookie."""

    def setUp(self) -> None:
        folder = scratch(self)
        self.site = Site(folder)
        self.gris = GrisProcess(["--config", str(self.site.config)])
        self.gris.start()
        self.addCleanup(self.gris.stop)
        self.site.gris = self.gris
        wait_for("the provider's first run", lambda: free_cpus(self.gris.url) == {"ce1": "1", "ce2": "2"}, DEADLINE)
        self.client = LDAPClient.from_url(reactor, self.gris.url, connect_timeout=10)
        self.addCleanup(self.client.close)

    def consumer(self, replica: Replica, **kw: Any) -> SyncConsumer:
        return SyncConsumer(self.client, BASE, replica, filter=CE, **kw)

    def change(self, ces: dict[str, int], check: Callable[[dict[str, str]], bool]) -> None:
        """Change the provider's data and wait (bounded) until the GRIS serves it."""
        self.site.set(ces)
        wait_for("the provider's change", lambda: check(free_cpus(self.gris.url)), DEADLINE)

    @defer.inlineCallbacks
    def test_the_root_dse_of_a_gris_advertises_sync(self):
        """A GIIS subscribes to a child whose root DSE lists the Sync Request control."""
        assert (yield root_dse_supports_sync(self.client, 10)) is True
        dse = yield read_root_dse(self.client, 10)
        assert "o=grid" in [c.lower() for c in dse.naming_contexts] and "1.3.6.1.1.8" in dse.supported_extensions

    @defer.inlineCallbacks
    def test_refresh_persist_and_resume_with_the_cookie(self):
        """Every entry then sync_refreshed; changes as upserts and removes; after a reconnect with
        the cookie only what changed meanwhile, an entry removed meanwhile removed."""
        replica = Replica()
        consumer = self.consumer(replica, rid="001")
        ended = consumer.run()
        yield replica.wait("the refresh", lambda: replica.refreshes == 1)
        assert replica.free() == {"ce1": "1", "ce2": "2"} and consumer.refreshed
        assert replica.log[-1] == ("refreshed", "") and len(replica.log) == 3
        assert consumer.cookie is not None and consumer.cookie.startswith(b"rid=001,csn=")
        assert len(consumer.uuids) == 2

        self.site.set({"ce1": 7, "ce2": 2, "ce3": 3})
        yield replica.wait("ce1 modified, ce3 added", lambda: replica.free() == {"ce1": "7", "ce2": "2", "ce3": "3"})
        self.site.set({"ce1": 7, "ce3": 3})
        yield replica.wait("ce2 removed", lambda: replica.free() == {"ce1": "7", "ce3": "3"})
        assert replica.log[-1] == ("remove", ce("ce2"))

        # the connection drops (the client is closed under the running search)
        self.client.close()
        with pytest.raises(ConnectionLost):
            yield ended
        assert not consumer.running and consumer.cookie is not None

        self.change({"ce1": 8, "ce4": 4}, lambda f: f == {"ce1": "8", "ce4": "4"})  # ce3 removed while away
        mark = len(replica.log)
        ended = consumer.run()
        yield replica.wait("the resumed refresh", lambda: replica.refreshes == 2)
        resumed = replica.log[mark:]
        assert sorted(resumed[:-1]) == [("remove", ce("ce3")), ("upsert", ce("ce1")), ("upsert", ce("ce4"))]
        assert replica.free() == {"ce1": "8", "ce4": "4"}

        consumer.cancel()
        end = yield ended
        assert end == SyncEnd(118, end.message)

    @defer.inlineCallbacks
    def test_an_unknown_cookie_gets_a_full_refresh_whose_present_phase_drops_stale_entries(self):
        """A cookie the GRIS cannot use (garbage, another server's) is answered with everything;
        what the consumer held and was not sent again is removed."""
        replica = Replica()
        consumer = self.consumer(replica)
        ended = consumer.run()
        yield replica.wait("the refresh", lambda: replica.refreshes == 1)
        consumer.cancel()
        assert (yield ended).code == 118

        self.change({"ce2": 2, "ce5": 5}, lambda f: f == {"ce2": "2", "ce5": "5"})
        consumer.session.cookie = b"rid=000,csn=not-a-csn"
        mark = len(replica.log)
        ended = consumer.run()
        yield replica.wait("the full refresh", lambda: replica.refreshes == 2)
        again = replica.log[mark:]
        assert sorted(again[:-1]) == [("remove", ce("ce1")), ("upsert", ce("ce2")), ("upsert", ce("ce5"))]
        assert replica.free() == {"ce2": "2", "ce5": "5"}
        consumer.cancel()
        yield ended


class GrisRefreshRequiredTests(unittest.TestCase):
    """A GRIS whose change streams may fall one DN behind: a provider run changing two CEs overflows it."""

    @defer.inlineCallbacks
    def test_e_sync_refresh_required_forgets_the_cookie_and_the_next_run_refreshes_in_full(self):
        folder = scratch(self)
        site = Site(folder)
        site.config.write_text(site.config.read_text() + "limits:\n  stream_buffer_entries: 1\n")
        gris = GrisProcess(["--config", str(site.config)])
        gris.start()
        self.addCleanup(gris.stop)
        wait_for("the provider's first run", lambda: free_cpus(gris.url) == {"ce1": "1", "ce2": "2"}, DEADLINE)
        client = LDAPClient.from_url(reactor, gris.url, connect_timeout=10)
        self.addCleanup(client.close)
        replica = Replica()
        consumer = SyncConsumer(client, BASE, replica, filter=CE)
        ended = consumer.run()
        yield replica.wait("the refresh", lambda: replica.refreshes == 1)
        assert consumer.cookie is not None

        site.set({"ce1": 10, "ce2": 20, "ce3": 30})  # three DNs in one provider run: over the bound of 1
        end = yield ended
        assert end.code == 4096 and consumer.cookie is None
        mark = len(replica.log)
        wait_for("the provider's change", lambda: free_cpus(gris.url) == {"ce1": "10", "ce2": "20", "ce3": "30"}, DEADLINE)
        ended = consumer.run()
        yield replica.wait("the full refresh", lambda: replica.refreshes == 2)
        assert sorted(replica.log[mark:-1]) == [("upsert", ce(n)) for n in ("ce1", "ce2", "ce3")]
        consumer.cancel()
        yield ended


SLAPD_LDIF = b"""\
dn: o=grid
objectClass: organization
o: grid

dn: Mds-Vo-name=local,o=grid
objectClass: MdsVo
Mds-Vo-name: local

""" + b"".join(
    b"dn: GlueCEUniqueID=ce%d,Mds-Vo-name=local,o=grid\n"
    b"objectClass: GlueCETop\nobjectClass: GlueCE\nobjectClass: GlueCEState\n"
    b"GlueCEUniqueID: ce%d\nGlueCEName: q\nGlueCEStateFreeCPUs: %d\n\n" % (i, i, i)
    for i in (1, 2, 3)
)


def slapd_ce(name: str, free: int) -> str:
    return (
        f"dn: GlueCEUniqueID={name},{BASE}\nchangetype: add\nobjectClass: GlueCETop\nobjectClass: GlueCE\n"
        f"objectClass: GlueCEState\nGlueCEUniqueID: {name}\nGlueCEName: q\nGlueCEStateFreeCPUs: {free}\n"
    )


def slapd_free(name: str, free: int) -> str:
    return f"dn: GlueCEUniqueID={name},{BASE}\nchangetype: modify\nreplace: GlueCEStateFreeCPUs\nGlueCEStateFreeCPUs: {free}\n"


def slapd_delete(name: str) -> str:
    return f"dn: GlueCEUniqueID={name},{BASE}\nchangetype: delete\n"


@pytest.mark.slapd
class SlapdSyncprovConsumerTests(unittest.TestCase):
    """A consumer of OpenLDAP slapd with the syncprov overlay: the other provider a GIIS meets."""

    sessionlog = 0  # no session log: slapd answers a cookie with a present phase (syncIdSets)

    def setUp(self) -> None:
        self.slapd = syncprov(SLAPD_LDIF, sessionlog=self.sessionlog)
        self.slapd.start()
        self.addCleanup(self.slapd.stop)
        self.client = LDAPClient.from_url(reactor, self.slapd.url, connect_timeout=10)
        self.addCleanup(self.client.close)

    @defer.inlineCallbacks
    def test_refresh_persist_changes_and_resume_after_a_delete_while_away(self):
        """The whole subtree then sync_refreshed; an add, a modify and a delete while persisting
        arrive; after a reconnect with the cookie the entry deleted meanwhile is removed, the one
        modified meanwhile upserted, and nothing else is sent again."""
        assert (yield root_dse_supports_sync(self.client, 10)) is True
        replica = Replica()
        consumer = SyncConsumer(self.client, "o=grid", replica)
        ended = consumer.run()
        yield replica.wait("the refresh", lambda: replica.refreshes == 1)
        assert replica.free() == {"ce1": "1", "ce2": "2", "ce3": "3"}
        assert set(replica.entries) == {"o=grid", BASE.lower(), ce("ce1"), ce("ce2"), ce("ce3")}
        assert consumer.cookie is not None and b"csn=" in consumer.cookie

        ldapmodify(self.slapd, slapd_ce("ce4", 4))
        yield replica.wait("ce4 added", lambda: replica.free().get("ce4") == "4")
        ldapmodify(self.slapd, slapd_free("ce1", 11))
        yield replica.wait("ce1 modified", lambda: replica.free().get("ce1") == "11")
        ldapmodify(self.slapd, slapd_delete("ce3"))
        yield replica.wait("ce3 removed", lambda: ce("ce3") not in replica.entries)
        assert replica.log[-1] == ("remove", ce("ce3"))

        self.client.close()
        with pytest.raises(ConnectionLost):
            yield ended
        ldapmodify(self.slapd, slapd_delete("ce2"))
        ldapmodify(self.slapd, slapd_free("ce4", 44))
        mark = len(replica.log)
        ended = consumer.run()
        yield replica.wait("the resumed refresh", lambda: replica.refreshes == 2)
        assert sorted(replica.log[mark:-1]) == [("remove", ce("ce2")), ("upsert", ce("ce4"))]
        assert replica.free() == {"ce1": "11", "ce4": "44"}
        counts = consumer.session.counts
        if self.sessionlog:  # the delete phase: ce2's UUID in a syncIdSet with refreshDeletes TRUE
            assert counts["syncIdSet delete"] >= 1 and counts["syncIdSet present"] == 0
        else:  # the present phase: the unchanged entries' UUIDs, then refreshPresent
            assert counts["syncIdSet present"] >= 1 and counts["refreshPresent"] == 1

        ldapmodify(self.slapd, slapd_delete("ce1"))  # persisting again
        yield replica.wait("ce1 removed", lambda: ce("ce1") not in replica.entries)
        consumer.cancel()
        end = yield ended
        assert end.code == 118


class SlapdSessionlogConsumerTests(SlapdSyncprovConsumerTests):
    """The same against a slapd with a session log: a cookie is answered with a delete phase."""

    sessionlog = 100


class _Scripted(Protocol):
    """A peer on a real socket: answers the first message it gets with ``reply`` (or never)."""

    def __init__(self, factory: _ScriptedFactory) -> None:
        self.factory = factory

    def connectionMade(self) -> None:
        self.factory.connected.append(self)

    def dataReceived(self, data: bytes) -> None:
        self.factory.received.append(data)
        if not self.factory.heard.called:
            self.factory.heard.callback(None)
        reply = self.factory.reply
        if reply is not None and self.transport is not None:
            self.factory.reply = None
            message_id = wire.decode_message(data, 0, ber.read_header(data, 0, len(data))[2]).message_id
            self.transport.write(reply(message_id))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.factory.lost.append(reason)


class _ScriptedFactory(Factory):
    def __init__(self, reply: Callable[[int], bytes] | None) -> None:
        self.reply = reply
        self.connected: list[_Scripted] = []
        self.received: list[bytes] = []
        self.lost: list[Failure] = []
        self.heard: defer.Deferred[None] = defer.Deferred()

    def buildProtocol(self, addr: Any) -> _Scripted:
        return _Scripted(self)


class BadPeerTests(unittest.TestCase):
    """Peers a GIIS may meet that are not RFC 4533 providers: each run ends with a clear error."""

    def listen(self, reply: Callable[[int], bytes] | None) -> tuple[_ScriptedFactory, int]:
        factory = _ScriptedFactory(reply)
        port = reactor.listenTCP(0, factory, interface=LOOPBACK)
        self.addCleanup(port.stopListening)
        return factory, port.getHost().port

    @defer.inlineCallbacks
    def test_a_peer_that_is_not_ldap(self):
        """An HTTP server on the port: PeerProtocolError, nothing fed to the replica."""
        _, port = self.listen(lambda mid: b"HTTP/1.1 400 Bad Request\r\n\r\n")
        client = LDAPClient(reactor, LOOPBACK, port, connect_timeout=10)
        self.addCleanup(client.close)
        replica = Replica()
        with pytest.raises(PeerProtocolError, match="expected an LDAPMessage"):
            yield SyncConsumer(client, BASE, replica).run()
        assert replica.log == []

    @defer.inlineCallbacks
    def test_an_entry_without_sync_state(self):
        """An LDAP server that ignores the Sync Request (answers a plain search): SyncProtocolError
        naming the peer and the entry; nothing applied; the connection stays usable."""
        def plain_entry(mid: int) -> bytes:
            entry = ber.search_result_entry(f"GlueCEUniqueID=ce1,{BASE}".encode(), [ber.partial_attribute(b"GlueCEUniqueID", [b"ce1"])])
            return ber.ldap_message(mid, entry)

        factory, port = self.listen(plain_entry)
        client = LDAPClient(reactor, LOOPBACK, port, connect_timeout=10)
        self.addCleanup(client.close)
        replica = Replica()
        with pytest.raises(SyncProtocolError) as caught:
            yield SyncConsumer(client, BASE, replica).run()
        assert f"{LOOPBACK}:{port}" in str(caught.value) and "without a Sync State control" in str(caught.value)
        assert replica.log == [] and client.protocol is not None and client.protocol.connected


class LivenessOverASocketTests(unittest.TestCase):
    """probe_interval against a peer that accepts and never answers (a host that vanished without a reset)."""

    @defer.inlineCallbacks
    def test_the_run_fails_after_the_probe_timeout(self):
        factory = _ScriptedFactory(None)
        port = reactor.listenTCP(0, factory, interface=LOOPBACK)
        self.addCleanup(port.stopListening)
        clock = Clock()
        endpoint = TCP4ClientEndpoint(reactor, LOOPBACK, port.getHost().port, timeout=10)
        client = LDAPClient(clock, LOOPBACK, port.getHost().port, endpoint=endpoint, connect_timeout=10)
        self.addCleanup(client.close)
        consumer = SyncConsumer(client, BASE, Replica(), probe_interval=300, probe_timeout=20)
        ended = consumer.run()
        yield factory.heard  # the search is on the wire; the peer says nothing
        factory.heard = defer.Deferred()
        clock.advance(300)
        yield factory.heard  # the probe arrived on the same connection
        assert len(factory.connected) == 1 and not ended.called
        clock.advance(20)
        with pytest.raises(ConnectionLost, match="did not answer a liveness probe within 20 s"):
            yield ended
        [probe_bytes] = factory.received[1:]
        probe = wire.decode_message(probe_bytes)
        assert isinstance(probe.op, wire.SearchOp) and probe.op.base == "" and probe.op.attributes == ("1.1",)


class GrisRestartTests(unittest.TestCase):
    """A GRIS that restarts (its change log lost) while a consumer holds a cookie from before."""

    @defer.inlineCallbacks
    def test_a_cookie_from_before_a_restart_still_drops_what_vanished_across_it(self):
        """docs/change-streams.md: "after a restart of the GRIS, clients simply resynchronise": a
        cookie from before it gets a full refresh, whose present phase drops what vanished."""
        site = Site(scratch(self))
        first = GrisProcess(["--config", str(site.config)])
        first.start()
        self.addCleanup(first.stop)
        wait_for("the provider's first run", lambda: free_cpus(first.url) == {"ce1": "1", "ce2": "2"}, DEADLINE)
        client = LDAPClient.from_url(reactor, first.url, connect_timeout=10)
        self.addCleanup(client.close)
        replica = Replica()
        consumer = SyncConsumer(client, BASE, replica, filter=CE)
        ended = consumer.run()
        yield replica.wait("the refresh", lambda: replica.refreshes == 1)
        consumer.cancel()
        yield ended
        client.close()
        first.stop()

        site.set({"ce1": 1})  # ce2 goes while the GRIS is down
        second = GrisProcess(["--config", str(site.config)])
        second.start()
        self.addCleanup(second.stop)
        wait_for("the provider's run after the restart", lambda: free_cpus(second.url) == {"ce1": "1"}, DEADLINE)
        client = LDAPClient.from_url(reactor, second.url, connect_timeout=10)
        self.addCleanup(client.close)
        resumed = SyncConsumer(client, BASE, replica, filter=CE, cookie=consumer.cookie, uuids=consumer.uuids)
        ended = resumed.run()
        yield replica.wait("the refresh after the restart", lambda: replica.refreshes == 2)
        resumed.cancel()
        yield ended
        assert replica.free() == {"ce1": "1"}, resumed.session.counts
