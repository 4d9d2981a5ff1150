"""LDAP GeneralizedTime (RFC 4517 section 3.3.13): the one parser and the one formatter.

Every time gridinfo reads or writes -- ``Mds-validfrom``/``-validto``/``-keepto`` of soft state
and registrations, status times under ``o=infosys``, VM and job event times, provider output,
GLUE 2 ``GLUE2EntityCreationTime``, the generalizedTime matching rules -- goes through here.

Accepted: ``YYYYmmddHH[MM[SS]][(.|,)fraction](Z|+hh[mm]|-hh[mm])``.  The fraction applies to
the last unit given (``200110030128.5Z`` is 01:28:30), as the RFC says.  A value without a time
zone is refused: the RFC reads it as local time, which a server on another continent cannot
know.  An impossible date (``20230230``), hour, minute, second over 60 or zone offset over
23:59 is refused.  A leap second (``:60``) counts as the first second of the next minute.

Written: UTC with ``Z``, whole seconds (``20240501120000Z``, MDS2's form), or with
``millis=True`` milliseconds when there are any (``20240501120000.500Z``).

Pure: no clock is read; seconds are since the epoch, as ``time.time()`` gives them.
"""

from __future__ import annotations

import re
import time

from gridinfo.errors import ConstraintViolation, LDAPError

__all__ = [
    "format_generalized_time",
    "generalized_time_key",
    "parse_generalized_time",
]

_GENERALIZED_TIME = re.compile(
    rb"(?P<year>[0-9]{4})(?P<month>[0-9]{2})(?P<day>[0-9]{2})(?P<hour>[0-9]{2})"
    rb"(?:(?P<minute>[0-9]{2})(?P<second>[0-9]{2})?)?"
    rb"(?:[.,](?P<fraction>[0-9]+))?"
    rb"(?P<zone>Z|[+-](?P<zhour>[0-9]{2})(?P<zminute>[0-9]{2})?)?\Z"
)
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (valid for year 0 as well)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _micros(value: bytes) -> int | str:
    """Microseconds since the epoch (UTC), or a short reason why ``value`` is not valid."""
    m = _GENERALIZED_TIME.match(value.strip())
    if m is None:
        return "is not a generalized time such as 20240501120000Z"
    if m["zone"] is None:
        return "has no time zone (write UTC with a final Z, or an offset such as +0100)"
    year, month, day, hour = (int(m[g]) for g in ("year", "month", "day", "hour"))
    minute = int(m["minute"]) if m["minute"] is not None else 0
    second = int(m["second"]) if m["second"] is not None else 0
    if not 1 <= month <= 12 or hour > 23 or minute > 59 or second > 60:
        return "is not a valid date and time"
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not 1 <= day <= _DAYS_IN_MONTH[month - 1] + (1 if month == 2 and leap else 0):
        return "is not a valid date"
    micros = ((_days_from_civil(year, month, day) * 24 + hour) * 60 + minute) * 60 + second
    micros *= 1_000_000
    if m["fraction"] is not None:
        unit = 1_000_000 if m["second"] is not None else 60_000_000 if m["minute"] is not None else 3_600_000_000
        digits = m["fraction"][:18]
        micros += int(digits) * unit // 10 ** len(digits)
    if m["zone"] != b"Z":
        zhour = int(m["zhour"])
        zminute = int(m["zminute"]) if m["zminute"] is not None else 0
        if zhour > 23 or zminute > 59:
            return "has an invalid time zone offset"
        offset = (zhour * 60 + zminute) * 60_000_000
        micros += -offset if m["zone"][:1] == b"+" else offset
    return micros


def generalized_time_key(value: bytes) -> int | None:
    """Microseconds since the epoch (UTC) of a GeneralizedTime, or None when it is not valid.

    The key of the ``generalizedTimeMatch``/``generalizedTimeOrderingMatch`` rules: two values
    naming the same instant in different zones compare equal.
    """
    micros = _micros(value)
    return micros if isinstance(micros, int) else None


def parse_generalized_time(
    value: bytes | str, attribute: str = "time", *, error: type[LDAPError] = ConstraintViolation
) -> float:
    """Seconds since the epoch of a GeneralizedTime.

    A bad value raises ``error`` (an LDAP error, constraintViolation unless the caller names
    its own) whose message names ``attribute``, the value and what is wrong with it.
    """
    raw = value.encode("ascii", "replace") if isinstance(value, str) else value
    micros = _micros(raw)
    if isinstance(micros, str):
        shown = value.decode("ascii", "replace") if isinstance(value, bytes) else value
        raise error(f"{attribute}: {shown!r} {micros}")
    return micros / 1_000_000


def format_generalized_time(seconds: float, *, millis: bool = False) -> str:
    """UTC GeneralizedTime of ``seconds`` since the epoch: whole seconds (truncated), or with
    ``millis`` the milliseconds (rounded) when they are not zero."""
    if not millis:
        return time.strftime("%Y%m%d%H%M%SZ", time.gmtime(int(seconds // 1)))
    whole = int(seconds // 1)
    ms = int(round((seconds - whole) * 1000))
    if ms == 1000:
        whole, ms = whole + 1, 0
    text = time.strftime("%Y%m%d%H%M%S", time.gmtime(whole))
    return f"{text}.{ms:03d}Z" if ms else f"{text}Z"


def format_glue2_datetime(seconds: float) -> str:
    """The GLUE 2 DateTime of ``seconds`` (UTC, whole seconds): ``2026-12-02T01:40:00Z``.

    GLUE 2's LDAP rendering keeps times such as ``GLUE2EntityCreationTime`` as strings in this
    ISO 8601 form (what the EGI profile checks), not as GeneralizedTime.
    """
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(seconds // 1)))
