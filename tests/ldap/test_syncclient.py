"""The RFC 4533 consumer in memory: the LDAP client's streaming searches and SyncConsumer's rules, as bytes.

The client runs on a ``MemoryReactorClock`` over a StringTransport: what it writes is decoded
with the server's own decoder (:mod:`gridinfo.ldap.wire`), and what a provider would send is
written as LDAPMessages with the server side's encoders (:mod:`gridinfo.ldap.sync`), or built
by hand for what only slapd sends (syncIdSet, present states, renames).  Each test says what a
GIIS mirroring a child relies on.
"""

from __future__ import annotations

import uuid as uuidlib
from typing import Any

import pytest
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from gridinfo import ber
from gridinfo.directory.changes import ChangeKind
from gridinfo.errors import ProtocolError
from gridinfo.ldap import sync, wire
from gridinfo.ldap.client import ConnectionLost, LDAPClient, PeerProtocolError
from gridinfo.ldap.syncclient import SyncConsumer, SyncEnd, SyncProtocolError, TooManyEntries

BASE = "mds-vo-name=local,o=grid"


def U(n: int) -> bytes:
    return uuidlib.UUID(int=n).bytes


def dn(name: str) -> str:
    return f"GlueCEUniqueID={name},{BASE}"


def entry_op(name: str, free: int | None = None) -> bytes:
    attrs = []
    if free is not None:
        attrs = [ber.partial_attribute(b"GlueCEUniqueID", [name.encode()]),
                 ber.partial_attribute(b"GlueCEStateFreeCPUs", [str(free).encode()])]
    return ber.search_result_entry(dn(name).encode(), attrs)


def id_set(uuids: list[bytes], cookie: bytes | None = None, deletes: bool = False) -> bytes:
    """A syncIdSet Sync Info message op (slapd sends them; gridinfo does not)."""
    parts = []
    if cookie is not None:
        parts.append(ber.octet_string(cookie))
    if deletes:
        parts.append(ber.tlv(ber.BOOLEAN, b"\xff"))
    parts.append(ber.sequence((ber.octet_string(u) for u in uuids), ber.SET))
    value = ber.sequence(parts, tag=sync.INFO_SYNC_ID_SET)
    return ber.sequence([ber.tlv(0x80, sync.SYNC_INFO_OID.encode()), ber.tlv(0x81, value)], tag=ber.APP_INTERMEDIATE_RESPONSE)


class Replica:
    def __init__(self) -> None:
        self.entries: dict[str, dict[str, list[bytes]]] = {}
        self.log: list[tuple[str, str]] = []

    def sync_upsert(self, dn: str, attributes: list[tuple[str, list[bytes]]]) -> None:
        self.entries[dn.lower()] = dict(attributes)
        self.log.append(("upsert", dn.split(",")[0]))

    def sync_remove(self, dn: str) -> None:
        self.entries.pop(dn.lower(), None)
        self.log.append(("remove", dn.split(",")[0]))

    def sync_refreshed(self) -> None:
        self.log.append(("refreshed", ""))

    def held(self) -> list[str]:
        return sorted(d.split(",")[0].split("=")[1] for d in self.entries)


class Provider:
    """The far end of one consumer's connection: reads its requests, writes a provider's messages."""

    def __init__(self, test: SynchronousTestCase, **consumer_kw: Any) -> None:
        self.reactor = MemoryReactorClock()
        self.client = LDAPClient(self.reactor, "192.0.2.7", 389, connect_timeout=5)
        self.replica = Replica()
        self.consumer = SyncConsumer(self.client, BASE, self.replica, **consumer_kw)
        self.transport = StringTransport()
        self.results: list[Any] = []
        self.protocol: Any = None

    def run(self) -> wire.Message:
        """Start a run, accept its connection, return the search request it sent."""
        d = self.consumer.run()
        d.addBoth(self.results.append)
        if self.protocol is None:
            factory = self.reactor.tcpClients[-1][2]
            self.protocol = factory.buildProtocol(None)
            self.transport = StringTransport()
            self.protocol.makeConnection(self.transport)
        [request] = self.requests()
        return request

    def requests(self) -> list[wire.Message]:
        data = self.transport.value()
        self.transport.clear()
        out = []
        pos = 0
        while pos < len(data):
            _, _, stop = ber.read_header(data, pos, len(data))
            out.append(wire.decode_message(data, pos, stop))
            pos = stop
        return out

    def lose(self) -> None:
        """The connection drops."""
        self.protocol.connectionLost(Failure(ConnectionLost("gone")))
        self.protocol = None

    @property
    def message_id(self) -> int:
        stream = self.consumer._stream
        assert stream is not None and stream.message_id is not None
        return stream.message_id

    def send(self, op: bytes, *controls: bytes, message_id: int | None = None) -> None:
        mid = self.message_id if message_id is None else message_id
        self.protocol.dataReceived(ber.ldap_message(mid, op, sync.controls(*controls) if controls else b""))

    def entry(self, name: str, state: int, uuid: bytes, free: int | None = None, cookie: bytes | None = None) -> None:
        self.send(entry_op(name, free if state in (1, 2) else None), sync.sync_state(state, uuid, cookie))

    def info(self, choice: int, cookie: bytes | None, refresh_done: bool = True) -> None:
        self.send(sync.sync_info(choice, cookie, refresh_done))

    def done(self, code: int, message: str = "", *controls: bytes) -> None:
        self.send(ber.ldap_result(ber.APP_SEARCH_RESULT_DONE, code, b"", message.encode()), *controls)

    def result(self) -> Any:
        [r] = self.results
        return r.value if isinstance(r, Failure) else r


