"""The wire side of change streams: RFC 4533 content synchronization and persistent search.

Encoders for what the server sends (Sync State, Sync Done and Entry Change Notification
controls, the Sync Info intermediate response) and the cookie format; the request controls are
decoded in :mod:`gridinfo.ldap.wire` with the other request parts.  For the consumer side
(:mod:`gridinfo.ldap.syncclient`) the reverse: the Sync Request control and the Cancel request
value are encoded here, and what a provider sends (Sync State, Sync Done, Sync Info) is decoded
here, strictly: a value that is not what RFC 4533 section 2 says raises
:class:`~gridinfo.errors.ProtocolError` naming the part.

Cookies are OpenLDAP's text form, ``rid=NNN,csn=<CSN>``, so a slapd syncrepl consumer can
keep them: the ``rid`` the consumer sent is echoed, and ``csn`` is the newest change the client
has been sent (:func:`gridinfo.directory.tree.format_csn`).  A cookie names changes by this
server's CSNs only: one whose CSN carries another server id, or cannot be read, is answered as
if there were none (a full refresh), as RFC 4533 section 3.3 allows.
"""

from __future__ import annotations

from dataclasses import dataclass

from gridinfo import ber
from gridinfo.directory.changes import ChangeKind
from gridinfo.errors import ProtocolError
from gridinfo.directory.tree import format_csn, parse_csn

SYNC_REQUEST_OID = "1.3.6.1.4.1.4203.1.9.1.1"
SYNC_STATE_OID = "1.3.6.1.4.1.4203.1.9.1.2"
SYNC_DONE_OID = "1.3.6.1.4.1.4203.1.9.1.3"
SYNC_INFO_OID = "1.3.6.1.4.1.4203.1.9.1.4"
CANCEL_OID = "1.3.6.1.1.8"  # RFC 3909
MANAGE_DSA_IT_OID = "2.16.840.1.113730.3.4.2"  # RFC 3296; slapd's consumer always sends it
PERSISTENT_SEARCH_OID = "2.16.840.1.113730.3.4.3"  # draft-ietf-ldapext-psearch
ENTRY_CHANGE_NOTIFICATION_OID = "2.16.840.1.113730.3.4.7"

#: Sync Request modes (RFC 4533 section 2.2)
REFRESH_ONLY = 1
REFRESH_AND_PERSIST = 3

#: syncStateValue states (add, modify, delete are the ChangeKind values 1, 2, 3)
STATE_PRESENT = 0
STATE_NAMES = {0: "present", 1: "add", 2: "modify", 3: "delete"}

#: Persistent search change types (a bit mask) and what each of our change kinds is
PSEARCH_ADD, PSEARCH_DELETE, PSEARCH_MODIFY, PSEARCH_MODDN = 1, 2, 4, 8
PSEARCH_TYPES = {ChangeKind.ADD: PSEARCH_ADD, ChangeKind.DELETE: PSEARCH_DELETE, ChangeKind.MODIFY: PSEARCH_MODIFY}

#: syncInfoValue choices (context tags)
INFO_NEW_COOKIE = 0x80
INFO_REFRESH_DELETE = 0xA1
INFO_REFRESH_PRESENT = 0xA2
INFO_SYNC_ID_SET = 0xA3


@dataclass(frozen=True)
class SyncRequest:
    """A decoded Sync Request control value."""

    mode: int  # REFRESH_ONLY or REFRESH_AND_PERSIST
    cookie: bytes | None = None
    reload_hint: bool = False


@dataclass(frozen=True)
class PersistentSearch:
    """A decoded persistent search control value."""

    change_types: int  # bit mask of PSEARCH_* values
    changes_only: bool
    return_ecs: bool


def format_cookie(csn: int, rid: str | None = None) -> bytes:
    """``rid=NNN,csn=...`` (the rid only when the client sent one)."""
    text = f"csn={format_csn(csn)}" if csn else ""
    if rid is not None:
        text = f"rid={rid}," + text if text else f"rid={rid}"
    return text.encode("ascii")


def read_cookie(cookie: bytes | None) -> tuple[str | None, int | None]:
    """``(rid, csn)`` of a client's cookie; csn None when it has none this server can use."""
    if not cookie:
        return None, None
    try:
        text = cookie.decode("ascii")
    except UnicodeDecodeError:
        return None, None
    rid: str | None = None
    csn: int | None = None
    for part in text.split(","):
        name, _, value = part.partition("=")
        name = name.strip().lower()
        if name == "rid" and value.isdigit() and len(value) <= 3:
            rid = value
        elif name == "csn":
            for one in value.split(";"):  # a multi-provider cookie lists one CSN per server id
                parsed = parse_csn(one.strip())
                if parsed is not None:
                    csn = parsed
    return rid, csn


