"""LDAP GeneralizedTime (``YYYYmmddHHMMSSZ``, MDS2 style), both ways; pure, used by both daemons."""

from __future__ import annotations

import calendar
import re
import time

from gridinfo.errors import ConstraintViolation

_GENERALIZED_TIME = re.compile(
    r"(\d{4})(\d{2})(\d{2})(\d{2})(?:(\d{2})(\d{2})?)?(?:[.,](\d+))?(Z|[+-]\d{2}(?:\d{2})?)?\Z"
)


def parse_generalized_time(value: bytes | str, attribute: str = "time") -> float:
    """Seconds since the epoch of an LDAP GeneralizedTime (``YYYYmmddHHMMSSZ``, MDS2 style).

    Fractions and ``+hhmm`` offsets are accepted; a time without a zone is taken as UTC (MDS2
    servers always wrote ``Z``).  A bad value is a ConstraintViolation naming ``attribute``.
    """
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    m = _GENERALIZED_TIME.match(text.strip())
    if m is None:
        raise ConstraintViolation(f"{attribute}: {text!r} is not a generalized time (YYYYmmddHHMMSSZ)")
    year, month, day, hour = (int(m.group(i)) for i in range(1, 5))
    minute = int(m.group(5) or 0)
    second = int(m.group(6) or 0)
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 23 and minute <= 59 and second <= 60):
        raise ConstraintViolation(f"{attribute}: {text!r} is not a valid date and time")
    seconds = float(calendar.timegm((year, month, day, hour, minute, min(second, 59), 0, 0, 0)))
    if m.group(7):
        seconds += float("0." + m.group(7))
    zone = m.group(8)
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        offset = int(zone[1:3]) * 3600 + int(zone[3:5] or 0) * 60
        seconds -= sign * offset
    return seconds


def format_generalized_time(seconds: float) -> str:
    """``YYYYmmddHHMMSSZ`` (UTC) for seconds since the epoch."""
    return time.strftime("%Y%m%d%H%M%SZ", time.gmtime(int(seconds)))
