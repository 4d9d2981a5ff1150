"""The directory core behind a real LDAP listener on loopback, in this process.

The server and its tree run on the real reactor (port 0); clients are gridinfo's own LDAP client
and a raw socket protocol, so the test can look inside the tree afterwards (cache sizes) and see
the order in which answers arrive.
"""

from __future__ import annotations

import random
import string

from twisted.internet import defer, reactor
from twisted.trial import unittest

from gridinfo.directory import entry as entry_module
from gridinfo.directory.dn import _TYPE_CACHE_MAX
from gridinfo.directory.schema import load_schema
from gridinfo.directory.tree import DirectoryTree
from gridinfo.errors import ResultCode
from gridinfo.gris.backend import TreeBackend
from gridinfo.ldap.client import LDAPClient, decode_entry
from gridinfo.ldap.server import LDAPServerFactory, ServerLimits


def small_tree() -> DirectoryTree:
    tree = DirectoryTree(load_schema(()), indexed=("objectClass", "GlueCEUniqueID"))
    tree.add(tree.build("o=grid", [("objectClass", [b"organization"]), ("o", [b"grid"])]))
    tree.add(tree.build("mds-vo-name=local,o=grid", [("objectClass", [b"MdsVo"]), ("Mds-Vo-name", [b"local"])]))
    for i in range(50):
        ce = f"ce{i}.example.org:8443/cream-pbs-q".encode()
        tree.add(
            tree.build(
                f"GlueCEUniqueID={ce.decode()},mds-vo-name=local,o=grid",
                [("objectClass", [b"GlueCETop", b"GlueCE"]), ("GlueCEUniqueID", [ce]), ("GlueCEName", [b"q"])],
            )
        )
    return tree


class Served:
    """A tree served on 127.0.0.1:<free port> until ``stop``."""

    def __init__(self, tree: DirectoryTree, limits: ServerLimits = ServerLimits()):
        self.tree = tree
        factory = LDAPServerFactory(
            TreeBackend(tree, naming_contexts=["o=grid"]), reactor=reactor, limits=limits, vendor_version="test"
        )
        self.port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.url = f"ldap://127.0.0.1:{self.port.getHost().port}"

    def client(self, case: unittest.TestCase) -> LDAPClient:
        c = LDAPClient.from_url(reactor, self.url, connect_timeout=10)
        case.addCleanup(c.close)
        return c


def invented(rng: random.Random, n: int) -> list[str]:
    return ["x" + "".join(rng.choices(string.ascii_letters + string.digits + "-", k=12)) for _ in range(n)]


class BoundedCachesOverTheWire(unittest.TestCase):
    def setUp(self) -> None:
        self.served = Served(small_tree())
        self.addCleanup(self.served.port.stopListening)

    @defer.inlineCallbacks
    def test_random_attribute_names_do_not_grow_the_caches(self):
        """A client sending thousands of invented attribute names costs the server no memory.

        20,000 never-seen names go out in filters, attribute lists and search bases (issue 9
        item 3: two million of them used to grow the schema's cache by 200 MB for good); the
        server keeps answering right and every cache stays within its bound.
        """
        rng = random.Random(9)
        client = self.served.client(self)
        schema = self.served.tree.schema
        tree = self.served.tree
        ce_filter = "(GlueCEUniqueID=ce7.example.org:8443/cream-pbs-q)"
        for round_ in range(20):
            names = invented(rng, 500)
            flt = "(|" + "".join(f"({a}={a})" for a in names[:250]) + ce_filter + ")"
            result = yield client.search("o=grid", 2, flt, names[250:] + ["GlueCEName"], timeout=30)
            self.assertEqual(result.code, ResultCode.SUCCESS)
            self.assertEqual([decode_entry(e)[1] for e in result.entries], [[("GlueCEName", [b"q"])]])
            missing = yield client.search(f"{names[0]}=v,o=grid", 0, "(objectClass=*)", timeout=30)
            self.assertEqual(missing.code, ResultCode.NO_SUCH_OBJECT)
            if round_ == 0:
                after_first = len(schema._matching_cache)
        self.assertEqual(len(schema._matching_cache), after_first)
        self.assertLessEqual(len(schema._matching_cache), sum(len(at.names) + 1 for at in schema.attribute_types()))
        self.assertLessEqual(len(tree.normaliser._types), _TYPE_CACHE_MAX)
        self.assertLessEqual(len(tree.builder._attr_cache), entry_module._ATTR_CACHE_MAX)
        self.assertLessEqual(len(tree.builder._plans), entry_module._PLAN_CACHE_MAX)
