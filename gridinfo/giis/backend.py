"""The GIIS backend: a thin routing chain over own entries, the answer table and the forwarder.

Theory of operation
-------------------
A GIIS serves ``o=grid`` and ``mds-vo-name=<name>,o=grid`` from its own tree, accepts
registrations (LDAP adds of ``Mds-Vo-Op-name=register,<suffix>``) through its policy into the
lease table, and answers a search from its own tree plus every *relevant* child (one whose
mount point, see :mod:`gridinfo.giis.namespace`, overlaps the search base and scope).  The
jobs live in their own modules, as twisted.names splits its resolvers::

    module        job
    ------------  ---------------------------------------------------------------
    leases        the registry: who is registered, until when (pure)
    children      children derived from the leases and the config; their caches
    answers       the answer table: hit | forward | stale | gone (pure)
    forwarder     carrying out FORWARD: Deferreds, timeouts, late answers
    mirror        mirror mode: pull a child's subtree every period, answer locally
    status        giisregistrationstatus and the o=infosys entries
    admission     registrations: policy, ownership and address checks, journal
    duplicates    one DN served from one child (rank order)
    backend       this routing chain, and merging the parts into one result

Merging keeps slapd's meanings: the request's (or the server's) size limit gives
``sizeLimitExceeded`` with the entries so far, also when a child, the cache or a mirror stopped
at the limit; the client's timeLimit gives ``timeLimitExceeded``.  MDS2 answers with what it has:
when children failed (no answer in time, an error, a dead child) the code stays ``success`` and
the diagnostic message of SearchResultDone names them (see conf/giis.yaml, "Partial answers").

Registration cycles (A under B under A) are caught with a marker: each GIIS adds the
pseudo-attribute ``gridinfo-via-<id>`` to the attribute list of the searches it forwards
(servers ignore attribute names they do not know, RFC 4511 section 4.5.1.8).  A GIIS that finds
its own marker in a request answers it with nothing and records the cycle in the log and in
its status; a request that has passed ``max_depth`` GIISes is not forwarded further.

Compare goes where searches go: an entry of the GIIS's own tree is compared there; any other
DN is asked of its owning children as a base search with the assertion as filter.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from twisted.application import service
from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from gridinfo.config import GIISConfig
from gridinfo.directory import filters as F
from gridinfo.directory.dn import DNNormaliser, is_descendant_key
from gridinfo.directory.query import Scope, SearchRequest, SearchResult
from gridinfo.directory.schema import Schema
from gridinfo.directory.tree import DirectoryTree, SyncView
from gridinfo.errors import InvalidDNSyntax, LDAPError, NoSuchObject, ResultCode, UnwillingToPerform
from gridinfo.giis.children import Child, ChildRegistry
from gridinfo.giis.forwarder import Forwarder, Part
from gridinfo.giis.admission import Admission, Resolver
from gridinfo.giis.duplicates import DuplicateFilter, ranked
from gridinfo.giis.journal import RegistrationJournal
from gridinfo.giis.leases import LeaseTable
from gridinfo.giis.ownership import Registrant
from gridinfo.giis.merged import MergedAnswers
from gridinfo.giis.mirror import expire_held, pull_mirror
from gridinfo.giis.namespace import Route
from gridinfo.giis.published import Publisher
from gridinfo.giis.policy import RegistrationPolicy
from gridinfo.giis.status import GIISStatus, registration_status
from gridinfo.infosys import INFOSYS_DN
from gridinfo.ldap.client import LDAPClient

log = Logger(namespace=__name__)  # named here: a compiled module has no frame to name it from

MARKER_PREFIX = "gridinfo-via-"
REGISTRATION_STATUS = "giisregistrationstatus"


def split_markers(attributes: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the client's attributes, the cycle markers of the GIISes the request passed)."""
    attrs, marks = [], []
    for a in attributes:
        if a.lower().startswith(MARKER_PREFIX):
            marks.append(a.lower())
        else:
            attrs.append(a)
    return tuple(attrs), tuple(marks)


