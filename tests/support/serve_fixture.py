"""A small backend double and a script serving it over loopback for wire-level tests.

``DictBackend`` implements the Backend contract (gridinfo.directory.query) over a dict of
entries encoded once at construction; it is a stand-in for the real tree so the LDAP server
protocol can be tested alone.  Run ``python -m tests.support.serve_fixture`` to serve it on
127.0.0.1 (port chosen by the kernel); the script prints ``PORT <n>`` once listening.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer

from gridinfo.directory.query import Scope, SearchRequest, SearchResult
from gridinfo.errors import NoSuchObject, ResultCode, UnwillingToPerform
from gridinfo.ldap.dse import DSEEntry, normalise_dn

_DIRSTRING = "1.3.6.1.4.1.1466.115.121.1.15"
_IA5 = "1.3.6.1.4.1.1466.115.121.1.26"
_INTEGER = "1.3.6.1.4.1.1466.115.121.1.27"
_OID_SYNTAX = "1.3.6.1.4.1.1466.115.121.1.38"


@dataclass(frozen=True)
class _Definition:
    oid: str
    name: str
    text: str

    def definition(self) -> str:
        return self.text


def _attribute(oid: str, name: str, syntax: str, equality: str, extra: str = "") -> _Definition:
    return _Definition(oid, name, f"( {oid} NAME '{name}' EQUALITY {equality}{extra} SYNTAX {syntax} )")


class FixtureSchema:
    """A few attribute types and object classes, in the shape of gridinfo's Schema API."""

    def __init__(self) -> None:
        self._attributes = [
            _Definition(
                "2.5.4.0",
                "objectClass",
                f"( 2.5.4.0 NAME 'objectClass' EQUALITY objectIdentifierMatch SYNTAX {_OID_SYNTAX} )",
            ),
            _attribute("2.5.4.3", "cn", _DIRSTRING, "caseIgnoreMatch"),
            _attribute("2.5.4.10", "o", _DIRSTRING, "caseIgnoreMatch"),
            _attribute("2.5.4.13", "description", _DIRSTRING, "caseIgnoreMatch"),
            _attribute("1.3.6.1.4.1.3536.2.6.1.1.0", "Mds-Vo-name", _IA5, "caseIgnoreIA5Match", " SINGLE-VALUE"),
            _attribute("1.3.6.1.4.1.8005.100.2.2.1", "GlueCEUniqueID", _IA5, "caseIgnoreIA5Match", " SINGLE-VALUE"),
            _attribute(
                "1.3.6.1.4.1.8005.100.2.2.2",
                "GlueCEStateFreeCPUs",
                _INTEGER,
                "integerMatch",
                " ORDERING integerOrderingMatch SINGLE-VALUE",
            ),
            _attribute("1.3.6.1.4.1.8005.100.2.2.3", "GlueCEName", _IA5, "caseIgnoreIA5Match"),
        ]
        self._classes = [
            _Definition("2.5.6.0", "top", "( 2.5.6.0 NAME 'top' ABSTRACT MUST objectClass )"),
            _Definition("2.5.6.4", "organization", "( 2.5.6.4 NAME 'organization' SUP top STRUCTURAL MUST o MAY description )"),
            _Definition(
                "1.3.6.1.4.1.3536.2.6.1.0",
                "MdsVo",
                "( 1.3.6.1.4.1.3536.2.6.1.0 NAME 'MdsVo' SUP top STRUCTURAL MUST Mds-Vo-name )",
            ),
            _Definition(
                "1.3.6.1.4.1.8005.100.2.1.1",
                "GlueCE",
                "( 1.3.6.1.4.1.8005.100.2.1.1 NAME 'GlueCE' SUP top STRUCTURAL MUST GlueCEUniqueID "
                "MAY ( GlueCEName $ GlueCEStateFreeCPUs ) )",
            ),
        ]

    def attribute_types(self) -> Iterable[_Definition]:
        return iter(self._attributes)

    def object_classes(self) -> Iterable[_Definition]:
        return iter(self._classes)


def sample_entries(ces: int = 5) -> dict[str, dict[str, list[str]]]:
    """o=grid, the GRIS suffix and ``ces`` computing elements under it."""
    entries: dict[str, dict[str, list[str]]] = {
        "o=grid": {"objectClass": ["top", "organization"], "o": ["grid"]},
        "mds-vo-name=local,o=grid": {"objectClass": ["top", "MdsVo"], "Mds-Vo-name": ["local"]},
    }
    for i in range(ces):
        ce_id = f"ce{i}.example.org:8443/cream-pbs-q{i}"
        entries[f"GlueCEUniqueID={ce_id},mds-vo-name=local,o=grid"] = {
            "objectClass": ["top", "GlueCE"],
            "GlueCEUniqueID": [ce_id],
            "GlueCEName": [f"q{i}"],
            "GlueCEStateFreeCPUs": [str(10 * i)],
        }
    return entries


