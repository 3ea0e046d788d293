"""Time: an injectable clock, unambiguous durations, and how to say them."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo

_DURATION = re.compile(r"(\d+)(min|h|d|w)")
_UNITS = {"min": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class Clock:
    """The wall clock. Tests pass a `FixedClock` instead."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock(Clock):
    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("a clock needs a timezone-aware time")
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta) -> None:
        self.at += delta


def parse_duration(text: str) -> timedelta:
    """Parse `90min`, `12h`, `60d`, `8w` or a sum like `1w3d`.

    Months and years are rejected on purpose: "1m" could mean a minute or a
    month, and neither a month nor a year has a fixed length.
    """
    text = str(text).strip()
    pos, total, seen = 0, timedelta(), False
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        try:
            total += timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        except OverflowError:
            raise ValueError(f"{text!r} is longer than nurtured can count") from None
        pos, seen = match.end(), True
    if not seen or pos != len(text):
        raise ValueError(
            f"expected a duration like 30min, 12h, 60d or 8w, got {text!r}"
            " (months and years are not accepted: write 4w or 52w)"
        )
    return total


def format_duration(delta: timedelta) -> str:
    """The inverse of parse_duration, in the largest unit that says it exactly."""
    minutes = int(delta.total_seconds() // 60)
    for unit, size in (("w", 7 * 24 * 60), ("d", 24 * 60), ("h", 60)):
        if minutes and minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}min"


def humanize(delta: timedelta) -> str:
    """Say a span the way a person would: '3 days', '2 months', 'a year'."""
    days = delta.total_seconds() / 86400
    for limit, size, unit in (
        (1, 1 / 24, "hour"),
        (14, 1, "day"),
        (60, 7, "week"),
        (365, 30.4, "month"),
        (float("inf"), 365.25, "year"),
    ):
        if days < limit:
            count = max(1, round(days / size))
            return f"{count} {unit}" + ("s" if count != 1 else "")
    raise AssertionError("unreachable")


def parse_when(text: str, tz: tzinfo, now: datetime | None = None) -> datetime:
    """A date or date-time as a user types it.

    A bare date means midday local time, or `now` if that is earlier: what
    happened "today" has happened by now.
    """
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            midday = datetime.combine(day, time(12), tz).astimezone(UTC)
            today = now is not None and now.astimezone(tz).date() == day
            return min(midday, now) if today else midday
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"expected a date like 2026-03-14 or 2026-03-14T09:30, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(UTC)
