"""The operator log in memory: slapd's stats lines for every operation and result, JSON lines, or nothing.

Over a real socket with a real gris: tests/integration/test_oplog_socket.py.
"""

from __future__ import annotations

import json
import re

from ldaptor.protocols import pureldap as L
from twisted.internet import task
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from gridinfo.ldap.oplog import OperationLog
from gridinfo.ldap.server import LDAPServerFactory, ServerLimits
from tests.ldap.test_server import Client
from tests.support.serve_fixture import DictBackend, sample_entries

ETIME = r"etime=\d+\.\d{6}"


class OperationLogTests(SynchronousTestCase):
    def connect(self, fmt: str | None) -> tuple[Client, list[str]]:
        self.clock = task.Clock()
        factory = LDAPServerFactory(
            DictBackend(sample_entries()), reactor=self.clock, limits=ServerLimits(), vendor_version="9.9",
            credentials={"cn=admin,o=grid": "secret"}, observers=(OperationLog(fmt),) if fmt else (),
        )
        self.lines: list[str] = []
        with capturedLogs() as events:
            client = Client(factory)
        self.lines += [formatEvent(e) for e in events if e.get("log_namespace") == "gridinfo.stats"]
        return client, self.lines

    def run_ops(self, client: Client) -> list[str]:
        with capturedLogs() as events:
            client.send(L.LDAPBindRequest(dn=b"cn=admin,o=grid", auth=b"secret"))
            client.responses()
            client.search(base="o=grid", scope=2, attributes=["GlueCEUniqueID", "GlueCEStateFreeCPUs"])
            client.send(L.LDAPCompareRequest(entry="o=grid", ava=L.LDAPAttributeValueAssertion(
                L.LDAPAttributeDescription("o"), L.LDAPAssertionValue("grid"))))
            client.responses()
            client.send(L.LDAPSearchRequest(baseObject="o=nowhere", scope=0, filter=L.LDAPFilter_present("objectClass")))
            client.responses()
            client.send(L.LDAPUnbindRequest())
            client.protocol.connectionLost()
        return self.lines + [formatEvent(e) for e in events if e.get("log_namespace") == "gridinfo.stats"]

    def test_text_lines_have_the_shape_of_slapds_stats_log(self) -> None:
        client, _ = self.connect("text")
        lines = self.run_ops(client)
        expected = [
            r"conn=1000 fd=0 ACCEPT from IP=192\.0\.2\.1:40000",
            r'conn=1000 op=0 BIND dn="cn=admin,o=grid" method=128',
            rf"conn=1000 op=0 RESULT tag=97 err=0 {ETIME} text=",
            r'conn=1000 op=1 SRCH base="o=grid" scope=2 deref=0 filter="\(objectClass=\*\)"',
            r"conn=1000 op=1 SRCH attr=GlueCEUniqueID GlueCEStateFreeCPUs",
            rf"conn=1000 op=1 SEARCH RESULT tag=101 err=0 nentries=\d+ {ETIME} text=",
            r'conn=1000 op=2 CMP dn="o=grid" attr="o"',
            rf"conn=1000 op=2 RESULT tag=111 err=6 {ETIME} text=",
            r'conn=1000 op=3 SRCH base="o=nowhere" scope=0 deref=0 filter="\(objectClass=\*\)"',
            rf"conn=1000 op=3 SEARCH RESULT tag=101 err=32 nentries=0 {ETIME} text=.+",
            r"conn=1000 op=4 UNBIND",
            r"conn=1000 fd=0 closed",
        ]
        self.assertEqual(len(lines), len(expected), "\n".join(lines))
        for line, pattern in zip(lines, expected):
            self.assertRegex(line, "^" + pattern + "$")
        nentries = int(re.search(r"nentries=(\d+)", lines[5]).group(1))  # type: ignore[union-attr]
        self.assertGreater(nentries, 0)

    def test_json_lines_carry_the_same_fields(self) -> None:
        client, _ = self.connect("json")
        records = [json.loads(line) for line in self.run_ops(client)]
        search = [r for r in records if r.get("event") == "SEARCH RESULT"][0]
        self.assertEqual((search["conn"], search["opn"], search["tag"], search["err"]), (1000, 1, 101, 0))
        self.assertIn("nentries", search)
        self.assertEqual(records[0], {"conn": 1000, "event": "ACCEPT", "from": "192.0.2.1:40000"})

    def test_off_writes_no_stats_line(self) -> None:
        client, _ = self.connect(None)
        self.assertEqual(self.run_ops(client), [])

    def test_an_unknown_format_is_refused(self) -> None:
        with self.assertRaises(ValueError):
            OperationLog("verbose")
