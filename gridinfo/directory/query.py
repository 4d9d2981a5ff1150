"""What a backend is asked and what it answers: the seam between the LDAP server and data.

The server decodes requests into these plain objects and hands them to a backend; a backend
(the GRIS's tree, the GIIS's cache and forwarder) answers without knowing about the wire.

A backend is any object with these methods (see :class:`Backend`)::

    search(request: SearchRequest) -> SearchResult | Deferred[SearchResult]
    compare(dn: str, attribute: str, value: bytes) -> bool | Deferred[bool]   # raises LDAPError
    add(dn: str, attributes: list[tuple[str, list[bytes]]], bind_dn: str)     # raises LDAPError
    naming_contexts() -> list[str]
    schema -> Schema

Entries in a :class:`SearchResult` are already encoded ``[APPLICATION 4] SearchResultEntry``
protocol ops: the server only adds the message header.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from gridinfo.errors import ResultCode

if TYPE_CHECKING:
    from gridinfo.directory.filters import Filter
    from gridinfo.directory.schema import Schema


class Scope(enum.IntEnum):
    BASE = 0
    ONE = 1
    SUB = 2
    # RFC 4511 only has three; subordinate (children) is an extension some servers accept.
    CHILDREN = 3


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """A decoded search: the fields of RFC 4511's SearchRequest, plus what the server knows."""

    base: str
    scope: Scope
    filter: Filter
    attributes: tuple[str, ...] = ()
    size_limit: int = 0  # 0 = no client limit (the server's own limit still applies)
    time_limit: float = 0.0  # seconds, 0 = no client limit
    types_only: bool = False
    deref_aliases: int = 0
    bind_dn: str = ""


class Continuation(Protocol):
    """The rest of a search a backend has not finished (see :mod:`gridinfo.directory.cursor`)."""

    def run(self) -> bool:
        """Work for one slice; True when the search is over."""
        ...

    def cancel(self) -> None: ...

    def take(self) -> list[bytes]:
        """Hand over the entries found so far (they leave ``result.entries``), to be sent now."""
        ...


@dataclass(slots=True)
class SearchResult:
    """Encoded entries plus the final result; ``entries`` are SearchResultEntry protocol ops.

    ``cursor`` is set when the backend returned before the search was finished (it asked for
    sliced evaluation): whoever answers the client calls ``cursor.run()`` on later reactor
    turns until it returns True; only then are ``entries``, ``code`` and ``message`` final.
    """

    entries: list[bytes] = field(default_factory=list)
    code: ResultCode = ResultCode.SUCCESS
    matched_dn: str = ""
    message: str = ""
    references: list[bytes] = field(default_factory=list)
    cursor: Continuation | None = None


class Backend(Protocol):
    """What the LDAP server needs from the data behind it."""

    @property
    def schema(self) -> Schema: ...

    def naming_contexts(self) -> list[str]: ...

    def search(self, request: SearchRequest) -> Any:  # SearchResult | Deferred[SearchResult]
        ...

    def compare(self, dn: str, attribute: str, value: bytes) -> Any:  # bool | Deferred[bool]
        ...

    def add(self, dn: str, attributes: list[tuple[str, list[bytes]]], bind_dn: str, peer: str | None = None) -> Any:
        """Add an entry; most backends raise UnwillingToPerform.  ``peer``: the client's address."""
        ...
