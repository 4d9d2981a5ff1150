"""Operational attributes and BDII's UpdateStats over real sockets, read with OpenLDAP's ldapsearch.

A real GRIS (static LDIF) and a real GIIS with that GRIS as a static child, on loopback.
"""

from __future__ import annotations

import re
import uuid

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from gridinfo.config import StaticChildConfig
from tests.giis.support import ldapsearch, start_giis, start_gris

GENERALIZED = re.compile(r"\d{14}Z\Z")
CSN = re.compile(r"\d{14}\.\d{6}Z#[0-9a-f]{6}#000#000000\Z")
FRESHNESS = "(|(objectClass=UpdateStats)(objectClass=InfoSystemStats))"


def records(text: bytes) -> list[dict[str, list[str]]]:
    out = []
    for block in text.decode().strip().split("\n\n"):
        if not block.strip():
            continue
        rec: dict[str, list[str]] = {}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            rec.setdefault(name, []).append(value)
        out.append(rec)
    return out


class OperationalOverSocketTests(unittest.TestCase):
    def start(self, server):
        self.addCleanup(server.stop)
        return server

    @defer.inlineCallbacks
    def test_freshness_probe_reads_update_stats_modify_timestamp(self):
        """The freshness probe's search: UpdateStats under o=infosys, with its modifyTimestamp."""
        gris = self.start(start_gris("a"))
        out, err, code = yield ldapsearch(gris.port, "-b", "o=infosys", FRESHNESS, "modifyTimestamp")
        assert code == 0, err
        (rec,) = records(out)
        assert rec["dn"][0].lower().startswith("hostname=") and rec["dn"][0].endswith(",o=infosys")
        assert GENERALIZED.match(rec["modifyTimestamp"][0]), rec
        assert set(rec) == {"dn", "modifyTimestamp"}
        # the figures with *
        out, err, code = yield ldapsearch(gris.port, "-b", "o=infosys", "(objectClass=UpdateStats)")
        (rec,) = records(out)
        assert rec["objectClass"] == ["UpdateStats"]
        served = 0
        for suffix in ("o=grid", "o=glue"):  # every entry outside o=infosys
            listing, err, code = yield ldapsearch(gris.port, "-b", suffix, "(objectClass=*)", "1.1")
            assert code == 0, err
            served += len(records(listing))
        assert int(rec["TotalEntries"][0]) == served >= 4  # o=grid, the suffix, two CEs, and o=glue's
        assert "modifyTimestamp" not in rec  # operational: not for *

    @defer.inlineCallbacks
    def test_plus_and_filters_on_operational_attributes(self):
        gris = self.start(start_gris("a"))
        out, err, code = yield ldapsearch(gris.port, "-b", "o=grid", "(objectClass=GlueCE)", "+")
        assert code == 0, err
        recs = records(out)
        assert len(recs) == 2
        for rec in recs:
            assert uuid.UUID(rec["entryUUID"][0]).version == 5
            assert CSN.match(rec["entryCSN"][0])
            assert GENERALIZED.match(rec["createTimestamp"][0]) and GENERALIZED.match(rec["modifyTimestamp"][0])
            assert rec["structuralObjectClass"] == ["GlueCE"] and rec["hasSubordinates"] == ["FALSE"]
            assert "GlueCEName" not in rec
        wanted = recs[0]["entryUUID"][0]
        out, err, code = yield ldapsearch(gris.port, "-b", "o=grid", f"(entryUUID={wanted})", "1.1")
        assert code == 0, err
        assert [r["dn"] for r in records(out)] == [recs[0]["dn"]]
        out, _, _ = yield ldapsearch(gris.port, "-b", "o=grid", "(modifyTimestamp>=20000101000000Z)", "1.1")
        assert len(records(out)) == 4
        out, _, _ = yield ldapsearch(gris.port, "-b", "o=grid", "(modifyTimestamp<=20000101000000Z)", "1.1")
        assert records(out) == []
        out, _, _ = yield ldapsearch(gris.port, "-b", "o=grid", "(hasSubordinates=TRUE)", "1.1")
        assert sorted(r["dn"][0] for r in records(out)) == ["mds-vo-name=local,o=grid", "o=grid"]
        out, _, _ = yield ldapsearch(gris.port, "-b", "o=grid", "-s", "base", "(objectClass=*)", "contextCSN")
        (rec,) = records(out)
        assert CSN.match(rec["contextCSN"][0])
        # typesOnly
        out, _, _ = yield ldapsearch(gris.port, "-A", "-b", "o=grid", "-s", "base", "(objectClass=*)", "entryUUID")
        assert records(out) == [{"dn": ["o=grid"], "entryUUID:": [""]}]  # ldapsearch -A prints the bare type

    @defer.inlineCallbacks
    def test_giis_publishes_update_stats_and_passes_plus_to_its_children(self):
        """A forwarded child's operational attributes are the child's; a pushed child's entries are
        the GIIS's own (held in its tree: entryUUID from the GIIS's DN, stable across restarts)."""
        gris = self.start(start_gris("a"))
        giis = self.start(start_giis("site", push=False, children=(
            StaticChildConfig(url=gris.url("mds-vo-name=local,o=grid"), timeout=5),)))
        pushed = self.start(start_giis("site", children=(
            StaticChildConfig(url=gris.url("mds-vo-name=local,o=grid"), timeout=5),)))
        direct, _, _ = yield ldapsearch(gris.port, "-b", "o=grid", "(objectClass=GlueCE)", "entryUUID")
        via, err, code = yield ldapsearch(giis.port, "-b", "o=grid", "(objectClass=GlueCE)", "entryUUID")
        assert code == 0, err
        assert sorted(r["entryUUID"][0] for r in records(via)) == sorted(r["entryUUID"][0] for r in records(direct))
        (child,) = pushed.backend.children.all()
        for _ in range(1500):  # bounded: 30 s for the first refresh over loopback
            if child.held:
                break
            yield task.deferLater(reactor, 0.02, lambda: None)
        assert child.held
        held, err, code = yield ldapsearch(pushed.port, "-b", "o=grid", "(objectClass=GlueCE)", "entryUUID")
        assert code == 0, err
        held_uuids = sorted(r["entryUUID"][0] for r in records(held))
        assert len(held_uuids) == 2 and set(held_uuids).isdisjoint(r["entryUUID"][0] for r in records(direct))
        assert all(uuid.UUID(u).version == 5 for u in held_uuids)
        out, err, code = yield ldapsearch(giis.port, "-b", "o=infosys", FRESHNESS, "modifyTimestamp", "TotalEntries")
        assert code == 0, err
        (rec,) = records(out)
        assert GENERALIZED.match(rec["modifyTimestamp"][0])
        assert int(rec["TotalEntries"][0]) >= 2  # the child's answer counts
        out, err, code = yield ldapsearch(pushed.port, "-b", "o=infosys", FRESHNESS, "TotalEntries")
        assert code == 0, err
        (rec,) = records(out)
        everything, _, _ = yield ldapsearch(pushed.port, "-b", "o=grid", "(objectClass=*)", "1.1")
        assert int(rec["TotalEntries"][0]) == len(records(everything))  # held entries counted once
