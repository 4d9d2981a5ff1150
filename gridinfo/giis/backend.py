"""The GIIS backend: own entries, leased registrations, and searches forwarded to children.

Theory of operation
-------------------
A GIIS serves ``o=grid`` and ``mds-vo-name=<name>,o=grid`` from its own tree, accepts
registrations (LDAP adds of ``Mds-Vo-Op-name=register,<suffix>``) through its policy into a
:class:`~gridinfo.giis.leases.LeaseTable`, and answers a search from its own tree plus every
*relevant* child (one whose mount point, see :mod:`gridinfo.giis.namespace`, overlaps the search
base and scope).

Per child and per normalised request (base and scope in the child's namespace, filter,
attributes, typesOnly, sizeLimit) the answer is cached with the time it arrived.  For each
relevant child a search takes one row of this table::

    child / cache                         answer with                 and
    ------------------------------------  --------------------------  -------------------------
    mirror mode                           the child's mirror tree     (pulled every period)
    cached, younger than cachettl         the cached answer           count a cache hit
    lease VALID (or static), no fresh     a request to the child      wait up to its timeout
      ... answer within the timeout       the answer                  cache it
      ... late, or failed                 the last answer, stale      a late answer is cached
    lease INVALID (validto passed)        the last answer, stale      no request
    lease PURGED / nothing cached         nothing                     (the child is gone)

Requests to children run in parallel; a search waits at most for the slowest relevant child's
timeout (and the client's timeLimit).  Stale entries have ``Mds-validto`` set to a time in the
past, so clients can tell.  Concurrent searches needing the same answer share one request.

Registration cycles (A under B under A) are caught with a marker: each GIIS adds the
pseudo-attribute ``gridinfo-via-<id>`` to the attribute list of the searches it forwards
(servers ignore attribute names they do not know, RFC 4511 section 4.5.1.8).  A GIIS that finds
its own marker in a request answers it with nothing and records the cycle in the log and in
its status; a request that has passed ``max_depth`` GIISes is not forwarded further.

Status: ``-s base giisregistrationstatus`` on the suffix lists the registrants (MDS2), and
``o=infosys`` holds one ``GridinfoChildStatus`` entry per child (health, latency, entries,
cache hits), refreshed when searched.
"""

from __future__ import annotations

import math
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from gridinfo.directory import filters as F
from gridinfo.directory.dn import DNNormaliser, is_descendant_key
from gridinfo.directory.entry import Entry
from gridinfo.directory.query import Scope, SearchRequest, SearchResult
from gridinfo.directory.schema import Schema
from gridinfo.directory.tree import DirectoryTree
from gridinfo.errors import InvalidDNSyntax, LDAPError, NoSuchObject, ResultCode, UnwillingToPerform
from gridinfo.giis.leases import (
    Lease,
    LeaseState,
    LeaseTable,
    format_generalized_time,
    parse_registration,
)
from gridinfo.giis.namespace import ChildNamespace, Route
from gridinfo.giis.policy import RegistrationPolicy
from gridinfo.ldap.client import ClientResult, LDAPClient, LDAPURL, decode_entry, entry_dn, rename_entry

log = Logger()

MARKER_PREFIX = "gridinfo-via-"
REGISTRATION_STATUS = "giisregistrationstatus"
INFOSYS = "o=infosys"
MAX_CACHED_REQUESTS = 256  # per child


@dataclass(frozen=True)
class StaticChild:
    """A child listed in giis.yaml rather than registered (any LDAP server)."""

    url: str
    mode: str = "forward"  # or "mirror"
    timeout: float = 20.0
    cachettl: float = 30.0
    keep: float = 3600.0  # how long its last answers are served after it fails
    period: float = 120.0  # mirror mode: seconds between pulls
    bind_dn: str = ""
    password: str = ""


@dataclass
class CachedAnswer:
    """A child's answer to one request, renamed into the GIIS namespace."""

    entries: list[bytes]
    code: int
    fetched_at: float
    no_such_object: bool = False
    _stale: list[bytes] | None = None


@dataclass
class ChildStats:
    state: str = "new"  # new, ok, slow, unreachable, invalid, cycle
    latency: float | None = None
    entries: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    late_answers: int = 0
    last_contact: float | None = None
    last_error: str = ""