def refreshed_with(p: Provider, *ces: tuple[str, int, int]) -> None:
    """A full refresh of (name, uuid number, free CPUs) as a GRIS sends it, ended by refreshPresent."""
    p.run()
    for name, n, free in ces:
        p.entry(name, ChangeKind.ADD, U(n), free)
    p.info(sync.INFO_REFRESH_PRESENT, b"rid=000,csn=1")


class WireValueTests(SynchronousTestCase):
    """The control values a consumer sends and reads, as RFC 4533 spells them."""

    def test_the_sync_request_is_what_the_server_side_decodes(self):
        """The Sync Request control a consumer sends is critical and carries mode, cookie and reloadHint."""
        c = sync.sync_request_control(sync.REFRESH_AND_PERSIST, b"rid=001,csn=x", reload_hint=True)
        msg = wire.decode_message(ber.ldap_message(1, ber.tlv(ber.APP_ABANDON_REQUEST, b"\x05"), sync.controls(c)))
        [control] = msg.controls
        assert control.oid == sync.SYNC_REQUEST_OID and control.critical
        assert wire.decode_sync_request(control.value) == sync.SyncRequest(3, b"rid=001,csn=x", True)

    def test_what_the_gridinfo_provider_encodes_decodes_back(self):
        """Sync State, Sync Done and every Sync Info choice read back as written."""
        [state] = wire._controls(*_control_bounds(sync.sync_state(2, U(5), b"ck")))
        assert sync.decode_sync_state(state.value) == sync.SyncStateValue(2, U(5), b"ck")
        [done] = wire._controls(*_control_bounds(sync.sync_done(b"ck", refresh_deletes=True)))
        assert sync.decode_sync_done(done.value) == sync.SyncDoneValue(b"ck", True)
        assert sync.decode_sync_done(None) == sync.SyncDoneValue()
        for choice in (sync.INFO_REFRESH_DELETE, sync.INFO_REFRESH_PRESENT):
            value = _info_value(sync.sync_info(choice, b"ck", refresh_done=False))
            assert sync.decode_sync_info(value) == sync.SyncInfoValue(choice, b"ck", refresh_done=False)
        assert sync.decode_sync_info(_info_value(sync.sync_info(sync.INFO_NEW_COOKIE, b"ck"))).cookie == b"ck"
        value = _info_value(id_set([U(1), U(2)], b"ck", deletes=True))
        assert sync.decode_sync_info(value) == sync.SyncInfoValue(sync.INFO_SYNC_ID_SET, b"ck", True, True, (U(1), U(2)))

    def test_bad_values_are_refused_with_the_part_named(self):
        """A malformed value is a ProtocolError saying which part is wrong, never a guess."""
        cases = {
            ber.sequence([ber.integer(7, ber.ENUMERATED), ber.octet_string(U(1))]): "state",
            ber.sequence([ber.integer(1, ber.ENUMERATED), ber.octet_string(b"short")]): "entryUUID is 5 octets",
            ber.sequence([ber.integer(1, ber.ENUMERATED), ber.octet_string(U(1)), ber.octet_string(b"c"), b"\x05\x00"]): "unexpected",
        }
        for value, words in cases.items():
            with pytest.raises(ProtocolError, match=words):
                sync.decode_sync_state(value)
        with pytest.raises(ProtocolError, match="choice tag 0xa5"):
            sync.decode_sync_info(ber.tlv(0xA5, b""))
        with pytest.raises(ProtocolError, match="syncUUID is 3 octets"):
            sync.decode_sync_info(ber.sequence([ber.sequence([ber.octet_string(b"abc")], ber.SET)], sync.INFO_SYNC_ID_SET))
        with pytest.raises(ProtocolError, match="missing"):
            sync.decode_sync_state(None)


