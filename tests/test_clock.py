"""Tests for nurtured.clock: durations, how spans are said, and dates as users type them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from nurtured.clock import (
    FixedClock,
    format_duration,
    humanize,
    parse_duration,
    parse_when,
)

LISBON = ZoneInfo("Europe/Lisbon")


# --------------------------------------------------------------------------- parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("60d", timedelta(days=60)),
        ("8w", timedelta(weeks=8)),
        ("12h", timedelta(hours=12)),
        ("90min", timedelta(minutes=90)),
        ("1w3d", timedelta(days=10)),
        ("1d12h30min", timedelta(days=1, hours=12, minutes=30)),
        ("  45d  ", timedelta(days=45)),  # surrounding blanks are forgiven
        ("0d", timedelta(0)),  # zero parses; the config loader is what refuses it
    ],
)
def test_parse_duration_accepts(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    ["60", "1m", "2y", "1.5d", "-3d", "", "d", "60 d", "1w 3d", "60D", "3 days", "1mo", "60dd"],
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    message = str(info.value)
    assert f"got {text.strip()!r}" in message
    assert "30min" in message and "60d" in message  # says what a duration looks like


@pytest.mark.parametrize("text", ["1m", "2y", "3mo"])
def test_parse_duration_says_why_months_and_years_are_refused(text: str) -> None:
    # "1m" could be a minute or a month: the message must point away from both readings.
    with pytest.raises(ValueError, match=r"months and years are not accepted: write 4w or 52w"):
        parse_duration(text)


def test_parse_duration_accepts_a_non_string() -> None:
    # YAML hands `every: 60` over as an int; it must be refused, not crash.
    with pytest.raises(ValueError, match=r"got '60'"):
        parse_duration(60)  # type: ignore[arg-type]


def test_parse_duration_too_large_is_a_value_error() -> None:
    # BUG: timedelta overflows with OverflowError, which callers (the config loader,
    # `nurtured due --within`) do not catch; a huge number should be a plain refusal.
    with pytest.raises(ValueError):
        parse_duration("9999999999d")


# --------------------------------------------------------------------------- format_duration


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(weeks=8), "8w"),
        (timedelta(days=14), "2w"),
        (timedelta(days=60), "60d"),
        (timedelta(days=10), "10d"),
        (timedelta(hours=36), "36h"),
        (timedelta(hours=12), "12h"),
        (timedelta(minutes=90), "90min"),
        (timedelta(minutes=1), "1min"),
        (timedelta(0), "0min"),
    ],
)
def test_format_duration(delta: timedelta, expected: str) -> None:
    assert format_duration(delta) == expected


@pytest.mark.parametrize("text", ["60d", "8w", "12h", "90min", "1w3d", "25h", "61min", "7d"])
def test_format_duration_round_trips(text: str) -> None:
    delta = parse_duration(text)
    assert parse_duration(format_duration(delta)) == delta


# --------------------------------------------------------------------------- humanize


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(minutes=10), "1 hour"),  # never "0 hours"
        (timedelta(hours=1), "1 hour"),
        (timedelta(hours=5), "5 hours"),
        (timedelta(days=1), "1 day"),
        (timedelta(days=3), "3 days"),
        (timedelta(days=13), "13 days"),
        (timedelta(days=14), "2 weeks"),
        (timedelta(days=45), "6 weeks"),
        (timedelta(days=60), "2 months"),
        (timedelta(days=200), "7 months"),
        (timedelta(days=365), "1 year"),
        (timedelta(days=800), "2 years"),
    ],
)
def test_humanize(delta: timedelta, expected: str) -> None:
    assert humanize(delta) == expected


def test_humanize_is_monotonic_in_its_count_within_a_unit() -> None:
    said = [humanize(timedelta(days=d)) for d in range(1, 14)]
    assert said == [f"{d} day" + ("s" if d != 1 else "") for d in range(1, 14)]


# --------------------------------------------------------------------------- parse_when


def test_parse_when_bare_date_is_local_midday_in_winter() -> None:
    assert parse_when("2026-01-14", LISBON) == datetime(2026, 1, 14, 12, tzinfo=UTC)


def test_parse_when_bare_date_is_local_midday_in_summer() -> None:
    # Lisbon is UTC+1 in July: local noon is 11:00 UTC.
    assert parse_when("2026-07-14", LISBON) == datetime(2026, 7, 14, 11, tzinfo=UTC)


def test_parse_when_naive_time_is_local() -> None:
    moment = parse_when("2026-07-14T09:30", LISBON)
    assert moment == datetime(2026, 7, 14, 8, 30, tzinfo=UTC)
    assert moment.tzinfo is UTC


def test_parse_when_keeps_an_explicit_offset() -> None:
    assert parse_when("2026-07-14T09:30+02:00", LISBON) == datetime(2026, 7, 14, 7, 30, tzinfo=UTC)


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "14/03/2026", "", "2026-03-14T25:00"])
def test_parse_when_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"expected a date like 2026-03-14") as info:
        parse_when(text, LISBON)
    assert repr(text) in str(info.value)


# --------------------------------------------------------------------------- clocks


def test_fixed_clock_needs_a_timezone_and_advances() -> None:
    with pytest.raises(ValueError):
        FixedClock(datetime(2026, 1, 1))
    clock = FixedClock(datetime(2026, 1, 1, tzinfo=UTC))
    clock.advance(timedelta(days=2))
    assert clock.now() == datetime(2026, 1, 3, tzinfo=UTC)
