"""Meetings and birthdays from calendar data: ICS text in, observations out. Pure code.

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

Birthdays and anniversaries come from birthday calendars, as key dates of
the person the event names (never meetings), recognized by what their
makers write:

- Nextcloud's "Contact birthdays": `X-NEXTCLOUD-BC-FIELD-TYPE:BDAY` or
  `ANNIVERSARY`, "🎂 Ana Lima (1990)", the year in `X-NEXTCLOUD-BC-YEAR`;
- khal: `X-BIRTHDAY`/`X-ANNIVERSARY` (the date with its year) and `X-FNAME`;
- Google's "Birthdays": UID `[YYYY_]BIRTHDAY_…@google.com`, one event a year;
- any all-day event titled "🎂 NAME", "💍 NAME", "NAME's birthday",
  "NAME’s Anniversary", "Birthday: NAME", "Birthday of NAME", "NAME: Birthday
  (35)", "Geburtstag von NAME", "Anniversaire de NAME", "Aniversário de NAME",
  "Cumpleaños de NAME", "Compleanno di NAME", or ownCloud's "NAME (*1990)".

The year is taken only where it is written as a year ("(1990)", `X-…-YEAR`),
never from DTSTART: birthday calendars put 1970, 1900 or this year there.

Times: zoned times as written (Outlook's Windows zone names such as
`W. Europe Standard Time` are understood by icalendar), floating times in
`tz` (the user's timezone), an all-day event at 12:00 of its first day in
`tz`. Recurrences (RRULE, RDATE, EXDATE, RECURRENCE-ID overrides) are
expanded only between `start` and `end` (both timezone-aware); a single
event counts when it starts at `start` or later, however far ahead (it is
one occurrence, and it must count once its day comes even when its file is
never read again).

Most events in a personal calendar are nobody's meeting ("Dentist"). A text
whose every event is plainly so (no attendee or organizer but you, no title
naming a person) is recognized from its lines, without being parsed: that
is most of the cost of reading a large calendar.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, tzinfo
from typing import Any

import icalendar
import recurring_ical_events

from nurtured.mail import is_mine
from nurtured.model import Interaction, KeyDate

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


@dataclass(frozen=True, slots=True)
class Reading:
    """What one calendar text holds: meetings, key dates, and warnings naming its origin."""

    meetings: list[Interaction] = field(default_factory=list)
    dates: list[KeyDate] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        """The external ids of all it holds (a source keeps them to remove them later)."""
        return sorted({m.external_id for m in self.meetings} | {d.external_id for d in self.dates})


def read(
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
) -> Reading:
    """The meetings in an ICS text from `start` on, and warnings naming `origin`.

    A VEVENT that cannot be read is skipped with a warning (by UID, else by
    the line it starts on); a text that is not iCalendar at all gives a
    warning and nothing, or with `strict` raises ValueError (so a source can
    keep what it read before from a file caught half-written).
    """
    warnings: list[str] = []
    if _nobody_in(text, me, titles):
        return Reading()
    try:
        calendars = icalendar.Calendar.from_ical(text, multiple=True)
        if not calendars:  # empty, or cut off before its END:VCALENDAR
            raise ValueError("no complete VCALENDAR in it")
    except Exception as exc:  # icalendar raises ValueError, KeyError, IndexError…
        problem = f"{origin}: not an iCalendar file: {exc}"
        if strict:
            raise ValueError(problem) from None
        return Reading(warnings=[f"{problem}; skipped"])
    lines = _event_lines(text)
    number = 0
    result: list[Interaction] = []
    dates: dict[str, KeyDate] = {}
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
            if (day := key_date(event, uid)) is not None:
                dates[day.external_id] = day
                continue
            if _GOOGLE_BIRTHDAY.match(uid):
                continue  # your own ("Happy birthday!"): not a meeting either
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
                    found = events if start <= at else []
                else:
                    found = _expand(timezones, events, start, end)
            except Exception as exc:  # one series the expander chokes on must not cost the rest
                warnings.append(f"{origin}: UID {uid} skipped: {exc}")
                continue
            for occurrence in found:
                result += _meetings(occurrence, uid, me, tz, max_attendees, titles)
    return Reading(_unique(result), list(dates.values()), warnings)


_GOOGLE_BIRTHDAY = re.compile(r"^(?:\d{4}_)?BIRTHDAY_.*@google\.com$", re.IGNORECASE)
_FIELD_TYPES = {"BDAY": "birthday", "ANNIVERSARY": "anniversary"}  # X-NEXTCLOUD-BC-FIELD-TYPE
_KEY_DATE_PROPERTIES = {"X-NEXTCLOUD-BC-FIELD-TYPE", "X-BIRTHDAY", "X-ANNIVERSARY"}
_NAME_PART = r"(?P<name>[^\W\d_].*?)"
_BIRTHDAY_OF = (
    r"birthday(?:\s*:|\s+of)|geburtstag(?:\s*:|\s+von)?|anniversaire\s+de"
    r"|anivers[aá]rio\s+d[eoa]|cumplea[nñ]os\s+de|compleanno\s+di"
)
_NTH = r"(?:\d{1,3}(?:st|nd|rd|th)\s+)?"  # "Ana's 40th birthday"
_KEY_TITLES = [
    (re.compile(rf"^🎂\ufe0f?\s*{_NAME_PART}$"), "birthday"),
    (re.compile(rf"^💍\ufe0f?\s*{_NAME_PART}$"), "anniversary"),
    (re.compile(rf"^{_NAME_PART}['’]s\s+{_NTH}(?:b-?day|birthday)$", re.I), "birthday"),
    (re.compile(rf"^{_NAME_PART}['’]s\s+{_NTH}(?:wedding\s+)?anniversary$", re.I), "anniversary"),
    (re.compile(rf"^{_NAME_PART}\s*(?::|\s-|\s–)\s*birthday$", re.I), "birthday"),
    (re.compile(rf"^{_NAME_PART}\s*(?::|\s-|\s–)\s*anniversary$", re.I), "anniversary"),
    (re.compile(rf"^(?:{_BIRTHDAY_OF})\s+{_NAME_PART}$", re.I), "birthday"),
]
_OWNCLOUD = {"*": "birthday", "⚭": "anniversary"}  # "Ana Lima (*1990)", "Ana Lima (⚭2015)"
_YEAR = re.compile(r"\s*\((?P<mark>[*⚭]?)(?P<year>\d{4})\)$")
_AGE = re.compile(r"\s*\(\d{1,3}\)$")
_TRAILING = re.compile(r"[\s!.🎉🎈🎁🥳🎊]+$")  # "Ana's Birthday! 🎉"


def _titled(summary: str) -> tuple[str, str, int | None] | None:
    """(kind, name, year or None) of a title such as "🎂 Ana Lima (1990)"."""
    text = _TRAILING.sub("", summary.strip())
    if m := _YEAR.search(text):
        name, year = text[: m.start()].strip(), int(m["year"])
        if m["mark"]:
            return (_OWNCLOUD[m["mark"]], name, year) if name[:1].isalpha() else None
        text = name
    else:
        text, year = _AGE.sub("", text), None  # "Ana: Birthday (35)" gives her age
    for pattern, kind in _KEY_TITLES:
        if m := pattern.match(text):
            return kind, m["name"].strip(), year
    return None


def key_date(event: icalendar.Event, uid: str) -> KeyDate | None:
    """The birthday or anniversary an event of a birthday calendar stands for, or None."""
    start = event.decoded("DTSTART")
    if isinstance(start, datetime) or str(event.get("STATUS", "")).upper() == "CANCELLED":
        return None  # birthdays are all-day
    if "RECURRENCE-ID" in event:
        return None  # one year's moved occurrence: the series says when the day is
    summary = str(event.get("SUMMARY", ""))
    titled = _titled(summary)
    field = str(event.get("X-NEXTCLOUD-BC-FIELD-TYPE", "")).strip().upper()
    khal = next((k for k in ("X-BIRTHDAY", "X-ANNIVERSARY") if k in event), None)
    if field:
        if field not in _FIELD_TYPES:
            return None  # DEATHDATE: nothing to wish
        kind = _FIELD_TYPES[field]
        name = titled[1] if titled else _YEAR.sub("", summary).strip()
        known = str(event.get("X-NEXTCLOUD-BC-UNKNOWN-YEAR", "0")).strip() != "1"
        written = str(event.get("X-NEXTCLOUD-BC-YEAR", "")).strip()
        year = int(written) if known and written.isdigit() else None
    elif khal:
        kind = khal.removeprefix("X-").lower()
        name = str(event.get("X-FNAME", "")).strip() or (titled[1] if titled else "")
        written = str(event[khal]).strip()[:4]
        year = int(written) if written.isdigit() else None
    elif titled:
        kind, name, year = titled
    else:
        return None
    if not any(c.isalpha() for c in name):
        return None
    day = f"{start.month:02d}-{start.day:02d}"
    if _GOOGLE_BIRTHDAY.match(uid):
        uid = uid.split("_", 1)[1] if uid[:4].isdigit() else uid  # one event a year
    return KeyDate(f"{uid}|{kind}", name, kind, f"{year:04d}-{day}" if year else f"--{day}")


# Lines are unfolded and split exactly as icalendar does it.
_FOLD = re.compile(r"(?:(?<!\n)\r\n|(?<![\r\n])\n)(?:\r?\n)*[ \t]")
_LINES = re.compile(r"\r?\n")
_VALUE = re.compile(r'^(?:[^:"]|"[^"]*")*:')  # a content line up to its value's colon
_LOOKED_AT = {"ATTENDEE", "ORGANIZER", "SUMMARY"}
_PROPERTY = re.compile(r"[A-Za-z0-9-]+")
_UNESCAPE = re.compile(r"\\([\\;,nN])")


def _nobody_in(text: str, me: Sequence[str], titles: bool) -> bool:
    """Whether a complete iCalendar text plainly holds no meeting and no birthday,
    judged from its unfolded lines alone; when in doubt (a half-written file too)
    it is parsed."""
    head, tail = text.lstrip()[:15].upper(), text.rstrip()[-13:].upper()
    if head != "BEGIN:VCALENDAR" or tail != "END:VCALENDAR":
        return False
    for line in _LINES.split(_FOLD.sub("", text)):
        name = (m := _PROPERTY.match(line)) and m[0].upper()
        if name in _KEY_DATE_PROPERTIES:
            return False
        if name not in _LOOKED_AT:
            continue
        head = _VALUE.match(line)
        if head is None:
            return False
        value = line[head.end() :]
        if name == "SUMMARY":
            summary = _UNESCAPE.sub(_unescaped, value)
            if (titles and title_person(summary)) or _titled(summary):
                return False
        elif not is_mine(_address(value), me):  # an attendee or the organizer
            return False
    return True


def _unescaped(m: re.Match[str]) -> str:
    return "\n" if m.group(1) in "nN" else m.group(1)


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