class DictBackend:
    """The Backend contract over a dict ``{dn: {attribute: [values]}}``, entries encoded once.

    ``deferred=True`` makes search/compare/add answer with Deferreds kept (with their answer)
    in ``waiting`` until the test calls :meth:`release`.  A search based at ``cn=bug`` raises a plain exception (a backend bug).
    """

    write_refusal_message: str | None = None

    def __init__(
        self,
        entries: Mapping[str, Mapping[str, list[str]]],
        *,
        deferred: bool = False,
        accept_adds: bool = False,
    ) -> None:
        self._entries: dict[str, DSEEntry] = {}
        for dn, attributes in entries.items():
            entry = DSEEntry(dn)
            for name, values in attributes.items():
                entry.add(name, values, operational=False)
            self._entries[normalise_dn(dn)] = entry
        self._schema = FixtureSchema()
        self.deferred = deferred
        self.accept_adds = accept_adds
        self.waiting: list[tuple[defer.Deferred[Any], Any]] = []
        self.requests: list[SearchRequest] = []
        self.added: list[tuple[str, list[tuple[str, list[bytes]]], str]] = []

    @property
    def schema(self) -> FixtureSchema:
        return self._schema

    def naming_contexts(self) -> list[str]:
        return ["o=grid"]

    def _later(self, value: Any) -> Any:
        if not self.deferred:
            return value
        d: defer.Deferred[Any] = defer.Deferred()
        self.waiting.append((d, value))
        return d

    def release(self) -> None:
        """Fire every waiting Deferred with the answer it was holding."""
        waiting, self.waiting = self.waiting, []
        for d, value in waiting:
            d.callback(value)

    def search(self, request: SearchRequest) -> Any:
        self.requests.append(request)
        base = normalise_dn(request.base)
        if base == "cn=bug":
            raise RuntimeError("a deliberate backend bug")
        if base not in self._entries:
            raise NoSuchObject(f"no entry {request.base}", matched_dn="o=grid")
        suffix = "," + base
        found = []
        for dn, entry in self._entries.items():
            if request.scope == Scope.BASE:
                inside = dn == base
            elif request.scope == Scope.ONE:
                inside = dn.endswith(suffix) and "," not in dn[: -len(suffix)]
            elif request.scope == Scope.CHILDREN:
                inside = dn.endswith(suffix)
            else:
                inside = dn == base or dn.endswith(suffix)
            if inside and entry.matches(request.filter):
                found.append(entry.encode(request.attributes, request.types_only))
        result = SearchResult(found)
        if request.size_limit and len(found) > request.size_limit:
            result = SearchResult(found[: request.size_limit], ResultCode.SIZE_LIMIT_EXCEEDED)
        return self._later(result)

    def compare(self, dn: str, attribute: str, value: bytes) -> Any:
        entry = self._entries.get(normalise_dn(dn))
        if entry is None:
            raise NoSuchObject(f"no entry {dn}")
        return self._later(any(v.lower() == value.lower() for v in entry.values(attribute)))

    def add(self, dn: str, attributes: list[tuple[str, list[bytes]]], bind_dn: str, peer: str | None = None) -> Any:
        if not self.accept_adds:
            raise UnwillingToPerform("this GRIS does not accept registrations")
        self.added.append((dn, attributes, bind_dn))
        return self._later(None)


CREDENTIALS = {"cn=admin,o=grid": "secret"}


def main(argv: list[str]) -> None:
    """Serve a DictBackend on 127.0.0.1; prints ``PORT <n>`` when listening."""
    from twisted.internet import reactor

    from gridinfo.ldap.server import LDAPServerFactory, ServerLimits

    size_limit = int(argv[0]) if argv else 0
    factory = LDAPServerFactory(
        DictBackend(sample_entries(), accept_adds=True),
        reactor=reactor,  # type: ignore[arg-type]
        limits=ServerLimits(default_size_limit=size_limit),
        credentials=CREDENTIALS,
        vendor_version="test",
    )
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore[attr-defined]
    sys.stdout.write(f"PORT {port.getHost().port}\n")
    sys.stdout.flush()
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main(sys.argv[1:])
