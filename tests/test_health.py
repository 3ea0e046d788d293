"""Health and stage of a relationship, from what the store counts of its history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nurtured.health import DEFAULT_EVERY, Pulse, assess

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
MONTH = timedelta(days=30)


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def steady(**changes: object) -> Pulse:
    """Six years of a monthly coffee, the last one a week ago."""
    fields: dict[str, object] = {
        "known_since": ago(6 * 365),
        "last_two_way": ago(7),
        "two_way": 72,
        "weight": 36,  # twelve meetings this year
        "outs": 0,
        "ins": 0,
        "months": 12,
        "recent": 6,
        "before": 6,
    }
    return Pulse(**{**fields, **changes})  # type: ignore[arg-type]


def test_a_steady_friendship_is_healthy_and_continuing():
    h = assess(steady(), MONTH, 0, NOW)
    assert (h.time, h.intensity, h.reciprocity, h.trust) == (100, 100, 100, 100)
    assert (h.score, h.stage) == (100, "continuation")


def test_time_falls_from_one_cadence_to_zero_at_three():
    assert assess(steady(last_two_way=ago(30)), MONTH, 0, NOW).time == 100
    assert assess(steady(last_two_way=ago(60)), MONTH, 0, NOW).time == 50
    assert assess(steady(last_two_way=ago(90)), MONTH, 0, NOW).time == 0
    # No cadence rule: judged against 90 days.
    assert assess(steady(last_two_way=NOW - 2 * DEFAULT_EVERY), None, 0, NOW).time == 50


def test_intensity_weighs_meetings_above_messages_against_two_per_period():
    assert assess(steady(weight=12), MONTH, 0, NOW).intensity == 49  # 12 of ~24.3 expected
    assert assess(steady(weight=0), MONTH, 0, NOW).intensity == 0


def test_reciprocity_is_who_initiates_less_what_goes_unanswered():
    assert assess(steady(outs=9, ins=3), MONTH, 0, NOW).reciprocity == 50
    assert assess(steady(outs=4, ins=4), MONTH, 1, NOW).reciprocity == 80
    assert assess(steady(outs=10, ins=0), MONTH, 3, NOW).reciprocity == 0


def test_trust_is_longevity_and_regularity():
    young = steady(known_since=ago(365), months=6)
    assert assess(young, MONTH, 0, NOW).trust == 10 + 25  # a fifth of five years, half the year


@pytest.mark.parametrize(
    ("changes", "unanswered", "stage", "why"),
    [
        ({"last_two_way": ago(400)}, 0, "ending", "no two-way contact for 400 days"),
        ({"two_way": 2}, 0, "acquaintance", "2 two-way contact(s) so far"),
        ({"last_two_way": ago(70)}, 0, "deterioration", "last two-way contact 70 days ago"),
        ({}, 2, "deterioration", "2 outreaches in a row unanswered"),
        ({"recent": 2, "before": 6}, 0, "deterioration", "2 contacts this half-year, 6 before"),
        ({"known_since": ago(200)}, 0, "buildup", "known for 200 days"),
        ({"recent": 9, "before": 4}, 0, "buildup", "9 contacts this half-year, 4 before"),
        ({"recent": 6, "before": 5}, 0, "continuation", "in touch as planned"),
    ],
)
def test_stages_after_levinger(changes, unanswered, stage, why):
    h = assess(steady(**changes), MONTH, unanswered, NOW)
    assert (h.stage, h.why) == (stage, why)


def test_someone_never_met_is_an_acquaintance_not_an_ending():
    card_only = Pulse(known_since=ago(800))
    h = assess(card_only, MONTH, 0, NOW)
    assert h.stage == "acquaintance"
    assert h.time == 0 and h.intensity == 0
