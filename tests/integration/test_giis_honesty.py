"""A GIIS answers as honestly as slapd, over real sockets with OpenLDAP's clients and a slapd child:
size limits, failed children, compare, and object class spelling."""

from __future__ import annotations

import pytest
from twisted.internet import defer
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest

from gridinfo.config import StaticChildConfig
from tests.giis.support import ce_ldif, ldap3_search, ldapsearch, register_now, start_giis, start_gris
from tests.support.slapd import Slapd

RESOURCE = "Mds-Vo-name=resource,o=grid"


def dns(out: bytes) -> list[str]:
    return [line for line in out.decode().splitlines() if line.startswith("dn:")]


@pytest.mark.slapd
class HonestGIISTests(unittest.TestCase):
    slapd: Slapd

    def setUp(self) -> None:
        ldif = (
            b"dn: o=grid\nobjectClass: organization\no: grid\n\n"
            b"dn: Mds-Vo-name=resource,o=grid\nobjectClass: MDSVO\nMds-Vo-name: resource\n\n"
            + ce_ldif("bdii", 8, suffix=RESOURCE)
        )
        self.slapd = Slapd(ldif)
        self.slapd.start()
        self.addCleanup(self.slapd.stop)

    def start(self, server):
        self.addCleanup(server.stop)
        return server

    def child(self, mode: str = "forward") -> StaticChildConfig:
        return StaticChildConfig(url=f"{self.slapd.url}{RESOURCE}", mode=mode, timeout=5, period=3600)

    @defer.inlineCallbacks
    def test_ldapsearch_z_through_a_giis_is_size_limit_exceeded_from_child_cache_and_mirror(self):
        """``ldapsearch -z 5`` through a GIIS gets 5 entries and ``4 sizeLimitExceeded``, exactly as from
        slapd itself, whether the child answered, the cache did, or a mirror."""
        out, _, code = yield ldapsearch(self.slapd.port, "-z", "5", "-b", RESOURCE, "(objectClass=GlueCE)", "dn")
        assert code == 4 and len(dns(out)) == 5  # what slapd does
        site = self.start(start_giis("site", children=(self.child(),)))
        for source in ("child", "cache"):
            out, err, code = yield ldapsearch(site.port, "-z", "5", "-b", "mds-vo-name=site,o=grid", "(objectClass=GlueCE)", "dn")
            assert code == 4, (source, err)
            assert len(dns(out)) == 5, source
            assert b"Size limit exceeded" in out + err
        (child,) = site.backend.children.all()
        assert child.stats.cache_hits == 1
        mirror = self.start(start_giis("mirror", children=(self.child("mirror"),)))
        (mchild,) = mirror.backend.children.all()
        yield mirror.backend.pull_mirror(mchild)
        out, err, code = yield ldapsearch(mirror.port, "-z", "5", "-b", "mds-vo-name=mirror,o=grid", "(objectClass=GlueCE)", "dn")
        assert code == 4 and len(dns(out)) == 5, err
        out, err, code = yield ldapsearch(mirror.port, "-z", "8", "-b", "mds-vo-name=mirror,o=grid", "(objectClass=GlueCE)", "dn")
        assert code == 0 and len(dns(out)) == 8, err  # exactly as many as there are: success

    @defer.inlineCallbacks
    def test_a_child_failing_mid_answer_and_a_dead_child_are_named_in_the_result_and_the_status(self):
        """A slapd child that drops a request too big for it, and a registered GRIS that died, leave the
        code at 0 (MDS2 answers with what it has) but SearchResultDone's message names them, and their
        status entries under o=infosys say unreachable."""
        site = self.start(start_giis("site", children=(self.child(),)))
        gris = self.start(start_gris("g", register=site.url("mds-vo-name=site,o=grid"), timeout=2))
        yield register_now(gris)
        yield gris.stop()  # registered, then dead: its port refuses connections
        # 5,000 terms: about 300 KB, over slapd's 256 KiB limit for anonymous requests
        big = "(|" + "".join(f"(GlueCEUniqueID=ce{i:05d}.no-such-site.example.org:2119/jobmanager-q)" for i in range(5000)) + ")"
        entries, result = yield ldap3_search(site.url(""), "mds-vo-name=site,o=grid", filter=big, attributes=["1.1"])
        assert result["result"] == 0 and entries == []
        slapd_url = f"{self.slapd.url}{RESOURCE}"
        assert result["message"].startswith("partial answer: 2 of 2 children failed; no data from ")
        assert slapd_url.lower() in result["message"].lower()
        entries, result = yield ldap3_search(site.url(""), "mds-vo-name=site,o=grid", filter="(objectClass=GlueCE)", attributes=["1.1"])
        assert result["result"] == 0 and len(entries) == 8  # the slapd child's
        assert "no data from ldap://127.0.0.1:" in result["message"] and "mds-vo-name=local,o=grid" in result["message"]
        out, err, code = yield ldapsearch(site.port, "-b", "o=infosys", "(objectClass=GridinfoChildStatus)",
                                          "GridinfoChildURL", "GridinfoChildState", "GridinfoChildLastError")
        assert code == 0, err
        states = [line for line in out.decode().splitlines() if line.startswith("GridinfoChildState:")]
        assert sorted(states) == ["GridinfoChildState: ok", "GridinfoChildState: unreachable"]

    @defer.inlineCallbacks
    def test_compare_on_a_giis_answers_for_entries_its_search_returns(self):
        """``ldapcompare`` on a child's entry through the GIIS is TRUE or FALSE, as on the child;
        noSuchObject only for entries that do not exist."""
        site = self.start(start_giis("site", children=(self.child(),)))
        dn = f"GlueCEUniqueID=bdii-ce1.example.org:2119/jobmanager-pbs-q,{RESOURCE.replace('o=grid', 'mds-vo-name=site,o=grid')}"

        def compare(target: str, assertion: str):
            return getProcessOutputAndValue(
                "/usr/bin/ldapcompare", ["-x", "-H", f"ldap://127.0.0.1:{site.port}", target, assertion], env={}
            )

        out, err, code = yield compare(dn, "GlueCEStateFreeCPUs:20")
        assert code == 6 and b"TRUE" in out, (out, err)  # compareTrue
        out, err, code = yield compare(dn, "GlueCEStateFreeCPUs:21")
        assert code == 5 and b"FALSE" in out, (out, err)  # compareFalse
        out, err, code = yield compare(dn.replace("ce1", "ce99"), "GlueCEStateFreeCPUs:20")
        assert code == 32, (out, err)  # noSuchObject
        out, err, code = yield compare("mds-vo-name=site,o=grid", "Mds-Vo-name:site")
        assert code == 6, (out, err)  # its own entry

    @defer.inlineCallbacks
    def test_object_classes_come_back_as_the_schema_spells_them(self):
        """A child storing ``objectClass: MDSVO`` is published as ``MdsVo``, forwarded or mirrored."""
        out, _, _ = yield ldapsearch(self.slapd.port, "-b", RESOURCE, "-s", "base", "objectClass")
        assert b"objectClass: MDSVO" in out  # slapd keeps what it was given
        site = self.start(start_giis("site", children=(self.child(),)))
        out, err, code = yield ldapsearch(site.port, "-b", "Mds-Vo-name=resource,mds-vo-name=site,o=grid", "-s", "base", "objectClass")
        assert code == 0, err
        assert b"objectClass: MdsVo" in out and b"MDSVO" not in out
