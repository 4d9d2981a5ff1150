"""The consumer side of RFC 4533 content synchronization: keep a replica of a provider's subtree.

A GIIS subscribes to each child that advertises the Sync Request control
(:func:`root_dse_supports_sync`) with a :class:`SyncConsumer`, and keeps what it is fed as a
pushed mirror.  The provider may be a gridinfo GRIS or GIIS (:mod:`gridinfo.ldap.streams`) or
OpenLDAP's slapd with the syncprov overlay; the consumer follows RFC 4533's client rules itself,
so the replica (:class:`SyncReplica`) only ever sees whole-entry upserts and removes by DN.

Theory of operation
-------------------
:class:`SyncSession` is the state machine, with no I/O: it takes the messages of one
``refreshAndPersist`` search at a time (:meth:`SyncSession.begin`, :meth:`~SyncSession.entry`,
:meth:`~SyncSession.intermediate`, :meth:`~SyncSession.done`) and keeps, across searches, the
newest cookie and the map entryUUID -> DN of every entry it delivered (deletes and syncIdSets
name UUIDs only).  Each search starts in the *refresh* phase, collecting the UUIDs it hears of
as present; the refresh ends with a Sync Info refreshPresent / refreshDelete (refreshDone TRUE)
or, for a search that ends there, a Sync Done; then the search *persists*.

==================================  ==============================================================
message                             what the replica sees, and the state
==================================  ==============================================================
entry, Sync State add / modify      ``sync_upsert(dn, attributes)``; UUID noted present; a UUID
                                    known under another DN (a rename) first removes the old DN
entry, Sync State present           nothing; UUID noted present
entry, Sync State delete            ``sync_remove`` of the DN the UUID was delivered under (or of
                                    the entry's DN, for a UUID never delivered)
entry without a Sync State          the search fails (:class:`SyncProtocolError`): nothing applied
syncIdSet, refreshDeletes TRUE      each known UUID removed
syncIdSet, refreshDeletes FALSE     each UUID noted present
refreshPresent (any refreshDone)    the *present phase* ends: every UUID delivered earlier and not
                                    noted present in this refresh is removed
end of a refresh sent no cookie     the same, whichever message ended it (slapd ends a full
                                    refresh with refreshDelete)
refreshDelete                       the delete phase ends (nothing more to do)
refreshDone TRUE on either          the refresh is over: ``sync_refreshed()``
newcookie, any cookie               the cookie kept (after the message is applied, before
                                    ``sync_refreshed``)
SearchResultDone + Sync Done        as refreshPresent when refreshDeletes is FALSE, else as
                                    refreshDelete; the search has ended
SearchResultDone 4096               cookie forgotten, so the next search refreshes in full; the
                                    UUID map kept, so its present phase drops what vanished
==================================  ==============================================================

A refresh the provider cannot answer from the cookie is a present phase (gridinfo: every entry
as add, then refreshPresent; slapd: changed entries as add, syncIdSets of the unchanged ones,
then refreshPresent), and a search sent without a cookie (the first, or the one after a 4096)
is taken as the whole content however it ends, so entries the provider no longer has are
dropped either way.  UUIDs heard of as present accumulate over the whole refresh; only the end
of a present phase or of a full refresh removes unheard-of entries, the persist phase never.

:class:`SyncConsumer` runs the session over an :class:`~gridinfo.ldap.client.LDAPClient`'s
streaming search (no overall timeout; ``max_pdu_bytes`` per message), one search per
:meth:`SyncConsumer.run`, resuming with the kept cookie.  ``max_entries`` bounds the entries
held (a child that floods fails the run with :class:`TooManyEntries`).  With ``probe_interval``
a persist stream that has been silent that long gets a cheap request on the same connection (a
base search of the root DSE for ``1.1``) with ``probe_timeout``; no answer drops the connection
and fails the run with ConnectionLost, so a peer that vanished without a reset does not look
alive for ever.  Time comes from the client's reactor.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from gridinfo import ber
from gridinfo.directory import filters as F
from gridinfo.directory.changes import ChangeKind
from gridinfo.directory.dn import DNNormaliser
from gridinfo.errors import InvalidDNSyntax, ProtocolError
from gridinfo.ldap import sync
from gridinfo.ldap.client import (
    CANCELED,
    ClientResult,
    ConnectionLost,
    LDAPClient,
    PeerProtocolError,
    RequestTimeout,
    ResponseTooLarge,
    SearchStream,
    StreamMessage,
    decode_entry,
    entry_dn,
    search_request,
)
from gridinfo.ldap.wire import Control

log = Logger()

E_SYNC_REFRESH_REQUIRED = 4096
SCOPE_SUBTREE = 2


class SyncProtocolError(PeerProtocolError):
    """The provider broke RFC 4533 (an entry without Sync State, a bad control value)."""


class TooManyEntries(ResponseTooLarge):
    """The provider sent more distinct entries than the consumer's ``max_entries``."""


