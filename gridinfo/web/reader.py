"""Searches through a daemon's backend, as the LDAP server runs them, decoded for the web view.

The backend answers a :class:`SearchRequest` with a result, a Deferred, or a result whose
``cursor`` must be run slice by slice on later reactor turns (as the LDAP server does); the
reader does the same, so a long search from the web view shares the reactor as fairly as an
LDAP client's.  ``bind_dn`` is the identity every request carries: the backend applies its
rules (what anonymous readers see) exactly as for an LDAP client bound so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer

from gridinfo.directory.filters import parse_filter
from gridinfo.directory.query import Scope, SearchRequest, SearchResult
from gridinfo.errors import LDAPError, ResultCode
from gridinfo.ldap.client import decode_entry

Attributes = dict[str, list[str]]

#: entries decoded per reactor turn (about a millisecond's work)
DECODE_SLICE = 200


@dataclass
class Answer:
    """Decoded entries (DN, attributes as text) and the result code and message."""

    entries: list[tuple[str, Attributes]] = field(default_factory=list)
    code: int = 0
    message: str = ""

    @property
    def partial(self) -> bool:
        """A GIIS says in the message when some children did not answer."""
        return bool(self.message) and self.code in (ResultCode.SUCCESS, ResultCode.SIZE_LIMIT_EXCEEDED)


def decode(op: bytes) -> tuple[str, Attributes]:
    dn, attrs = decode_entry(op)
    out: Attributes = {}
    for name, values in attrs:
        out.setdefault(name, []).extend(v.decode("utf-8", "replace") for v in values)
    return dn, out


class BackendReader:
    """Runs searches against ``backend`` as ``bind_dn``; every answer is a Deferred[Answer]."""

    def __init__(self, backend: Any, reactor: Any, *, bind_dn: str = "", time_limit: float = 30.0, size_limit: int = 0):
        self.backend = backend
        self.reactor = reactor
        self.bind_dn = bind_dn
        self.time_limit = time_limit
        self.size_limit = size_limit

    def naming_contexts(self) -> list[str]:
        return [str(n) for n in self.backend.naming_contexts()]

    def search(
        self,
        base: str,
        scope: Scope = Scope.SUB,
        filter_text: str = "(objectClass=*)",
        attributes: tuple[str, ...] = (),
        *,
        size_limit: int = 0,
    ) -> defer.Deferred[Answer]:
        """Raises nothing: a bad filter, an unknown base, any LDAPError is the Deferred's failure."""
        return self.search_encoded(base, scope, filter_text, attributes, size_limit=size_limit).addCallback(
            self._decode)

    def _decode(self, result: SearchResult) -> Any:
        """Decoded ``DECODE_SLICE`` entries per reactor turn: a large answer never holds up LDAP clients."""
        ops = result.entries
        answer = Answer([], int(result.code), result.message)
        if len(ops) <= DECODE_SLICE:
            answer.entries = [decode(op) for op in ops]
            return answer
        done: defer.Deferred[Answer] = defer.Deferred()

        def step(start: int) -> None:
            answer.entries.extend(decode(op) for op in ops[start:start + DECODE_SLICE])
            if start + DECODE_SLICE >= len(ops):
                done.callback(answer)
            else:
                self.reactor.callLater(0, step, start + DECODE_SLICE)

        step(0)
        return done

    def search_encoded(
        self,
        base: str,
        scope: Scope = Scope.SUB,
        filter_text: str = "(objectClass=*)",
        attributes: tuple[str, ...] = (),
        *,
        size_limit: int = 0,
    ) -> defer.Deferred[SearchResult]:
        """The finished SearchResult, entries still encoded (SearchResultEntry protocol ops)."""
        try:
            request = SearchRequest(
                base, scope, parse_filter(filter_text), attributes,
                size_limit=size_limit or self.size_limit, time_limit=self.time_limit, bind_dn=self.bind_dn,
            )
            value = self.backend.search(request)
        except Exception:
            return defer.fail()
        d = value if isinstance(value, defer.Deferred) else defer.succeed(value)
        return d.addCallback(self._finish)

    def _finish(self, result: SearchResult) -> Any:
        if result.cursor is None:
            return self._checked(result)
        done: defer.Deferred[SearchResult] = defer.Deferred()
        cursor = result.cursor

        def step() -> None:
            try:
                finished = cursor.run()
            except Exception:
                done.errback()
                return
            if finished:
                result.cursor = None
                try:
                    done.callback(self._checked(result))
                except LDAPError:
                    done.errback()
            else:
                self.reactor.callLater(0, step)

        self.reactor.callLater(0, step)
        return done

    @staticmethod
    def _checked(result: SearchResult) -> SearchResult:
        if result.code not in (ResultCode.SUCCESS, ResultCode.SIZE_LIMIT_EXCEEDED, ResultCode.TIME_LIMIT_EXCEEDED):
            try:
                code = ResultCode(result.code)
            except ValueError:
                code = ResultCode.OTHER
            raise LDAPError(result.message or code.name, result.matched_dn, code=code)
        return result
