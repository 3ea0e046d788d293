"""Meetings from ICS text as real clients write it (Apple, Google, Outlook, Thunderbird)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from nurtured.calendar import read as read_calendar
from nurtured.calendar import title_person

DATA = Path(__file__).parent / "data" / "calendars"
LISBON = ZoneInfo("Europe/Lisbon")
ME = ("me@example.org", "*@me.example")
START = datetime(2025, 1, 1, tzinfo=UTC)
END = datetime(2027, 1, 1, tzinfo=UTC)


def read(text: str, **kwargs):
    kwargs.setdefault("start", START)
    kwargs.setdefault("end", END)
    kwargs.setdefault("tz", LISBON)
    reading = read_calendar(text, "test.ics", ME, **kwargs)
    return reading.meetings, reading.warnings


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
    reading = read_calendar(text, "work.ics", ME, start=START, end=END, tz=LISBON)
    items, warnings = reading.meetings, reading.warnings
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


def test_a_single_event_counts_however_far_ahead_a_series_only_up_to_the_end():
    text = cal(
        """
UID:future
DTSTART:20261201T100000Z
SUMMARY:Later
ATTENDEE:mailto:ana@example.org
""",
        """
UID:weekly
DTSTART:20261102T100000Z
RRULE:FREQ=WEEKLY
SUMMARY:Weekly
ATTENDEE:mailto:bo@example.org
""",
    )
    items = read(text, start=utc(2026, 11, 1), end=utc(2026, 11, 20))[0]
    assert sorted((i.who, i.at) for i in items) == [
        ("ana@example.org", utc(2026, 12, 1, 10)),  # after `end`: a file read once still counts it
        ("bo@example.org", utc(2026, 11, 2, 10)),
        ("bo@example.org", utc(2026, 11, 9, 10)),
        ("bo@example.org", utc(2026, 11, 16, 10)),
    ]
    assert [i.who for i in read(text, start=utc(2026, 12, 2), end=utc(2026, 12, 8))[0]] == [
        "bo@example.org"  # the single event is before `start`
    ]


def test_the_quick_look_for_nobody_reads_lines_as_the_parser_does():
    dentist = cal("UID:d\nDTSTART:20260301T100000Z\nSUMMARY:Dentist\nORGANIZER:mailto:" + ME[0])
    assert read(dentist) == ([], [])
    # Judged as a parser would: folded lines, escaped commas, a colon inside a parameter.
    folded = dentist.replace("SUMMARY:Dentist", 'SUMMARY;ALTREP="http://x/y":Lunch w\r\n ith Ana')
    assert [i.who for i in read(folded)[0]] == ["Ana"]
    two = dentist.replace("SUMMARY:Dentist", "SUMMARY:Lunch with Ana\\, Bo")
    assert read(two) == ([], [])
    other = dentist.replace("ORGANIZER:mailto:me@example.org", "ORGANIZER:mailto:ana@example.org")
    assert [i.who for i in read(other)[0]] == ["ana@example.org"]
    # Cut off before its end (a file caught half-written): parsed, so the caller hears of it.
    with pytest.raises(ValueError):
        read(dentist[: dentist.index("END:VEVENT")], strict=True)


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


# -- birthday calendars -------------------------------------------------------------------


def key_dates(text: str) -> list[tuple[str, str, str]]:
    reading = read_calendar(text, "test.ics", ME, start=START, end=END, tz=LISBON)
    assert reading.meetings == [] and reading.warnings == []
    return sorted((d.who, d.kind, d.day) for d in reading.dates)


def test_nextcloud_contact_birthdays_with_and_without_year_and_on_29_february():
    assert key_dates((DATA / "nextcloud-birthdays.ics").read_text("utf-8")) == [
        ("Jürgen Müller", "birthday", "1988-02-29"),
        ("Leon Green", "anniversary", "2015-06-12"),  # the year of the wedding, not 1970
        ("Leon Green", "birthday", "2000-01-01"),
        ("Meimei Chen", "birthday", "--04-15"),  # 1970 in DTSTART stands for "no year"
    ]  # and no key date for a death date


def test_google_birthdays_one_event_a_year_are_one_date_and_never_meetings():
    reading = read_calendar(
        (DATA / "google-birthdays.ics").read_text(), "g.ics", ME, start=START, end=END, tz=LISBON
    )
    # The "Contacts" attendee at @virtual is no person; your own "Happy birthday!" names nobody.
    assert reading.meetings == [] and reading.warnings == []
    assert [(d.external_id, d.who, d.kind, d.day) for d in reading.dates] == [
        ("BIRTHDAY_79d389868f96182e@google.com|birthday", "Ana Lima", "birthday", "--12-10")
    ]
    assert reading.ids == ["BIRTHDAY_79d389868f96182e@google.com|birthday"]


def test_khal_birthdays_take_the_year_from_x_birthday_not_from_dtstart():
    assert key_dates((DATA / "khal-birthdays.ics").read_text()) == [
        ("Bo Berg", "anniversary", "--09-20"),  # khal writes 1900 when the year is unknown
        ("Jane Doe", "birthday", "1985-07-04"),
    ]


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        ("🎂 Ana Lima", ("Ana Lima", "birthday", "--05-08")),
        ("🎂 Ana Lima (1990)", ("Ana Lima", "birthday", "1990-05-08")),
        ("💍 Ana & Rui", ("Ana & Rui", "anniversary", "--05-08")),
        ("Ana Lima’s Birthday", ("Ana Lima", "birthday", "--05-08")),
        ("Meimei's bday", ("Meimei", "birthday", "--05-08")),
        ("Birthday: Ana Lima", ("Ana Lima", "birthday", "--05-08")),
        ("Birthday of Ana Lima", ("Ana Lima", "birthday", "--05-08")),
        ("Ana Lima: Birthday (36)", ("Ana Lima", "birthday", "--05-08")),  # an age, not a year
        ("Geburtstag von Jürgen Müller", ("Jürgen Müller", "birthday", "--05-08")),
        ("Anniversaire de Zoé", ("Zoé", "birthday", "--05-08")),  # French: a birthday
        ("Aniversário da Inês", ("Inês", "birthday", "--05-08")),
        ("Ana Lima (*1990)", ("Ana Lima", "birthday", "1990-05-08")),  # ownCloud
        ("Ana Lima (⚭2015)", ("Ana Lima", "anniversary", "2015-05-08")),
        ("Ana's Birthday! 🎉", ("Ana", "birthday", "--05-08")),
        ("Ana Lima - Birthday", ("Ana Lima", "birthday", "--05-08")),
        ("Ana's 40th birthday", ("Ana", "birthday", "--05-08")),
        ("Geburtstag Jürgen", ("Jürgen", "birthday", "--05-08")),
    ],
)
def test_birthday_titles_as_calendars_write_them(summary, expected):
    text = cal(f"UID:b\nDTSTART;VALUE=DATE:20260508\nRRULE:FREQ=YEARLY\nSUMMARY:{summary}")
    assert key_dates(text) == [expected]


@pytest.mark.parametrize(
    "event",
    [
        "UID:p\nDTSTART:20260508T190000Z\nSUMMARY:Ana's birthday",  # at a time: a party
        "UID:p\nDTSTART;VALUE=DATE:20260508\nSUMMARY:Ana's birthday party",
        "UID:p\nDTSTART;VALUE=DATE:20260508\nSUMMARY:Buy a birthday present",
        "UID:p\nDTSTART;VALUE=DATE:20260508\nSUMMARY:🎂 12345",
        "UID:p\nDTSTART;VALUE=DATE:20260508\nSUMMARY:Ana's birthday\nSTATUS:CANCELLED",
        "UID:p\nDTSTART;VALUE=DATE:20260508\nSUMMARY:Release *",  # ownCloud's mark needs a year
        "UID:p\nDTSTART;VALUE=DATE:20260508\nSUMMARY:Company founded (1990)",
    ],
)
def test_what_is_not_a_birthday(event):
    assert read_calendar(cal(event), "t.ics", ME, start=START, end=END, tz=LISBON).dates == []


def test_a_moved_occurrence_does_not_move_the_birthday():
    text = cal(
        "UID:b\nDTSTART;VALUE=DATE:19900415\nRRULE:FREQ=YEARLY\nSUMMARY:Ana Lima's birthday",
        "UID:b\nRECURRENCE-ID;VALUE=DATE:20260415\nDTSTART;VALUE=DATE:20260418\n"
        "SUMMARY:Ana Lima's birthday",  # the party moved to the weekend this year
    )
    assert key_dates(text) == [("Ana Lima", "birthday", "--04-15")]


@pytest.mark.parametrize(
    "summary",
    [
        "SUMMARY:Sync\u2028Lunch with Ana Lima",  # a line separator inside the value
        "SUMMARY:Sync\x0cLunch with Ana Lima",
        "SUMMARY:Lunch \r\n\r\n with Ana Lima",  # folded across a blank line
        "SUMMARY:Lunch \r\r\n with Ana Lima",
    ],
)
def test_the_quick_look_unfolds_and_splits_lines_as_icalendar_does(summary):
    text = cal("UID:t\nDTSTART:20260301T100000Z").replace("END:VEVENT", summary + "\r\nEND:VEVENT")
    assert [i.who for i in read(text)[0]] == ["Ana Lima"]


@pytest.mark.parametrize(
    "attendee",
    [
        'ATTENDEE;SENT-BY="mailto:me@example.org":ana@example.org',  # no mailto: on the value
        "ATTENDEE:mailto:me@example.org;ana@example.org",
    ],
)
def test_the_quick_look_judges_an_attendee_by_its_value(attendee):
    text = cal(f"UID:t\nDTSTART:20260301T100000Z\nSUMMARY:Sync\n{attendee}")
    assert len(read(text)[0]) == 1


def test_a_birthday_known_only_by_its_x_property_is_not_overlooked():
    # Nextcloud on a database without emoji support writes no 🎂; khal's X-FNAME names her.
    text = cal(
        "UID:n\nDTSTART;VALUE=DATE:19700415\nRRULE:FREQ=YEARLY\nSUMMARY:Leon Green\n"
        "X-NEXTCLOUD-BC-FIELD-TYPE:BDAY\nX-NEXTCLOUD-BC-UNKNOWN-YEAR:1",
        "UID:k\nDTSTART;VALUE=DATE:19850704\nRRULE:FREQ=YEARLY\nSUMMARY:Jane\n"
        "X-BIRTHDAY:19850704\nX-FNAME:Jane Doe",
    )
    assert key_dates(text) == [
        ("Jane Doe", "birthday", "1985-07-04"),
        ("Leon Green", "birthday", "--04-15"),
    ]


@pytest.mark.parametrize("path", sorted(DATA.glob("*.ics")), ids=lambda p: p.name)
def test_the_quick_look_never_changes_what_a_calendar_holds(path, monkeypatch):
    import nurtured.calendar

    def both(text: str) -> tuple[object, object]:
        quick = read_calendar(text, "t.ics", ME, start=START, end=END, tz=LISBON)
        with monkeypatch.context() as m:
            m.setattr(nurtured.calendar, "_nobody_in", lambda *_: False)
            full = read_calendar(text, "t.ics", ME, start=START, end=END, tz=LISBON)
        return quick, full

    text = path.read_text("utf-8")
    quick, full = both(text)
    assert quick == full
    if path.name == "personal.ics":  # a calendar as most people keep one
        assert sorted(m.who for m in full.meetings) == ["Jürgen Müller", "bo@example.org"]
        assert [(d.who, d.day) for d in full.dates] == [("Ana Lima", "--04-15")]
    # And event by event: each VEVENT alone in its own calendar, as a vdir holds them.
    head, _, rest = text.partition("BEGIN:VEVENT")
    for body in ("BEGIN:VEVENT" + rest).split("BEGIN:VEVENT")[1:]:
        event = body.split("END:VEVENT")[0]
        single = f"{head}BEGIN:VEVENT{event}END:VEVENT\r\nEND:VCALENDAR\r\n"
        quick, full = both(single)
        assert quick == full, event