@dataclass(frozen=True)
class SyncEnd:
    """How a sync search ended: its SearchResultDone's code and diagnostic message.

    0 (a search that ended after its refresh), 4096 (e-syncRefreshRequired: the cookie was
    forgotten), 118 (canceled), or any error code the provider sent.
    """

    code: int
    message: str = ""


class SyncReplica(Protocol):
    """What the consumer feeds (the GIIS implements it)."""

    def sync_upsert(self, dn: str, attributes: list[tuple[str, list[bytes]]]) -> None:
        """Add the entry, or replace it whole."""

    def sync_remove(self, dn: str) -> None:
        """Remove the entry; a DN the replica does not hold is no error."""

    def sync_refreshed(self) -> None:
        """The refresh phase is over: the replica now equals the provider's content."""


@dataclass(frozen=True)
class RootDSE:
    """The parts of a server's root DSE a consumer looks at."""

    supported_controls: tuple[str, ...] = ()
    supported_extensions: tuple[str, ...] = ()
    naming_contexts: tuple[str, ...] = ()

    @property
    def supports_sync(self) -> bool:
        return sync.SYNC_REQUEST_OID in self.supported_controls


def read_root_dse(client: LDAPClient, timeout: float = 30.0) -> defer.Deferred[RootDSE]:
    """A base search of ``""`` for supportedControl, supportedExtension and namingContexts."""
    d = client.search(
        "", 0, F.Present("objectClass"), ["supportedControl", "supportedExtension", "namingContexts"], timeout=timeout
    )

    def read(result: ClientResult) -> RootDSE:
        result.raise_for_code()
        values: dict[str, tuple[str, ...]] = {}
        for op in result.entries[:1]:
            for name, vals in decode_entry(op)[1]:
                values[name.lower()] = tuple(v.decode("utf-8", "replace").strip() for v in vals)
        return RootDSE(
            values.get("supportedcontrol", ()), values.get("supportedextension", ()), values.get("namingcontexts", ())
        )

    return d.addCallback(read)


def root_dse_supports_sync(client: LDAPClient, timeout: float = 30.0) -> defer.Deferred[bool]:
    """True if the server advertises the Sync Request control in its root DSE."""
    return read_root_dse(client, timeout).addCallback(lambda dse: dse.supports_sync)


_DN_KEYS = DNNormaliser(None)
_INFO_NAMES = {
    sync.INFO_NEW_COOKIE: "newcookie",
    sync.INFO_REFRESH_DELETE: "refreshDelete",
    sync.INFO_REFRESH_PRESENT: "refreshPresent",
    sync.INFO_SYNC_ID_SET: "syncIdSet",
}


#: DNs whose canonical key is their lower-case form (ASCII types and plain values, no spaces,
#: escapes or multi-valued RDNs): nearly every GLUE DN, keyed without parsing
_PLAIN_DN = re.compile(r"[A-Za-z][A-Za-z0-9-]*=[A-Za-z0-9:/._@-]+(?:,[A-Za-z][A-Za-z0-9-]*=[A-Za-z0-9:/._@-]+)*")


def _dn_key(dn: str) -> str:
    """The key two spellings of one DN share (gridinfo.directory.dn's, without a schema)."""
    if _PLAIN_DN.fullmatch(dn):
        return dn.lower()
    try:
        return _DN_KEYS.key(dn)
    except InvalidDNSyntax:
        return dn.lower()