def control(oid: str, value: bytes | None = None, critical: bool = False) -> bytes:
    """One Control (RFC 4511 section 4.1.11)."""
    parts = [ber.octet_string(oid.encode("ascii"))]
    if critical:
        parts.append(ber.tlv(ber.BOOLEAN, b"\xff"))
    if value is not None:
        parts.append(ber.octet_string(value))
    return ber.sequence(parts)


def controls(*items: bytes) -> bytes:
    """The ``[0] Controls`` element of an LDAPMessage."""
    return ber.sequence(items, tag=ber.CONTROLS)


def _bool(value: bool) -> bytes:
    return ber.tlv(ber.BOOLEAN, b"\xff" if value else b"\x00")


def sync_state(state: int, uuid: bytes, cookie: bytes | None = None) -> bytes:
    """A Sync State control: ``state`` is STATE_PRESENT or a :class:`ChangeKind` value."""
    parts = [ber.integer(state, tag=ber.ENUMERATED), ber.octet_string(uuid)]
    if cookie is not None:
        parts.append(ber.octet_string(cookie))
    return control(SYNC_STATE_OID, ber.sequence(parts))


def sync_done(cookie: bytes | None, refresh_deletes: bool = False) -> bytes:
    """A Sync Done control (on the SearchResultDone of a refreshOnly search)."""
    parts = []
    if cookie is not None:
        parts.append(ber.octet_string(cookie))
    if refresh_deletes:
        parts.append(_bool(True))
    return control(SYNC_DONE_OID, ber.sequence(parts))


def sync_info(choice: int, cookie: bytes | None, refresh_done: bool = True) -> bytes:
    """A Sync Info message's IntermediateResponse op (RFC 4533 section 2.5).

    ``choice`` is INFO_NEW_COOKIE, INFO_REFRESH_DELETE or INFO_REFRESH_PRESENT.
    """
    if choice == INFO_NEW_COOKIE:
        value = ber.tlv(INFO_NEW_COOKIE, cookie or b"")
    else:
        parts = []
        if cookie is not None:
            parts.append(ber.octet_string(cookie))
        if not refresh_done:  # DEFAULT TRUE: sent only when false
            parts.append(_bool(False))
        value = ber.sequence(parts, tag=choice)
    return ber.sequence(
        [ber.tlv(0x80, SYNC_INFO_OID.encode("ascii")), ber.tlv(0x81, value)],
        tag=ber.APP_INTERMEDIATE_RESPONSE,
    )


def entry_change_notification(change_type: int) -> bytes:
    """An Entry Change Notification control (no previousDN: gridinfo never renames)."""
    return control(ENTRY_CHANGE_NOTIFICATION_OID, ber.sequence([ber.integer(change_type, tag=ber.ENUMERATED)]))


# ---------------------------------------------------------------------------------------------
# The consumer side: encoding the request, decoding what a provider sends


def sync_request_control(mode: int, cookie: bytes | None = None, reload_hint: bool = False) -> bytes:
    """A Sync Request control (critical, as RFC 4533 section 2.2 wants)."""
    parts = [ber.integer(mode, tag=ber.ENUMERATED)]
    if cookie is not None:
        parts.append(ber.octet_string(cookie))
    if reload_hint:
        parts.append(_bool(True))
    return control(SYNC_REQUEST_OID, ber.sequence(parts), critical=True)


def cancel_request_value(message_id: int) -> bytes:
    """The value of a Cancel extended request (RFC 3909): ``SEQUENCE { cancelID MessageID }``."""
    return ber.sequence([ber.integer(message_id)])


@dataclass(frozen=True)
class SyncStateValue:
    """A decoded Sync State control: ``state`` is STATE_PRESENT or a ChangeKind value."""

    state: int
    uuid: bytes
    cookie: bytes | None = None


@dataclass(frozen=True)
class SyncDoneValue:
    """A decoded Sync Done control."""

    cookie: bytes | None = None
    refresh_deletes: bool = False


@dataclass(frozen=True)
class SyncInfoValue:
    """A decoded Sync Info message.

    ``choice`` is INFO_NEW_COOKIE, INFO_REFRESH_DELETE, INFO_REFRESH_PRESENT or INFO_SYNC_ID_SET;
    ``refresh_done`` belongs to the refresh* choices (DEFAULT TRUE), ``refresh_deletes`` and
    ``uuids`` to syncIdSet (DEFAULT FALSE).
    """

    choice: int
    cookie: bytes | None = None
    refresh_done: bool = True
    refresh_deletes: bool = False
    uuids: tuple[bytes, ...] = ()


def _read(data: bytes, pos: int, end: int, tag: int, what: str) -> tuple[int, int]:
    return ber.expect(data, pos, end, tag, what)


