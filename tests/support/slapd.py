"""Moved to ``tools/gridinfo_dev/slapd.py`` (shared with ``tools/bench``); import it from there.

This name is kept so that test modules written against it keep working.  :func:`syncprov` (a
slapd that is an RFC 4533 provider) and :func:`ldapmodify` are test helpers of its own.
"""

from __future__ import annotations

import os
import subprocess

from gridinfo_dev.slapd import GLUE_SCHEMAS, Slapd, SlapdError, slapd_available

__all__ = ["GLUE_SCHEMAS", "Slapd", "SlapdError", "ldapmodify", "slapd_available", "syncprov"]

SYNCPROV_ROOT_DN = "cn=admin,o=grid"
SYNCPROV_PASSWORD = "secret"


def syncprov(ldif: str | os.PathLike[str] | bytes | None, *, sessionlog: int = 0, suffix: str = "o=grid") -> Slapd:
    """A slapd whose ``suffix`` database carries the syncprov overlay (an RFC 4533 provider).

    Writable by ``SYNCPROV_ROOT_DN`` / ``SYNCPROV_PASSWORD`` (see :func:`ldapmodify`).  With
    ``sessionlog`` slapd remembers that many recent deletes and answers a cookie with a delete
    phase; without, it answers with a present phase (syncIdSets of the unchanged entries).
    """
    lines = [
        f'rootdn "{SYNCPROV_ROOT_DN}"',
        f"rootpw {SYNCPROV_PASSWORD}",
        "index entryCSN,entryUUID eq",
        "overlay syncprov",
        "syncprov-checkpoint 1 1",
    ]
    if sessionlog:
        lines.append(f"syncprov-sessionlog {sessionlog}")
    return Slapd(ldif, suffixes=[suffix], settings=["moduleload syncprov"], database_lines={suffix: lines})


def ldapmodify(slapd: Slapd, ldif: str) -> None:
    """Apply LDIF change records to ``slapd`` as its root DN (raises with ldapmodify's output)."""
    out = subprocess.run(
        ["ldapmodify", "-x", "-H", slapd.url, "-D", SYNCPROV_ROOT_DN, "-w", SYNCPROV_PASSWORD],
        input=ldif, capture_output=True, text=True, timeout=30,
    )
    if out.returncode != 0:
        raise SlapdError(f"ldapmodify failed ({out.returncode}): {out.stderr or out.stdout}")
