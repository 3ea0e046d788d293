"""Meetings from ICS text as real clients write it (Apple, Google, Outlook, Thunderbird)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from nurtured.calendar import occurrences, title_person

DATA = Path(__file__).parent / "data" / "calendars"
LISBON = ZoneInfo("Europe/Lisbon")
ME = ("me@example.org", "*@me.example")
START = datetime(2025, 1, 1, tzinfo=UTC)
END = datetime(2027, 1, 1, tzinfo=UTC)


def read(text: str, **kwargs):
    kwargs.setdefault("start", START)
    kwargs.setdefault("end", END)
    kwargs.setdefault("tz", LISBON)
    return occurrences(text, "test.ics", ME, **kwargs)


def cal(*events: str) -> str:
    """A calendar as Google writes it: CRLF lines, one VEVENT per string."""
    body = "".join(
        "BEGIN:VEVENT\r\n" + "\r\n".join(e.strip().splitlines()) + "\r\nEND:VEVENT\r\n"
        for e in events
    )
    return (
        "BEGIN:VCALENDAR\r\nPRODID:-//Google Inc//Google Calendar 70.9054//EN\r\n"
        "VERSION:2.0\r\nCALSCALE:GREGORIAN\r\n" + body + "END:VCALENDAR\r\n"
    )


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_weekly_series_with_exdate_and_overrides_across_the_dst_change():
    items, warnings = read((DATA / "lisbon-weekly.ics").read_text())
    assert warnings == []
    # 09:00 in Lisbon is 09:00Z before 29 March 2026 and 08:00Z after; 26 March is an
    # EXDATE, 2 April moved to 3 April 14:00, 9 April cancelled; the room is not a person.
    assert [(i.at, i.who, i.note) for i in items] == [
        (utc(2026, 3, 12, 9), "ana@example.org", "Weekly sync"),
        (utc(2026, 3, 19, 9), "ana@example.org", "Weekly sync"),
        (utc(2026, 4, 3, 13), "ana@example.org", "Weekly sync (moved)"),
        (utc(2026, 4, 16, 8), "ana@example.org", "Weekly sync"),
    ]
    assert all(i.direction == "mutual" and i.channel == "meeting" for i in items)
    assert items[0].external_id == (
        "5A1D3C2E-7F0B-4C8E-9D3A-2B6F1E0C9A11|2026-03-12T09:00:00+00:00|ana@example.org"
    )
    assert all(i.at.tzinfo is UTC for i in items)


def test_re_reading_gives_the_same_ids_and_a_moved_occurrence_a_new_one():
    text = (DATA / "lisbon-weekly.ics").read_text()
    first = {i.external_id for i in read(text)[0]}
    assert first == {i.external_id for i in read(text)[0]}
    moved = text.replace(
        "DTSTART;TZID=Europe/Lisbon:20260403T140000", "DTSTART;TZID=Europe/Lisbon:20260403T150000"
    ).replace(
        "DTEND;TZID=Europe/Lisbon:20260403T143000", "DTEND;TZID=Europe/Lisbon:20260403T153000"
    )
    second = {i.external_id for i in read(moved)[0]}
    assert len(first - second) == 1 and len(second - first) == 1
    assert next(iter(second - first)).split("|")[1] == "2026-04-03T14:00:00+00:00"


def test_only_the_window_is_expanded_for_an_endless_rule():
    text = cal(
        """
UID:endless
DTSTART;TZID=Europe/Lisbon:20200106T100000
RRULE:FREQ=WEEKLY
SUMMARY:Standup
ORGANIZER:mailto:bo@example.com
"""
    )
    items, _ = read(text, start=utc(2026, 1, 1), end=utc(2026, 3, 1))
    assert len(items) == 8  # the Mondays of January and February 2026
    assert items[0].at == utc(2026, 1, 5, 10)


def test_outlook_windows_zone_names_and_upper_case_mailto():
    items, warnings = read((DATA / "outlook.ics").read_text())
    assert warnings == []
    # 10:00 in Berlin in February is 09:00Z; ME@EXAMPLE.ORG is me, whatever its case.
    assert sorted((i.who, i.at) for i in items) == [
        ("bo@example.com", utc(2026, 2, 10, 9)),
        ("juergen.mueller@example.de", utc(2026, 2, 10, 9)),
    ]


def test_windows_zone_name_without_a_vtimezone():
    text = cal(
        """
