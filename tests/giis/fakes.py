"""A fake downstream LDAP client for GIIS unit tests: no sockets, answers when the test says."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from gridinfo import ber
from gridinfo.ldap.client import ClientResult


def entry(dn: str, **attrs: str) -> bytes:
    """A SearchResultEntry as a child would send it."""
    return ber.search_result_entry(
        dn.encode(), [ber.partial_attribute(k.replace("_", "-").encode(), [v.encode()]) for k, v in attrs.items()]
    )


class FakeClient:
    """Records requests; each returns a Deferred the test fires (or leaves pending)."""

    def __init__(self, host: str, port: int, **kw: Any):
        self.host, self.port, self.options = host, port, kw
        self.searches: list[tuple[tuple[Any, ...], dict[str, Any], defer.Deferred[ClientResult]]] = []
        self.adds: list[tuple[str, Any, defer.Deferred[ClientResult]]] = []
        self.closed = 0

    def search(self, *args: Any, **kw: Any) -> defer.Deferred[ClientResult]:
        d: defer.Deferred[ClientResult] = defer.Deferred()
        self.searches.append((args, kw, d))
        return d

    def add(self, dn: str, attributes: Any, *, timeout: float = 30.0) -> defer.Deferred[ClientResult]:
        d: defer.Deferred[ClientResult] = defer.Deferred()
        self.adds.append((dn, attributes, d))
        return d

    def close(self) -> None:
        self.closed += 1


class FakeClients:
    """A ``client_factory``: one FakeClient per (host, port), kept for the test to drive."""

    def __init__(self) -> None:
        self.made: dict[tuple[str, int], FakeClient] = {}

    def __call__(self, host: str, port: int, **kw: Any) -> FakeClient:
        client = self.made[(host, port)] = FakeClient(host, port, **kw)
        return client