def _control_bounds(control: bytes) -> tuple[bytes, int, int]:
    return control, 0, len(control)


def _info_value(op: bytes) -> bytes:
    _, s, e = ber.read_header(op, 0, len(op))
    _, s, e = ber.read_header(op, s, e)  # responseName
    _, s, e = ber.read_header(op, e, len(op))  # responseValue
    return op[s:e]


class ConsumerRulesTests(SynchronousTestCase):
    """RFC 4533's client rules: the replica only ever sees upserts and removes by DN."""

    def test_a_first_run_asks_refresh_and_persist_with_the_rid_and_delivers_the_refresh(self):
        """Every entry is upserted whole, then sync_refreshed; the cookie of the refresh is kept."""
        p = Provider(self, rid="001")
        request = p.run()
        assert isinstance(request.op, wire.SearchOp) and request.op.base == BASE and request.op.scope == 2
        [control] = request.controls
        assert wire.decode_sync_request(control.value) == sync.SyncRequest(3, b"rid=001")
        p.entry("ce1", ChangeKind.ADD, U(1), 1)
        p.entry("ce2", ChangeKind.ADD, U(2), 2)
        assert not p.consumer.refreshed
        p.info(sync.INFO_REFRESH_PRESENT, b"rid=001,csn=A")
        assert p.replica.log == [("upsert", "GlueCEUniqueID=ce1"), ("upsert", "GlueCEUniqueID=ce2"), ("refreshed", "")]
        assert p.replica.entries[dn("ce1").lower()]["GlueCEStateFreeCPUs"] == [b"1"]
        assert p.consumer.refreshed and p.consumer.cookie == b"rid=001,csn=A"
        p.entry("ce1", ChangeKind.MODIFY, U(1), 9, cookie=b"rid=001,csn=B")
        p.entry("ce2", ChangeKind.DELETE, U(2), cookie=b"rid=001,csn=C")
        assert p.replica.held() == ["ce1"] and p.consumer.cookie == b"rid=001,csn=C"
        p.info(sync.INFO_NEW_COOKIE, b"rid=001,csn=D")
        assert p.consumer.cookie == b"rid=001,csn=D" and p.results == []

    def test_a_resumed_run_sends_the_cookie_and_applies_the_delete_phase(self):
        """With a usable cookie the provider sends changes only; refreshDelete removes nothing else."""
        p = Provider(self)
        refreshed_with(p, ("ce1", 1, 1), ("ce2", 2, 2), ("ce3", 3, 3))
        p.lose()
        assert isinstance(p.result(), ConnectionLost)
        p.results.clear()
        request = p.run()
        assert wire.decode_sync_request(request.controls[0].value).cookie == b"rid=000,csn=1"
        p.entry("ce2", ChangeKind.DELETE, U(2))
        p.entry("ce4", ChangeKind.ADD, U(4), 4)
        p.info(sync.INFO_REFRESH_DELETE, b"rid=000,csn=2")
        assert p.replica.held() == ["ce1", "ce3", "ce4"] and p.consumer.refreshed

    def test_the_present_phase_removes_what_was_neither_sent_nor_marked_present(self):
        """slapd's answer to an old cookie: changed entries, syncIdSets of unchanged ones, refreshPresent."""
        p = Provider(self)
        refreshed_with(p, ("ce1", 1, 1), ("ce2", 2, 2), ("ce3", 3, 3), ("ce4", 4, 4))
        p.lose()
        p.results.clear()
        p.run()
        p.send(id_set([U(1)]))
        p.entry("ce3", sync.STATE_PRESENT, U(3))
        p.entry("ce4", ChangeKind.ADD, U(4), 44)
        mark = len(p.replica.log)
        p.info(sync.INFO_REFRESH_PRESENT, b"rid=000,csn=2")
        assert p.replica.log[mark:] == [("remove", "GlueCEUniqueID=ce2"), ("refreshed", "")]
        assert p.replica.held() == ["ce1", "ce3", "ce4"]

    def test_a_sync_id_set_with_refresh_deletes_removes_those_entries(self):
        """slapd with a session log: deleted entries as a syncIdSet of UUIDs, refreshDeletes TRUE."""
        p = Provider(self)
        refreshed_with(p, ("ce1", 1, 1), ("ce2", 2, 2), ("ce3", 3, 3))
        p.send(id_set([U(1), U(3), U(99)], b"rid=000,csn=3", deletes=True))
        assert p.replica.held() == ["ce2"] and p.consumer.cookie == b"rid=000,csn=3"
        assert set(p.consumer.uuids) == {U(2)}

    def test_a_full_refresh_is_the_whole_content_however_it_ends(self):
        """A run without a cookie (after a 4096, or slapd ending it with refreshDelete) drops what it did not send."""
        p = Provider(self)
        refreshed_with(p, ("ce1", 1, 1), ("ce2", 2, 2))
        p.done(4096, "refresh required")
        assert p.result() == SyncEnd(4096, "refresh required")
        assert p.consumer.cookie is None and len(p.consumer.uuids) == 2  # the map stays for the next refresh
        p.results.clear()
        request = p.run()
        assert wire.decode_sync_request(request.controls[0].value).cookie == b"rid=000"
        p.entry("ce2", ChangeKind.ADD, U(2), 2)
        p.info(sync.INFO_REFRESH_DELETE, b"rid=000,csn=9")
        assert p.replica.held() == ["ce2"] and p.consumer.refreshed

    def test_a_rename_removes_the_old_dn_and_a_reused_dn_forgets_the_old_uuid(self):
        """Same UUID under a new DN (modrdn at slapd): the old DN goes; a DN re-added with another
        UUID replaces the entry, and a later present phase does not remove it for the old UUID."""
        p = Provider(self)
        refreshed_with(p, ("ce1", 1, 1), ("ce2", 2, 2))
        p.entry("ce9", ChangeKind.MODIFY, U(1), 1)
        assert p.replica.log[-2:] == [("remove", "GlueCEUniqueID=ce1"), ("upsert", "GlueCEUniqueID=ce9")]
        p.entry("ce2", ChangeKind.ADD, U(22), 2)
        assert set(p.consumer.uuids) == {U(1), U(22)}
        p.done(4096)
        p.results.clear()
        p.run()
        p.entry("ce2", ChangeKind.ADD, U(22), 2)
        p.entry("ce9", ChangeKind.ADD, U(1), 1)
        p.info(sync.INFO_REFRESH_PRESENT, b"c")
        assert p.replica.held() == ["ce2", "ce9"]

    def test_a_delete_of_an_unknown_uuid_removes_the_entry_named(self):
        """A provider deleting an entry this consumer never delivered (a restarted GIIS) names its DN: it goes."""
        p = Provider(self, cookie=b"rid=000,csn=old")
        p.run()
        p.entry("ce7", ChangeKind.DELETE, U(7))
        assert p.replica.log == [("remove", "GlueCEUniqueID=ce7")]

    def test_cancel_sends_rfc_3909_cancel_and_the_run_ends_with_118(self):
        """cancel() asks the provider to end the search; its SearchResultDone ends the run."""
        p = Provider(self)
        refreshed_with(p, ("ce1", 1, 1))
        p.consumer.cancel()
        [cancel] = p.requests()
        assert isinstance(cancel.op, wire.ExtendedOp) and cancel.op.name == sync.CANCEL_OID
        assert cancel.op.value == sync.cancel_request_value(p.message_id)
        p.done(118, "canceled")
        p.send(ber.ldap_result(ber.APP_EXTENDED_RESPONSE, 0), message_id=cancel.message_id)
        assert p.result() == SyncEnd(118, "canceled") and not p.consumer.running

    def test_a_refused_cancel_falls_back_to_abandon(self):
        """A provider that answers Cancel with an error (or not at all) gets an Abandon; the run still ends."""
        p = Provider(self)
        refreshed_with(p, ("ce1", 1, 1))
        mid = p.message_id
        p.consumer.cancel()
        [cancel] = p.requests()
        p.send(ber.ldap_result(ber.APP_EXTENDED_RESPONSE, 121, b"", b"cannot cancel"), message_id=cancel.message_id)
        [abandon] = p.requests()
        assert isinstance(abandon.op, wire.AbandonOp) and abandon.op.message_id == mid
        end = p.result()
        assert end.code == 118 and "121" in end.message
        p.entry("ce2", ChangeKind.ADD, U(2), 2)  # what the provider still had in flight is ignored
        assert p.replica.held() == ["ce1"]


