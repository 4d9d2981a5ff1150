"""One generalized-time parser and formatter for every time gridinfo reads or writes."""

from __future__ import annotations

import pytest

from gridinfo.directory.gtime import format_generalized_time, generalized_time_key, parse_generalized_time
from gridinfo.errors import ConstraintViolation, LDAPError, ResultCode

T0 = 1714564800.0  # 2024-05-01 12:00:00 UTC


def test_utc_with_z_reads_and_writes_as_mds2_does() -> None:
    """Registrations and soft state write whole-second UTC times ending in Z; they read back exactly."""
    assert format_generalized_time(T0) == "20240501120000Z"
    assert parse_generalized_time("20240501120000Z") == T0
    assert parse_generalized_time(b"20240501120000Z") == T0
    assert format_generalized_time(T0 + 0.999) == "20240501120000Z"  # whole seconds: truncated
    assert format_generalized_time(0) == "19700101000000Z"


def test_fractions_apply_to_the_last_unit_given() -> None:
    """A fraction of seconds, minutes or hours means what RFC 4517 says, with '.' or ','."""
    assert parse_generalized_time("20240501120000.5Z") == T0 + 0.5
    assert parse_generalized_time("20240501120000,25Z") == T0 + 0.25
    assert parse_generalized_time("202405011200.5Z") == T0 + 30
    assert parse_generalized_time("2024050112.5Z") == T0 + 1800
    assert parse_generalized_time("2024050112Z") == T0


def test_offsets_name_the_same_instant() -> None:
    """A time written with an offset is the same instant as its UTC form, in parsing and matching."""
    assert parse_generalized_time("20240501140000+0200") == T0
    assert parse_generalized_time("20240501070000-0500") == T0
    assert parse_generalized_time("20240501133000+0130") == T0
    assert parse_generalized_time("20240501130000+01") == T0
    assert generalized_time_key(b"20240501140000+0200") == generalized_time_key(b"20240501120000Z")


def test_milliseconds_are_written_only_when_there_are_any() -> None:
    """Event times keep milliseconds; a whole second is written without a fraction."""
    assert format_generalized_time(T0, millis=True) == "20240501120000Z"
    assert format_generalized_time(T0 + 0.5, millis=True) == "20240501120000.500Z"
    assert format_generalized_time(T0 + 0.9996, millis=True) == "20240501120001Z"
    assert parse_generalized_time(format_generalized_time(T0 + 0.123, millis=True)) == pytest.approx(T0 + 0.123)


def test_a_leap_second_is_the_next_minute() -> None:
    """:60 is accepted (leap second) and counts as the first second of the next minute."""
    assert parse_generalized_time("20240501115960Z") == T0


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("yesterday", "is not a generalized time"),
        ("", "is not a generalized time"),
        ("20240501120000", "has no time zone"),
        ("20231399000000Z", "is not a valid date and time"),
        ("20230230120000Z", "is not a valid date"),
        ("20240229120000Z", None),  # a leap year: valid
        ("20230229120000Z", "is not a valid date"),
        ("20240501250000Z", "is not a valid date and time"),
        ("20240501120000+2400", "has an invalid time zone offset"),
        ("2024-05-01T12:00:00Z", "is not a generalized time"),
    ],
)
def test_invalid_input_gives_a_clear_error(value: str, reason: str | None) -> None:
    """A bad time is refused with the attribute, the value and what is wrong; never guessed."""
    if reason is None:
        parse_generalized_time(value)
        assert generalized_time_key(value.encode()) is not None
        return
    with pytest.raises(ConstraintViolation) as info:
        parse_generalized_time(value, "Mds-validto")
    assert info.value.code is ResultCode.CONSTRAINT_VIOLATION
    assert str(info.value.message).startswith(f"Mds-validto: {value!r} {reason}")
    assert generalized_time_key(value.encode()) is None


def test_callers_choose_their_error_class() -> None:
    """A VM event's bad time is the event's own error, named by its attribute."""

    class EventProblem(LDAPError):
        code = ResultCode.CONSTRAINT_VIOLATION

    with pytest.raises(EventProblem, match="GridinfoEventTime: 'soon'"):
        parse_generalized_time("soon", "GridinfoEventTime", error=EventProblem)
