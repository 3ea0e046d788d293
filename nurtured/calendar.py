"""Meetings from calendar data: ICS text in, `mutual` interactions out. Pure code.

An occurrence of an event counts once per person who was there with you:
every attendee and the organizer whose address is not one of yours (`me:`),
identified by the event's UID, the occurrence's start and the person, so
re-reading never double-counts and a moved occurrence replaces its old id.

Not meetings: cancelled events (`STATUS:CANCELLED`, also a cancelled single
occurrence), events you declined (your ATTENDEE has `PARTSTAT=DECLINED`),
events with more than `max_attendees` people besides you. Rooms and resources
(`CUTYPE=ROOM|RESOURCE`) and attendees who declined are not people who were
there.

An event with nobody else on it (personal calendars rarely have attendees)
counts when its title names one person in one of these forms, the name
starting with a capital letter and holding no "and", "&", "," or "+":

- "… with NAME" / "… w/ NAME"      ("Lunch with Jürgen Müller", "Coffee w/ Meimei")
- "meet NAME", "call NAME", "call: NAME", "call with NAME" at the start
- "NAME & me" / "NAME and me"

The name ends at " - ", " – ", " @ ", " at ", " about ", " re ", "(", ":",
"|", ";" or "," (so "Lunch with Ana @ Tasca" names Ana). The store resolves
the name to a person, or keeps it until a card with that name appears.

Times: zoned times as written (Outlook's Windows zone names such as
`W. Europe Standard Time` are understood by icalendar), floating times in
`tz` (the user's timezone), an all-day event at 12:00 of its first day in
`tz`. Recurrences (RRULE, RDATE, EXDATE, RECURRENCE-ID overrides) are
expanded only between `start` and `end` (both timezone-aware); a single
event counts when it starts in [start, end).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, tzinfo
from typing import Any

import icalendar
import recurring_ical_events

from nurtured.mail import is_mine
from nurtured.model import Interaction

_NOT_PEOPLE = {"ROOM", "RESOURCE"}
_RECURRING = {"RRULE", "RDATE", "RECURRENCE-ID"}
_END = r"(?=\s+[-–—@]\s|\s+(?:at|about|re|in|on)\s|\s*[(:|;,/]|\s*$)"
_NAME = r"(?P<name>[^\W\d_][\w.'’-]*(?:\s+[\w.'’-]+){0,4}?)"
_TITLE_PATTERNS = [
    re.compile(rf"(?:^|\s)(?:with|w/)\s+{_NAME}{_END}", re.IGNORECASE),
    re.compile(rf"^\s*(?:meet|call)(?:\s+with)?\s*[:\s]\s*{_NAME}{_END}", re.IGNORECASE),
    re.compile(rf"^\s*{_NAME}\s+(?:&|and)\s+me\s*$", re.IGNORECASE),
]
_MORE = re.compile(r"\s*(?:[,&+]|(?:and|und|et|e|y)\s)", re.IGNORECASE)
_NOT_A_NAME = re.compile(r"(?:^|\s)(?:and|und|et|e|y)(?:\s|$)|[&,+]", re.IGNORECASE)


def title_person(summary: str) -> str | None:
    """The one person a title names ("Lunch with Ana Lima" → "Ana Lima"), or None."""
    for pattern in _TITLE_PATTERNS:
        if m := pattern.search(summary):
            name = m.group("name").strip(" .'’-")
            if _MORE.match(summary, m.end()):
                return None  # "with Ana, Bo": more than one person
            if name and name[0].isupper() and not _NOT_A_NAME.search(name):
                return name
    return None


def occurrences(
    text: str,
    origin: str,
    me: Sequence[str],
    *,
    start: datetime,
    end: datetime,
    tz: tzinfo,
    max_attendees: int = 8,
    titles: bool = True,
    strict: bool = False,
) -> tuple[list[Interaction], list[str]]:
    """The meetings in an ICS text between `start` and `end`, and warnings naming `origin`.

    A VEVENT that cannot be read is skipped with a warning (by UID, else by
    the line it starts on); a text that is not iCalendar at all gives a
    warning and nothing, or with `strict` raises ValueError (so a source can
    keep what it read before from a file caught half-written).
    """
    warnings: list[str] = []
    try:
        calendars = icalendar.Calendar.from_ical(text, multiple=True)
        if not calendars:  # empty, or cut off before its END:VCALENDAR
            raise ValueError("no complete VCALENDAR in it")
    except Exception as exc:  # icalendar raises ValueError, KeyError, IndexError…
        problem = f"{origin}: not an iCalendar file: {exc}"
        if strict:
            raise ValueError(problem) from None
        return [], [f"{problem}; skipped"]
    lines = _event_lines(text)
    number = 0
    result: list[Interaction] = []
    for calendar in calendars:
        series: dict[str, list[icalendar.Event]] = {}
        wanted: set[str] = set()
        for event in calendar.walk("VEVENT"):
            where = lines[number] if number < len(lines) else None
            number += 1
            uid = str(event.get("UID", "")).strip()
            problem = _problem(event)
            if problem:
                name = f"UID {uid}" if uid else f"the VEVENT at line {where or '?'}"
                warnings.append(f"{origin}: {name} skipped: {problem}")
                continue
            if not uid:
                raw = f"{event.get('DTSTART').to_ical()!r}|{event.get('SUMMARY', '')}"
                uid = "no-uid-" + hashlib.sha256(raw.encode()).hexdigest()[:16]
                event["UID"] = uid
            series.setdefault(uid, []).append(event)
            # Filtered before expanding: most events are nobody's meeting.
            if _people(event, me) is not None or (titles and _title(event)):
                wanted.add(uid)
        timezones = list(calendar.walk("VTIMEZONE"))
        for uid in sorted(wanted):
            events = series[uid]
            try:
                if len(events) == 1 and not _RECURRING.intersection(events[0]):
                    # A single event: no expander needed (most events are single).
                    at = _at(events[0].decoded("DTSTART"), tz)
                    found = events if start <= at < end else []
                else:
                    found = _expand(timezones, events, start, end)
            except Exception as exc:  # one series the expander chokes on must not cost the rest
                warnings.append(f"{origin}: UID {uid} skipped: {exc}")
                continue
            for occurrence in found:
                result += _meetings(occurrence, uid, me, tz, max_attendees, titles)
    return _unique(result), warnings


def _event_lines(text: str) -> list[int]:
    """The line each VEVENT begins on, in order (to name one without a UID)."""
    return [
        n for n, line in enumerate(text.splitlines(), 1) if line.strip().upper() == "BEGIN:VEVENT"
    ]


def _problem(event: icalendar.Event) -> str | None:
    if event.errors:
        return "; ".join(f"{prop}: {error}" if prop else str(error) for prop, error in event.errors)
    if "DTSTART" not in event:
        return "no DTSTART"
    try:
        event.decoded("DTSTART")
        if "DTEND" in event:
            event.decoded("DTEND")
    except Exception as exc:
        return str(exc)
    return None


def _expand(
    timezones: list[Any], events: list[icalendar.Event], start: datetime, end: datetime
) -> list[icalendar.Event]:
    calendar = icalendar.Calendar()
    calendar.add("PRODID", "-//nurtured//EN")
    calendar.add("VERSION", "2.0")
    for component in (*timezones, *events):
        calendar.add_component(component)
    return list(recurring_ical_events.of(calendar).between(start, end))


def _addresses(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _address(value: Any) -> str:
    text = str(value).strip()
    if text.lower().startswith("mailto:"):
        text = text[7:]
    return text.strip().lower()


def _people(event: icalendar.Event, me: Sequence[str]) -> list[str] | None:
    """The addresses of the others who were there, or None when nobody else is on it."""
    people: list[str] = []
    for attendee in _addresses(event.get("ATTENDEE")):
        address = _address(attendee)
        if not address or is_mine(address, me):
            continue
        params = getattr(attendee, "params", {})
        if str(params.get("CUTYPE", "")).upper() in _NOT_PEOPLE:
            continue
        if str(params.get("PARTSTAT", "")).upper() == "DECLINED":
            continue
        if address not in people:
            people.append(address)
    for organizer in _addresses(event.get("ORGANIZER")):
        address = _address(organizer)
        if address and not is_mine(address, me) and address not in people:
            people.append(address)
    return people or None


def _declined(event: icalendar.Event, me: Sequence[str]) -> bool:
    return any(
        is_mine(_address(a), me)
        and str(getattr(a, "params", {}).get("PARTSTAT", "")).upper() == "DECLINED"
        for a in _addresses(event.get("ATTENDEE"))
    )


def _title(event: icalendar.Event) -> str | None:
    return title_person(str(event.get("SUMMARY", "")))


def _at(value: date | datetime, tz: tzinfo) -> datetime:
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(12), tz)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(UTC)


def _meetings(
    event: icalendar.Event,
    uid: str,
    me: Sequence[str],
    tz: tzinfo,
    max_attendees: int,
    titles: bool,
) -> Iterable[Interaction]:
    if str(event.get("STATUS", "")).upper() == "CANCELLED" or _declined(event, me):
        return []
    people = _people(event, me)
    if people is None:
        name = _title(event) if titles else None
        people = [name] if name else []
    elif len(people) > max_attendees:
        return []
    at = _at(event.decoded("DTSTART"), tz)
    note = str(event.get("SUMMARY", "")).strip()
    return [
        Interaction(f"{uid}|{at.isoformat()}|{who}", who, at, "mutual", "meeting", note)
        for who in people
    ]


def _unique(items: list[Interaction]) -> list[Interaction]:
    """One interaction per id (an override and an RDATE can land on the same start)."""
    return list({i.external_id: i for i in items}.values())
