"""The children of a GIIS: static ones from the config, registered ones derived from the leases.

Theory of operation
-------------------
The :class:`~gridinfo.giis.leases.LeaseTable` is the only record of who is registered.  A
:class:`Child` is what the GIIS keeps *beside* a lease or a static entry: how the child is
mounted, its cached answers, its health and its client connection.  :meth:`ChildRegistry.current`
reads the lease table and reconciles::

    lease table says            registry does
    --------------------------  ------------------------------------------------------
    lease present (VALID or     a Child for it (made on first sight, updated on renewal)
      INVALID)
    lease gone (PURGED: read    its Child is closed and dropped with its cache
      or swept)
    static child (config)       always a Child; never expires (its answers keep ``keep`` s)

So there is one expiry path, the lease table's: a child disappears exactly when its lease does.

In BDII's layout (``layout: bdii``, see :mod:`gridinfo.giis.namespace`) a child contributes two
subtrees, its ``o=grid`` base and its ``o=glue`` base.  Each is a :class:`Child` of its own (its
own namespace, cache, mirror and connection); the o=glue one is the *companion* of the static
entry or lease that named the o=grid base, and lives and dies with it.  Two children whose
subtrees would land on the same place (two sites both claiming ``GLUE2DomainID=SITE``) are
refused: the second static one is left out, a registration is refused, and the log names both.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet import defer, task
from twisted.logger import Logger

from gridinfo import debuglog
from gridinfo.config import GIISConfig, StaticChildConfig
from gridinfo.directory.dn import DNNormaliser, is_descendant_key
from gridinfo.giis.answers import CachedAnswer, expired
from gridinfo.giis.leases import Lease, LeaseState, LeaseTable
from gridinfo.giis.namespace import BDIILayout, ChildNamespace, glue_base_for
from gridinfo.giis.published import ChildStore, Publisher
from gridinfo.ldap.client import LDAPClient, LDAPURL

if TYPE_CHECKING:
    from gridinfo.giis.push import PushLink

log = Logger(namespace=__name__)  # named here: a compiled module has no frame to name it from

ChildKey = tuple[str, int, str]
MAX_CACHED_REQUESTS = 256  # per child


@dataclass
class ChildStats:
    state: str = "new"  # new, ok, slow, unreachable, invalid
    latency: float | None = None
    entries: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    late_answers: int = 0
    last_contact: float | None = None
    last_error: str = ""
    errors: int = 0  # failed exchanges (no answer, an error, a dropped stream), since start


class Child:
    """One child of the GIIS: where it is, how it is mounted, its cache and its health."""

    def __init__(
        self,
        key: ChildKey,
        host: str,
        port: int,
        suffix: str,
        namespace: ChildNamespace,
        client: LDAPClient,
        *,
        static: StaticChildConfig | None = None,
        lease: Lease | None = None,
        timeout: float,
        cachettl: float,
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
        #: what the GIIS holds of this child (mirror mode, or pushed): None while it is forwarded to
        self.mirror: ChildStore | None = None
        self.mirror_loop: task.LoopingCall | None = None
        self.mirror_last_success: float | None = None
        #: the change stream this child pushes to us (:mod:`gridinfo.giis.push`), if it does
        self.push: PushLink | None = None
        #: its ``giisregistrationstatus`` entry, encoded, by detail: (what it was made from, bytes)
        #: (gridinfo.giis.status builds it again only when one of those changed)
        self.status_entries: dict[bool, tuple[tuple[Any, ...], bytes]] = {}
        #: whether the GIIS may subscribe to this child's change stream
        self.push_allowed = False
        #: objectClasses (lowercased) whose entries are not taken from this child (BDII layout)
        self.drop_classes: frozenset[str] = frozenset()

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

    def remember(self, key: tuple[Any, ...], answer: CachedAnswer) -> None:
        """Cache an answer (least recently used go first beyond MAX_CACHED_REQUESTS)."""
        self.cache[key] = answer
        self.cache.move_to_end(key)
        while len(self.cache) > MAX_CACHED_REQUESTS:
            self.cache.popitem(last=False)

    def trim(self, now: float) -> None:
        for k, answer in list(self.cache.items()):
            if expired(self, answer, now):
                del self.cache[k]

    def set_state(self, state: str, error: str = "") -> None:
        """Record health (every failure counts in ``stats.errors``); log once per change of state."""
        if state != "ok":
            self.stats.errors += 1
        if state != self.stats.state:
            if state == "ok" and self.stats.state == "new":
                # its registration was logged already; at 1,000 children these lines were a
                # tenth of the GIIS's CPU in the first search
                if debuglog.wanted:
                    log.debug("child {url} answered for the first time", url=self.url)
            elif state == "ok":
                log.info("child {url} is {state}", url=self.url, state=state)
            else:
                log.warn("child {url} is {state}: {error}", url=self.url, state=state, error=error)
        self.stats.state = state
        if error:
            self.stats.last_error = error

    @property
    def held(self) -> bool:
        """Answered from what the GIIS holds (the published tree), not by forwarding: a mirrored
        child always, a pushed one once its first refresh is in (until then it is forwarded to)."""
        return self.mirror is not None and (self.push is None or self.push.ready or self.mode == "mirror")

    @property
    def effective_mode(self) -> str:
        """How the GIIS gets the child's data now: ``push`` (its change stream), else its mode."""
        return "push" if self.push is not None and self.push.streaming else self.mode

    @property
    def streamable(self) -> bool:
        """Its data is (or is about to be) in the GIIS's tree: a change stream of the GIIS covers it."""
        if self.push is None:
            return self.mirror is not None or self.push_allowed  # (a link not started yet will be)
        return self.mirror is not None or self.push.may_push

    @property
    def rank(self) -> tuple[int, float]:
        """Static children first, in config order (their position is set by the registry); then
        leases by policy rule and age."""
        if self.lease is not None:
            return (self.lease.rank, self.lease.first_registered)
        return (-1, float(self.static_position))

    static_position = 0

    def close(self) -> None:
        if self.mirror_loop is not None and self.mirror_loop.running:
            self.mirror_loop.stop()
        if self.push is not None:
            self.push.close()
            self.push = None
        if self.mirror is not None:
            self.mirror.publisher.forget(self.mirror)
            self.mirror = None
        self.client.close()


