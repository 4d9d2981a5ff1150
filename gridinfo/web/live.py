"""Telling open pages that the directory changed: one small interface, fed by the change stream or by polling.

:class:`ChangeSource` is what the web server needs: ``subscribe(callback)`` (called with a
token string on each change; returns an ``unsubscribe``), ``token`` (the current one) and
``subscribers``.  :class:`PollingChanges` implements it by checking a digest of the directory
every ``interval`` seconds while at least one page listens (nobody listening: no work at all).
:class:`StreamChanges` feeds the same interface from the backend's change stream (any backend
with ``sync_view``: pages hear of a change on the next reactor turn), and polls when the
backend has none.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet import defer, task
from twisted.logger import Logger

from gridinfo.directory.changes import Subscription
from gridinfo.directory.filters import parse_filter
from gridinfo.directory.query import Scope, SearchRequest
from gridinfo.infosys import INFOSYS_DN

log = Logger()

EVERYTHING = parse_filter("(objectClass=*)")


class ChangeSource(Protocol):
    token: str

    @property
    def subscribers(self) -> int: ...

    def subscribe(self, callback: Callable[[str], None]) -> Callable[[], None]: ...


class PollingChanges:
    """Digest of every entry the reader sees (outside o=infosys), checked while anyone listens."""

    def __init__(self, reader: Any, reactor: Any, *, interval: float = 5.0):
        self.reader = reader
        self.reactor = reactor
        self.interval = interval
        self.token = "0"
        self.checks = 0
        self._digest: bytes | None = None
        self._callbacks: dict[int, Callable[[str], None]] = {}
        self._next = 0
        self._loop: task.LoopingCall | None = None
        self._busy = False

    @property
    def subscribers(self) -> int:
        return len(self._callbacks)

    def subscribe(self, callback: Callable[[str], None]) -> Callable[[], None]:
        self._next += 1
        handle = self._next
        self._callbacks[handle] = callback
        if self._loop is None:
            self._loop = task.LoopingCall(self.check)
            self._loop.clock = self.reactor
            self._loop.start(self.interval, now=True)

        def unsubscribe() -> None:
            self._callbacks.pop(handle, None)
            if not self._callbacks and self._loop is not None:
                if self._loop.running:
                    self._loop.stop()
                self._loop = None

        return unsubscribe

    def stop(self) -> None:
        self._callbacks.clear()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def changed(self) -> None:
        """Something changed (a change stream may call this): a new token to every subscriber."""
        self.token = str(int(self.token) + 1)
        for callback in list(self._callbacks.values()):
            try:
                callback(self.token)
            except Exception:
                log.failure("web live update: a subscriber failed")

    def check(self) -> defer.Deferred[bool]:
        if self._busy:
            return defer.succeed(False)
        self._busy = True
        self.checks += 1
        bases = [b for b in self.reader.naming_contexts() if b.lower() != "o=infosys"]
        d = defer.gatherResults(
            [self.reader.search_encoded(b, Scope.SUB).addErrback(lambda _: None) for b in bases]
        )

        def compare(answers: list[Any]) -> bool:
            # the encoded entries, not decoded ones: a check of a large tree stays cheap
            h = hashlib.blake2b(digest_size=16)
            for answer in answers:
                if answer is None:
                    h.update(b"\0error")
                    continue
                for op in answer.entries:
                    h.update(op)
            digest = h.digest()
            first = self._digest is None
            moved = not first and digest != self._digest
            self._digest = digest
            if moved:
                self.changed()
            return moved

        def finished(result: Any) -> Any:
            self._busy = False
            return result

        return d.addCallback(compare).addBoth(finished)


class StreamChanges(PollingChanges):
    """The same interface fed by the backend's change stream: pages hear of a change on the next
    reactor turn, with no polling.

    Any backend with ``sync_view`` (the contract change-stream searches use: a GRIS's tree, a
    GIIS over everything it holds) will do: while a page listens, one subscription per naming
    context (``o=infosys`` aside: status entries are not page content) to the ``changelog`` of
    the view ``sync_view`` gives for a subtree search of it, with the web view's identity, so
    its ``visible`` test decides what is a change.  A burst of changes is one new token; a
    subscription that overflowed its bound is still a change, and is renewed.  When the backend
    gives no view (``sync_view`` raises, or its view has no ``changelog``) the pages are told by
    polling every ``interval`` seconds instead, as :class:`PollingChanges` does; the log says why.
    """

    def __init__(self, backend: Any, reader: Any, reactor: Any, *, interval: float = 5.0):
        super().__init__(reader, reactor, interval=interval)
        self.backend = backend
        self.polling = False  # the stream could not be opened: polling instead
        self._subscriptions: list[tuple[Any, Subscription]] = []
        self._call: Any = None

    def subscribe(self, callback: Callable[[str], None]) -> Callable[[], None]:
        self._next += 1
        handle = self._next
        self._callbacks[handle] = callback
        if self.polling:
            self._poll()
        elif not self._subscriptions:
            self._open()

        def unsubscribe() -> None:
            self._callbacks.pop(handle, None)
            if not self._callbacks:
                self._close()

        return unsubscribe

    def stop(self) -> None:
        self._callbacks.clear()
        self._close()

    def _poll(self) -> None:
        if self._loop is None:
            self._loop = task.LoopingCall(self.check)
            self._loop.clock = self.reactor
            self._loop.start(self.interval, now=True)

    def _open(self) -> None:
        bases = [b for b in self.reader.naming_contexts() if b.lower() != INFOSYS_DN]
        opened: list[tuple[Any, Subscription]] = []
        try:
            for base in bases:
                view = self.backend.sync_view(SearchRequest(base, Scope.SUB, EVERYTHING, ("1.1",),
                                                            bind_dn=self.reader.bind_dn))
                changelog = getattr(view, "changelog", None)
                if changelog is None:
                    raise TypeError(f"the backend's view of {base!r} has no changelog")
                subscription = Subscription(view.visible, max_pending=1024)
                subscription.on_ready = self._soon
                changelog.subscribe(subscription)
                opened.append((changelog, subscription))
        except Exception as e:  # noqa: BLE001 - any reason: the pages are still told, by polling
            for changelog, subscription in opened:
                changelog.unsubscribe(subscription)
            log.warn("web live updates: no change stream from the backend ({error}); polling every {interval} s",
                     error=f"{type(e).__name__}: {e}", interval=self.interval)
            self.polling = True
            self._poll()
            return
        self._subscriptions = opened

    def _close(self) -> None:
        for changelog, subscription in self._subscriptions:
            changelog.unsubscribe(subscription)
        self._subscriptions = []
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        if self._loop is not None:
            if self._loop.running:
                self._loop.stop()
            self._loop = None

    def _soon(self) -> None:
        if self._call is None:
            self._call = self.reactor.callLater(0, self._deliver)

    def _deliver(self) -> None:
        self._call = None
        if not self._subscriptions:
            return
        self.checks += 1
        overflowed = False
        for _, subscription in self._subscriptions:
            subscription.pending.clear()  # pages fetch what they show; they only need to know
            overflowed = overflowed or subscription.overflowed
        if overflowed:
            self._close()
            self._open()
        self.changed()