class GIISBackend:
    """The Backend contract (gridinfo.directory.query) for a GIIS."""

    write_refusal_message = "a GIIS accepts only registrations (Mds-Vo-Op-name=register,<suffix>)"

    def __init__(
        self,
        tree: DirectoryTree,
        config: GIISConfig,
        reactor: IReactorTime,
        *,
        policy: RegistrationPolicy | None = None,
        client_factory: Callable[..., LDAPClient] | None = None,
        giis_id: str | None = None,
        resolve: Resolver | None = None,
        push: bool = False,
    ):
        """``push``: follow the change streams of children that offer one (the service turns it
        on; unit tests drive children by hand)."""
        self.tree = tree
        self.config = config
        self.schema: Schema = tree.schema
        self.reactor = reactor
        self.normaliser: DNNormaliser = tree.normaliser
        self.suffix = config.suffix
        self.suffix_key = self.normaliser.key(self.suffix)
        self.register_key = self.normaliser.key(f"Mds-Vo-Op-name=register,{self.suffix}")
        self.infosys_key = self.normaliser.key(INFOSYS_DN)
        self.policy = policy if policy is not None else RegistrationPolicy(config.registration_policy, self.schema)
        self.leases = LeaseTable(max_registrants=config.max_registrants)
        self.size_limit = config.limits.size_limit
        factory = client_factory or (lambda host, port, **kw: LDAPClient(reactor, host, port, **kw))
        #: everything held (own entries, pushed and mirrored children) is in ``tree``
        self.publisher = Publisher(tree)
        self.children = ChildRegistry.from_config(config, self.leases, self.normaliser, factory, self.publisher)
        self.push = push
        if not push:  # nobody will follow a stream: no child may count on one
            self.children.push_default = False
            for child in self.children.static.values():
                child.push_allowed = False
        #: the clock of the push links' timers (backoff, retries): the reactor unless a test injects one
        self.push_clock: IReactorTime = reactor
        if push:
            self.children.on_new = self.follow
        self.marker = MARKER_PREFIX + (giis_id or uuid.uuid4().hex[:12])
        self.forwarder = Forwarder(
            reactor, marker=self.marker, late_answer_limit=config.late_answer_limit,
            max_entries_per_child=config.max_entries_per_child, schema=self.schema,
        )
        self.status = GIISStatus(tree)
        journal = RegistrationJournal(config.journal) if config.journal else None
        self.admission = Admission(
            config, reactor, self.policy, self.leases, self.children, self.normaliser.key, self.suffix_key,
            journal=journal, resolve=resolve,
        )
        self.admission.restore()
        self._live_cache: tuple[float, set[str]] = (-1.0, set())
        self.duplicates = DuplicateFilter(self.normaliser, self._live_urls)
        #: merges of searches every child answered from its cache, reused (gridinfo.giis.merged)
        self.merged = MergedAnswers()

    # -- the Backend contract ------------------------------------------------------------------

    def naming_contexts(self) -> list[str]:
        if self.children.layout is not None:
            return self.children.layout.suffixes()
        return ["o=grid", INFOSYS_DN]

    def compare(self, dn: str, attribute: str, value: bytes) -> bool | defer.Deferred[bool]:
        """Our own entries here; a child's entry by a base search on its owning children."""
        key = self.normaliser.key(dn)
        if key in self.tree.entries:
            return self.tree.compare(dn, attribute, value)
        if self.schema.matching(attribute) is None:
            return self.tree.compare(dn, attribute, value)  # undefinedAttributeType, as for ours
        request = SearchRequest(dn, Scope.BASE, F.Equality(attribute, value), attributes=("1.1",))
        answer = self.search(request)

        def matched(result: SearchResult) -> bool:
            if result.code != ResultCode.SUCCESS and not result.entries:
                raise LDAPError(result.message or "compare failed", code=result.code)
            return bool(result.entries)

        if isinstance(answer, defer.Deferred):
            return answer.addCallback(matched)
        return matched(answer)

    def sync_view(self, request: SearchRequest) -> SyncView:
        """A change-stream search over everything this GIIS holds: its own entries and its
        pushed and mirrored children's.  A child asked by forwarding has nothing here to stream,
        so a search whose base and scope reach one is refused, naming it."""
        now = self.reactor.seconds()
        base_key = self.normaliser.key(request.base)
        if is_descendant_key(base_key, self.infosys_key) or is_descendant_key(self.infosys_key, base_key):
            self.refresh_status(now)
        routes: dict[str, Route | None] = {}
        forwarded = []
        for child in self.children.current(now):
            if child.streamable:
                continue
            if child.suffix not in routes:
                routes[child.suffix] = child.namespace.route(request.base, request.scope)
            if routes[child.suffix] is not None:
                forwarded.append(child.url)
        if forwarded:
            shown = ", ".join(forwarded[:3]) + (f" and {len(forwarded) - 3} more" if len(forwarded) > 3 else "")
            raise UnwillingToPerform(
                f"this GIIS asks {shown} per search (no change stream, not mirrored): their entries cannot "
                "be streamed; narrow the base, or configure those children with mode: mirror"
            )
        return self.tree.sync_view(request)

    def live_children(self, now: float) -> list[Child]:
        return self.children.current(now)

    def sweep(self) -> int:
        """Purge expired leases and their children; trim caches past keepto.  Returns drops."""
        now = self.reactor.seconds()
        self.admission.purge(now)
        return self.children.sweep(now)

    def stop(self) -> None:
        self.children.close()
        if self.admission.journal is not None:
            self.admission.journal.close()

    def follow(self, child: Child) -> None:
        """Subscribe to the child's change stream, if it may push and offers one (gridinfo.giis.push)."""
        if not (self.push and child.push_allowed) or child.push is not None:
            return
        from gridinfo.giis.push import PushLink

        child.push = PushLink(
            child, self.children, self.reactor, timers=self.push_clock, speller=self.forwarder.speller,
            max_entries=self.config.max_entries_per_child, retry_unsupported=self.config.push_retry,
        )
        child.push.start()

    def pull_mirror(self, child: Child) -> defer.Deferred[int]:
        if child.push is not None and child.push.streaming:
            return defer.succeed(0)  # its stream keeps it current
        return pull_mirror(child, self.reactor, self.config.max_entries_per_child, self.forwarder.speller)

    def registration_status(self, now: float, *, detailed: bool = True) -> SearchResult:
        return registration_status(self.tree, self.suffix, self.children.current(now), now, detailed=detailed)

    def refresh_status(self, now: float) -> None:
        self.status.publish(self.children.current(now), now)

    # -- registration --------------------------------------------------------------------------

    def add(
        self, dn: str, attributes: list[tuple[str, list[bytes]]], bind_dn: str, peer: str | None = None
    ) -> defer.Deferred[None] | None:
        """Accept (or refuse, with the reason) a registration; see :mod:`gridinfo.giis.admission`.

        ``peer`` is the connecting client's address (the server passes it); None is an
        in-process caller, to whom the peer and ownership rules do not apply.
        """
        if self.normaliser.key(dn) != self.register_key:
            raise UnwillingToPerform(
                f"{self.write_refusal_message}; {dn!r} is not Mds-Vo-Op-name=register,{self.suffix}"
            )
        return self.admission.admit(dn, attributes, Registrant(bind_dn, peer))

    # -- search --------------------------------------------------------------------------------

    def search(self, request: SearchRequest) -> SearchResult | defer.Deferred[SearchResult]:
        attributes, chain = split_markers(request.attributes)
        if self.marker in chain:
            self.status.cycles += 1
            self.status.last_cycle = " -> ".join(chain)
            log.warn(
                "registration cycle: a search forwarded through {chain} came back to this GIIS; "
                "answering it with nothing",
                chain=self.status.last_cycle,
            )
            return SearchResult(message="registration cycle detected: this GIIS is already in the request's path")
        if attributes != request.attributes:
            request = replace(request, attributes=attributes)
        try:
            base_key = self.normaliser.key(request.base)
        except InvalidDNSyntax as e:
            return SearchResult(code=ResultCode.INVALID_DN_SYNTAX, message=e.message)
        now = self.reactor.seconds()
        if request.scope == Scope.BASE and base_key == self.suffix_key and _asks_registration_status(request):
            return self.registration_status(now, detailed=bool(request.bind_dn))
        if is_descendant_key(base_key, self.infosys_key) or is_descendant_key(self.infosys_key, base_key):
            self.refresh_status(now)
        children = self.children.current(now)  # leases past keepto go here, with what we held of them
        for child in children:
            if child.held:
                expire_held(child, now)
        own: SearchResult | None
        missing: NoSuchObject | None = None
        try:
            own = self.tree.search(request, server_size_limit=self.size_limit)
        except NoSuchObject as e:
            own, missing = None, e
        may_forward = len(chain) < self.config.max_depth
        if not may_forward and chain:
            log.warn("not forwarding a search that passed {n} GIISes already", n=len(chain))
        memo_key = (base_key, int(request.scope), F.filter_to_string(request.filter),
                    tuple(a.lower() for a in request.attributes), request.types_only, request.size_limit, may_forward)
        reused = self.merged.get(memo_key, children, own, self.duplicates.version, now)
        if reused is not None:
            return reused
        asked: list[tuple[Child, tuple[Any, ...]]] = []
        parts = self._ask_children(children, request, chain, now, may_forward, asked)
        if not parts:
            if own is None:
                assert missing is not None
                raise missing
            return own
        if all(not isinstance(p, defer.Deferred) for p in parts):
            result = self._merge(request, own, missing, parts, timed_out=False)  # type: ignore[arg-type]
            self.merged.put(memo_key, children, own, asked, parts, result, self.duplicates.version, now)  # type: ignore[arg-type]
            return result

        def remember(answers: list[Part], result: SearchResult, timed_out: bool) -> None:
            if not timed_out:
                self.merged.put(memo_key, children, own, asked, answers, result, self.duplicates.version,
                                self.reactor.seconds())

        return self._gather(request, own, missing, parts, remember)

    def _ask_children(
        self, children: list[Child], request: SearchRequest, chain: tuple[str, ...], now: float, may_forward: bool,
        asked: list[tuple[Child, tuple[Any, ...]]] | None = None,
    ) -> list[Part | defer.Deferred[Part]]:
        """Each relevant child's part, in rank order; ``asked`` gets (child, request key) of each."""
        # A route depends only on the child's suffix (as written) and the request; a request key
        # only on the route and the request.  Hundreds of GRIS children share one suffix, so
        # compute each once per search, not once per child.
        routes: dict[str, Route | None] = {}
        keys: dict[Route, tuple[Any, ...]] = {}
        parts: list[Part | defer.Deferred[Part]] = []
        for child in children:
            if child.held:
                continue  # what we hold of it is in our own tree, searched already
            if child.suffix in routes:
                route = routes[child.suffix]
            else:
                route = routes[child.suffix] = child.namespace.route(request.base, request.scope)
            if route is None:
                continue
            key = keys.get(route)
            if key is None:
                key = keys[route] = self._request_key(route, request)
            parts.append(ranked(self.forwarder.ask(child, route, request, chain, key, now, may_forward=may_forward), child))
            if asked is not None:
                asked.append((child, key))
        return parts

    def _gather(
        self,
        request: SearchRequest,
        own: SearchResult | None,
        missing: NoSuchObject | None,
        parts: list[Part | defer.Deferred[Part]],
        remember: Callable[[list[Part], SearchResult, bool], None] | None = None,
    ) -> defer.Deferred[SearchResult]:
        """Wait for the children (each bounded by its timeout), and for the client's timeLimit;
        ``remember`` is given the answers and the merged result."""
        deadline_hit = [False]
        waits = [p for p in parts if isinstance(p, defer.Deferred)]

        def time_up() -> None:
            deadline_hit[0] = True
            for w in waits:
                if not w.called:
                    w.callback(Part([], False))  # the client stopped waiting

        timer = self.reactor.callLater(request.time_limit, time_up) if request.time_limit else None
        d = defer.gatherResults([p if isinstance(p, defer.Deferred) else defer.succeed(p) for p in parts])

        def merged(answers: list[Part]) -> SearchResult:
            if timer is not None and timer.active():
                timer.cancel()
            result = self._merge(request, own, missing, answers, timed_out=deadline_hit[0])
            if remember is not None:
                remember(answers, result, deadline_hit[0])
            return result

        return d.addCallback(merged)

    def _merge(
        self,
        request: SearchRequest,
        own: SearchResult | None,
        missing: NoSuchObject | None,
        parts: list[Part],
        timed_out: bool,
    ) -> SearchResult:
        limit = request.size_limit
        if self.size_limit and (not limit or self.size_limit < limit):
            limit = self.size_limit
        out: list[bytes] = list(own.entries) if own is not None else []
        result = SearchResult(entries=out)
        if own is not None and own.code != ResultCode.SUCCESS:
            result.code, result.message = own.code, own.message
        all_missing = True
        cut = False
        # Two sources serving one DN: the first in rank order wins (gridinfo.giis.duplicates).
        taken = self.duplicates.start(out, parts)
        for part in parts:
            if not part.no_such_object:
                all_missing = False
            keys = self.duplicates.part_keys(taken, part)
            for i, e in enumerate(part.entries):
                if limit and len(out) >= limit:
                    cut = True
                    break
                if keys is not None and not self.duplicates.admit(taken, keys[i], part):
                    continue
                out.append(e)
            cut = cut or (part.truncated and bool(limit) and len(out) >= limit)
        if own is None and all_missing and not out:
            assert missing is not None
            raise missing
        if cut:
            result.code = ResultCode.SIZE_LIMIT_EXCEEDED
            result.message = f"size limit of {limit} entries exceeded"
            return result
        if timed_out and result.code == ResultCode.SUCCESS:
            result.code = ResultCode.TIME_LIMIT_EXCEEDED
            result.message = f"time limit of {request.time_limit:g} s exceeded; partial answer"
        failed = [part for part in parts if part.failed]
        if failed and result.code == ResultCode.SUCCESS and not result.message:
            result.message = partial_message(failed, len(parts))
        return result

    def _live_urls(self) -> set[str]:
        """The URLs of the children alive now (worked out once per clock reading)."""
        now = self.reactor.seconds()
        if self._live_cache[0] != now:
            self._live_cache = (now, {c.url for c in self.children.current(now)})
        return self._live_cache[1]

    def _request_key(self, route: Route, request: SearchRequest) -> tuple[Any, ...]:
        return (
            self.normaliser.key(route.base),
            int(route.scope),
            F.filter_to_string(request.filter),
            tuple(a.lower() for a in request.attributes),
            request.types_only,
            request.size_limit,
        )


