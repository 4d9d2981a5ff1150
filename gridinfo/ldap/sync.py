"""The wire side of change streams: RFC 4533 content synchronization and persistent search.

Encoders for what the server sends (Sync State, Sync Done and Entry Change Notification
controls, the Sync Info intermediate response) and the cookie format; the request controls are
decoded in :mod:`gridinfo.ldap.wire` with the other request parts.

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

#: syncStateValue states
STATE_PRESENT = 0

#: Persistent search change types (a bit mask) and what each of our change kinds is
PSEARCH_ADD, PSEARCH_DELETE, PSEARCH_MODIFY, PSEARCH_MODDN = 1, 2, 4, 8
PSEARCH_TYPES = {ChangeKind.ADD: PSEARCH_ADD, ChangeKind.DELETE: PSEARCH_DELETE, ChangeKind.MODIFY: PSEARCH_MODIFY}

#: syncInfoValue choices (context tags)
INFO_NEW_COOKIE = 0x80
INFO_REFRESH_DELETE = 0xA1
INFO_REFRESH_PRESENT = 0xA2


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
