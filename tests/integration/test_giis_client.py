"""The downstream LDAP client against a real OpenLDAP slapd on loopback."""

from __future__ import annotations

import pytest
from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.trial import unittest

from gridinfo.directory.filters import parse_filter
from gridinfo.errors import LDAPError, ResultCode
from gridinfo.ldap.client import (
    ConnectFailed,
    LDAPClient,
    LDAPURL,
    RequestTimeout,
    decode_entry,
    entry_dn,
    rename_entry,
)
from tests.support.slapd import Slapd

pytestmark = [pytest.mark.slapd]

LDIF = b"""\
dn: o=grid
objectClass: organization
o: grid

dn: Mds-Vo-name=local,o=grid
objectClass: MdsVo
Mds-Vo-name: local

""" + b"".join(
    b"dn: GlueCEUniqueID=ce%d.example.org:2119/jobmanager-pbs-q,Mds-Vo-name=local,o=grid\n"
    b"objectClass: GlueCETop\nobjectClass: GlueCE\nobjectClass: GlueCEState\n"
    b"GlueCEUniqueID: ce%d.example.org:2119/jobmanager-pbs-q\nGlueCEName: q\n"
    b"GlueCEStateFreeCPUs: %d\n\n" % (i, i, i * 10)
    for i in range(5)
)


class SlapdClientTests(unittest.TestCase):
    slapd: Slapd

    @classmethod
    def setUpClass(cls) -> None:
        cls.slapd = Slapd(LDIF)
        cls.slapd.start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.slapd.stop()

    def client(self, **kw) -> LDAPClient:
        c = LDAPClient.from_url(reactor, self.slapd.url, connect_timeout=5, **kw)
        self.addCleanup(c.close)
        return c

    @defer.inlineCallbacks
    def test_search_returns_encoded_entries(self):
        """A forwarded search gets the child's entries, encoded as the wire had them."""
        c = self.client()
        r = yield c.search("mds-vo-name=local,o=grid", 2, "(GlueCEStateFreeCPUs>=20)", ["GlueCEUniqueID"], timeout=5)
        assert r.code == 0
        dns = sorted(entry_dn(e) for e in r.entries)
        assert len(dns) == 3 and dns[0].startswith("GlueCEUniqueID=ce2.example.org")
        dn, attrs = decode_entry(r.entries[0])
        assert [name for name, _ in attrs] == ["GlueCEUniqueID"]
        renamed = rename_entry(r.entries[0], "cn=x,mds-vo-name=site,o=grid")
        assert decode_entry(renamed) == ("cn=x,mds-vo-name=site,o=grid", attrs)

    @defer.inlineCallbacks
    def test_connection_is_reused_and_requests_multiplexed(self):
        """Many searches in parallel travel over one connection."""
        c = self.client()
        results = yield defer.gatherResults(
            [c.search("o=grid", 2, parse_filter("(objectClass=GlueCE)"), timeout=5) for _ in range(10)]
        )
        assert [len(r.entries) for r in results] == [5] * 10
        assert c.connects == 1
        r = yield c.search("o=grid", 0, "(objectClass=*)", timeout=5)
        assert len(r.entries) == 1 and c.connects == 1

    @defer.inlineCallbacks
    def test_result_codes_come_back(self):
        """noSuchObject, sizeLimitExceeded and a refused add are results, not exceptions."""
        c = self.client()
        r = yield c.search("mds-vo-name=nowhere,o=grid", 2, "(objectClass=*)", timeout=5)
        assert r.code == ResultCode.NO_SUCH_OBJECT and r.matched_dn.lower() == "o=grid"
        r = yield c.search("o=grid", 2, "(objectClass=GlueCE)", size_limit=2, timeout=5)
        assert r.code == ResultCode.SIZE_LIMIT_EXCEEDED and len(r.entries) == 2
        r = yield c.add("cn=x,o=grid", [("objectClass", [b"organizationalRole"]), ("cn", [b"x"])], timeout=5)
        assert r.code in (ResultCode.INSUFFICIENT_ACCESS_RIGHTS, ResultCode.STRONGER_AUTH_REQUIRED)
        with pytest.raises(LDAPError):
            r.raise_for_code()

    @defer.inlineCallbacks
    def test_reconnects_after_the_connection_is_lost(self):
        """A GIIS keeps one connection per child and makes a new one after it drops."""
        c = self.client()
        yield c.search("o=grid", 0, "(objectClass=*)", timeout=5)
        assert c._protocol is not None
        c._protocol.transport.loseConnection()
        r = yield c.search("o=grid", 0, "(objectClass=*)", timeout=5)
        assert len(r.entries) == 1

    @defer.inlineCallbacks
    def test_refused_connection_fails_fast(self):
        """An unreachable child is a ConnectFailed, not a hang."""
        from tests.support.ports import free_port

        c = LDAPClient(reactor, "127.0.0.1", free_port(), connect_timeout=5)
        with pytest.raises(ConnectFailed):
            yield c.search("o=grid", 0, "(objectClass=*)", timeout=5)


class SilentServerTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_request_timeout_on_a_server_that_never_answers(self):
        """A child that accepts but never answers fails the request within its timeout."""
        from twisted.internet.endpoints import TCP4ServerEndpoint

        port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Factory.forProtocol(Protocol))
        self.addCleanup(port.stopListening)
        c = LDAPClient(reactor, "127.0.0.1", port.getHost().port, connect_timeout=5)
        self.addCleanup(c.close)
        started = reactor.seconds()
        with pytest.raises(RequestTimeout):
            yield c.search("o=grid", 0, "(objectClass=*)", timeout=0.3)
        assert reactor.seconds() - started < 3


def test_ldap_urls_name_host_port_and_a_percent_decoded_base() -> None:
    """Children and parents are named by LDAP URLs; the base is percent-decoded."""
    u = LDAPURL.parse("ldap://giis.example.org:2135/mds-vo-name=site,%20o=grid")
    assert (u.host, u.port, u.base) == ("giis.example.org", 2135, "mds-vo-name=site, o=grid")
    assert LDAPURL.parse("ldap://h/").port == 389
    assert str(LDAPURL.parse("ldap://[::1]:2135/o=grid")) == "ldap://[::1]:2135/o=grid"
    with pytest.raises(ValueError):
        LDAPURL.parse("http://h/")
