"""Change-stream searches in memory: RFC 4533 sync and persistent search, on a real tree.

The server runs on an injected clock (``task.Clock``) over a StringTransport; requests are
encoded with ldaptor and answers read with gridinfo's BER reader, so every message, control
and cookie is checked as bytes a client receives.  Tree changes are made as providers make
them (``tree.add`` / ``tree.remove``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from ldaptor.protocols import pureldap as L
from twisted.internet import task
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from gridinfo import ber
from gridinfo.directory.schema import load_schema
from gridinfo.directory.tree import DirectoryTree, entry_uuid_bytes, parse_csn
from gridinfo.ldap import sync
from gridinfo.ldap.server import LDAPServerFactory, ServerLimits
from gridinfo.ldap.tree_backend import TreeBackend
from tests.ldap.test_server import Client
from tests.support.serve_fixture import DictBackend, sample_entries

BASE = "mds-vo-name=local,o=grid"
SCHEMA = load_schema(())


@dataclass
class Answer:
    """One LDAPMessage as a client reads it."""

    message_id: int
    tag: int
    dn: str = ""
    attributes: dict[str, list[bytes]] = field(default_factory=dict)
    code: int | None = None
    message: str = ""
    controls: dict[str, bytes] = field(default_factory=dict)
    info: tuple[int, bytes] | None = None  # IntermediateResponse: (choice tag, its content)


def _tlv(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    return ber.read_header(data, pos, end)


def read_answers(data: bytes) -> list[Answer]:
    out = []
    pos = 0
    while pos < len(data):
        _, start, stop = _tlv(data, pos, len(data))
        pos = stop
        _, s, e = _tlv(data, start, stop)
        mid = int.from_bytes(data[s:e], "big")
        tag, os_, oe = _tlv(data, e, stop)
        answer = Answer(mid, tag)
        if tag == ber.APP_SEARCH_RESULT_ENTRY:
            _, ds, de = _tlv(data, os_, oe)
            answer.dn = data[ds:de].decode()
            _, ls, le = _tlv(data, de, oe)
            p = ls
            while p < le:
                _, ps, pe = _tlv(data, p, le)
                p = pe
                _, ns, ne = _tlv(data, ps, pe)
                _, vs, ve = _tlv(data, ne, pe)
                values, q = [], vs
                while q < ve:
                    _, xs, xe = _tlv(data, q, ve)
                    values.append(data[xs:xe])
                    q = xe
                answer.attributes[data[ns:ne].decode()] = values
        elif tag in (ber.APP_SEARCH_RESULT_DONE, ber.APP_EXTENDED_RESPONSE):
            _, cs, ce = _tlv(data, os_, oe)
            answer.code = int.from_bytes(data[cs:ce], "big")
            _, ms, me = _tlv(data, ce, oe)
            _, gs, ge = _tlv(data, me, oe)
            answer.message = data[gs:ge].decode()
        elif tag == ber.APP_INTERMEDIATE_RESPONSE:
            _, ns, ne = _tlv(data, os_, oe)
            assert data[ns:ne].decode() == sync.SYNC_INFO_OID
            _, vs, ve = _tlv(data, ne, oe)
            choice, cs, ce = _tlv(data, vs, ve)
            answer.info = (choice, data[cs:ce])
        if oe < stop:
            _, cs, ce = _tlv(data, oe, stop)
            p = cs
            while p < ce:
                _, ks, ke = _tlv(data, p, ce)
                p = ke
                _, os2, oe2 = _tlv(data, ks, ke)
                oid = data[os2:oe2].decode()
                q, value = oe2, b""
                while q < ke:
                    t, vs, ve = _tlv(data, q, ke)
                    if t == ber.OCTET_STRING:
                        value = data[vs:ve]
                    q = ve
                answer.controls[oid] = value
        out.append(answer)
    return out


def sync_state(answer: Answer) -> tuple[int, bytes, bytes | None]:
    value = answer.controls[sync.SYNC_STATE_OID]
    _, s, e = _tlv(value, 0, len(value))
    _, a, b = _tlv(value, s, e)
    state = value[a]
    _, c, d = _tlv(value, b, e)
    cookie = None
    if d < e:
        _, f, g = _tlv(value, d, e)
        cookie = value[f:g]
    return state, value[c:d], cookie


def sync_done(answer: Answer) -> tuple[bytes | None, bool]:
    value = answer.controls[sync.SYNC_DONE_OID]
    _, s, e = _tlv(value, 0, len(value))
    cookie, deletes, p = None, False, s
    while p < e:
        t, a, b = _tlv(value, p, e)
        if t == ber.OCTET_STRING:
            cookie = value[a:b]
        else:
            deletes = value[a] != 0
        p = b
    return cookie, deletes


def sync_control(mode: int, cookie: bytes | None = None, critical: bool = True) -> list[tuple[str, bool, bytes | None]]:
    parts = [ber.integer(mode, tag=ber.ENUMERATED)]
    if cookie is not None:
        parts.append(ber.octet_string(cookie))
    return [(sync.SYNC_REQUEST_OID, critical, ber.sequence(parts))]


def psearch_control(types: int = 15, changes_only: bool = True, return_ecs: bool = True) -> list[tuple[str, bool, bytes | None]]:
    value = ber.sequence([ber.integer(types), ber.tlv(ber.BOOLEAN, b"\xff" if changes_only else b"\x00"),
                          ber.tlv(ber.BOOLEAN, b"\xff" if return_ecs else b"\x00")])
    return [(sync.PERSISTENT_SEARCH_OID, True, value)]


class StreamTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.clock.advance(1_800_000_000)
        self.tree = DirectoryTree(SCHEMA, wallclock=self.clock.seconds)
        for dn, attrs in [("o=grid", [("objectClass", [b"organization"]), ("o", [b"grid"])]),
                          (BASE, [("objectClass", [b"MdsVo"]), ("Mds-Vo-name", [b"local"])])]:
            self.tree.add(self.tree.build(dn, attrs))
        for i in range(3):
            self.ce(f"ce{i}", 1)

    def ce(self, name: str, free: int, tick: bool = True) -> None:
        if tick:  # (advancing the clock also runs what the server scheduled for the next turn)
            self.clock.advance(0.001)
        self.tree.add(self.tree.build(
            f"GlueCEUniqueID={name},{BASE}",
            [("objectClass", [b"GlueCETop", b"GlueCE", b"GlueCEState"]), ("GlueCEUniqueID", [name.encode()]),
             ("GlueCEStateFreeCPUs", [str(free).encode()])],
        ))

    def drop(self, name: str) -> None:
        self.clock.advance(0.001)
        self.tree.remove(self.tree.key(f"GlueCEUniqueID={name},{BASE}"))

    def client(self, backend: object | None = None, **limits: object) -> Client:
        self.factory = LDAPServerFactory(
            backend if backend is not None else TreeBackend(self.tree, naming_contexts=["o=grid"]),
            reactor=self.clock, limits=ServerLimits(**limits), vendor_version="9.9",  # type: ignore[arg-type]
        )
        return Client(self.factory)

    def search(self, client: Client, controls: list[tuple[str, bool, bytes | None]],
               flt: object = None) -> tuple[int, list[Answer]]:
        request = L.LDAPSearchRequest(
            baseObject=BASE, scope=2,
            filter=flt if flt is not None else L.LDAPFilter_equalityMatch(
                attributeDesc=L.LDAPAttributeDescription("objectClass"), assertionValue=L.LDAPAssertionValue("GlueCE")),
            attributes=[],
        )
        mid = client.send(request, controls=controls)
        return mid, self.read(client)

    def read(self, client: Client) -> list[Answer]:
        data = client.transport.value()
        client.transport.clear()
        return read_answers(data)


class RefreshOnlyTests(StreamTestCase):
    def test_without_a_cookie_every_entry_comes_with_its_uuid_and_the_done_has_a_cookie(self) -> None:
        """``ldapsearch -E sync=ro``: each entry with Sync State add and entryUUID, then Sync Done."""
        _, answers = self.search(self.client(), sync_control(sync.REFRESH_ONLY))
        entries, done = answers[:-1], answers[-1]
        self.assertEqual(len(entries), 3)
        for a in entries:
            state, uid, _ = sync_state(a)
            self.assertEqual(state, 1)
            self.assertEqual(uid, entry_uuid_bytes(self.tree.key(a.dn)))
            self.assertEqual(str(uuid.UUID(bytes=uid)), str(uuid.uuid5(uuid.UUID("8c663064-bae7-4e0c-9246-0c20d7a7e64c"), self.tree.key(a.dn))))
        self.assertEqual((done.tag, done.code), (ber.APP_SEARCH_RESULT_DONE, 0))
        cookie, deletes = sync_done(done)
        self.assertFalse(deletes)
        assert cookie is not None
        self.assertEqual(parse_csn(cookie.decode().split("csn=")[1]), self.tree.context_csn)

    def test_a_cookie_gets_only_what_changed_since_and_what_left(self) -> None:
        """Resumed with the cookie: a changed entry (add), a removed one and one out of the filter (delete)."""
        client = self.client()
        _, answers = self.search(client, sync_control(sync.REFRESH_ONLY, b"rid=007"))
        cookie, _ = sync_done(answers[-1])
        self.assertTrue(cookie.startswith(b"rid=007,csn="))  # type: ignore[union-attr]
        self.ce("ce0", 9)  # changed, still matches
        self.drop("ce1")  # removed
        self.ce("ce3", 2)  # new
        self.ce("ce3", 2)  # re-published, same content: not a change
        _, answers = self.search(client, sync_control(sync.REFRESH_ONLY, cookie))
        got = {a.dn.split(",")[0]: sync_state(a)[0] for a in answers[:-1]}
        self.assertEqual(got, {"GlueCEUniqueID=ce0": 1, "GlueCEUniqueID=ce1": 3, "GlueCEUniqueID=ce3": 1})
        deleted = [a for a in answers[:-1] if sync_state(a)[0] == 3]
        self.assertEqual(deleted[0].attributes, {})  # a delete carries the DN and UUID only
        _, deletes = sync_done(answers[-1])
        self.assertTrue(deletes)

    def test_an_unusable_cookie_gets_a_full_refresh_that_replaces_what_the_client_holds(self) -> None:
        """Another server's CSN, a CSN from the future, or garbage: everything again, refreshDeletes FALSE."""
        client = self.client()
        for cookie in (b"csn=20261202000000.000000Z#000000#001#000000", b"csn=20991231000000.000000Z#000000#000#000000",
                       b"\xff\xfe garbage", b"rid=1,csn=nonsense"):
            _, answers = self.search(client, sync_control(sync.REFRESH_ONLY, cookie))
            self.assertEqual(len(answers), 4, cookie)
            self.assertFalse(sync_done(answers[-1])[1])

    def test_a_malformed_sync_control_is_a_protocol_error_and_the_connection_stays(self) -> None:
        client = self.client()
        for value in (b"\x30\x03\x0a\x01\x02", b"\x04\x00", b"\x30\x03\x0a\x01"):  # mode 2, not a SEQUENCE, truncated
            client.send(L.LDAPSearchRequest(baseObject=BASE, scope=2, filter=L.LDAPFilter_present("objectClass")),
                        controls=[(sync.SYNC_REQUEST_OID, True, value)])
            [answer] = self.read(client)
            self.assertEqual(answer.code, 2, value)
        _, answers = self.search(client, sync_control(sync.REFRESH_ONLY))
        self.assertEqual(len(answers), 4)

    def test_a_base_that_does_not_exist_is_no_such_object(self) -> None:
        client = self.client()
        client.send(L.LDAPSearchRequest(baseObject="o=nowhere", scope=2, filter=L.LDAPFilter_present("objectClass")),
                    controls=sync_control(sync.REFRESH_ONLY))
        [answer] = self.read(client)
        self.assertEqual(answer.code, 32)

    def test_a_backend_without_streams_refuses_a_critical_sync_control_and_does_not_advertise_it(self) -> None:
        client = self.client(DictBackend(sample_entries()))
        client.send(L.LDAPSearchRequest(baseObject="o=grid", scope=2, filter=L.LDAPFilter_present("objectClass")),
                    controls=sync_control(sync.REFRESH_ONLY))
        [answer] = self.read(client)
        self.assertEqual(answer.code, 12)  # unavailableCriticalExtension
        controls = self.factory.root_dse().attributes()
        self.assertNotIn(sync.SYNC_REQUEST_OID.encode(), dict(controls).get("supportedControl", []))