UID:outlook-no-vtimezone
DTSTART;TZID=W. Europe Standard Time:20260710T100000
DTEND;TZID=W. Europe Standard Time:20260710T110000
SUMMARY:Review
ATTENDEE;PARTSTAT=ACCEPTED:MAILTO:cy@example.com
"""
    )
    [item] = read(text)[0]
    assert item.at == utc(2026, 7, 10, 8)  # CEST


def test_all_day_events_count_at_midday_and_floating_times_in_my_timezone():
    text = cal(
        """
UID:allday
DTSTART;VALUE=DATE:20260715
DTEND;VALUE=DATE:20260716
SUMMARY:Hiking
ATTENDEE:mailto:di@example.com
""",
        """
UID:floating
DTSTART:20260120T193000
DTEND:20260120T220000
SUMMARY:Dinner
ATTENDEE:mailto:di@example.com
""",
    )
    items = {i.note: i.at for i in read(text)[0]}
    assert items == {
        "Hiking": utc(2026, 7, 15, 11),  # 12:00 WEST
        "Dinner": utc(2026, 1, 20, 19, 30),  # WET = UTC in winter
    }
    tokyo = {i.note: i.at for i in read(text, tz=ZoneInfo("Asia/Tokyo"))[0]}
    assert tokyo == {"Hiking": utc(2026, 7, 15, 3), "Dinner": utc(2026, 1, 20, 10, 30)}


def test_organizer_only_and_my_addresses_by_pattern():
    text = cal(
        """
UID:org-only
DTSTART:20260301T100000Z
SUMMARY:Their invite
ORGANIZER;CN=Eve:MAILTO:Eve@Example.com
""",
        """
UID:mine
DTSTART:20260302T100000Z
SUMMARY:My invite
ORGANIZER:mailto:work@me.example
ATTENDEE;PARTSTAT=ACCEPTED:mailto:work@me.example
ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:fay@example.com
""",
    )
    assert sorted((i.who, i.note) for i in read(text)[0]) == [
        ("eve@example.com", "Their invite"),
        ("fay@example.com", "My invite"),
    ]


def test_declined_and_cancelled_events_are_not_meetings():
    text = cal(
        """
UID:declined
DTSTART:20260301T100000Z
SUMMARY:Declined
ORGANIZER:mailto:bo@example.com
ATTENDEE;PARTSTAT=DECLINED:mailto:me@example.org
""",
        """
UID:cancelled
DTSTART:20260302T100000Z
SUMMARY:Cancelled
STATUS:CANCELLED
ORGANIZER:mailto:bo@example.com
""",
        """
UID:they-declined
DTSTART:20260303T100000Z
SUMMARY:Half
ORGANIZER:mailto:me@example.org
ATTENDEE;PARTSTAT=DECLINED:mailto:gil@example.com
ATTENDEE;PARTSTAT=ACCEPTED:mailto:hal@example.com
""",
    )
    assert [(i.who, i.note) for i in read(text)[0]] == [("hal@example.com", "Half")]


@pytest.mark.parametrize(("others", "expected"), [(12, 0), (9, 0), (8, 8)])
def test_big_meetings_are_not_meetings_with_anyone(others, expected):
    attendees = "\n".join(f"ATTENDEE:mailto:p{n}@example.com" for n in range(others))
    text = cal(
        f"""
UID:big
DTSTART:20260301T100000Z
SUMMARY:All hands
ATTENDEE;PARTSTAT=ACCEPTED:mailto:me@example.org
{attendees}
"""
    )
    assert len(read(text)[0]) == expected
    assert len(read(text, max_attendees=20)[0]) == others


@pytest.mark.parametrize(
    ("title", "name"),
    [
        ("Lunch with Jürgen Müller", "Jürgen Müller"),
        ("Coffee w/ Meimei", "Meimei"),
        ("Call: Ana Lima", "Ana Lima"),
        ("call Ana", "Ana"),
        ("Meet Bo", "Bo"),
        ("Dinner with Ana @ Tasca", "Ana"),
        ("Drinks with Ana at the pier", "Ana"),
        ("Catch-up with Ana Lima (Porto)", "Ana Lima"),
        ("Bo & me", "Bo"),
        ("Lunch with Ana and Bo", None),
        ("Lunch with Ana, Bo", None),
        ("Lunch with the team", None),
        ("Dentist", None),
        ("Meetup at the station", None),
        ("Call the bank", None),
    ],
)
def test_a_title_naming_one_person(title, name):
    assert title_person(title) == name


def test_an_event_without_attendees_counts_by_its_title_unless_switched_off():
    text = cal(
        """