ClientFactory = Callable[..., LDAPClient]


def bdii_layout(config: GIISConfig) -> BDIILayout | None:
    """The BDII layout a GIIS config asks for, or None for MDS2's."""
    if config.layout != "bdii":
        return None
    return BDIILayout(config.level, config.site_name)


def _rank(child: Child) -> int:
    return child.lease.rank if child.lease is not None else -1


class ChildRegistry:
    """Static children plus one Child per current lease (see the table above)."""

    def __init__(
        self,
        leases: LeaseTable,
        giis_suffix: str,
        normaliser: DNNormaliser,
        client_factory: ClientFactory,
        *,
        default_timeout: float,
        publisher: Publisher,
        static: Iterable[StaticChildConfig] = (),
        layout: BDIILayout | None = None,
        drop_classes: Iterable[str] = (),
        push_default: bool = False,
    ):
        self.layout = layout
        self.drop_classes = frozenset(c.lower() for c in drop_classes) if layout is not None else frozenset()
        self.leases = leases
        #: the last answer of current(): (leases version, valid until, static count, children)
        self._current: tuple[int, float, int, list[Child]] | None = None
        self.giis_suffix = giis_suffix
        self.normaliser = normaliser
        self.client_factory = client_factory
        self.default_timeout = default_timeout
        self.publisher = publisher
        self.push_default = push_default  # may registered children push their changes to us
        #: called with every child made (the GIIS starts its change stream subscription there)
        self.on_new: Callable[[Child], None] | None = None
        self.static: dict[ChildKey, Child] = {}
        self._leased: dict[ChildKey, Child] = {}
        self._companions: dict[ChildKey, Child] = {}  # lease key -> its o=glue child (BDII layout)
        for sc in static:
            self._add_static(sc)

    @classmethod
    def from_config(
        cls, config: GIISConfig, leases: LeaseTable, normaliser: DNNormaliser, client_factory: ClientFactory,
        publisher: Publisher,
    ) -> ChildRegistry:
        return cls(
            leases, config.suffix, normaliser, client_factory,
            default_timeout=config.default_timeout, publisher=publisher, static=config.children,
            layout=bdii_layout(config), drop_classes=config.drop_objectclasses, push_default=config.push,
        )

    def namespace(self, suffix: str) -> ChildNamespace:
        """How a child base is mounted (ValueError: not servable in this layout)."""
        if self.layout is not None:
            return self.layout.namespace(suffix, self.normaliser)
        return ChildNamespace(suffix, self.giis_suffix, self.normaliser)

    def bases(self, suffix: str, glue_base: str = "") -> list[str]:
        """The bases a child named by ``suffix`` is asked for: the one named and, in BDII's layout,
        its o=glue base (``glue_base``: "" derives it, "none" has none)."""
        if self.layout is None:
            return [suffix]
        if glue_base.lower() == "none":
            return [suffix]
        extra = glue_base or glue_base_for(suffix, self.normaliser)
        if extra is None or self.normaliser.key(extra) == self.normaliser.key(suffix):
            return [suffix]
        return [suffix, extra]

    def collision(
        self, suffix: str, shared: bool, exclude: tuple[str, int] | None = None, glue_base: str = ""
    ) -> str | None:
        """In BDII's layout, the URL of a live child one of whose subtrees lands where one of
        ``suffix``'s would (equal, above or below), or None.  Children landing on a root (GRIS,
        resource BDIIs, a GRIS's GLUE2GroupID=resource) share it and never collide."""
        if self.layout is None:
            return None
        mine = []
        for base in self.bases(suffix, glue_base):
            ns = self.namespace(base)
            if not ns.shared:
                mine.append(ns.mount_key)
        if not mine:
            return None
        for child in self.all():
            if exclude is not None and (child.key[0], child.key[1]) == exclude:
                continue
            if child.namespace.shared or (shared and child.lease is not None and child.lease.shared):
                continue
            k = child.namespace.mount_key
            if any(is_descendant_key(k, m) or is_descendant_key(m, k) for m in mine):
                return child.url
        return None

    def _client(
        self, host: str, port: int, timeout: float, bind_dn: str = "", password: str = "", **tls: bool
    ) -> LDAPClient:
        return self.client_factory(host, port, connect_timeout=timeout, bind_dn=bind_dn, password=password, **tls)

    def hold(self, child: Child) -> ChildStore:
        """Start holding the child's data in the GIIS's tree (mirror mode, or pushed)."""
        if child.mirror is None:
            child.mirror = self.publisher.store(child.url, child.rank)
        return child.mirror

    def _add_static(self, sc: StaticChildConfig) -> None:
        url = LDAPURL.parse(sc.url)
        if not url.base:
            raise ValueError(f"static child {sc.url!r} names no suffix (ldap://host:port/suffix)")
        holder = self.collision(url.base, False, glue_base=sc.glue_base)
        if holder is not None:
            log.error("static child {name} {url} left out: its subtree would land where that of {holder} does",
                      name=sc.name or "-", url=sc.url, holder=holder)
            return
        for base in self.bases(url.base, sc.glue_base):
            key = (url.host.lower(), url.port, self.normaliser.key(base))
            child = Child(
                key, url.host, url.port, base, self.namespace(base),
                self._client(url.host, url.port, sc.timeout, sc.bind_dn, sc.password, **({"ldaps": True} if url.ldaps else {})),
                static=sc, timeout=sc.timeout, cachettl=sc.cachettl,
            )
            child.drop_classes = self.drop_classes
            child.static_position = len(self.static)
            child.push_allowed = sc.push and self.push_default
            if sc.mode == "mirror":
                self.hold(child)
            self.static[key] = child

    def is_static(self, key: ChildKey) -> bool:
        return key in self.static

    def _for_lease(self, lease: Lease) -> Child:
        reg = lease.registration
        timeout = reg.timeout or self.default_timeout
        child = self._leased.get(lease.key)
        if child is None:
            child = Child(
                lease.key, reg.host, reg.port, reg.suffix, self.namespace(reg.suffix),
                self._client(reg.host, reg.port, timeout), lease=lease, timeout=timeout, cachettl=reg.cachettl,
            )
            child.drop_classes = self.drop_classes
            child.push_allowed = self.push_default
            self._leased[lease.key] = child
            bases = self.bases(reg.suffix)
            if len(bases) > 1:
                glue = bases[1]
                companion = Child(
                    (reg.host.lower(), reg.port, self.normaliser.key(glue)), reg.host, reg.port, glue,
                    self.namespace(glue), self._client(reg.host, reg.port, timeout), lease=lease,
                    timeout=timeout, cachettl=reg.cachettl,
                )
                companion.drop_classes = self.drop_classes
                companion.push_allowed = self.push_default
                self._companions[lease.key] = companion
            if self.on_new is not None:
                for c in (child, self._companions.get(lease.key)):
                    if c is not None:
                        self.on_new(c)
        for c in (child, self._companions.get(lease.key)):
            if c is not None:
                c.lease = lease
                c.timeout = timeout
                c.cachettl = reg.cachettl
        return child

    def current(self, now: float) -> list[Child]:
        """Every child searches may use now, in rank order: static ones, then one per unpurged
        lease by its policy rule's position, then by age (a duplicate DN is served from the first).

        Worked out again only when the leases changed (LeaseTable.version) or one of them
        reached its keepto; otherwise the same children, in the same order, as last time."""
        kept = self._current
        if kept is not None and kept[0] == self.leases.version and now < kept[1] and kept[2] == len(self.static):
            return list(kept[3])
        out = self._work_out_current(now)
        self._current = (self.leases.version, self.leases.purged_from(), len(self.static), out)
        return list(out)

    def _work_out_current(self, now: float) -> list[Child]:
        leased = [self._for_lease(lease) for lease in self.leases.current(now)]
        if len(leased) != len(self._leased):
            live = {c.key for c in leased}
            for key in [k for k in self._leased if k not in live]:
                self._drop(self._leased.pop(key))
        if len(leased) > 1:
            leased.sort(key=_rank)  # stable: within a rank, the first registered comes first
        if self._companions:
            leased = [c for child in leased for c in (child, self._companions.get(child.key)) if c is not None]
        return list(self.static.values()) + leased

    def _drop(self, child: Child) -> None:
        log.info("dropping child {url}: its lease passed keepto", url=child.url)
        child.close()
        companion = self._companions.pop(child.key, None)
        if companion is not None:
            companion.close()

    def sweep(self, now: float) -> int:
        """Purge expired leases (and so their children); trim caches.  Returns children dropped."""
        before = len(self._leased)
        self.leases.sweep(now)
        for child in self.current(now):
            child.trim(now)
        return before - len(self._leased)

    def all(self) -> list[Child]:
        """Every child known, without expiring anything (for shutdown)."""
        return list(self.static.values()) + list(self._leased.values()) + list(self._companions.values())

    def close(self) -> None:
        for child in self.all():
            child.close()
