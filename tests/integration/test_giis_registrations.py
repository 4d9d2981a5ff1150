"""Forged registrations against a real GIIS over loopback, with the shipped default policy.

The attacker speaks LDAP from another loopback address (127.0.0.2, through ldap3's
``source_address``), as a host on the site network would; the real GRIS registers from
127.0.0.1 as ``make run`` does.  Each test checks what a user searching the GIIS relies on:
the real child's data, once, and nothing the attacker forged.
"""

from __future__ import annotations

import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import ldap3
from twisted.internet import defer, reactor
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from gridinfo.config import GRISConfig
from gridinfo.ldap.registrar import registration_message
from gridinfo.service import make_gris_service
from tests.giis.support import Running, ce_ldif, ldapsearch, register_now, start_giis, start_gris
from tests.support.gris import GrisProcess

ATTACKER = "127.0.0.2"
SITE = "mds-vo-name=site,o=grid"
DN = f"Mds-Vo-Op-name=register,{SITE}"


def forged_add(port: int, *, host: str, service_port: int, suffix: str, ttl: float = 600,
               source: str = ATTACKER) -> defer.Deferred[dict[str, Any]]:
    """An anonymous registration add sent from ``source``; returns ldap3's result."""

    def run() -> dict[str, Any]:
        attrs = registration_message(host=host, port=service_port, suffix=suffix, now=time.time(), ttl=ttl)
        conn = ldap3.Connection(ldap3.Server(f"ldap://127.0.0.1:{port}", connect_timeout=10),
                                source_address=source, auto_bind=True, receive_timeout=20)
        values = {name: [v.decode() for v in vals] for name, vals in attrs if name != "objectClass"}
        conn.add(DN, [v.decode() for v in dict(attrs)["objectClass"]], values)
        result = dict(conn.result)
        conn.unbind()
        return result

    return deferToThread(run)


def start_forger(count: int = 2) -> Running:
    """The attacker's GRIS on 127.0.0.2: the real child's DNs, with 99999 free CPUs."""
    folder = Path(tempfile.mkdtemp(prefix="gridinfo-forger-"))
    (folder / "ce.ldif").write_bytes(ce_ldif("a", count).replace(b"GlueCEStateFreeCPUs: 10\n", b"GlueCEStateFreeCPUs: 99999\n")
                                     .replace(b"GlueCEStateFreeCPUs: 20\n", b"GlueCEStateFreeCPUs: 99999\n"))
    config = GRISConfig(listen=(f"tcp:0:interface={ATTACKER}",), ldif=(str(folder),))
    return Running(make_gris_service(config, reactor))