class Child:
    """One child of the GIIS: where it is, how it is mounted, its cache and its health."""

    def __init__(
        self,
        key: tuple[str, int, str],
        host: str,
        port: int,
        suffix: str,
        namespace: ChildNamespace,
        client: LDAPClient,
        *,
        static: StaticChild | None = None,
        lease: Lease | None = None,
        timeout: float = 20.0,
        cachettl: float = 30.0,
    ):
        self.key = key
        self.host = host
        self.port = port
        self.suffix = suffix
        self.namespace = namespace
        self.client = client
        self.static = static
        self.lease = lease
        self.timeout = timeout
        self.cachettl = cachettl
        self.mode = static.mode if static is not None else "forward"
        self.cache: OrderedDict[tuple[Any, ...], CachedAnswer] = OrderedDict()
        self.inflight: dict[tuple[Any, ...], defer.Deferred[CachedAnswer | None]] = {}
        self.stats = ChildStats()
        self.mirror: DirectoryTree | None = None
        self.mirror_loop: task.LoopingCall | None = None
        self.mirror_last_success: float | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ldap://{host}:{self.port}/{self.suffix}"

    def lease_state(self, now: float) -> LeaseState:
        if self.lease is None:
            return LeaseState.VALID
        return self.lease.state(now)

    def keeps_until(self, answer_time: float) -> float:
        """Until when an answer fetched at ``answer_time`` may be served (stale)."""
        if self.lease is not None:
            return self.lease.registration.keep_to
        assert self.static is not None
        return answer_time + self.static.keep

    def set_state(self, state: str, error: str = "") -> None:
        """Record health; log once per change of state."""
        if state != self.stats.state:
            if state in ("ok",):
                log.info("child {url} is {state}", url=self.url, state=state)
            else:
                log.warn("child {url} is {state}: {error}", url=self.url, state=state, error=error)
        self.stats.state = state
        if error:
            self.stats.last_error = error


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
        suffix: str,
        reactor: Any,
        *,
        policy: RegistrationPolicy | None = None,
        leases: LeaseTable | None = None,
        static_children: Iterable[StaticChild] = (),
        max_lease: float = 86400.0,
        default_timeout: float = 20.0,
        default_cachettl: float = 30.0,
        late_answer_limit: float = 120.0,
        max_depth: int = 16,
        max_entries_per_child: int = 200_000,
        size_limit: int = 0,
        client_factory: Callable[..., LDAPClient] | None = None,
        giis_id: str | None = None,
    ):
        self.tree = tree
        self.schema: Schema = tree.schema
        self.reactor = reactor
        self.normaliser: DNNormaliser = tree.normaliser
        self.suffix = suffix
        self.suffix_key = self.normaliser.key(suffix)
        self.register_key = self.normaliser.key(f"Mds-Vo-Op-name=register,{suffix}")
        self.infosys_key = self.normaliser.key(INFOSYS)
        self.policy = policy if policy is not None else RegistrationPolicy.open(self.schema)
        self.leases = leases if leases is not None else LeaseTable()
        self.max_lease = max_lease
        self.default_timeout = default_timeout
        self.default_cachettl = default_cachettl
        self.late_answer_limit = late_answer_limit
        self.max_depth = max_depth
        self.max_entries_per_child = max_entries_per_child
        self.size_limit = size_limit
        self.client_factory = client_factory or (lambda host, port, **kw: LDAPClient(reactor, host, port, **kw))
        self.marker = MARKER_PREFIX + (giis_id or uuid.uuid4().hex[:12])
        self.children: dict[tuple[str, int, str], Child] = {}
        self.cycles = 0
        self.last_cycle: str = ""
        self._status_keys: list[str] = []
        for sc in static_children:
            self.add_static_child(sc)

    # -- the Backend contract ------------------------------------------------------------------

    def naming_contexts(self) -> list[str]:
        return ["o=grid", INFOSYS]

    def compare(self, dn: str, attribute: str, value: bytes) -> bool:
        return self.tree.compare(dn, attribute, value)

    # -- children ------------------------------------------------------------------------------

    def _client(self, host: str, port: int, timeout: float, bind_dn: str = "", password: str = "") -> LDAPClient:
        return self.client_factory(host, port, connect_timeout=timeout, bind_dn=bind_dn, password=password)

    def add_static_child(self, sc: StaticChild) -> Child:
        url = LDAPURL.parse(sc.url)
        if not url.base:
            raise ValueError(f"static child {sc.url!r} names no suffix (ldap://host:port/suffix)")
        key = (url.host.lower(), url.port, self.normaliser.key(url.base))
        ns = ChildNamespace(url.base, self.suffix, self.normaliser)
        child = Child(
            key, url.host, url.port, url.base, ns, self._client(url.host, url.port, sc.timeout, sc.bind_dn, sc.password),
            static=sc, timeout=sc.timeout, cachettl=sc.cachettl,
        )
        if sc.mode == "mirror":
            child.mirror = DirectoryTree(self.schema, indexed=("objectClass",))
        self.children[key] = child
        return child

    def _child_for_lease(self, lease: Lease) -> Child:
        reg = lease.registration
        child = self.children.get(lease.key)
        if child is None:
            ns = ChildNamespace(reg.suffix, self.suffix, self.normaliser)
            child = Child(
                lease.key, reg.host, reg.port, reg.suffix, ns, self._client(reg.host, reg.port, reg.timeout or self.default_timeout),
                lease=lease,
            )
            self.children[lease.key] = child
        child.lease = lease
        child.timeout = reg.timeout or self.default_timeout
        child.cachettl = reg.cachettl
        return child

    def live_children(self, now: float) -> list[Child]:
        """Children not purged; purged ones (lease past keepto) are dropped with their cache."""
        out = []
        for key, child in list(self.children.items()):
            if child.lease is not None and child.lease_state(now) is LeaseState.PURGED:
                self._drop(child, "its lease passed keepto")
                continue
            out.append(child)
        return out

    def _drop(self, child: Child, why: str) -> None:
        log.info("dropping child {url}: {why}", url=child.url, why=why)
        self.children.pop(child.key, None)
        if child.lease is not None:
            self.leases.remove(child.key)
        if child.mirror_loop is not None and child.mirror_loop.running:
            child.mirror_loop.stop()
        child.client.close()

    def sweep(self) -> int:
        """Purge expired leases and their children; trim caches past keepto.  Returns drops."""
        now = self.reactor.seconds()
        self.leases.sweep(now)
        before = len(self.children)
        for child in self.live_children(now):
            for k, answer in list(child.cache.items()):
                if now >= child.keeps_until(answer.fetched_at) and now - answer.fetched_at >= child.cachettl:
                    del child.cache[k]
        return before - len(self.children)

    def stop(self) -> None:
        for child in self.children.values():
            if child.mirror_loop is not None and child.mirror_loop.running:
                child.mirror_loop.stop()
            child.client.close()

    # -- registration --------------------------------------------------------------------------

    def add(self, dn: str, attributes: list[tuple[str, list[bytes]]], bind_dn: str) -> None:
        """Accept (or refuse, with the reason) a registration."""
        try:
            key = self.normaliser.key(dn)
        except InvalidDNSyntax:
            raise
        if key != self.register_key:
            raise UnwillingToPerform(
                f"{self.write_refusal_message}; {dn!r} is not Mds-Vo-Op-name=register,{self.suffix}"
            )
        now = self.reactor.seconds()
        try:
            registration = parse_registration(
                attributes,
                now=now,
                normalise_suffix=self.normaliser.key,
                max_lease=self.max_lease,
                default_timeout=self.default_timeout,
                default_cachettl=self.default_cachettl,
            )
        except LDAPError as e:
            log.warn("refused registration: {error}", error=e.message)
            raise
        self.policy.check(dn, registration, bind_dn)
        static = self.children.get(registration.key)
        if static is not None and static.static is not None:
            return  # listed in the config: the static entry rules
        try:
            lease, new = self.leases.register(registration, now)
        except LDAPError as e:
            log.warn("refused registration of {url}: {error}", url=registration.url, error=e.message)
            raise
        self._child_for_lease(lease)
        if new:
            log.info(
                "registered {url} until {validto}",
                url=registration.url,
                validto=format_generalized_time(registration.valid_to),
            )
        else:
            log.debug("renewed {url}", url=registration.url)

    # -- search --------------------------------------------------------------------------------

    def search(self, request: SearchRequest) -> SearchResult | defer.Deferred[SearchResult]:
        attributes, chain = split_markers(request.attributes)
        if self.marker in chain:
            self.cycles += 1
            self.last_cycle = " -> ".join(chain)
            log.warn(
                "registration cycle: a search forwarded through {chain} came back to this GIIS; "
                "answering it with nothing",
                chain=self.last_cycle,
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
            return self.registration_status(now)
        if is_descendant_key(base_key, self.infosys_key) or is_descendant_key(self.infosys_key, base_key):
            self.refresh_status(now)
        own: SearchResult | None
        missing: NoSuchObject | None = None
        try:
            own = self.tree.search(request, server_size_limit=self.size_limit)
        except NoSuchObject as e:
            own, missing = None, e
        parts: list[Any] = []
        forward = len(chain) < self.max_depth
        if not forward and chain:
            log.warn("not forwarding a search that passed {n} GIISes already", n=len(chain))
        # A route depends only on the child's suffix (as written) and the request; a request key
        # only on the route and the request.  Hundreds of GRIS children share one suffix, so
        # compute each once per search, not once per child.
        routes: dict[str, Route | None] = {}
        keys: dict[Route, tuple[Any, ...]] = {}
        for child in self.live_children(now):
            if child.suffix in routes:
                route = routes[child.suffix]
            else:
                route = routes[child.suffix] = child.namespace.route(request.base, request.scope)
            if route is None:
                continue
            key = keys.get(route)
            if key is None:
                key = keys[route] = self._request_key(route, request)
            parts.append(self._ask(child, route, request, chain, now, forward, key))
        if not parts:
            if own is None:
                assert missing is not None
                raise missing
            return own
        if all(not isinstance(p, defer.Deferred) for p in parts):
            return self._merge(request, own, missing, parts, timed_out=False)
        deadline_hit = {"hit": False}
        if request.time_limit:
            waits = [p for p in parts if isinstance(p, defer.Deferred)]
            timer = self.reactor.callLater(request.time_limit, self._time_up, waits, deadline_hit)
        else:
            timer = None
        d = defer.gatherResults([p if isinstance(p, defer.Deferred) else defer.succeed(p) for p in parts])

        def merged(answers: list[Any]) -> SearchResult:
            if timer is not None and timer.active():
                timer.cancel()
            return self._merge(request, own, missing, answers, timed_out=deadline_hit["hit"])

        return d.addCallback(merged)

    def _time_up(self, waits: list[defer.Deferred[Any]], flag: dict[str, bool]) -> None:
        flag["hit"] = True
        for w in waits:
            if not w.called:
                w.callback(_Part([], False, False))

    def _merge(
        self,
        request: SearchRequest,
        own: SearchResult | None,
        missing: NoSuchObject | None,
        parts: list[_Part],
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
        for part in parts:
            if not part.no_such_object:
                all_missing = False
            for e in part.entries:
                if limit and len(out) >= limit:
                    result.code = ResultCode.SIZE_LIMIT_EXCEEDED
                    result.message = f"size limit of {limit} entries exceeded"
                    return result
                out.append(e)
        if own is None and all_missing and not out:
            assert missing is not None
            raise missing
        if timed_out and result.code == ResultCode.SUCCESS:
            result.code = ResultCode.TIME_LIMIT_EXCEEDED
            result.message = f"time limit of {request.time_limit:g} s exceeded; partial answer"
        failed = sum(1 for part in parts if part.failed)
        if failed and result.code == ResultCode.SUCCESS and not result.message:
            # MDS2 answers with what it has; say so, so a client can tell a partial answer
            stale = sum(1 for part in parts if part.failed and part.stale)
            result.message = (
                f"partial answer: {failed} of {len(parts)} children did not answer in time; "
                f"{stale} of them served from their last answer, marked stale"
            )
        return result

    def _request_key(self, route: Route, request: SearchRequest) -> tuple[Any, ...]:
        return (
            self.normaliser.key(route.base),
            int(route.scope),
            F.filter_to_string(request.filter),
            tuple(a.lower() for a in request.attributes),
            request.types_only,
            request.size_limit,
        )

    def _ask(
        self,
        child: Child,
        route: Route,
        request: SearchRequest,
        chain: tuple[str, ...],
        now: float,
        forward: bool,
        key: tuple[Any, ...] | None = None,
    ) -> _Part | defer.Deferred[_Part]:
        """One child's part of a search: an immediate answer or one to wait for."""
        if child.mirror is not None:
            return self._from_mirror(child, route, request, now)
        if key is None:
            key = self._request_key(route, request)
        cached = child.cache.get(key)
        if cached is not None and now - cached.fetched_at < child.cachettl:
            child.stats.cache_hits += 1
            child.cache.move_to_end(key)
            return _Part(cached.entries, cached.no_such_object, False)
        state = child.lease_state(now)
        if state is not LeaseState.VALID or not forward:
            if state is LeaseState.INVALID:
                child.set_state("invalid", "lease passed Mds-validto; not renewed")
            return self._stale(child, cached, now)
        child.stats.cache_misses += 1
        fetch = child.inflight.get(key)
        if fetch is None:
            fetch = self._fetch(child, route, request, chain, key)
        waiter: defer.Deferred[_Part] = defer.Deferred()

        def answered(answer: Any) -> Any:
            if not waiter.called:
                if isinstance(answer, CachedAnswer):
                    waiter.callback(_Part(answer.entries, answer.no_such_object, False))
                else:
                    waiter.callback(self._stale(child, child.cache.get(key), self.reactor.seconds()))
            return None if isinstance(answer, Failure) else answer

        def too_late() -> None:
            if not waiter.called:
                child.set_state("slow", f"no answer within {child.timeout:g} s")
                waiter.callback(self._stale(child, child.cache.get(key), self.reactor.seconds()))

        timer = self.reactor.callLater(child.timeout, too_late)
        waiter.addBoth(_cancel_timer(timer))
        fetch.addBoth(answered)
        return waiter

    def _stale(self, child: Child, cached: CachedAnswer | None, now: float) -> _Part:
        """The last answer, marked stale, while keepto allows; else nothing."""
        if cached is None or now >= child.keeps_until(cached.fetched_at):
            return _Part([], True, False, failed=True)
        if cached._stale is None:
            expired = min(cached.fetched_at + child.cachettl, now - 1)
            cached._stale = [mark_stale(e, expired) for e in cached.entries]
        return _Part(cached._stale, cached.no_such_object, True, failed=True)

    def _fetch(
        self, child: Child, route: Route, request: SearchRequest, chain: tuple[str, ...], key: tuple[Any, ...]
    ) -> defer.Deferred[CachedAnswer | None]:
        """Ask the child; whenever the answer comes (even late) it goes into the cache."""
        attrs = tuple(request.attributes) or ("*",)
        attrs = attrs + chain + (self.marker,)
        started = self.reactor.seconds()
        d = child.client.search(
            route.base,
            int(route.scope),
            request.filter,
            attrs,
            size_limit=request.size_limit,
            time_limit=int(math.ceil(child.timeout)),
            types_only=request.types_only,
            timeout=max(self.late_answer_limit, child.timeout),
            max_entries=self.max_entries_per_child,
        )
        child.inflight[key] = d  # type: ignore[assignment]  # its callbacks turn it into a CachedAnswer

        def ok(result: ClientResult) -> CachedAnswer | None:
            now = self.reactor.seconds()
            child.inflight.pop(key, None)
            if result.code not in (0, 3, 4, 32):
                child.set_state("unreachable", f"answered {result.code}: {result.message}")
                return None
            entries = []
            ns = child.namespace
            for op in result.entries:
                dn = ns.to_giis(entry_dn(op))
                if dn is None or (ns.collapsed and dn is ns._mount_text):
                    continue  # outside its suffix, or its suffix entry (ours wins)
                entries.append(rename_entry(op, dn))
            answer = CachedAnswer(entries, result.code, now, no_such_object=result.code == 32)
            child.cache[key] = answer
            child.cache.move_to_end(key)
            while len(child.cache) > MAX_CACHED_REQUESTS:
                child.cache.popitem(last=False)
            child.stats.latency = now - started
            child.stats.last_contact = now
            child.stats.entries = len(entries)
            if now - started > child.timeout:
                child.stats.late_answers += 1
            child.set_state("ok")
            return answer

        def failed(f: Failure) -> None:
            child.inflight.pop(key, None)
            child.set_state("unreachable", f.getErrorMessage())
            return None

        return d.addCallback(ok).addErrback(failed)

    # -- mirror mode ---------------------------------------------------------------------------

    def _from_mirror(self, child: Child, route: Route, request: SearchRequest, now: float) -> _Part:
        """Answer from the mirror tree (in the GIIS namespace), with the route's base and scope."""
        assert child.mirror is not None
        if child.mirror_last_success is not None and now >= child.keeps_until(child.mirror_last_success):
            for e in list(child.mirror.entries):
                child.mirror.remove(e)
            child.mirror_last_success = None
        base = child.namespace.to_giis(route.base) or request.base
        try:
            result = child.mirror.search(replace(request, base=base, scope=route.scope))
        except NoSuchObject:
            return _Part([], True, False)
        child.stats.cache_hits += 1
        return _Part(result.entries, False, False)

    def pull_mirror(self, child: Child) -> defer.Deferred[int]:
        """Fetch the child's whole subtree; touch only entries that changed.  Returns changes."""
        assert child.mirror is not None
        started = self.reactor.seconds()
        d = child.client.search(
            child.suffix, 2, F.Present("objectClass"), ("*",),
            timeout=child.timeout, max_entries=self.max_entries_per_child,
        )

        def ok(result: ClientResult) -> int:
            now = self.reactor.seconds()
            if result.code not in (0, 4):
                raise LDAPError(f"mirror pull answered {result.code}: {result.message}")
            tree = child.mirror
            assert tree is not None
            seen: set[str] = set()
            changes = 0
            for op in result.entries:
                dn, attrs = decode_entry(op)
                giis_dn = child.namespace.to_giis(dn)
                if giis_dn is None or (child.namespace.collapsed and giis_dn is child.namespace._mount_text):
                    continue
                entry = tree.builder.build(giis_dn, attrs, source=f"child:{child.url}")
                seen.add(entry.key)
                old = tree.get(entry.key)
                if old is not None and old.encoded == entry.encoded:
                    continue
                tree.add(entry)
                changes += 1
            for k in [k for k in tree.entries if k not in seen]:
                tree.remove(k)
                changes += 1
            child.mirror_last_success = now
            child.stats.latency = now - started
            child.stats.last_contact = now
            child.stats.entries = len(tree)
            child.set_state("ok")
            return changes

        def failed(f: Failure) -> int:
            child.set_state("unreachable", f.getErrorMessage())
            self._mark_mirror_stale(child, self.reactor.seconds())
            return 0

        return d.addCallback(ok).addErrback(failed)

    def _mark_mirror_stale(self, child: Child, now: float) -> None:
        """A failed pull: the mirrored entries stay until keepto, with ``Mds-validto`` in the past."""
        tree = child.mirror
        last = child.mirror_last_success
        if tree is None or last is None:
            return
        expired = min(last + child.cachettl, now - 1)
        stamp = format_generalized_time(expired).encode()
        for entry in list(tree.entries.values()):
            if entry.get("mds-validto") == [stamp]:
                continue  # marked by an earlier failed pull
            dn, attrs = decode_entry(mark_stale(entry.encoded, expired))
            tree.add(tree.builder.build(entry.dn, attrs, source=entry.source))

    # -- status --------------------------------------------------------------------------------

    def _child_attributes(self, child: Child, now: float) -> list[tuple[str, list[bytes]]]:
        state = child.lease_state(now)
        stats = child.stats
        health = stats.state
        attrs: list[tuple[str, list[bytes]]] = [
            ("objectClass", [b"GridinfoChildStatus", b"MdsService", b"MdsServiceLdap"]),
            ("GridinfoChildURL", [child.url.encode()]),
            ("GridinfoChildSuffix", [child.suffix.encode()]),
            ("GridinfoChildMode", [child.mode.encode()]),
            ("GridinfoChildState", [health.encode()]),
            ("GridinfoChildEntries", [str(stats.entries).encode()]),
            ("GridinfoChildCacheHits", [str(stats.cache_hits).encode()]),
            ("GridinfoChildCacheMisses", [str(stats.cache_misses).encode()]),
            ("Mds-Service-type", [b"ldap"]),
            ("Mds-Service-hn", [child.host.encode()]),
            ("Mds-Service-port", [str(child.port).encode()]),
            ("Mds-Service-Ldap-suffix", [child.suffix.encode()]),
            ("Mds-Service-Ldap-timeout", [str(int(child.timeout)).encode()]),
            ("Mds-Service-Ldap-cachettl", [str(int(child.cachettl)).encode()]),
            ("Mds-Reg-status", [state.value.encode() if child.lease is not None else b"STATIC"]),
        ]
        if stats.latency is not None:
            attrs.append(("GridinfoChildLatency", [str(int(stats.latency * 1000)).encode()]))
        if stats.last_contact is not None:
            attrs.append(("GridinfoChildLastContact", [format_generalized_time(stats.last_contact).encode()]))
        if stats.last_error:
            attrs.append(("GridinfoChildLastError", [stats.last_error.encode()]))
        if child.lease is not None:
            reg = child.lease.registration
            attrs += [
                ("Mds-Bind-Method-servers", [reg.bind_methods.encode()]),
                ("Mds-Service-Ldap-sizelimit", [str(reg.size_limit).encode()]),
                ("Mds-validfrom", [format_generalized_time(reg.valid_from).encode()]),
                ("Mds-validto", [format_generalized_time(reg.valid_to).encode()]),
                ("Mds-keepto", [format_generalized_time(reg.keep_to).encode()]),
            ]
        return attrs

    def registration_status(self, now: float) -> SearchResult:
        """MDS2's ``-s base giisregistrationstatus``: one entry per registrant."""
        out = []
        for child in self.live_children(now):
            dn = (
                f"Mds-Service-Ldap-suffix={_escape(child.suffix)},Mds-Service-port={child.port},"
                f"Mds-Service-hn={_escape(child.host)},{self.suffix}"
            )
            out.append(self.tree.builder.build(dn, self._child_attributes(child, now)).encoded)
        return SearchResult(entries=out)

    def refresh_status(self, now: float) -> None:
        """Rebuild the ``o=infosys`` entries: the GIIS itself and one per child."""
        tree = self.tree
        for k in self._status_keys:
            tree.remove(k)
        keys = []
        entries: list[Entry] = [
            tree.builder.build(INFOSYS, [("objectClass", [b"top", b"organization"]), ("o", [b"infosys"])], source="giis"),
        ]
        children = list(self.live_children(now))
        totals: list[tuple[str, list[bytes]]] = [
            ("objectClass", [b"top", b"GridinfoServerStatus"]),
            ("cn", [b"giis"]),
            ("GridinfoChildCount", [str(len(children)).encode()]),
            ("GridinfoCycles", [str(self.cycles).encode()]),
        ]
        if self.last_cycle:
            totals.append(("GridinfoLastCycle", [self.last_cycle.encode("utf-8")]))
        entries.append(tree.builder.build(f"cn=giis,{INFOSYS}", totals, source="giis"))
        for child in children:
            dn = f"GridinfoChildURL={_escape(child.url)},{INFOSYS}"
            entries.append(tree.builder.build(dn, self._child_attributes(child, now), source="giis"))
        for e in entries:
            tree.add(e)
            keys.append(e.key)
        self._status_keys = keys


@dataclass
class _Part:
    """One child's contribution to a search."""

    entries: list[bytes]
    no_such_object: bool
    stale: bool
    failed: bool = False  # the child did not answer in time (or at all): this is a stand-in


def _cancel_timer(timer: Any) -> Callable[[Any], Any]:
    def cancel(result: Any) -> Any:
        if timer.active():
            timer.cancel()
        return result

    return cancel


def _asks_registration_status(request: SearchRequest) -> bool:
    """``ldapsearch -s base giisregistrationstatus`` sends it as an attribute; others as a filter."""
    if any(a.lower() == REGISTRATION_STATUS for a in request.attributes):
        return True
    f = request.filter
    return isinstance(f, F.Present) and f.attribute.lower() == REGISTRATION_STATUS


def _escape(value: str) -> str:
    from gridinfo.directory.dn import escape_value

    return escape_value(value)


def mark_stale(op: bytes, expired_at: float) -> bytes:
    """The entry with ``Mds-validto`` set to ``expired_at`` (in the past): stale data, marked."""
    dn, attrs = decode_entry(op)
    value = format_generalized_time(expired_at).encode()
    out = [(name, [value] if name.lower() == "mds-validto" else vals) for name, vals in attrs]
    if not any(name.lower() == "mds-validto" for name, _ in attrs):
        out.append(("Mds-validto", [value]))
    from gridinfo.directory import ber

    return ber.search_result_entry(dn.encode(), [ber.partial_attribute(n.encode(), v) for n, v in out])


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
        for child in list(b.children.values()):
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
