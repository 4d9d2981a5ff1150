"""Moved to ``tools/gridinfo_dev/slapd.py`` (shared with ``tools/bench``); import it from there.

This name is kept so that test modules written against it keep working.  :func:`syncprov` (a
slapd that is an RFC 4533 provider) and :func:`ldapmodify` (writing to it) are for tests.
"""

from __future__ import annotations

import os
import subprocess

from gridinfo_dev.slapd import GLUE_SCHEMAS, SYNCPROV_PASSWORD, SYNCPROV_ROOT_DN, Slapd, SlapdError, slapd_available

__all__ = ["GLUE_SCHEMAS", "Slapd", "SlapdError", "ldapmodify", "slapd_available", "syncprov"]


def syncprov(ldif: str | os.PathLike[str] | bytes | None, *, sessionlog: int = 0, suffix: str = "o=grid") -> Slapd:
    """``Slapd.syncprov``: a slapd with the syncprov overlay on ``suffix``."""
    return Slapd.syncprov(ldif, sessionlog=sessionlog, suffix=suffix)


def ldapmodify(slapd: Slapd, ldif: str) -> None:
    """Apply LDIF change records to ``slapd`` as its root DN (raises with ldapmodify's output)."""
    out = subprocess.run(
        ["ldapmodify", "-x", "-H", slapd.url, "-D", SYNCPROV_ROOT_DN, "-w", SYNCPROV_PASSWORD],
        input=ldif, capture_output=True, text=True, timeout=30,
    )
    if out.returncode != 0:
        raise SlapdError(f"ldapmodify failed ({out.returncode}): {out.stderr or out.stdout}")