UID:lunch
DTSTART:20260305T123000Z
SUMMARY:Lunch with Jürgen Müller
""",
        """
UID:dentist
DTSTART:20260306T123000Z
SUMMARY:Dentist
ORGANIZER:mailto:me@example.org
""",
        """
UID:coffee
DTSTART:20260307T090000Z
SUMMARY:Coffee w/ Meimei
ORGANIZER:mailto:me@example.org
ATTENDEE;PARTSTAT=ACCEPTED:mailto:me@example.org
""",
    )
    items, _ = read(text)
    assert [(i.who, i.external_id) for i in items] == [
        ("Meimei", "coffee|2026-03-07T09:00:00+00:00|Meimei"),
        ("Jürgen Müller", "lunch|2026-03-05T12:30:00+00:00|Jürgen Müller"),
    ]
    assert read(text, titles=False)[0] == []


def test_a_malformed_vevent_is_skipped_and_the_rest_read():
    text = cal(
        """
UID:good-1
DTSTART:20260301T100000Z
SUMMARY:Good one
ATTENDEE:mailto:ana@example.org
""",
        """
UID:broken-date
DTSTART:2026031XT100000
SUMMARY:Broken
ATTENDEE:mailto:ana@example.org
""",
        """
DTSTART;TZID=Europe/Lisbon:20260399T100000
SUMMARY:Broken without a UID
""",
        """
UID:good-2
DTSTART:20260302T100000Z
SUMMARY:Good two
ATTENDEE:mailto:ana@example.org
""",
    )
    items, warnings = occurrences(text, "work.ics", ME, start=START, end=END, tz=LISBON)
    assert [i.note for i in items] == ["Good one", "Good two"]
    assert len(warnings) == 2
    assert warnings[0].startswith("work.ics: UID broken-date skipped")
    assert warnings[1].startswith("work.ics: the VEVENT at line 17 skipped")


@pytest.mark.parametrize(
    "text", ["", "this is not a calendar\n", "BEGIN:VCALENDAR\nBEGIN:VEVENT\n"]
)
def test_a_file_that_is_not_icalendar_gives_a_warning_and_nothing(text):
    items, warnings = read(text)
    assert items == []
    assert len(warnings) == 1 and warnings[0].startswith("test.ics: ")


def test_future_occurrences_are_returned_too():
    text = cal(
        """
UID:future
DTSTART:20261201T100000Z
SUMMARY:Later
ATTENDEE:mailto:ana@example.org
"""
    )
    [item] = read(text, start=utc(2026, 11, 1), end=utc(2027, 1, 1))[0]
    assert item.at == utc(2026, 12, 1, 10)
    assert read(text, start=utc(2026, 1, 1), end=utc(2026, 11, 30))[0] == []


def test_a_vevent_with_a_broken_line_or_rule_is_skipped_and_the_rest_read():
    good = "UID:good\nDTSTART:20260301T100000Z\nSUMMARY:Good\nATTENDEE:mailto:ana@example.org"
    text = cal(
        "UID:no-colon\nDTSTART:20260302T100000Z\nTHIS LINE HAS NO COLON\n"
        "ATTENDEE:mailto:ana@example.org",
        "UID:bad-rule\nDTSTART:20260303T100000Z\nRRULE:FREQ=SOMETIMES\n"
        "ATTENDEE:mailto:ana@example.org",
        "UID:no-start\nSUMMARY:When?\nATTENDEE:mailto:ana@example.org",
        good,
    )
    items, warnings = read(text)
    assert [i.note for i in items] == ["Good"]
    assert [w.split(" skipped")[0] for w in warnings] == [
        "test.ics: UID no-colon",
        "test.ics: UID bad-rule",
        "test.ics: UID no-start",
    ]