class SyncSession:
    """RFC 4533's client rules for one provider and base, across searches (no I/O)."""

    def __init__(
        self,
        replica: SyncReplica,
        *,
        peer: str = "?",
        cookie: bytes | None = None,
        max_entries: int = 0,
        uuids: dict[bytes, str] | None = None,
    ):
        self.replica = replica
        self.peer = peer
        #: the newest cookie received (None: the next search refreshes in full)
        self.cookie = cookie
        self.max_entries = max_entries
        #: entryUUID -> DN of every entry delivered and not removed
        self.uuids: dict[bytes, str] = dict(uuids or {})
        self._dn_uuid: dict[str, bytes] = {_dn_key(dn): u for u, dn in self.uuids.items()}
        #: True once the current search's refresh phase is over
        self.refreshed = False
        self._present: set[bytes] = set()  # UUIDs heard of as present in this search's refresh
        self._full = False  # this search was sent without a cookie: its refresh is the whole content
        #: how many of each message the provider sent ("add", "modify", "delete", "present",
        #: "newcookie", "refreshPresent", "refreshDelete", "syncIdSet present", "syncIdSet delete")
        self.counts: Counter[str] = Counter()

    # -- one search -------------------------------------------------------------------------

    def begin(self, full: bool | None = None) -> None:
        """A new search starts (in its refresh phase); ``full``: it was sent without a cookie
        (default: whether the session has none)."""
        self.refreshed = False
        self._present = set()
        self._full = self.cookie is None if full is None else full

    def entry(self, op: bytes, controls: Sequence[Control]) -> None:
        """A SearchResultEntry with its controls; raises SyncProtocolError / TooManyEntries."""
        try:
            dn = entry_dn(op)
        except PeerProtocolError as e:
            raise SyncProtocolError(f"{self.peer} sent a bad SearchResultEntry: {e}") from None
        state_control = next((c for c in controls if c.oid == sync.SYNC_STATE_OID), None)
        if state_control is None:
            raise SyncProtocolError(f"{self.peer} sent entry {dn!r} without a Sync State control on a sync search")
        try:
            state = sync.decode_sync_state(state_control.value)
        except ProtocolError as e:
            raise SyncProtocolError(f"{self.peer} sent entry {dn!r} with a bad Sync State control: {e.message}") from None
        uuid = state.uuid
        self.counts[sync.STATE_NAMES[state.state]] += 1
        if state.state == sync.STATE_PRESENT:
            self._note_present(uuid)
        elif state.state == ChangeKind.DELETE:
            self._present.discard(uuid)
            self._remove(uuid, dn)
        else:  # add, modify: the whole entry (decoded only here: present and delete carry the DN only)
            try:
                dn, attributes = decode_entry(op)
            except PeerProtocolError as e:
                raise SyncProtocolError(f"{self.peer} sent a bad SearchResultEntry {dn!r}: {e}") from None
            self._upsert(uuid, dn, attributes)
        if state.cookie is not None:
            self.cookie = state.cookie

    def intermediate(self, name: str | None, value: bytes | None) -> None:
        """An IntermediateResponse: a Sync Info message (others are ignored)."""
        if name is not None and name != sync.SYNC_INFO_OID:
            log.info("ignoring intermediate response {name} from {peer}", name=name, peer=self.peer)
            return
        try:
            info = sync.decode_sync_info(value)
        except ProtocolError as e:
            raise SyncProtocolError(f"{self.peer} sent a bad Sync Info message: {e.message}") from None
        kind = _INFO_NAMES[info.choice]
        if info.choice == sync.INFO_SYNC_ID_SET:
            kind += " delete" if info.refresh_deletes else " present"
        self.counts[kind] += 1
        if info.choice == sync.INFO_SYNC_ID_SET:
            if info.refresh_deletes:
                for uuid in info.uuids:
                    self._present.discard(uuid)
                    self._remove(uuid, None)
            else:
                for uuid in info.uuids:
                    self._note_present(uuid)
        elif info.choice == sync.INFO_REFRESH_PRESENT:
            self._end_present_phase()
        if info.cookie is not None:  # before sync_refreshed, so that the replica may save it then
            self.cookie = info.cookie
        if info.choice in (sync.INFO_REFRESH_PRESENT, sync.INFO_REFRESH_DELETE) and info.refresh_done:
            self._refresh_over()

    def done(self, result: ClientResult) -> SyncEnd:
        """The search's SearchResultDone: what it means for the session, and how the search ended."""
        if result.code == 0:
            control = next((c for c in result.controls if c.oid == sync.SYNC_DONE_OID), None)
            if control is not None:
                try:
                    value = sync.decode_sync_done(control.value)
                except ProtocolError as e:
                    raise SyncProtocolError(f"{self.peer} sent a bad Sync Done control: {e.message}") from None
                if not self.refreshed and not value.refresh_deletes:
                    self._end_present_phase()
                if value.cookie is not None:
                    self.cookie = value.cookie
                self._refresh_over()
        elif result.code == E_SYNC_REFRESH_REQUIRED:
            log.info("{peer} asks for a full refresh (e-syncRefreshRequired): cookie forgotten", peer=self.peer)
            self.cookie = None
        self._present = set()
        self._full = False
        return SyncEnd(result.code, result.message)

    def abort(self) -> None:
        """The search failed (transport, protocol): what it was collecting is dropped."""
        self._present = set()
        self._full = False

    # -- the rules --------------------------------------------------------------------------

    def _note_present(self, uuid: bytes) -> None:
        if not self.refreshed:
            self._present.add(uuid)

    def _upsert(self, uuid: bytes, dn: str, attributes: list[tuple[str, list[bytes]]]) -> None:
        key = _dn_key(dn)
        old_dn = self.uuids.get(uuid)
        if old_dn is None:
            if self.max_entries and len(self.uuids) >= self.max_entries and key not in self._dn_uuid:
                raise TooManyEntries(f"{self.peer} sent more than {self.max_entries} entries (the consumer's max_entries)")
        elif old_dn != dn and _dn_key(old_dn) != key:  # renamed: the old DN goes
            self._dn_uuid.pop(_dn_key(old_dn), None)
            self.replica.sync_remove(old_dn)
        previous = self._dn_uuid.get(key)
        if previous is not None and previous != uuid:  # the DN now names another entry
            self.uuids.pop(previous, None)
            self._present.discard(previous)
        self.uuids[uuid] = dn
        self._dn_uuid[key] = uuid
        self._note_present(uuid)
        self.replica.sync_upsert(dn, attributes)

    def _remove(self, uuid: bytes, dn: str | None) -> None:
        known = self.uuids.pop(uuid, None)
        if known is not None:
            self._dn_uuid.pop(_dn_key(known), None)
            self.replica.sync_remove(known)
        elif dn:
            previous = self._dn_uuid.pop(_dn_key(dn), None)
            if previous is not None:
                self.uuids.pop(previous, None)
            self.replica.sync_remove(dn)

    def _end_present_phase(self) -> None:
        present = self._present
        gone = [u for u in self.uuids if u not in present]
        for uuid in gone:
            self._remove(uuid, None)
        if gone:
            log.info("refresh of {peer}: {n} entries the provider no longer has removed", peer=self.peer, n=len(gone))

    def _refresh_over(self) -> None:
        if not self.refreshed:
            if self._full:  # whatever phase ended it, a refresh without a cookie is the whole content
                self._end_present_phase()
            self.refreshed = True
            self.replica.sync_refreshed()


