"""Pushed children: a GIIS subscribes to a child's change stream and holds what it sends.

Theory of operation
-------------------
A child whose root DSE advertises RFC 4533's Sync Request control (every gridinfo GRIS and
GIIS, a slapd with syncprov) is followed with one ``refreshAndPersist`` search of its suffix
(:class:`gridinfo.ldap.syncclient.SyncConsumer`, on the child's own client connection).  What
it sends is renamed into the GIIS namespace exactly as a mirror pull is
(:func:`gridinfo.giis.mirror.hold_entry`) and kept in the child's store, which publishes into
the GIIS's tree (:mod:`gridinfo.giis.published`): a change at a GRIS reaches every subscriber of
every GIIS above it without anyone polling.  One :class:`PushLink` per child::

    state        what the child is to searches        next
    -----------  -----------------------------------  --------------------------------------------
    probing      asked as its mode says (forward /    stream offered -> refreshing; none ->
                 mirror)                              unsupported; unreachable -> probing again
                                                      after the backoff
    refreshing   the same, until the refresh is in    refresh done -> live (a first refresh is
                                                      kept out of our tree until then, and
                                                      published at once)
    live         held: answered from our tree         stream ends or drops -> lost;
                                                      e-syncRefreshRequired -> refreshing (full)
    lost         held, entries marked stale (as a     backoff over -> refreshing, resumed with the
                 failed pull marks them) until keepto cookie; refused -> unsupported
    unsupported  asked as its mode says               push_retry over -> probing
    closed       (the child is gone)                  -

The backoff is 1 s, doubling to at most 60 s, on the injected reactor; a stream that reaches
``live`` resets it.  A resumed stream sends only what changed while we were away, so on reaching
``live`` again the entries the loss marked stale and nobody changed get their fresh version back
(:meth:`~gridinfo.giis.published.ChildStore.unmark`).  A refusal (the child says it cannot stream
that base: unwillingToPerform, unavailableCriticalExtension, protocolError) makes the child a
forwarded one again until push_retry; its held entries go unless its mode is mirror, whose pulls
then take over.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from gridinfo.giis.mirror import hold_entry, mark_mirror_stale
from gridinfo.ldap.syncclient import SyncConsumer, SyncEnd, root_dse_supports_sync

if TYPE_CHECKING:
    from gridinfo.giis.children import Child, ChildRegistry
    from gridinfo.giis.forwarder import ClassSpeller

log = Logger()

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0
E_SYNC_REFRESH_REQUIRED = 4096
CANCELED = 118
#: answers that mean "no stream for you here"; anything else is a failure to retry
REFUSALS = frozenset({2, 12, 53})
NO_SUCH_OBJECT = 32


class PushLink:
    """One child's change stream into its store (see the table above)."""

    def __init__(
        self,
        child: Child,
        registry: ChildRegistry,
        reactor: IReactorTime,
        *,
        speller: ClassSpeller | None = None,
        max_entries: int = 0,
        retry_unsupported: float = 600.0,
        probe_interval: float = 60.0,
        timers: IReactorTime | None = None,
    ):
        """``probe_interval``: seconds of silence on a live stream after which the child is asked
        something cheap; no answer within its timeout drops the stream (0: never).  ``reactor``
        tells the time; ``timers`` (default: the reactor) runs the backoff and retry timers."""
        self.child = child
        self.registry = registry
        self.reactor = reactor
        self.timers = timers if timers is not None else reactor
        self.speller = speller
        self.max_entries = max_entries
        self.retry_unsupported = retry_unsupported
        self.probe_interval = probe_interval
        self.state = "probing"
        #: the first refresh is in: the child is answered from what we hold
        self.ready = False
        self.consumer: SyncConsumer | None = None
        self._backoff = BACKOFF_FIRST
        self._timer: IDelayedCall | None = None
        self._started_at = 0.0
        self.upserts = 0  # entries received (a resumed stream sends only what changed)

    def __repr__(self) -> str:
        return f"<PushLink {self.child.url} {self.state}>"

    @property
    def may_push(self) -> bool:
        """The child streams, or may yet (not refused, not closed)."""
        return self.state not in ("unsupported", "closed")

    @property
    def live(self) -> bool:
        return self.state == "live"

    @property
    def streaming(self) -> bool:
        """A stream is open or being resumed: pulls of a mirror-mode child stand aside."""
        return self.state in ("refreshing", "live", "lost")

    # -- the states ------------------------------------------------------------------------

    def start(self) -> None:
        if self.state == "closed":
            return
        self.state = "probing"
        d = root_dse_supports_sync(self.child.client, timeout=self.child.timeout)
        d.addCallbacks(self._probed, self._probe_failed)

    def _probed(self, supported: bool) -> None:
        if self.state == "closed":
            return
        if not supported:
            self._unsupported("its root DSE does not advertise the Sync Request control")
            return
        self._subscribe()

    def _probe_failed(self, failure: Failure) -> None:
        if self.state == "closed":
            return
        self.child.set_state("unreachable", failure.getErrorMessage())
        self._later(self._backoff_delay(), self.start)

    def _subscribe(self) -> None:
        child = self.child
        store = self.registry.hold(child)
        if not child.held:
            # until the refresh is in, searches still ask the child: what has arrived so far is
            # kept out of our tree (a half-copied child served beside its own answers)
            store.withheld = True
        if self.consumer is None:
            self.consumer = SyncConsumer(
                child.client, child.suffix, self, max_entries=self.max_entries,
                probe_interval=self.probe_interval, probe_timeout=child.timeout,
            )
        self.state = "refreshing"
        self._started_at = self.reactor.seconds()
        log.info("child {url}: following its change stream", url=child.url)
        self.consumer.run().addCallbacks(self._ended, self._dropped)

    def _ended(self, end: SyncEnd) -> None:
        if self.state == "closed" or end.code == CANCELED:
            return
        if end.code == E_SYNC_REFRESH_REQUIRED:
            log.info("child {url} asks for a full refresh (e-syncRefreshRequired)", url=self.child.url)
            self._subscribe()
            return
        if end.code in REFUSALS:
            self._unsupported(f"it refused the stream ({end.code}: {end.message})")
            return
        if end.code == NO_SUCH_OBJECT:
            # nothing under that base (a GRIS with no o=glue tree, say): held, empty; look again later
            self._refreshed_empty()
            return
        self._lost(f"the stream ended with {end.code}: {end.message}")

    def _dropped(self, failure: Failure) -> None:
        if self.state == "closed":
            return
        self._lost(failure.getErrorMessage())

    def _lost(self, why: str) -> None:
        child = self.child
        now = self.reactor.seconds()
        if self.state == "live":
            child.mirror_last_success = now  # the data was current until now
        if self.ready:
            mark_mirror_stale(child, now)
        self.state = "lost" if self.ready else "probing"
        child.set_state("unreachable", why)
        self._later(self._backoff_delay(), self._subscribe if self.ready else self.start)

    def _unsupported(self, why: str) -> None:
        child = self.child
        log.info("child {url} has no change stream for us ({why}); asking it as mode {mode} says",
                 url=child.url, why=why, mode=child.mode)
        self.state = "unsupported"
        self.ready = False
        if child.mode != "mirror" and child.mirror is not None:
            child.mirror.publisher.forget(child.mirror)
            child.mirror = None
            child.mirror_last_success = None
        self._later(self.retry_unsupported, self.start)

    def _refreshed_empty(self) -> None:
        store = self.registry.hold(self.child)
        store.clear()
        self.sync_refreshed()
        self._later(self.retry_unsupported, self._subscribe)

    def close(self) -> None:
        self.state = "closed"
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self.consumer is not None:
            self.consumer.cancel()

    def _later(self, delay: float, call: object) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = self.timers.callLater(delay, call)  # type: ignore[arg-type]

    def _backoff_delay(self) -> float:
        delay = self._backoff
        self._backoff = min(self._backoff * 2, BACKOFF_MAX)
        return delay

    # -- the replica the consumer feeds (gridinfo.ldap.syncclient.SyncReplica) -----------------

    def sync_upsert(self, dn: str, attributes: list[tuple[str, list[bytes]]]) -> None:
        store = self.child.mirror
        if store is None or self.state == "closed":
            return
        entry = hold_entry(self.child, dn, attributes, self.speller)
        if entry is None:
            return
        old = store.get(entry.key)
        child = self.child
        self.upserts += 1
        child.stats.last_contact = self.reactor.seconds()
        if old is not None and old.encoded == entry.encoded and entry.key not in store.fresh:
            return
        store.add(entry)
        child.stats.entries = len(store)

    def sync_remove(self, dn: str) -> None:
        store = self.child.mirror
        if store is None or self.state == "closed":
            return
        giis_dn = self.child.namespace.to_giis(dn)
        if giis_dn is not None:
            store.remove(store.builder.dn_normaliser.key(giis_dn))
            self.child.stats.entries = len(store)

    def sync_refreshed(self) -> None:
        child = self.child
        store = child.mirror
        if store is None or self.state == "closed":
            return
        now = self.reactor.seconds()
        store.publish()
        store.unmark()
        self.ready = True
        self.state = "live"
        self._backoff = BACKOFF_FIRST
        child.mirror_last_success = now
        child.stats.latency = now - self._started_at
        child.stats.last_contact = now
        child.stats.entries = len(store)
        child.set_state("ok")