class PersistTests(StreamTestCase):
    def test_refresh_then_changes_as_they_happen_with_a_cookie(self) -> None:
        """``ldapsearch -E sync=rp``: refresh, Sync Info refreshPresent, then each change pushed."""
        client = self.client()
        mid, answers = self.search(client, sync_control(sync.REFRESH_AND_PERSIST))
        self.assertEqual(len(answers), 4)
        self.assertEqual(answers[-1].info[0], sync.INFO_REFRESH_PRESENT)  # type: ignore[index]
        self.ce("ce0", 5)
        self.assertEqual(self.read(client), [])  # sent on the next reactor turn, not inside tree.add
        self.clock.advance(0)
        [notice] = self.read(client)
        state, uid, cookie = sync_state(notice)
        self.assertEqual((notice.message_id, state), (mid, 2))
        self.assertEqual(notice.attributes["GlueCEStateFreeCPUs"], [b"5"])
        self.assertIsNotNone(cookie)
        self.drop("ce2")
        self.ce("ce9", 1)
        self.clock.advance(0)
        states = [(a.dn.split(",")[0], sync_state(a)[0]) for a in self.read(client)]
        self.assertEqual(states, [("GlueCEUniqueID=ce2", 3), ("GlueCEUniqueID=ce9", 1)])

    def test_a_thousand_flaps_between_two_turns_are_one_notice(self) -> None:
        client = self.client()
        self.search(client, sync_control(sync.REFRESH_AND_PERSIST))
        for i in range(1000):
            self.ce("ce0", 100 + i, tick=False)
        self.clock.advance(0)
        [notice] = self.read(client)
        self.assertEqual(notice.attributes["GlueCEStateFreeCPUs"], [b"1099"])

    def test_cancel_ends_the_stream_with_canceled_then_answers_success(self) -> None:
        """RFC 3909, as ``ldapsearch -E sync=rp/.../slimit`` sends it."""
        client = self.client()
        mid, _ = self.search(client, sync_control(sync.REFRESH_AND_PERSIST))
        cancel = client.send(L.LDAPExtendedRequest(requestName=sync.CANCEL_OID, requestValue=ber.sequence([ber.integer(mid)])))
        done, response = self.read(client)
        self.assertEqual((done.message_id, done.code), (mid, 118))
        self.assertEqual((response.message_id, response.code), (cancel, 0))
        self.assertEqual(self.tree.changelog.subscriptions, set())
        client.send(L.LDAPExtendedRequest(requestName=sync.CANCEL_OID, requestValue=ber.sequence([ber.integer(mid)])))
        [again] = self.read(client)
        self.assertEqual(again.code, 119)  # noSuchOperation

    def test_ten_thousand_streams_opened_and_dropped_leave_nothing_behind(self) -> None:
        """Subscriptions, pending operations and the open-streams gauge all go back to zero."""
        clients = [self.client(max_outstanding_ops=100)]
        clients += [Client(self.factory, port=40001 + i) for i in range(99)]
        for client in clients:
            for _ in range(100):
                self.search(client, sync_control(sync.REFRESH_AND_PERSIST))
        self.assertEqual(len(self.tree.changelog.subscriptions), 10_000)
        self.assertEqual(self.factory.stats["change_streams"], 10_000)
        for i, client in enumerate(clients):
            if i % 2:
                client.protocol.connectionLost()
            else:
                for mid in list(client.protocol._change_streams):
                    client.send(L.LDAPAbandonRequest(id=mid))
        self.assertEqual(self.tree.changelog.subscriptions, set())
        self.assertEqual(self.factory.stats["change_streams"], 0)
        self.assertTrue(all(not c.protocol._pending and not c.protocol._change_streams for c in clients))
        self.ce("ce0", 9)
        self.clock.advance(0)  # nothing left to wake

    def test_abandon_and_a_lost_connection_unsubscribe(self) -> None:
        client = self.client()
        mid, _ = self.search(client, sync_control(sync.REFRESH_AND_PERSIST))
        client.send(L.LDAPAbandonRequest(id=mid))
        self.assertEqual(self.tree.changelog.subscriptions, set())
        self.ce("ce0", 7)
        self.clock.advance(0)
        self.assertEqual(self.read(client), [])
        other = self.client()
        self.search(other, sync_control(sync.REFRESH_AND_PERSIST))
        self.assertEqual(len(self.tree.changelog.subscriptions), 1)
        other.protocol.connectionLost()
        self.assertEqual(self.tree.changelog.subscriptions, set())

    def test_a_client_that_stops_reading_is_cut_off_at_the_bound_and_others_keep_flowing(self) -> None:
        """Bounded buffering: past stream_buffer_entries DNs, e-syncRefreshRequired and a log line."""
        slow = self.client(stream_buffer_entries=5)
        slow_mid, _ = self.search(slow, sync_control(sync.REFRESH_AND_PERSIST))
        fast = Client(self.factory, port=40001)
        self.search(fast, sync_control(sync.REFRESH_AND_PERSIST))
        slow.protocol.pauseProducing()  # its send buffer is full: nothing more is written to it
        with capturedLogs() as events:
            for i in range(20):
                self.ce(f"new{i}", 1)
            self.clock.advance(0)
            self.assertEqual(len(self.read(fast)), 20)
            self.assertEqual(slow.protocol._change_streams[slow_mid].subscription.pending, {})  # type: ignore[union-attr]
            slow.protocol.resumeProducing()
        [done] = self.read(slow)
        self.assertEqual((done.message_id, done.code), (slow_mid, 4096))
        self.assertTrue(any("e-syncRefreshRequired" in str(e.get("log_format", "")) for e in events))
        self.assertEqual(len(self.tree.changelog.subscriptions), 1)

    def test_a_slow_reader_gets_everything_once_it_reads(self) -> None:
        client = self.client()
        self.search(client, sync_control(sync.REFRESH_AND_PERSIST))
        client.protocol.pauseProducing()
        for i in range(50):
            self.ce(f"new{i}", 1)
        self.clock.advance(0)
        self.assertEqual(self.read(client), [])
        client.protocol.resumeProducing()
        self.assertEqual(len(self.read(client)), 50)

    def test_the_root_dse_advertises_sync_persistent_search_and_cancel(self) -> None:
        self.client()
        attributes = {k: v for k, v in self.factory.root_dse().attributes()}
        for oid in (sync.SYNC_REQUEST_OID, sync.PERSISTENT_SEARCH_OID, sync.MANAGE_DSA_IT_OID):
            self.assertIn(oid.encode(), attributes["supportedControl"])
        self.assertIn(sync.CANCEL_OID.encode(), attributes["supportedExtension"])

    def test_manage_dsa_it_critical_is_accepted_as_slapds_consumer_sends_it(self) -> None:
        client = self.client()
        _, answers = self.search(client, sync_control(sync.REFRESH_ONLY) + [(sync.MANAGE_DSA_IT_OID, True, None)])
        self.assertEqual(answers[-1].code, 0)


