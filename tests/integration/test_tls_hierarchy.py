"""A GRIS and a GIIS talking TLS on loopback: registration over StartTLS, the GIIS's searches
of its child over StartTLS and LDAPS, the server certificate verified against the CA."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor, task, tcp
from twisted.trial import unittest

from gridinfo.config import GIISConfig, GRISConfig, PolicyRuleConfig, RegisterConfig, StaticChildConfig, TLSConfig
from gridinfo.service import make_giis_service, make_gris_service
from tests.giis.support import Running, ce_ldif
from tests.support.tls import PKI, make_test_pki

LOOPBACK = "tcp:0:interface=127.0.0.1"
GIIS_SUFFIX = "mds-vo-name=site,o=grid"
REGISTRANT, REGISTRANT_PASSWORD = "cn=gris-a,o=grid", "s3cret"


@defer.inlineCallbacks
def connections_closed(bound: float = 5.0) -> Any:
    """Wait (bounded) until our outgoing connections have finished closing: a TLS close takes
    a few reactor turns more than a plain one, and trial checks the reactor right away."""
    for _ in range(int(bound / 0.01)):
        selectables = reactor.getReaders() + reactor.getWriters()  # type: ignore[attr-defined]
        if not any(isinstance(s, tcp.Client) for s in selectables):
            return
        yield task.deferLater(reactor, 0.01, lambda: None)


def server_tls(pki: PKI, **kw: Any) -> TLSConfig:
    return TLSConfig(certificate=pki.server_cert, key=pki.server_key, ca=pki.ca, **kw)


class TLSHierarchyTests(unittest.TestCase):
    def setUp(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="gridinfo-tls-"))
        self.pki = make_test_pki(self.folder / "pki")
        self.addCleanup(connections_closed)  # runs last

    def start(self, top: Any) -> Running:
        server = Running(top)
        self.addCleanup(server.stop)
        return server

    def giis(self, **kw: Any) -> Running:
        config = GIISConfig(
            name="site",
            listen=(LOOPBACK,),
            credentials={REGISTRANT: REGISTRANT_PASSWORD},
            policy=(PolicyRuleConfig("(Mds-Service-hn=*)", bind_dn=REGISTRANT),),
            tls=server_tls(self.pki),
            **kw,
        )
        return self.start(make_giis_service(config, reactor))

    def gris(self, register: str, ca: str) -> Running:
        (self.folder / "ce.ldif").write_bytes(ce_ldif("a"))
        config = GRISConfig(
            listen=(LOOPBACK,),
            ldif=(str(self.folder / "ce.ldif"),),
            tls=TLSConfig(certificate=self.pki.server_cert, key=self.pki.server_key, ca=ca),
            register=(
                RegisterConfig(
                    url=register, hostname="127.0.0.1", timeout=5, bind_dn=REGISTRANT, password=REGISTRANT_PASSWORD
                ),
            ),
        )
        return self.start(make_gris_service(config, reactor))

    @defer.inlineCallbacks
    def test_password_registration_and_forwarding_go_over_start_tls(self) -> Any:
        """A GRIS with a CA configured registers over StartTLS (so its password bind is not
        refused with confidentialityRequired), and the GIIS, with its CA, searches the GRIS
        over StartTLS too: the GRIS's entries appear under the GIIS's name."""
        giis = self.giis()
        gris = self.gris(f"ldap://127.0.0.1:{giis.port}/{GIIS_SUFFIX}", self.pki.ca)
        (parent,) = gris.top.registrar.parents
        yield parent.register()
        self.assertEqual(parent.state, "registered", parent.last_error)
        from gridinfo.ldap.client import LDAPClient
        from gridinfo.ldap.tls import ClientTLS

        client = LDAPClient(reactor, "127.0.0.1", giis.port, tls=ClientTLS(ca=self.pki.ca))
        self.addCleanup(client.close)
        result = yield client.search(GIIS_SUFFIX, 2, "(objectClass=GlueCE)", ["GlueCEUniqueID"], timeout=10)
        self.assertEqual(result.code, 0, result.message)
        self.assertEqual(len(result.entries), 2)
        (child,) = giis.backend.children.current(reactor.seconds())
        self.assertIsNotNone(child.client.tls)

    @defer.inlineCallbacks
    def test_registration_refuses_a_server_the_ca_did_not_sign(self) -> Any:
        """Trusting another CA, the registrar fails the handshake and reports it; the
        password is never sent (the GIIS has no registrant)."""
        giis = self.giis()
        gris = self.gris(f"ldap://127.0.0.1:{giis.port}/{GIIS_SUFFIX}", self.pki.other_ca)
        (parent,) = gris.top.registrar.parents
        yield parent.register()
        self.assertEqual(parent.state, "failing")
        self.assertEqual(giis.backend.children.current(reactor.seconds()), [])
        self.assertEqual(giis.top.factory.stats["failed_binds"], 0)

    @defer.inlineCallbacks
    def test_static_child_over_ldaps(self) -> Any:
        """A static child given as ldaps://host:port/suffix is searched over LDAPS."""
        (self.folder / "ce.ldif").write_bytes(ce_ldif("b"))
        pki = self.pki
        ldaps = f"ssl:0:interface=127.0.0.1:privateKey={pki.server_key}:certKey={pki.server_cert}"
        gris = self.start(make_gris_service(GRISConfig(listen=(ldaps,), ldif=(str(self.folder / "ce.ldif"),)), reactor))
        giis = self.giis(children=(StaticChildConfig(url=f"ldaps://127.0.0.1:{gris.port}/mds-vo-name=local,o=grid"),))
        from gridinfo.ldap.client import LDAPClient
        from gridinfo.ldap.tls import ClientTLS

        client = LDAPClient(reactor, "127.0.0.1", giis.port, tls=ClientTLS(ca=pki.ca))
        self.addCleanup(client.close)
        result = yield client.search(GIIS_SUFFIX, 2, "(objectClass=GlueCE)", ["GlueCEUniqueID"], timeout=10)
        self.assertEqual(result.code, 0, result.message)
        self.assertEqual(len(result.entries), 2)

    @defer.inlineCallbacks
    def test_registration_authorised_by_host_certificate(self) -> Any:
        """A GIIS policy rule naming a certificate subject as bind_dn accepts a GRIS that
        registers with bind_method: external (SASL EXTERNAL with its host certificate, no
        password anywhere), and refuses the same registration made anonymously."""
        from tests.support.tls import SERVER_SUBJECT

        config = GIISConfig(
            name="site",
            listen=(LOOPBACK,),
            policy=(PolicyRuleConfig("(Mds-Service-hn=*)", bind_dn=SERVER_SUBJECT.lower().replace(",", ", ")),),
            tls=server_tls(self.pki, client_certificates="optional"),
        )
        giis = self.start(make_giis_service(config, reactor))
        url = f"ldap://127.0.0.1:{giis.port}/{GIIS_SUFFIX}"
        (self.folder / "ce.ldif").write_bytes(ce_ldif("c"))
        gris_tls = TLSConfig(certificate=self.pki.server_cert, key=self.pki.server_key, ca=self.pki.ca)
        results = []
        for method in ("simple", "external"):
            gris = self.start(make_gris_service(GRISConfig(
                listen=(LOOPBACK,), ldif=(str(self.folder / "ce.ldif"),), tls=gris_tls,
                register=(RegisterConfig(url=url, hostname="127.0.0.1", timeout=5, bind_method=method),),
            ), reactor))
            (parent,) = gris.top.registrar.parents
            yield parent.register()
            results.append((parent.state, parent.last_error))
        self.assertEqual(results[0][0], "failing")
        self.assertIn("must be made by a client bound as", results[0][1])
        self.assertEqual(results[1], ("registered", ""))
        self.assertEqual(len(giis.backend.children.current(reactor.seconds())), 1)
