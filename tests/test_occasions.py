"""Date-bound nudges (birthday, anniversary, follow-up, brief) and meetings holding back
a cadence: pure planning with an injected clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from nurtured.messages import nudge
from nurtured.planner import Contact, PersonState, occasions, parse_day, plan
from nurtured.rules import Match, Rule

LISBON = ZoneInfo("Europe/Lisbon")
AUCKLAND = ZoneInfo("Pacific/Auckland")
NOW = datetime(2027, 4, 1, 12, tzinfo=UTC)


def person(**kw) -> PersonState:
    return PersonState(id=1, name="Ana Lima", first_seen=NOW - timedelta(days=400), **kw)


def rule(**occasions: timedelta) -> Rule:
    return Rule("r", Match(), None, occasions=occasions)


def kinds(found) -> dict:
    return {p.kind: p for p in found}


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("1990-04-15", (1990, 4, 15)),
        ("19900415", (1990, 4, 15)),
        ("--04-15", (None, 4, 15)),
        ("--0415", (None, 4, 15)),
        ("1604-04-15", (None, 4, 15)),  # Apple: no year
        ("1990-04-15T00:00:00Z", (1990, 4, 15)),
        ("1992-02-29", (1992, 2, 29)),
        ("", None),
        ("April 15", None),
        ("1990-02-30", None),
    ],
)
def test_birthdays_as_exporters_write_them(written, expected):
    assert parse_day(written) == expected


def test_birthday_nudge_comes_lead_time_before_at_nine_local_with_the_age():
    [found] = occasions(
        person(birthday="1990-04-15"), [rule(birthday=timedelta(days=3))], NOW, LISBON
    )
    assert found.kind == "birthday"
    assert found.due_at == datetime(2027, 4, 12, 9, tzinfo=LISBON)
    assert "15 April (37 years)" in found.reason


def test_birthday_without_a_year_says_no_age():
    [found] = occasions(person(birthday="--04-15"), [rule(birthday=timedelta(days=3))], NOW, LISBON)
    assert found.reason == "birthday on 15 April"


def test_a_birthday_already_nudged_moves_to_next_year_and_a_passed_one_too():
    lead = [rule(birthday=timedelta(days=3))]
    sent = datetime(2027, 4, 12, 9, tzinfo=LISBON)
    [found] = occasions(person(birthday="1990-04-15", nudged={"birthday": sent}), lead, NOW, LISBON)
    assert found.due_at == datetime(2028, 4, 12, 9, tzinfo=LISBON)
    [later] = occasions(person(birthday="1990-03-01"), lead, NOW, LISBON)
    assert later.due_at.year == 2028


def test_29_february_is_kept_on_28_february_in_common_years():
    [found] = occasions(
        person(birthday="1992-02-29"), [rule(birthday=timedelta(days=1))], NOW, LISBON
    )
    assert found.due_at == datetime(2028, 2, 28, 9, tzinfo=LISBON)  # 2028 is a leap year
    march = datetime(2028, 3, 1, 12, tzinfo=UTC)
    [common] = occasions(
        person(birthday="1992-02-29"), [rule(birthday=timedelta(days=1))], march, LISBON
    )
    assert common.due_at == datetime(2029, 2, 27, 9, tzinfo=LISBON)  # the 28th, a day before


def test_today_is_the_configured_timezone_s_today():
    # 1 April 22:30 UTC is 23:30 in Lisbon but already 2 April in Auckland: passed there.
    late = datetime(2027, 4, 1, 22, 30, tzinfo=UTC)
    lead = [rule(birthday=timedelta(0))]
    [lisbon] = occasions(person(birthday="--04-01"), lead, late, LISBON)
    [auckland] = occasions(person(birthday="--04-01"), lead, late, AUCKLAND)
    assert lisbon.due_at.year == 2027 and auckland.due_at.year == 2028


def test_follow_up_the_day_after_a_meeting_unless_you_already_wrote():
    met = NOW - timedelta(hours=20)
    lag = [rule(follow_up=timedelta(days=1))]
    history = (Contact(met, "mutual", "meeting", "Quarterly review"),)
    [found] = occasions(person(history=history, last_meeting=met), lag, NOW, LISBON)
    assert found.due_at == met + timedelta(days=1)
    wrote = (*history, Contact(met + timedelta(hours=3), "out", "email"))
    assert occasions(person(history=wrote, last_meeting=met), lag, NOW, LISBON) == []
    done = {"follow_up": met + timedelta(days=1)}
    assert occasions(person(history=history, last_meeting=met, nudged=done), lag, NOW, LISBON) == []
    # The store keeps history from the last two-way contact on: your mail after the
    # meeting is gone once they answered it; their answer alone says you were in touch.
    answered = (Contact(met + timedelta(hours=5), "in", "email"),)
    assert occasions(person(history=answered, last_meeting=met), lag, NOW, LISBON) == []
    # A week past its day, a follow-up not sent is let go.
    long_ago = NOW - timedelta(days=9)
    old = (Contact(long_ago, "mutual", "meeting"),)
    assert occasions(person(history=old, last_meeting=long_ago), lag, NOW, LISBON) == []


def test_brief_before_a_meeting_once_saying_which_meeting_in_local_time():
    at = datetime(2026, 6, 2, 23, 30, tzinfo=UTC)  # 00:30 on 3 June in Lisbon (summer time)
    meeting = Contact(at, "mutual", "meeting", "Budget review")
    lead = [rule(brief=timedelta(hours=2))]
    [found] = occasions(person(upcoming=(meeting,)), lead, at - timedelta(days=1), LISBON)
    assert found.due_at == at - timedelta(hours=2)
    assert found.reason == "you meet on Wed 3 Jun at 00:30: Budget review"
    nudged = {"brief": at - timedelta(hours=2)}
    brief_sent = person(upcoming=(meeting,), nudged=nudged)
    assert occasions(brief_sent, lead, at - timedelta(days=1), LISBON) == []


def test_a_brief_names_a_follow_up_still_open():
    met = NOW - timedelta(days=5)
    meeting = Contact(NOW + timedelta(hours=3), "mutual", "meeting", "Review")
    rules = [rule(brief=timedelta(hours=4), follow_up=timedelta(days=1))]
    history = (Contact(met, "mutual", "meeting"),)
    ana = person(history=history, last_meeting=met, upcoming=(meeting,))
    brief = next(p for p in occasions(ana, rules, NOW, LISBON) if p.kind == "brief")
    assert brief.reason.endswith("; not yet followed up: the meeting of 2027-03-27")
    wrote = replace(ana, history=(*history, Contact(met + timedelta(days=1), "out", "email")))
    brief = next(p for p in occasions(wrote, rules, NOW, LISBON) if p.kind == "brief")
    assert "followed up" not in brief.reason
    before = NOW - timedelta(days=90)  # never followed up, and let go long ago
    long_ago = replace(ana, history=(Contact(before, "mutual", "meeting"),), last_meeting=before)
    brief = next(p for p in occasions(long_ago, rules, NOW, LISBON) if p.kind == "brief")
    assert "followed up" not in brief.reason


def test_an_upcoming_meeting_holds_back_the_cadence_nudge():
    cadence = Rule("r", Match(), timedelta(days=30))
    last = Contact(NOW - timedelta(days=29), "mutual", "call")
    plain = plan(person(history=(last,)), [cadence], NOW)
    assert plain.due_at == NOW + timedelta(days=1)
    meeting = Contact(NOW + timedelta(days=10), "mutual", "meeting")  # within the 14-day grace
    held = plan(person(history=(last,), upcoming=(meeting,)), [cadence], NOW)
    assert held.due_at == meeting.at + timedelta(days=30)
    assert "held back" in held.reason
    far = Contact(NOW + timedelta(days=40), "mutual", "meeting")  # beyond the grace
    assert plan(person(history=(last,), upcoming=(far,)), [cadence], NOW).due_at == plain.due_at


def test_days_in_a_reason_are_days_where_the_user_lives():
    cadence = Rule("r", Match(), timedelta(days=30))
    late = Contact(datetime(2026, 5, 31, 23, 30, tzinfo=UTC), "out", "call")  # 1 June in Lisbon
    assert "2026-06-01" in plan(person(history=(late,)), [cadence], NOW, LISBON).reason
    assert "2026-05-31" in plan(person(history=(late,)), [cadence], NOW).reason  # UTC


def test_kinds_are_independent_and_each_decided_by_its_first_rule():
    rules = [
        Rule("cadence only", Match(), timedelta(days=30)),
        Rule("birthdays", Match(), None, occasions={"birthday": timedelta(days=3)}),
        Rule("later birthdays", Match(), None, occasions={"birthday": timedelta(days=10)}),
    ]
    found = kinds(occasions(person(birthday="--04-15"), rules, NOW, LISBON))
    assert found["birthday"].rule == "birthdays"
    assert plan(person(birthday="--04-15"), rules, NOW).rule == "cadence only"


def test_birthday_message_is_personal():
    p = person(birthday="1990-04-15", preferred="Ana", notes="Loves climbing.")
    r = rule(birthday=timedelta(days=3))
    [found] = occasions(p, [r], NOW, LISBON)
    message = nudge(p, found, r, NOW, LISBON)
    assert message.title == "Ana's birthday is coming"
    assert message.body.startswith("Birthday on 15 April (37 years).")
    assert "About Ana: Loves climbing." in message.body