def partial_message(failed: Sequence[Part], asked: int) -> str:
    """MDS2 answers with what it has; the message says so, naming the children that failed."""
    stale = [p.child for p in failed if p.stale]
    missing = [p.child for p in failed if not p.stale]
    text = f"partial answer: {len(failed)} of {asked} children failed"
    if missing:
        text += f"; no data from {', '.join(missing)}"
    if stale:
        text += f"; last answer (marked stale) from {', '.join(stale)}"
    return text


def _asks_registration_status(request: SearchRequest) -> bool:
    """``ldapsearch -s base giisregistrationstatus`` sends it as an attribute; others as a filter."""
    if any(a.lower() == REGISTRATION_STATUS for a in request.attributes):
        return True
    f = request.filter
    return isinstance(f, F.Present) and f.attribute.lower() == REGISTRATION_STATUS


class GIISMaintenance(service.Service):
    """Background work of a GIIS: lease sweeps and mirror pulls, on the injected clock."""

    def __init__(self, backend: GIISBackend, sweep_interval: float = 30.0):
        self.backend = backend
        self.sweep_interval = sweep_interval
        self._sweeper: task.LoopingCall | None = None

    def startService(self) -> None:
        super().startService()
        b = self.backend
        self._sweeper = task.LoopingCall(b.sweep)
        self._sweeper.clock = b.reactor
        self._sweeper.start(self.sweep_interval, now=False)
        for child in b.children.static.values():
            b.follow(child)
        for child in b.children.static.values():
            if child.mirror is not None and child.static is not None:
                loop = task.LoopingCall(b.pull_mirror, child)
                loop.clock = b.reactor
                child.mirror_loop = loop
                loop.start(child.static.period, now=True)

    def stopService(self) -> None:
        if self._sweeper is not None and self._sweeper.running:
            self._sweeper.stop()
        self.backend.stop()
        return super().stopService()
