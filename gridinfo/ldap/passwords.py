"""Stored passwords: plain, or RFC 2307-style ``{SSHA}`` hashes, compared in constant time.

``{SSHA}`` is base64 of SHA-1(password + salt) followed by the salt (what ``slappasswd``
prints), so a config file need not hold the password itself.  ``file:/path`` values are read
by the wiring (:func:`gridinfo.config.read_secret`) before they reach here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

SSHA_PREFIX = "{SSHA}"
_SHA1_BYTES = 20


def is_ssha(stored: str) -> bool:
    return stored[: len(SSHA_PREFIX)].upper() == SSHA_PREFIX


def check_ssha(stored: str) -> str | None:
    """The problem with an ``{SSHA}`` value, or None."""
    try:
        raw = base64.b64decode(stored[len(SSHA_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        return "expected {SSHA} followed by base64 (as slappasswd prints it)"
    if len(raw) <= _SHA1_BYTES:
        return "expected {SSHA} base64 of a 20-byte SHA-1 digest followed by a salt"
    return None


def ssha(password: str | bytes, salt: bytes | None = None) -> str:
    """An ``{SSHA}`` value for ``password`` (a fresh 8-byte salt unless given)."""
    secret = password.encode("utf-8") if isinstance(password, str) else password
    salt = os.urandom(8) if salt is None else salt
    digest = hashlib.sha1(secret + salt).digest()
    return SSHA_PREFIX + base64.b64encode(digest + salt).decode("ascii")


def matches(stored: str, given: bytes) -> bool:
    """Whether the password a client sent matches the stored one (plain or ``{SSHA}``)."""
    if is_ssha(stored):
        try:
            raw = base64.b64decode(stored[len(SSHA_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            return False
        digest, salt = raw[:_SHA1_BYTES], raw[_SHA1_BYTES:]
        return hmac.compare_digest(hashlib.sha1(given + salt).digest(), digest)
    return hmac.compare_digest(stored.encode("utf-8"), given)
