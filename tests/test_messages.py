"""Tests for what a nudge says: personal default, light touch, templates, batching."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nurtured.messages import Message, batch, fields, nudge
from nurtured.planner import CADENCE, LIGHT_TOUCH, Contact, PersonState, Plan, plan
from nurtured.rules import TEMPLATE_FIELDS, Match, PullBack, Rule

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


# -- builders ----------------------------------------------------------------------


def rule(message: str | None = None, **kw: object) -> Rule:
    values: dict[str, object] = {"name": "friends", "match": Match(), "every": timedelta(days=30)}
    values.update(kw)
    return Rule(message=message, **values)  # type: ignore[arg-type]


def person(*history: Contact, **kw: object) -> PersonState:
    values: dict[str, object] = {
        "id": 7,
        "name": "Joana Marques Costa",
        "first_seen": datetime(2025, 1, 1, tzinfo=UTC),
        "preferred": "Jo",
        "notes": "Loves climbing; two kids.",
    }
    values.update(kw)
    return PersonState(history=tuple(history), **values)  # type: ignore[arg-type]


def cadence_plan(last: Contact | None, unanswered: int = 0) -> Plan:
    return Plan("friends", CADENCE, NOW, "why", unanswered, last)


def light_plan(last: Contact | None, unanswered: int = 2) -> Plan:
    return Plan("friends", LIGHT_TOUCH, NOW, "why", unanswered, last)


CALL = Contact(datetime(2026, 3, 1, 18, 30, tzinfo=UTC), "mutual", "call", "Talked about her move")


# -- titles ------------------------------------------------------------------------


def test_title_reaches_out_to_the_preferred_name():
    message = nudge(person(CALL), cadence_plan(CALL), rule(), NOW)
    assert message.title == "Reach out to Jo"


def test_title_falls_back_to_the_first_word_of_the_name():
    message = nudge(person(CALL, preferred=""), cadence_plan(CALL), rule(), NOW)
    assert message.title == "Reach out to Joana"


def test_light_touch_title():
    message = nudge(person(CALL), light_plan(CALL), rule(), NOW)
    assert message.title == "A light touch for Jo"


# -- the personal default body --------------------------------------------------------


def test_body_says_how_long_since_the_last_contact_and_through_what_channel():
    body = nudge(person(CALL, notes=""), cadence_plan(CALL), rule(), NOW).body
    assert body.splitlines() == [
        "It's been 2 months since you talked (a call, 1 Mar 2026).",
        "Last time: Talked about her move",
    ]


@pytest.mark.parametrize(
    ("direction", "channel", "since", "phrase"),
    [
        ("out", "email", timedelta(days=3), "It's been 3 days since you reached out (an email,"),
        (
            "in",
            "message",
            timedelta(days=21),
            "It's been 3 weeks since they reached out (a message,",
        ),
        ("mutual", "meeting", timedelta(hours=5), "It's been 5 hours since you talked (a meeting,"),
        ("mutual", "note", timedelta(days=400), "It's been 1 year since you talked (a note,"),
    ],
)
def test_body_phrases_direction_channel_and_time(direction, channel, since, phrase):
    last = Contact(NOW - since, direction, channel)
    body = nudge(person(last), cadence_plan(last), rule(), NOW).body
    assert body.splitlines()[0].startswith(phrase)


def test_body_names_an_unknown_channel_as_is():
    last = Contact(datetime(2026, 4, 1, tzinfo=UTC), "in", "postcard")
    body = nudge(person(last), cadence_plan(last), rule(), NOW).body
    assert (
        body.splitlines()[0] == "It's been 4 weeks since they reached out (postcard, 1 Apr 2026)."
    )


def test_body_includes_the_last_note_and_the_persons_notes():
    body = nudge(person(CALL), cadence_plan(CALL), rule(), NOW).body
    assert body.splitlines()[1:] == [
        "Last time: Talked about her move",
        "About Jo: Loves climbing; two kids.",
    ]


def test_body_leaves_out_empty_notes():
    last = Contact(datetime(2026, 4, 1, tzinfo=UTC), "in", "call")
    body = nudge(person(last, notes=""), cadence_plan(last), rule(), NOW).body
    assert body == "It's been 4 weeks since they reached out (a call, 1 Apr 2026)."


def test_body_without_any_contact_says_so():
    body = nudge(person(notes=""), cadence_plan(None), rule(), NOW).body
    assert body == "You haven't been in touch with Jo since they joined your contacts."


def test_light_touch_body_says_keep_it_light_with_no_ask():
    last = Contact(datetime(2026, 3, 1, tzinfo=UTC), "out", "email")
    body = nudge(person(last, notes=""), light_plan(last, 2), rule(), NOW).body
    assert body.splitlines() == [
        "It's been 2 months since you reached out (an email, 1 Mar 2026).",
        "Your last 2 attempts to reach them went unanswered, so keep it light:"
        " a short, friendly hello, no ask.",
    ]


def test_cadence_body_does_not_ask_to_keep_it_light():
    body = nudge(person(CALL), cadence_plan(CALL, unanswered=2), rule(), NOW).body
    assert "keep it light" not in body
    assert "no ask" not in body


def test_nudge_from_a_real_light_touch_plan():
    """End to end with the planner: two unanswered emails, then a light touch."""
    history = (
        Contact(datetime(2026, 1, 1, tzinfo=UTC), "in", "call"),
        Contact(datetime(2026, 1, 10, tzinfo=UTC), "out", "email"),
        Contact(datetime(2026, 2, 20, tzinfo=UTC), "out", "email", "Asked about dinner"),
    )
    r = rule(pull_back=PullBack(after=2, pause=timedelta(days=60)))
    p = person(*history)
    now = datetime(2026, 4, 21, tzinfo=UTC)
    result = plan(p, [r], now)
    message = nudge(p, result, r, now)
    assert message == Message(
        "A light touch for Jo",
        "It's been 2 months since you reached out (an email, 20 Feb 2026).\n"
        "Your last 2 attempts to reach them went unanswered, so keep it light:"
        " a short, friendly hello, no ask.\n"
        "Last time: Asked about dinner\n"
        "About Jo: Loves climbing; two kids.",
    )


# -- templates ---------------------------------------------------------------------------


def test_fields_offer_exactly_the_documented_template_fields():
    values = fields(person(CALL), cadence_plan(CALL), rule(), NOW)
    assert set(values) == set(TEMPLATE_FIELDS)


def test_fields_hold_the_persons_values():
    values = fields(person(CALL), cadence_plan(CALL), rule(), NOW)
    assert values == {
        "name": "Joana Marques Costa",
        "preferred": "Jo",
        "since": "2 months",
        "last_channel": "call",
        "last_note": "Talked about her move",
        "notes": "Loves climbing; two kids.",
        "rule": "friends",
    }


def test_fields_without_a_contact_are_empty():
    values = fields(person(), cadence_plan(None), rule(), NOW)
    assert (values["since"], values["last_channel"], values["last_note"]) == ("", "", "")


def test_rule_template_is_formatted_with_every_field():
    template = " ".join(f"{key}=[{{{key}}}]" for key in TEMPLATE_FIELDS) + "\n"
    message = nudge(person(CALL), cadence_plan(CALL), rule(template), NOW)
    assert message.body == (
        "name=[Joana Marques Costa] preferred=[Jo] since=[2 months] last_channel=[call]"
        " last_note=[Talked about her move] notes=[Loves climbing; two kids.] rule=[friends]"
    )


def test_rule_template_keeps_the_personal_title():
    template = "Time to call {preferred} ({since})."
    message = nudge(person(CALL), cadence_plan(CALL), rule(template), NOW)
    assert message == Message("Reach out to Jo", "Time to call Jo (2 months).")
    light = nudge(person(CALL), light_plan(CALL), rule(template), NOW)
    assert light.title == "A light touch for Jo"


# -- batching ----------------------------------------------------------------------------


def test_batch_of_one_returns_it_unchanged():
    one = Message("Reach out to Jo", "It's been 2 months.")
    assert batch([one]) is one


def test_batch_of_several_is_one_message_naming_each_person():
    messages = [
        Message("Reach out to Jo", "It's been 2 months."),
        Message("A light touch for Rui", "Keep it light."),
        Message("Reach out to Inês", "Last time: coffee"),
    ]
    combined = batch(messages)
    assert combined.title == "3 people to get in touch with"
    assert combined.body == (
        "• Reach out to Jo\nIt's been 2 months.\n\n"
        "• A light touch for Rui\nKeep it light.\n\n"
        "• Reach out to Inês\nLast time: coffee"
    )