class ForgedRegistrationTests(unittest.TestCase):
    def start(self, server: Running) -> Running:
        self.addCleanup(server.stop)
        return server

    @defer.inlineCallbacks
    def test_claims_on_other_suffixes_eviction_and_unsafe_hosts_are_refused(self):
        """Anonymous forged registrations get precise LDAP refusals; the real GRIS stays listed and served."""
        site = self.start(start_giis("site"))
        gris = self.start(start_gris("a", register=site.url(SITE)))
        yield register_now(gris)
        cases = [
            (dict(host=ATTACKER, service_port=9, suffix="o=grid"), 53, "overlaps this GIIS's own"),
            (dict(host=ATTACKER, service_port=9, suffix="Mds-Vo-name=SITE , O=Grid"), 53, "overlaps this GIIS's own"),
            (dict(host="127.0.0.1", service_port=gris.port, suffix="mds-vo-name=local,o=grid", ttl=2), 50,
             "is not the address it came from"),
            (dict(host="169.254.169.254", service_port=80, suffix="mds-vo-name=meta,o=grid"), 53, "link-local"),
        ]
        for kwargs, code, text in cases:
            result = yield forged_add(site.port, **kwargs)
            assert result["result"] == code, (kwargs, result)
            assert text in result["message"], (kwargs, result)
        out, err, rc = yield ldapsearch(site.port, "-b", SITE, "-s", "base", "giisregistrationstatus", "Mds-Service-hn")
        assert rc == 0, err
        assert out.decode().count("Mds-Service-hn: 127.0.0.1") == 1 and ATTACKER not in out.decode()
        (lease,) = site.backend.leases.leases.values()
        assert lease.registration.valid_to > time.time() + 600  # not shortened to 2 s

    @defer.inlineCallbacks
    def test_a_second_child_claims_a_child_giis_suffix(self):
        """A child GIIS's suffix is its own: the same suffix from another host is refused, naming the holder."""
        site = self.start(start_giis("site"))
        child = self.start(start_giis("child", register=site.url(SITE)))
        yield register_now(child)
        result = yield forged_add(site.port, host=ATTACKER, service_port=9, suffix="MDS-VO-NAME=Child,o=grid")
        assert result["result"] == 53 and f"127.0.0.1:{child.port}" in result["message"]

    @defer.inlineCallbacks
    def test_forged_duplicate_dns_are_not_served(self):
        """A host sharing mds-vo-name=local,o=grid cannot replace a real GRIS's CEs with 99999 free CPUs."""
        site = self.start(start_giis("site"))
        gris = self.start(start_gris("a", register=site.url(SITE)))
        yield register_now(gris)
        forger = self.start(start_forger())
        result = yield forged_add(site.port, host=ATTACKER, service_port=forger.port, suffix="mds-vo-name=local,o=grid")
        assert result["result"] == 0, result  # a host may register itself under the shared GRIS suffix
        out, err, rc = yield ldapsearch(site.port, "-b", SITE, "(objectClass=GlueCE)", "GlueCEStateFreeCPUs")
        assert rc == 0, err
        text = out.decode()
        assert text.count("dn: GlueCEUniqueID=a-ce0") == 1 and text.count("dn: GlueCEUniqueID=a-ce1") == 1
        assert "99999" not in text
        out, err, rc = yield ldapsearch(site.port, "-b", SITE, "(GlueCEStateFreeCPUs>=1000)", "1.1")
        assert rc == 0 and "dn:" not in out.decode()

    @defer.inlineCallbacks
    def test_anonymous_status_does_not_tell_refused_from_closed(self):
        """The status an anonymous reader gets says "unreachable", never why: no port scanning through the GIIS."""
        site = self.start(start_giis("site"))
        gris = self.start(start_gris("a", register=site.url(SITE), timeout=2))
        yield register_now(gris)
        yield gris.stop()  # its port now refuses connections
        site.backend.children.current(time.time())[0].cache.clear()
        out, err, rc = yield ldapsearch(site.port, "-b", SITE, "(objectClass=GlueCE)", "1.1")
        assert rc == 0, err
        for args in (("-b", SITE, "-s", "base", "giisregistrationstatus"), ("-b", "o=infosys")):
            out, err, rc = yield ldapsearch(site.port, *args)
            assert rc == 0, err
            text = out.decode().lower()
            shown = text.replace("gridinforefusedconnections", "")  # the listener counter is not a child error
            assert "unreachable" in text and "refused" not in shown and "gridinfochildlasterror" not in text
        (child,) = site.backend.children.all()
        assert "refused" in child.stats.last_error.lower()  # the detail is kept (log, bound readers)


def test_a_giis_killed_with_sigkill_lists_its_registrants_at_once_after_restart(tmp_path: Path) -> None:
    """kill -9 of a giis and a restart: its children are listed and searched at once, not after their next renewal."""
    ldif = tmp_path / "ldif"
    ldif.mkdir()
    (ldif / "ce.ldif").write_bytes(ce_ldif("a"))
    config = tmp_path / "giis.yaml"
    config.write_text(f"name: site\njournal: {tmp_path / 'giis-registrations.sqlite'}\n")
    with GrisProcess(["--ldif", str(ldif)]) as gris:
        giis = GrisProcess(["--config", str(config)], module="gridinfo.cli.giis")
        giis.start()
        try:
            attrs = registration_message(host="127.0.0.1", port=gris.port, suffix="mds-vo-name=local,o=grid",
                                         now=time.time(), ttl=600)
            conn = ldap3.Connection(ldap3.Server(giis.url, connect_timeout=10), auto_bind=True, receive_timeout=20)
            values = {name: [v.decode() for v in vals] for name, vals in attrs if name != "objectClass"}
            assert conn.add(DN, [v.decode() for v in dict(attrs)["objectClass"]], values), conn.result
            conn.unbind()
            assert giis.proc is not None
            giis.proc.send_signal(signal.SIGKILL)
            giis.proc.wait(10)
            first_log = giis.log
            giis = GrisProcess(["--config", str(config)], module="gridinfo.cli.giis")  # a fresh log
            giis.start()
            conn = ldap3.Connection(ldap3.Server(giis.url, connect_timeout=10), auto_bind=True, receive_timeout=20,
                                    check_names=False)
            conn.search(SITE, "(giisregistrationstatus=*)", search_scope=ldap3.BASE)  # as MDS2's clients sent it
            listed = [r for r in conn.response if r["type"] == "searchResEntry"]
            assert len(listed) == 1 and str(gris.port) in listed[0]["dn"]
            conn.search(SITE, "(objectClass=GlueCE)", attributes=["GlueCEUniqueID"])
            assert len([r for r in conn.response if r["type"] == "searchResEntry"]) == 2
            conn.unbind()
            assert "restored 1 registrations" in giis.log and "restored" not in first_log
        finally:
            giis.stop()
