"""GRIS and GIIS over loopback: registration, forwarding, naming, hierarchy, stale data, cycles."""

from __future__ import annotations


from twisted.internet import defer, reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest

from gridinfo.giis.leases import format_generalized_time
from tests.giis.support import ldap3_search, ldapsearch, register_now, start_giis, start_gris



class HierarchyTests(unittest.TestCase):
    def start(self, server):
        self.addCleanup(server.stop)
        return server

    @defer.inlineCallbacks
    def test_two_gris_under_a_site_giis(self):
        """ldapsearch against the GIIS returns the GRIS entries under the GIIS's name."""
        site = self.start(start_giis("site"))
        a = self.start(start_gris("a", register=site.url("mds-vo-name=site,o=grid")))
        b = self.start(start_gris("b", register=site.url("mds-vo-name=site,o=grid")))
        yield register_now(a)
        yield register_now(b)
        out, err, code = yield ldapsearch(site.port, "-b", "mds-vo-name=site,o=grid", "(objectClass=GlueCE)", "GlueCEUniqueID")
        assert code == 0, err
        dns = sorted(line for line in out.decode().splitlines() if line.startswith("dn:"))
        assert dns == [
            f"dn: GlueCEUniqueID={n}-ce{i}.example.org:2119/jobmanager-pbs-q,mds-vo-name=site,o=grid"
            for n in "ab"
            for i in range(2)
        ]
        # the registrants, MDS2 style
        out, err, code = yield ldapsearch(site.port, "-b", "mds-vo-name=site,o=grid", "-s", "base", "giisregistrationstatus")
        assert code == 0, err
        text = out.decode()
        assert text.count("Mds-Reg-status: VALID") == 2
        assert f"Mds-Service-port: {a.port}" in text and f"Mds-Service-port: {b.port}" in text
        # and the same with ldap3
        entries, result = yield ldap3_search(site.url(""), "mds-vo-name=site,o=grid", filter="(GlueCEStateFreeCPUs>=20)")
        assert result["result"] == 0
        assert sorted(dn.split(",")[0] for dn, _ in entries) == [
            "GlueCEUniqueID=a-ce1.example.org:2119/jobmanager-pbs-q",
            "GlueCEUniqueID=b-ce1.example.org:2119/jobmanager-pbs-q",
        ]

    @defer.inlineCallbacks
    def test_a_registration_made_with_plain_ldapadd_works(self):
        """A registration made with OpenLDAP's ldapadd (as grid-info-soft-register did) works."""
        site = self.start(start_giis("site"))
        gris = self.start(start_gris("a"))
        now = reactor.seconds()
        ldif = (
            "dn: Mds-Vo-Op-name=register, Mds-Vo-name=site, o=grid\n"
            "objectclass: Mds\nobjectclass: MdsVoOp\nobjectclass: MdsService\nobjectclass: MdsServiceLdap\n"
            "Mds-Vo-Op-name: register\nMds-Service-type: ldap\nMds-Service-protocol: 0.1\n"
            f"Mds-Service-hn: 127.0.0.1\nMds-Service-port: {gris.port}\n"
            "Mds-Service-Ldap-suffix: Mds-Vo-name=local, o=grid\nMds-Service-Ldap-sizelimit: 0\n"
            "Mds-Bind-Method-servers: ANONYM-ONLY\n"
            f"Mds-validfrom: {format_generalized_time(now)}\nMds-validto: {format_generalized_time(now + 600)}\n"
            f"Mds-keepto: {format_generalized_time(now + 600)}\nMds-Service-Ldap-timeout: 20\n"
            "Mds-Service-Ldap-cachettl: 30\n"
        )
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".ldif", delete=False) as f:
            f.write(ldif)
        out, err, code = yield getProcessOutputAndValue(
            "/usr/bin/ldapadd", ["-x", "-H", f"ldap://127.0.0.1:{site.port}", "-f", f.name], env={}
        )
        assert code == 0, err
        out, err, code = yield ldapsearch(site.port, "-b", "mds-vo-name=site,o=grid", "(GlueCEUniqueID=a-ce0*)", "dn")
        assert out.decode().strip() == "dn: GlueCEUniqueID=a-ce0.example.org:2119/jobmanager-pbs-q,mds-vo-name=site,o=grid"
        # a lease already over is refused with constraintViolation (19) and a reason
        with open(f.name, "w") as g:
            g.write(ldif.replace(format_generalized_time(now + 600), format_generalized_time(now - 600)))
        out, err, code = yield getProcessOutputAndValue(
            "/usr/bin/ldapadd", ["-x", "-H", f"ldap://127.0.0.1:{site.port}", "-f", f.name], env={}
        )
        assert code == 19 and b"in the past" in err, err

    @defer.inlineCallbacks
    def test_a_three_level_hierarchy_appends_names_at_each_level(self):
        """GRIS -> site GIIS -> top GIIS: names are appended at each level; ldapsearch and ldap3 agree."""
        top = self.start(start_giis("top"))
        site = self.start(start_giis("site", register=top.url("mds-vo-name=top,o=grid")))
        gris = self.start(start_gris("a", register=site.url("mds-vo-name=site,o=grid")))
        yield register_now(gris)
        yield register_now(site)
        out, err, code = yield ldapsearch(top.port, "-b", "mds-vo-name=top,o=grid", "(objectClass=GlueCE)", "dn")
        assert code == 0, err
        assert sorted(out.decode().split()) == sorted(
            ["dn:", f"GlueCEUniqueID=a-ce{i}.example.org:2119/jobmanager-pbs-q,mds-vo-name=site,mds-vo-name=top,o=grid"][j]
            for i in range(2)
            for j in range(2)
        )
        entries, result = yield ldap3_search(top.url(""), "mds-vo-name=site,mds-vo-name=top,o=grid")
        dns = sorted(dn for dn, _ in entries)
        assert "mds-vo-name=site,mds-vo-name=top,o=grid" in [d.lower() for d in dns]
        assert len([d for d in dns if d.startswith("GlueCEUniqueID=a-ce")]) == 2
        # a base search on a deep entry is routed down two levels
        out, err, code = yield ldapsearch(
            top.port, "-s", "base", "-b",
            "GlueCEUniqueID=a-ce1.example.org:2119/jobmanager-pbs-q,mds-vo-name=site,mds-vo-name=top,o=grid",
            "(objectClass=*)", "GlueCEStateFreeCPUs",
        )
        assert code == 0, err
        assert "GlueCEStateFreeCPUs: 20" in out.decode()

    @defer.inlineCallbacks
    def test_registration_cycle_does_not_loop(self):
        """A under B under A: searches terminate, nothing is multiplied, the cycle is logged and counted."""
        a = self.start(start_giis("a"))
        b = self.start(start_giis("b", register=a.url("mds-vo-name=a,o=grid")))
        # and A registers with B: a cycle
        a2 = self.start(start_giis("a", register=b.url("mds-vo-name=b,o=grid")))
        gris = self.start(start_gris("g", register=b.url("mds-vo-name=b,o=grid")))
        yield register_now(b)
        yield register_now(gris)
        # register A itself (the one B is registered with) under B, by port
        a2.top.registrar.parents[0].port = a.port
        yield register_now(a2)
        out, err, code = yield ldapsearch(a.port, "-b", "o=grid", "(objectClass=GlueCE)", "dn")
        assert code == 0, err
        dns = [line for line in out.decode().splitlines() if line.startswith("dn:")]
        assert sorted(dns) == [
            f"dn: GlueCEUniqueID=g-ce{i}.example.org:2119/jobmanager-pbs-q,mds-vo-name=b,mds-vo-name=a,o=grid"
            for i in range(2)
        ]
        assert a.backend.status.cycles + b.backend.status.cycles >= 1
        # ... and the status tree says so, at the GIIS that saw it come back round
        seen = a if a.backend.status.cycles else b
        out, err, code = yield ldapsearch(seen.port, "-b", "cn=giis,o=infosys", "-s", "base")
        assert code == 0, err
        status = out.decode()
        assert f"GridinfoCycles: {seen.backend.status.cycles}" in status
        assert "GridinfoLastCycle: " in status and "GridinfoChildCount: " in status