class SyncConsumer:
    """One RFC 4533 refreshAndPersist subscription to one base of one server, across reconnects.

    :meth:`run` starts a search (resuming with :attr:`cookie`) and fires when it ends; the
    caller decides when to run again (after a lost connection, a 4096, an error).
    """

    def __init__(
        self,
        client: LDAPClient,
        base: str,
        replica: SyncReplica,
        *,
        filter: F.Filter = F.Present("objectClass"),
        attributes: tuple[str, ...] = ("*",),
        cookie: bytes | None = None,
        max_entries: int = 0,
        rid: str = "000",
        probe_interval: float = 0.0,
        probe_timeout: float = 30.0,
        cancel_timeout: float = 30.0,
        uuids: dict[bytes, str] | None = None,
    ):
        """``probe_interval`` (seconds, 0: never) and ``probe_timeout``: liveness probes (module
        docstring).  ``uuids`` seeds the entryUUID -> DN map (with a ``cookie`` saved earlier)."""
        self.client = client
        self.base = base
        self.replica = replica
        self.filter = filter
        self.attributes = attributes
        self.rid = rid
        self.probe_interval = probe_interval
        self.probe_timeout = probe_timeout
        self.cancel_timeout = cancel_timeout
        self.peer = f"{client.host}:{client.port}"
        self.session = SyncSession(replica, peer=self.peer, cookie=cookie, max_entries=max_entries, uuids=uuids)
        self._stream: SearchStream | None = None
        self._probe_call: IDelayedCall | None = None
        self._probing = False

    @property
    def cookie(self) -> bytes | None:
        """The newest cookie received (sent when resuming)."""
        return self.session.cookie

    @property
    def refreshed(self) -> bool:
        """True once the current run's refresh phase is over."""
        return self.session.refreshed

    @property
    def uuids(self) -> dict[bytes, str]:
        """entryUUID -> DN of every entry delivered and not removed."""
        return self.session.uuids

    @property
    def running(self) -> bool:
        return self._stream is not None and not self._stream.done

    def run(self) -> defer.Deferred[SyncEnd]:
        """Start (or resume) the subscription; fires with :class:`SyncEnd` when the search ends,
        errbacks with ConnectFailed / ConnectionLost / PeerProtocolError (SyncProtocolError,
        TooManyEntries) when it fails."""
        if self.running:
            raise RuntimeError(f"the sync consumer of {self.peer} {self.base!r} is already running")
        self.session.begin(full=not self.session.cookie)
        cookie = self.session.cookie if self.session.cookie else f"rid={self.rid}".encode("ascii")
        controls = sync.controls(sync.sync_request_control(sync.REFRESH_AND_PERSIST, cookie))
        stream = self.client.stream(
            self.base, SCOPE_SUBTREE, self.filter, self.attributes, self._message, controls=controls
        )
        self._stream = stream
        if self.probe_interval > 0:
            self._schedule_probe(self.probe_interval)
        d: defer.Deferred[SyncEnd] = stream.result.addCallbacks(self._ended, self._failed)
        return d

    def cancel(self) -> None:
        """End the search (RFC 3909 Cancel, Abandon as a fallback); run()'s Deferred then fires."""
        if self._stream is not None:
            self._stream.cancel(self.cancel_timeout)

    # -- messages ---------------------------------------------------------------------------

    def _message(self, message: StreamMessage) -> None:
        if message.tag == ber.APP_SEARCH_RESULT_ENTRY:
            self.session.entry(message.op, message.controls)
        elif message.tag == ber.APP_INTERMEDIATE_RESPONSE:
            self.session.intermediate(message.name, message.value)
        # a SearchResultReference: RFC 4533 section 3.4 lets a provider send them; not followed

    def _ended(self, result: ClientResult) -> SyncEnd:
        self._stop_probe()
        try:
            end = self.session.done(result)
        except Exception:
            self.session.abort()
            raise
        if end.code not in (0, CANCELED):
            log.info("sync search of {peer} {base!r} ended with {code}: {message}",
                     peer=self.peer, base=self.base, code=end.code, message=end.message)
        return end

    def _failed(self, failure: Failure) -> Failure:
        self._stop_probe()
        self.session.abort()
        return failure

    # -- liveness ---------------------------------------------------------------------------

    def _schedule_probe(self, delay: float) -> None:
        self._probe_call = self.client.reactor.callLater(max(delay, 0.0), self._probe)

    def _stop_probe(self) -> None:
        if self._probe_call is not None and self._probe_call.active():
            self._probe_call.cancel()
        self._probe_call = None

    def _probe(self) -> None:
        self._probe_call = None
        stream = self._stream
        if stream is None or stream.done:
            return
        protocol = stream.protocol
        now = self.client.reactor.seconds()
        if protocol is None or not protocol.connected:  # still connecting: look again later
            self._schedule_probe(self.probe_interval)
            return
        silence = now - protocol.last_received
        if silence < self.probe_interval:
            self._schedule_probe(self.probe_interval - silence)
            return
        probe = protocol.request(search_request("", 0, F.Present("objectClass"), ["1.1"]), self.probe_timeout)

        def answered(_: ClientResult) -> None:
            if not stream.done:
                self._schedule_probe(self.probe_interval)

        def unanswered(f: Failure) -> None:
            if stream.done:
                return
            if f.check(RequestTimeout):
                log.warn("{peer} did not answer a liveness probe within {t:g} s after {s:g} s of silence; dropping the connection",
                         peer=self.peer, t=self.probe_timeout, s=silence)
                stream._fail(ConnectionLost(
                    f"{self.peer} did not answer a liveness probe within {self.probe_timeout:g} s "
                    f"after {silence:g} s of silence; connection dropped"
                ))
                if protocol.transport is not None:
                    protocol.transport.abortConnection()  # type: ignore[attr-defined]  # ITCPTransport
            # any other failure (the connection lost) ends the stream by itself

        probe.addCallbacks(answered, unanswered)