def _read_bool(data: bytes, pos: int, end: int, what: str) -> tuple[bool, int]:
    s, e = _read(data, pos, end, ber.BOOLEAN, what)
    if e - s != 1:
        raise ProtocolError(f"{what} must be one octet, not {e - s}")
    return data[s] != 0, e


def _read_uuid(data: bytes, pos: int, end: int, what: str) -> tuple[bytes, int]:
    s, e = _read(data, pos, end, ber.OCTET_STRING, what)
    if e - s != 16:
        raise ProtocolError(f"{what} is {e - s} octets, not 16")
    return data[s:e], e


def _optional_cookie(data: bytes, pos: int, end: int, what: str) -> tuple[bytes | None, int]:
    if pos < end and data[pos] == ber.OCTET_STRING:
        s, e = _read(data, pos, end, ber.OCTET_STRING, what)
        return data[s:e], e
    return None, pos


def _trailing(pos: int, end: int, what: str) -> None:
    if pos != end:
        raise ProtocolError(f"{end - pos} unexpected bytes at the end of the {what}")


def decode_sync_state(value: bytes | None) -> SyncStateValue:
    """A Sync State control value: ``SEQUENCE { state ENUMERATED, entryUUID, cookie OPTIONAL }``."""
    what = "Sync State control value"
    if value is None:
        raise ProtocolError(f"{what} missing")
    s, e = _read(value, 0, len(value), ber.SEQUENCE, what)
    _trailing(e, len(value), what)
    ss, se = _read(value, s, e, ber.ENUMERATED, "Sync State state")
    if se - ss != 1 or value[ss] not in STATE_NAMES:  # (short-circuit: an empty one never indexes)
        raise ProtocolError(f"Sync State state {value[ss:se].hex() or 'empty'} is not present/add/modify/delete (0-3)")
    state = value[ss]
    uuid, p = _read_uuid(value, se, e, "Sync State entryUUID")
    cookie, p = _optional_cookie(value, p, e, "Sync State cookie")
    _trailing(p, e, what)
    return SyncStateValue(state, uuid, cookie)


def decode_sync_done(value: bytes | None) -> SyncDoneValue:
    """A Sync Done control value: ``SEQUENCE { cookie OPTIONAL, refreshDeletes BOOLEAN DEFAULT FALSE }``."""
    what = "Sync Done control value"
    if value is None:
        return SyncDoneValue()  # every part optional: an absent value says the same
    s, e = _read(value, 0, len(value), ber.SEQUENCE, what)
    _trailing(e, len(value), what)
    cookie, p = _optional_cookie(value, s, e, "Sync Done cookie")
    deletes = False
    if p < e:
        deletes, p = _read_bool(value, p, e, "Sync Done refreshDeletes")
    _trailing(p, e, what)
    return SyncDoneValue(cookie, deletes)


def decode_sync_info(value: bytes | None) -> SyncInfoValue:
    """A Sync Info message's responseValue (RFC 4533 section 2.5): one of its four choices."""
    what = "Sync Info value"
    if not value:
        raise ProtocolError(f"{what} missing")
    tag, s, e = ber.read_header(value, 0, len(value), what)
    _trailing(e, len(value), what)
    if tag == INFO_NEW_COOKIE:
        return SyncInfoValue(INFO_NEW_COOKIE, value[s:e])
    if tag in (INFO_REFRESH_DELETE, INFO_REFRESH_PRESENT):
        name = "refreshDelete" if tag == INFO_REFRESH_DELETE else "refreshPresent"
        cookie, p = _optional_cookie(value, s, e, f"Sync Info {name} cookie")
        done = True
        if p < e:
            done, p = _read_bool(value, p, e, f"Sync Info {name} refreshDone")
        _trailing(p, e, f"Sync Info {name}")
        return SyncInfoValue(tag, cookie, refresh_done=done)
    if tag == INFO_SYNC_ID_SET:
        cookie, p = _optional_cookie(value, s, e, "Sync Info syncIdSet cookie")
        deletes = False
        if p < e and value[p] == ber.BOOLEAN:
            deletes, p = _read_bool(value, p, e, "Sync Info syncIdSet refreshDeletes")
        us, ue = _read(value, p, e, ber.SET, "Sync Info syncIdSet syncUUIDs")
        _trailing(ue, e, "Sync Info syncIdSet")
        uuids = []
        q = us
        while q < ue:
            uuid, q = _read_uuid(value, q, ue, "Sync Info syncIdSet syncUUID")
            uuids.append(uuid)
        return SyncInfoValue(INFO_SYNC_ID_SET, cookie, refresh_deletes=deletes, uuids=tuple(uuids))
    raise ProtocolError(f"Sync Info choice tag 0x{tag:02x} is none of newcookie, refreshDelete, refreshPresent, syncIdSet")
