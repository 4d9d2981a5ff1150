"""Change-stream searches on one connection: RFC 4533 sync (refreshOnly, refreshAndPersist) and persistent search.

Theory of operation
-------------------
A search carrying a Sync Request or a persistent search control becomes a
:class:`ChangeStream`.  It takes the tree's :class:`~gridinfo.directory.tree.SyncView` (the
entries the search selects now, the scope-and-filter test, the attribute encoder, the change
log), and goes through two phases:

**Refresh.**  What the client must receive to be up to date, as a queue of entries:

===================================  ==========================================  =========================
request                              queued                                      end of refresh
===================================  ==========================================  =========================
sync, no cookie / cookie unusable    every selected entry, state add             refreshDeletes FALSE
sync, cookie the change log answers  entries changed since: add; left: delete    refreshDeletes TRUE
persistent search, changesOnly off   every selected entry, no control            (none)
persistent search, changesOnly on    nothing                                     (none)
===================================  ==========================================  =========================

"End of refresh" is a SearchResultDone with a Sync Done control for refreshOnly (the search
ends there), and a Sync Info message (refreshPresent or refreshDelete, refreshDone TRUE) for
refreshAndPersist.  A cookie is unusable when it names another server's CSN or one the change
log no longer reaches; refreshing in full with refreshDeletes FALSE tells the client to drop
whatever it holds that was not sent (RFC 4533 section 3.3.1), so no e-syncRefreshRequired is
needed for it.

**Persist** (refreshAndPersist, persistent search).  The stream holds a
:class:`~gridinfo.directory.changes.Subscription`, subscribed before the refresh is queued, so a
change made while the refresh is still being written is sent after it, coalesced.  Notices go
out as Sync State add / modify / delete (delete: the DN and UUID only), or for a persistent
search as the entry with an Entry Change Notification control (only removals count as
deletes there, and only the change types the client asked for).  The last notice of each batch
carries the cookie of everything sent so far.  A subscriber whose undelivered DNs pass the
buffer bound is ended with ``e-syncRefreshRequired`` (4096) and a log line; it refreshes and
resumes with its cookie, and nobody else is slowed.

Writing follows the connection's backpressure: the stream writes only while the transport
takes data (``can_write``), in batches, and is pumped again when the transport drains or, for
new notices, on the next reactor turn (so a provider run changing a thousand entries is one
batch, not a thousand writes).  Abandon, Cancel (RFC 3909: answered ``canceled``) and a lost
connection unsubscribe it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from gridinfo import ber
from gridinfo.directory.changes import ChangeKind, Notice, Subscription
from gridinfo.directory.tree import entry_uuid_bytes
from gridinfo.errors import ResultCode
from gridinfo.ldap import sync

if TYPE_CHECKING:
    from gridinfo.directory.entry import Entry
    from gridinfo.directory.tree import SyncView

log = Logger(namespace=__name__)  # named here: a compiled module has no frame to name it from

#: messages per transport write
BATCH = 256

E_SYNC_REFRESH_REQUIRED = 4096
CANCELED = 118


class ChangeStream:
    """One change-stream search of one connection."""

    def __init__(
        self,
        message_id: int,
        view: SyncView,
        *,
        write: Callable[[bytes], None],
        can_write: Callable[[], bool],
        finished: Callable[[ChangeStream], None],
        reactor: IReactorTime,
        peer: str,
        sync_request: sync.SyncRequest | None = None,
        psearch: sync.PersistentSearch | None = None,
        max_pending: int = 10_000,
    ) -> None:
        assert (sync_request is None) != (psearch is None)
        self.message_id = message_id
        self.view = view
        self._write = write
        self._can_write = can_write
        self._finished = finished
        self._reactor = reactor
        self.peer = peer
        self.sync_request = sync_request
        self.psearch = psearch
        self.done = False
        #: the result code the search ended with (None while open, or when stopped unanswered)
        self.end_code: int | None = None
        self._queue: deque[tuple[int, Entry]] = deque()  # (state or -1 for a plain entry, entry)
        self._end_of_refresh: bytes | None = None  # the message that ends the refresh phase
        self._call: IDelayedCall | None = None
        self.subscription: Subscription | None = None
        self.rid: str | None = None
        persist = psearch is not None or (sync_request is not None and sync_request.mode == sync.REFRESH_AND_PERSIST)
        if persist:
            wanted = None
            if psearch is not None:
                wanted = frozenset(k for k, bit in sync.PSEARCH_TYPES.items() if psearch.change_types & bit)
            self.subscription = view.changelog.subscribe(
                Subscription(view.visible, max_pending=max_pending, wanted=wanted, group=view.group)
            )
            self.subscription.on_ready = self._soon
        self._plan_refresh()

    # -- refresh ----------------------------------------------------------------------------

    def _plan_refresh(self) -> None:
        view = self.view
        if self.psearch is not None:
            if not self.psearch.changes_only:
                self._queue.extend((-1, e) for e in view.entries)
            return
        request = self.sync_request
        assert request is not None
        self.rid, csn = sync.read_cookie(request.cookie)
        changes = view.changelog.since(csn) if csn is not None else None
        deletes = changes is not None
        if changes is None:
            self._queue.extend((ChangeKind.ADD, e) for e in view.entries)
        else:
            probe = Subscription(view.visible)
            for change in changes:
                kind = probe.classify(change)
                if kind is ChangeKind.DELETE:
                    assert change.old is not None
                    self._queue.append((ChangeKind.DELETE, change.old))
                elif kind is not None:
                    assert change.new is not None
                    self._queue.append((ChangeKind.ADD, change.new))
        cookie = sync.format_cookie(view.changelog.csn, self.rid)
        if request.mode == sync.REFRESH_ONLY:
            done = ber.ldap_result(ber.APP_SEARCH_RESULT_DONE, ResultCode.SUCCESS)
            self._end_of_refresh = ber.ldap_message(
                self.message_id, done, sync.controls(sync.sync_done(cookie, refresh_deletes=deletes))
            )
        else:
            choice = sync.INFO_REFRESH_DELETE if deletes else sync.INFO_REFRESH_PRESENT
            self._end_of_refresh = ber.ldap_message(self.message_id, sync.sync_info(choice, cookie))

    # -- writing ----------------------------------------------------------------------------

    def _soon(self) -> None:
        if self._call is None and not self.done:
            self._call = self._reactor.callLater(0, self._pumped_later)

    def _pumped_later(self) -> None:
        self._call = None
        self.pump()

    def pump(self) -> None:
        """Write what is due while the transport takes it."""
        while not self.done and self._can_write():
            if self._queue:
                self._write_refresh()
            elif self._end_of_refresh is not None:
                end, self._end_of_refresh = self._end_of_refresh, None
                self._write(end)
                if self.subscription is None:  # refreshOnly: the Sync Done ended the search
                    self.end_code = 0
                    self._finish()
            elif self.subscription is not None and self.subscription.overflowed:
                log.warn(
                    "change stream of {peer} (message {mid}) fell {n} DNs behind; ended with e-syncRefreshRequired",
                    peer=self.peer,
                    mid=self.message_id,
                    n=self.subscription.max_pending,
                )
                self.end(E_SYNC_REFRESH_REQUIRED, "the client fell too far behind the change stream: refresh and resume")
            elif self.subscription is not None and self.subscription.pending:
                self._write_notices(self.subscription.drain(BATCH))
            else:
                return

    def _write_refresh(self) -> None:
        parts = []
        queue = self._queue
        mid = self.message_id
        encode = self.view.encode
        for _ in range(min(BATCH, len(queue))):
            state, entry = queue.popleft()
            if state < 0:
                parts.append(ber.ldap_message(mid, encode(entry)))
                continue
            op = _dn_only(entry) if state == ChangeKind.DELETE else encode(entry)
            control = sync.sync_state(state, entry_uuid_bytes(entry.key))
            parts.append(ber.ldap_message(mid, op, sync.controls(control)))
        self._write(b"".join(parts))

    def _write_notices(self, notices: list[Notice]) -> None:
        subscription = self.subscription
        assert subscription is not None
        mid = self.message_id
        encode = self.view.encode
        encoding = self.view.encoding
        parts = []
        last = len(notices) - 1
        for i, notice in enumerate(notices):
            if self.psearch is not None:
                if notice.kind is ChangeKind.DELETE and not notice.gone:
                    continue  # out of the filter, not removed: a persistent search is not told
                controls = b""
                if self.psearch.return_ecs:
                    controls = sync.controls(sync.entry_change_notification(sync.PSEARCH_TYPES[notice.kind]))
                parts.append(ber.ldap_message(mid, _encoded(notice, encode, encoding), controls))
                continue
            if i == last and not subscription.pending:
                cookie = sync.format_cookie(subscription.csn, self.rid)
                control = sync.sync_state(int(notice.kind), entry_uuid_bytes(notice.key), cookie)
                tail = sync.controls(control)
            else:
                # the notice's Sync State control without a cookie is the same for every subscriber
                shared: bytes | None = notice.cache.get(_STATE)
                if shared is None:
                    shared = notice.cache[_STATE] = sync.controls(
                        sync.sync_state(int(notice.kind), entry_uuid_bytes(notice.key))
                    )
                tail = shared
            op = _dn_only(notice.entry) if notice.kind is ChangeKind.DELETE else _encoded(notice, encode, encoding)
            parts.append(ber.ldap_message(mid, op, tail))
        if parts:
            self._write(b"".join(parts))

    # -- ending -----------------------------------------------------------------------------

    def end(self, code: int, message: str = "") -> None:
        """Finish the search with a SearchResultDone of ``code`` (Cancel, overflow)."""
        if self.done:
            return
        done = ber.ldap_result(ber.APP_SEARCH_RESULT_DONE, code, b"", message.encode("utf-8"))
        self._write(ber.ldap_message(self.message_id, done))
        self.end_code = code
        self._finish()

    def stop(self) -> None:
        """Stop without a word (Abandon, connection lost)."""
        self._finish()

    def _finish(self) -> None:
        if self.done:
            return
        self.done = True
        self._queue.clear()
        if self.subscription is not None:
            self.view.changelog.unsubscribe(self.subscription)
            self.subscription.pending.clear()
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self._finished(self)


_STATE = object()  # Notice.cache key of its cookie-less Sync State controls


def _encoded(notice: Notice, encode: Callable[[Entry], bytes], encoding: Any) -> bytes:
    """The notice's entry as ``encode`` writes it, encoded once per attribute selection
    (``encoding``; None: not shared) however many subscribers are sent it."""
    if encoding is None:
        return encode(notice.entry)
    op: bytes | None = notice.cache.get(encoding)
    if op is None:
        op = notice.cache[encoding] = encode(notice.entry)
    return op


def _dn_only(entry: Any) -> bytes:
    """A SearchResultEntry with the DN and no attributes (how a sync delete is sent)."""
    return ber.search_result_entry(entry.dn.encode("utf-8"), ())