class PersistentSearchTests(StreamTestCase):
    def test_changes_only_sends_nothing_first_then_each_change_with_its_notification(self) -> None:
        """ldap3's persistent_search: add (1), modify (4), delete (2) with Entry Change Notifications."""
        client = self.client()
        _, answers = self.search(client, psearch_control())
        self.assertEqual(answers, [])
        self.ce("ce7", 1)
        self.ce("ce0", 3)
        self.drop("ce1")
        self.clock.advance(0)
        answers = self.read(client)
        kinds = [(a.dn.split(",")[0], a.controls[sync.ENTRY_CHANGE_NOTIFICATION_OID]) for a in answers]
        self.assertEqual([k for k, _ in kinds], ["GlueCEUniqueID=ce7", "GlueCEUniqueID=ce0", "GlueCEUniqueID=ce1"])
        self.assertEqual(answers[2].attributes["GlueCEUniqueID"], [b"ce1"])  # the removed entry, as it was

    def test_the_initial_entries_and_the_change_types_asked_for(self) -> None:
        client = self.client()
        _, answers = self.search(client, psearch_control(types=sync.PSEARCH_DELETE, changes_only=False, return_ecs=False))
        self.assertEqual(len(answers), 3)
        self.assertEqual(answers[0].controls, {})
        self.ce("ce8", 1)
        self.drop("ce0")
        self.clock.advance(0)
        [answer] = self.read(client)
        self.assertEqual(answer.dn.split(",")[0], "GlueCEUniqueID=ce0")
        self.assertEqual(answer.controls, {})