class BadProviderTests(SynchronousTestCase):
    """A provider that breaks RFC 4533 fails the run with a clear error; nothing is applied wrongly."""

    def test_an_entry_without_sync_state_fails_the_run_and_abandons_the_search(self):
        """The entry is not applied; the error names the peer and the entry; the search is abandoned
        but the connection (shared with the GIIS's other requests) stays up."""
        p = Provider(self)
        p.run()
        p.send(entry_op("ce1", 1))
        error = p.result()
        assert isinstance(error, SyncProtocolError)
        assert "192.0.2.7:389" in str(error) and "without a Sync State control" in str(error) and "ce1" in str(error)
        assert p.replica.log == [] and p.protocol.connected
        [abandon] = p.requests()
        assert isinstance(abandon.op, wire.AbandonOp)

    def test_a_bad_sync_state_value_fails_the_run(self):
        """A Sync State whose UUID is not 16 octets is refused with that said."""
        p = Provider(self)
        p.run()
        bad = sync.control(sync.SYNC_STATE_OID, ber.sequence([ber.integer(1, ber.ENUMERATED), ber.octet_string(b"x")]))
        p.send(entry_op("ce1", 1), bad)
        error = p.result()
        assert isinstance(error, SyncProtocolError) and "entryUUID is 1 octets" in str(error)
        assert p.replica.log == []

    def test_a_malformed_entry_fails_the_run(self):
        """An add whose attributes are cut short: SyncProtocolError naming the entry, nothing applied."""
        p = Provider(self)
        p.run()
        op = ber.tlv(ber.APP_SEARCH_RESULT_ENTRY, ber.octet_string(dn("ce1").encode()) + b"\x30\x04\x30\x09\x04\x01")
        p.send(op, sync.sync_state(ChangeKind.ADD, U(1)))
        error = p.result()
        assert isinstance(error, SyncProtocolError) and "bad SearchResultEntry" in str(error) and "ce1" in str(error)
        assert p.replica.log == [] and p.consumer.uuids == {}

    def test_a_flood_past_max_entries_ends_the_run(self):
        """A child that sends more distinct entries than max_entries: the run fails, the rest is not applied."""
        p = Provider(self, max_entries=2)
        p.run()
        for i in range(5):
            p.entry(f"ce{i}", ChangeKind.ADD, U(i), i)
        assert isinstance(p.result(), TooManyEntries) and "more than 2 entries" in str(p.result())
        assert p.replica.held() == ["ce0", "ce1"]

    def test_a_peer_that_is_not_ldap_loses_the_connection(self):
        """Bytes that are not an LDAPMessage: PeerProtocolError, the connection is dropped."""
        p = Provider(self)
        p.run()
        p.protocol.dataReceived(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        assert isinstance(p.result(), PeerProtocolError) and p.transport.disconnecting


class LivenessTests(SynchronousTestCase):
    """probe_interval: a silent persist stream is probed on the same connection, on the injected clock."""

    def test_a_probe_answered_keeps_the_run_and_an_unanswered_one_drops_the_connection(self):
        p = Provider(self, probe_interval=60, probe_timeout=10)
        refreshed_with(p, ("ce1", 1, 1))
        p.reactor.advance(59)
        assert p.requests() == []  # not silent long enough
        p.reactor.advance(1)
        [probe] = p.requests()
        assert isinstance(probe.op, wire.SearchOp) and probe.op.base == "" and probe.op.attributes == ("1.1",)
        p.send(ber.ldap_result(ber.APP_SEARCH_RESULT_DONE, 0), message_id=probe.message_id)
        p.reactor.advance(30)
        p.entry("ce1", ChangeKind.MODIFY, U(1), 2)  # traffic: the silence starts again
        p.reactor.advance(59)
        assert p.requests() == []
        p.reactor.advance(1)
        [probe] = p.requests()
        p.reactor.advance(10)
        error = p.result()
        assert isinstance(error, ConnectionLost) and "liveness probe within 10 s" in str(error)
        assert p.transport.disconnecting


class DNKeyTests(SynchronousTestCase):
    def test_the_fast_dn_key_is_the_directory_key(self):
        """Plain GLUE DNs are keyed without parsing, to the same key gridinfo.directory.dn gives;
        anything else (spaces, escapes, multi-valued RDNs) goes through the parser."""
        from gridinfo.directory.dn import DNNormaliser
        from gridinfo.ldap.syncclient import _PLAIN_DN, _dn_key

        normaliser = DNNormaliser(None)
        plain = [dn("ce1.example.org:2119/jobmanager-pbs-q"), "Mds-Vo-name=local,o=grid", "GLUE2ServiceID=urn:ogf:x.y,o=glue"]
        other = ["cn = A,  o=grid", r"cn=a\,b,o=grid", "cn=a+sn=b,o=grid", "cn=Ä,o=grid", "cn=x=y,o=grid"]
        for text in plain:
            assert _PLAIN_DN.fullmatch(text) and _dn_key(text) == normaliser.key(text)
        for text in other:
            assert not _PLAIN_DN.fullmatch(text) and _dn_key(text) == normaliser.key(text)
        assert _dn_key("CN=A,O=Grid") == _dn_key("cn = a , o = grid")
