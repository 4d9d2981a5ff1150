"""The web view shows what LDAP shows to its identity: a GIIS's child error, in detail to bound
readers only, stays hidden from an anonymous web view and appears for a bound one.

A real GIIS (service, listener, backend) in-process on loopback, with a static child at a
loopback port nothing listens on; the web view reads through the same backend path.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor
from twisted.trial import unittest

from gridinfo.config import GIISConfig, StaticChildConfig, WebConfig
from gridinfo.directory.query import Scope
from gridinfo.service import make_giis_service
from tests.support.ports import free_port


class SameRulesAsLDAP(unittest.TestCase):
    timeout = 60

    def start(self, web: WebConfig, credentials: dict[str, str]) -> Any:
        dead = free_port()  # nothing listens there: the child is unreachable
        config = GIISConfig(
            name="site", listen=("tcp:0:interface=127.0.0.1",), http=("tcp:0",), credentials=credentials, web=web,
            children=(StaticChildConfig(url=f"ldap://127.0.0.1:{dead}/mds-vo-name=local,o=grid", timeout=2),),
        )
        top = make_giis_service(config, reactor)
        top.startService()
        self.addCleanup(top.stopService)
        return top

    @defer.inlineCallbacks
    def status(self, top: Any) -> Any:
        app = top.web.app
        yield app.reader.search("mds-vo-name=site,o=grid", Scope.SUB)  # asks the child: it fails
        answer = yield app.reader.search("mds-vo-name=site,o=grid", Scope.BASE, "(objectClass=*)",
                                         ("giisregistrationstatus",))
        return answer.entries

    @defer.inlineCallbacks
    def test_anonymous_web_view_sees_the_coarse_state_only(self) -> Any:
        top = self.start(WebConfig(), {})
        (entry,) = yield self.status(top)
        attrs = {k.lower(): v for k, v in entry[1].items()}
        self.assertEqual(attrs["gridinfochildstate"], ["unreachable"])
        self.assertNotIn("gridinfochildlasterror", attrs)  # what anonymous LDAP readers never see

    @defer.inlineCallbacks
    def test_a_bound_web_view_sees_what_that_dn_sees(self) -> Any:
        top = self.start(WebConfig(bind_dn="cn=monitor,o=grid"), {"cn=monitor,o=grid": "secret"})
        (entry,) = yield self.status(top)
        attrs = {k.lower(): v for k, v in entry[1].items()}
        self.assertIn("gridinfochildlasterror", attrs)
