"""Tests for the pure planner: who is due when, and what may go out now.

`now` is always an argument here (an injected clock): no sleeping, no I/O.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from nurtured.planner import (
    CADENCE,
    LIGHT_TOUCH,
    Contact,
    Limits,
    PersonState,
    Waiting,
    digest_time,
    in_quiet_hours,
    plan,
    release,
)
from nurtured.rules import Match, PullBack, Rule

LISBON = ZoneInfo("Europe/Lisbon")
NEW_YORK = ZoneInfo("America/New_York")
DAY = timedelta(days=1)
QUIET = (time(22, 0), time(7, 30))


# -- builders ----------------------------------------------------------------------


def utc(y: int, m: int, d: int, h: int = 12, mi: int = 0, s: int = 0, us: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, s, us, tzinfo=UTC)


def rule(
    name: str = "friends",
    every: timedelta = timedelta(days=30),
    *,
    tags: tuple[str, ...] = (),
    names: tuple[str, ...] = (),
    emails: tuple[str, ...] = (),
    **kw: object,
) -> Rule:
    """A rule; Match values are given already folded, as the config loader does."""
    return Rule(name=name, match=Match(tags=tags, names=names, emails=emails), every=every, **kw)


def pulling_back(every: timedelta = timedelta(days=30), **kw: object) -> Rule:
    return rule(every=every, pull_back=PullBack(after=2, pause=timedelta(days=60)), **kw)


def out(at: datetime, channel: str = "email", note: str = "") -> Contact:
    return Contact(at, "out", channel, note)


def inn(at: datetime, channel: str = "call", note: str = "") -> Contact:
    return Contact(at, "in", channel, note)


def mutual(at: datetime, channel: str = "meeting", note: str = "") -> Contact:
    return Contact(at, "mutual", channel, note)


def person(*history: Contact, **kw: object) -> PersonState:
    values: dict[str, object] = {
        "id": 1,
        "name": "Ana Maria Silva",
        "first_seen": utc(2025, 6, 1),
        "tags": ("Friends",),
        "emails": ("ana@example.org",),
    }
    values.update(kw)
    return PersonState(history=tuple(history), **values)  # type: ignore[arg-type]


# -- which rule ----------------------------------------------------------------------


def test_no_matching_rule_means_no_nudge():
    p = person(inn(utc(2026, 1, 1)), tags=("work",))
    result = plan(p, [rule(tags=("family",))], utc(2026, 3, 1))
    assert (result.rule, result.kind, result.due_at) == (None, None, None)
    assert result.last_contact == inn(utc(2026, 1, 1))


def test_no_rules_at_all_means_no_nudge():
    result = plan(person(inn(utc(2026, 1, 1))), [], utc(2026, 3, 1))
    assert (result.kind, result.due_at) == (None, None)


def test_first_matching_rule_in_file_order_sets_cadence():
    rules = [
        rule("close", timedelta(days=14), tags=("friends",)),
        rule("everyone", timedelta(days=90)),
    ]
    result = plan(person(inn(utc(2026, 1, 1))), rules, utc(2026, 1, 2))
    assert result.rule == "close"
    assert result.due_at == utc(2026, 1, 15)


def test_later_rule_applies_when_earlier_ones_do_not_match():
    rules = [
        rule("family", timedelta(days=7), tags=("family",)),
        rule("everyone", timedelta(days=90)),
    ]
    result = plan(person(inn(utc(2026, 1, 1))), rules, utc(2026, 1, 2))
    assert result.rule == "everyone"
    assert result.due_at == utc(2026, 4, 1)


def test_match_by_tags_any_of_case_insensitive():
    r = rule(tags=("family", "friends"))
    assert plan(person(tags=("FRIENDS",)), [r], utc(2026, 1, 1)).rule == "friends"
    assert plan(person(tags=("Work", "family")), [r], utc(2026, 1, 1)).rule == "friends"
    assert plan(person(tags=("work",)), [r], utc(2026, 1, 1)).rule is None


def test_match_by_name_pattern_case_insensitive():
    r = rule(names=("*silva",))
    assert plan(person(name="Ana Maria SILVA"), [r], utc(2026, 1, 1)).rule == "friends"
    assert plan(person(name="Silva Ana"), [r], utc(2026, 1, 1)).rule is None


def test_match_by_email_pattern_any_address():
    r = rule(emails=("*@example.org",))
    p = person(emails=("ana@work.test", "Ana@Example.org"))
    assert plan(p, [r], utc(2026, 1, 1)).rule == "friends"
    assert plan(person(emails=("ana@work.test",)), [r], utc(2026, 1, 1)).rule is None
    assert plan(person(emails=()), [r], utc(2026, 1, 1)).rule is None


def test_match_requires_every_given_criterion():
    r = rule(tags=("friends",), emails=("*@example.org",))
    assert plan(person(), [r], utc(2026, 1, 1)).rule == "friends"
    assert plan(person(emails=("ana@work.test",)), [r], utc(2026, 1, 1)).rule is None
    assert plan(person(tags=("work",)), [r], utc(2026, 1, 1)).rule is None


def test_empty_match_selects_everyone():
    p = person(tags=(), emails=(), name="Zé")
    assert plan(p, [rule("everyone")], utc(2026, 1, 1)).rule == "everyone"


# -- cadence -------------------------------------------------------------------------


@pytest.mark.parametrize("make", [out, inn, mutual])
def test_cadence_due_one_every_after_last_contact(make):
    result = plan(person(make(utc(2026, 1, 10, 9, 15))), [rule()], utc(2026, 1, 20))
    assert result.kind == CADENCE
    assert result.due_at == utc(2026, 2, 9, 9, 15)
    assert result.rule == "friends"


def test_last_contact_is_latest_in_any_direction():
    p = person(inn(utc(2026, 1, 1)), mutual(utc(2026, 1, 5)), out(utc(2026, 1, 8, 18)))
    result = plan(p, [rule()], utc(2026, 1, 20))
    assert result.last_contact == out(utc(2026, 1, 8, 18))
    assert result.due_at == utc(2026, 2, 7, 18)


def test_future_interaction_is_not_last_contact():
    p = person(inn(utc(2026, 1, 1)), mutual(utc(2026, 2, 15)))
    result = plan(p, [rule()], utc(2026, 1, 20))
    assert result.last_contact == inn(utc(2026, 1, 1))
    assert result.due_at == utc(2026, 1, 31)


def test_interaction_exactly_now_counts_as_last_contact():
    now = utc(2026, 1, 20, 8, 30)
    result = plan(person(inn(utc(2026, 1, 1)), mutual(now)), [rule()], now)
    assert result.last_contact == mutual(now)
    assert result.due_at == utc(2026, 2, 19, 8, 30)


def test_no_interaction_first_due_one_cadence_after_first_seen():
    p = person(first_seen=utc(2026, 1, 3, 10))
    result = plan(p, [rule()], utc(2026, 1, 4))
    assert result.kind == CADENCE
    assert result.due_at == utc(2026, 2, 2, 10)
    assert result.last_contact is None
    assert result.unanswered == 0


def test_imported_people_are_not_due_at_once():
    """A fresh address-book import: nobody is due before one cadence has passed."""
    now = utc(2026, 1, 4)
    people = [person(id=i, first_seen=now) for i in range(5)]
    dues = {plan(p, [rule()], now).due_at for p in people}
    assert dues == {utc(2026, 2, 3)}


def test_only_future_interactions_fall_back_to_first_seen():
    p = person(inn(utc(2026, 5, 1)), first_seen=utc(2026, 1, 3))
    result = plan(p, [rule()], utc(2026, 1, 10))
    assert result.last_contact is None
    assert result.due_at == utc(2026, 2, 2)


# -- unanswered outreach -------------------------------------------------------------


def test_out_answered_by_later_in_is_not_unanswered():
    p = person(out(utc(2026, 1, 1)), out(utc(2026, 1, 5)), inn(utc(2026, 1, 6)))
    assert plan(p, [rule()], utc(2026, 3, 1)).unanswered == 0


def test_unanswered_counts_outs_whose_answer_window_elapsed():
    p = person(inn(utc(2026, 1, 1)), out(utc(2026, 1, 10)), out(utc(2026, 2, 1)))
    assert plan(p, [rule()], utc(2026, 3, 1)).unanswered == 2


def test_fresh_out_inside_answer_window_is_not_yet_unanswered():
    p = person(inn(utc(2026, 1, 1)), out(utc(2026, 1, 10)), out(utc(2026, 2, 20)))
    assert plan(p, [rule()], utc(2026, 3, 1)).unanswered == 1


def test_out_counts_as_unanswered_exactly_when_window_ends():
    p = person(inn(utc(2026, 1, 1)), out(utc(2026, 1, 10)))
    r = rule(answer_window=timedelta(days=5))
    assert plan(p, [r], utc(2026, 1, 15) - timedelta(seconds=1)).unanswered == 0
    assert plan(p, [r], utc(2026, 1, 15)).unanswered == 1


def test_unanswered_counts_only_outs_since_last_in_or_mutual():
    p = person(
        out(utc(2025, 10, 1)),
        out(utc(2025, 11, 1)),
        mutual(utc(2025, 12, 1)),
        out(utc(2026, 1, 1)),
    )
    assert plan(p, [rule()], utc(2026, 3, 1)).unanswered == 1


def test_unanswered_ignores_future_outs():
    p = person(inn(utc(2026, 1, 1)), out(utc(2026, 1, 10)), out(utc(2026, 6, 1)))
    result = plan(p, [rule()], utc(2026, 3, 1))
    assert result.unanswered == 1
    assert result.due_at == utc(2026, 2, 9)


# -- pull back and the light touch -------------------------------------------------


def test_light_touch_after_two_unanswered():
    p = person(inn(utc(2026, 1, 1)), out(utc(2026, 1, 10)), out(utc(2026, 2, 20, 17, 45)))
    result = plan(p, [pulling_back()], utc(2026, 3, 20))
    assert result.kind == LIGHT_TOUCH
    assert result.due_at == utc(2026, 4, 21, 17, 45)
    assert result.unanswered == 2
    assert result.last_contact == out(utc(2026, 2, 20, 17, 45))


def test_light_touch_pause_counts_from_the_last_outreach_even_if_it_is_fresh():
    p = person(inn(utc(2026, 1, 1)), out(utc(2026, 1, 10)), out(utc(2026, 2, 20)))
    result = plan(p, [pulling_back()], utc(2026, 2, 21))
    assert result.kind == LIGHT_TOUCH
    assert result.due_at == utc(2026, 4, 21)
    assert result.unanswered == 1


def test_one_out_with_pull_back_keeps_cadence_from_the_outreach():
    p = person(inn(utc(2026, 1, 1)), out(utc(2026, 1, 10)))
    result = plan(p, [pulling_back()], utc(2026, 3, 1))
    assert result.kind == CADENCE
    assert result.due_at == utc(2026, 2, 9)


def test_two_outs_without_any_in_also_pull_back():
    p = person(out(utc(2026, 1, 10)), out(utc(2026, 2, 1)), first_seen=utc(2025, 1, 1))
    result = plan(p, [pulling_back()], utc(2026, 3, 1))
    assert result.kind == LIGHT_TOUCH
    assert result.due_at == utc(2026, 4, 2)


def test_gone_quiet_after_light_touch_unanswered():
    p = person(
        inn(utc(2026, 1, 1)),
        out(utc(2026, 1, 10)),
        out(utc(2026, 2, 20)),
        out(utc(2026, 4, 21)),
    )
    result = plan(p, [pulling_back()], utc(2026, 6, 1))
    assert (result.kind, result.due_at) == (None, None)
    assert "quiet" in result.reason
    assert result.rule == "friends"
    assert result.unanswered == 3


def test_gone_quiet_stays_quiet_with_more_outs_and_old_nudges():
    p = person(
        inn(utc(2026, 1, 1)),
        *(out(utc(2026, m, 1)) for m in (2, 3, 4, 5)),
        last_nudge_at=utc(2026, 4, 1),
        skipped_at=utc(2026, 4, 2),
    )
    result = plan(p, [pulling_back()], utc(2026, 12, 1))
    assert (result.kind, result.due_at) == (None, None)


@pytest.mark.parametrize("make", [inn, mutual])
def test_contact_after_going_quiet_resets_to_cadence(make):
    p = person(
        inn(utc(2026, 1, 1)),
        out(utc(2026, 1, 10)),
        out(utc(2026, 2, 20)),
        out(utc(2026, 4, 21)),
        make(utc(2026, 6, 5, 20)),
    )
    result = plan(p, [pulling_back()], utc(2026, 6, 10))
    assert result.kind == CADENCE
    assert result.due_at == utc(2026, 7, 5, 20)
    assert result.unanswered == 0


def test_answer_before_light_touch_resets_pull_back():
    p = person(
        inn(utc(2026, 1, 1)),
        out(utc(2026, 1, 10)),
        out(utc(2026, 2, 20)),
        inn(utc(2026, 3, 1)),
        out(utc(2026, 3, 2)),
    )
    result = plan(p, [pulling_back()], utc(2026, 3, 5))
    assert result.kind == CADENCE
    assert result.due_at == utc(2026, 4, 1)


def test_without_pull_back_outs_just_reset_the_cadence_clock():
    p = person(
        inn(utc(2026, 1, 1)),
        out(utc(2026, 1, 10)),
        out(utc(2026, 2, 20)),
        out(utc(2026, 4, 21)),
    )
    result = plan(p, [rule()], utc(2026, 6, 1))
    assert result.kind == CADENCE
    assert result.due_at == utc(2026, 5, 21)
    assert result.unanswered == 3


# -- renotify --------------------------------------------------------------------------


def test_renotify_a_week_after_a_nudge_sent_at_due():
    p = person(inn(utc(2026, 1, 1)), last_nudge_at=utc(2026, 1, 31))
    result = plan(p, [rule()], utc(2026, 2, 3))
    assert result.kind == CADENCE
    assert result.due_at == utc(2026, 2, 7)


def test_renotify_counts_from_a_late_nudge():
    p = person(inn(utc(2026, 1, 1)), last_nudge_at=utc(2026, 2, 3, 8, 5))
    result = plan(p, [rule()], utc(2026, 2, 4))
    assert result.due_at == utc(2026, 2, 10, 8, 5)


def test_renotify_uses_the_rules_interval():
    p = person(inn(utc(2026, 1, 1)), last_nudge_at=utc(2026, 1, 31))
    result = plan(p, [rule(renotify=timedelta(days=3))], utc(2026, 2, 1))
    assert result.due_at == utc(2026, 2, 3)


def test_nudge_before_due_does_not_renotify():
    """A nudge from an earlier cycle (before the latest contact) leaves the cadence alone."""
    p = person(inn(utc(2026, 1, 1)), last_nudge_at=utc(2025, 12, 20))
    assert plan(p, [rule()], utc(2026, 1, 2)).due_at == utc(2026, 1, 31)


def test_new_interaction_after_nudge_moves_due_to_interaction_plus_every():
    p = person(inn(utc(2026, 1, 1)), out(utc(2026, 2, 2, 9)), last_nudge_at=utc(2026, 1, 31))
    result = plan(p, [rule()], utc(2026, 2, 3))
    assert result.kind == CADENCE
    assert result.due_at == utc(2026, 3, 4, 9)


def test_renotify_after_every_reminder_never_more_often():
    p = person(inn(utc(2026, 1, 1)), last_nudge_at=utc(2026, 2, 7))
    assert plan(p, [rule()], utc(2026, 2, 8)).due_at == utc(2026, 2, 14)


def test_renotify_keeps_the_light_touch():
    p = person(
        inn(utc(2026, 1, 1)),
        out(utc(2026, 1, 10)),
        out(utc(2026, 2, 20)),
        last_nudge_at=utc(2026, 4, 21),
    )
    result = plan(p, [pulling_back()], utc(2026, 4, 22))
    assert result.kind == LIGHT_TOUCH
    assert result.due_at == utc(2026, 4, 28)


def test_renotify_for_someone_never_contacted():
    p = person(first_seen=utc(2026, 1, 1), last_nudge_at=utc(2026, 1, 31))
    assert plan(p, [rule()], utc(2026, 2, 1)).due_at == utc(2026, 2, 7)


# -- skip, snooze, pause ---------------------------------------------------------------


def test_skip_restarts_the_cycle_from_the_skip():
    p = person(inn(utc(2026, 1, 1)), skipped_at=utc(2026, 2, 2, 7))
    result = plan(p, [rule()], utc(2026, 2, 3))
    assert result.kind == CADENCE
    assert result.due_at == utc(2026, 3, 4, 7)
    assert "skipped" in result.reason


def test_skip_after_a_nudge_is_not_renotified():
    p = person(inn(utc(2026, 1, 1)), last_nudge_at=utc(2026, 1, 31), skipped_at=utc(2026, 2, 1))
    assert plan(p, [rule()], utc(2026, 2, 2)).due_at == utc(2026, 3, 3)


def test_old_skip_before_the_last_contact_changes_nothing():
    p = person(inn(utc(2026, 1, 10)), skipped_at=utc(2026, 1, 1))
    assert plan(p, [rule()], utc(2026, 1, 11)).due_at == utc(2026, 2, 9)


def test_skipping_a_light_touch_waits_another_pause():
    p = person(
        inn(utc(2026, 1, 1)),
        out(utc(2026, 1, 10)),
        out(utc(2026, 2, 20)),
        skipped_at=utc(2026, 4, 22),
    )
    result = plan(p, [pulling_back()], utc(2026, 4, 23))
    assert result.kind == LIGHT_TOUCH
    assert result.due_at == utc(2026, 6, 21)


def test_snooze_holds_the_nudge_until_snoozed_until():
    p = person(inn(utc(2026, 1, 1)), snoozed_until=utc(2026, 2, 14, 9))
    result = plan(p, [rule()], utc(2026, 2, 1))
    assert result.kind == CADENCE
    assert result.due_at == utc(2026, 2, 14, 9)
    assert "snoozed" in result.reason


def test_snooze_earlier_than_due_changes_nothing():
    p = person(inn(utc(2026, 1, 1)), snoozed_until=utc(2026, 1, 20))
    assert plan(p, [rule()], utc(2026, 1, 2)).due_at == utc(2026, 1, 31)


def test_snooze_beyond_renotify_wins():
    p = person(inn(utc(2026, 1, 1)), last_nudge_at=utc(2026, 1, 31), snoozed_until=utc(2026, 2, 20))
    assert plan(p, [rule()], utc(2026, 2, 1)).due_at == utc(2026, 2, 20)


def test_pause_without_a_date_means_no_nudge():
    p = person(inn(utc(2026, 1, 1)), paused=True)
    result = plan(p, [rule()], utc(2026, 6, 1))
    assert (result.kind, result.due_at) == (None, None)
    assert result.rule == "friends"
    assert "paused" in result.reason


def test_pause_until_a_date_holds_the_nudge_until_then():
    p = person(inn(utc(2026, 1, 1)), paused=True, paused_until=utc(2026, 3, 15))
    result = plan(p, [rule()], utc(2026, 2, 1))
    assert result.kind == CADENCE
    assert result.due_at == utc(2026, 3, 15)


def test_pause_until_before_due_changes_nothing():
    p = person(inn(utc(2026, 1, 1)), paused=True, paused_until=utc(2026, 1, 10))
    assert plan(p, [rule()], utc(2026, 1, 20)).due_at == utc(2026, 1, 31)


def test_later_of_snooze_and_pause_wins():
    p = person(
        inn(utc(2026, 1, 1)),
        snoozed_until=utc(2026, 3, 1),
        paused=True,
        paused_until=utc(2026, 2, 15),
    )
    assert plan(p, [rule()], utc(2026, 1, 2)).due_at == utc(2026, 3, 1)


# -- release: no limits, retries, batching ---------------------------------------------


def test_release_with_nothing_waiting():
    assert release([], utc(2026, 6, 1), Limits(quiet_hours=QUIET), LISBON, 0) == ([], None)


def test_release_due_nudges_go_together_most_overdue_first():
    waiting = [
        Waiting(1, utc(2026, 6, 1, 9)),
        Waiting(2, utc(2026, 5, 1)),
        Waiting(3, utc(2026, 5, 20)),
    ]
    go, wake = release(waiting, utc(2026, 6, 1, 10), Limits(), LISBON, 0)
    assert [w.id for w in go] == [2, 3, 1]
    assert wake is None


def test_release_holds_a_nudge_not_yet_due_and_wakes_at_its_due_time():
    waiting = [Waiting(1, utc(2026, 6, 1, 9)), Waiting(2, utc(2026, 6, 1, 15))]
    go, wake = release(waiting, utc(2026, 6, 1, 10), Limits(), LISBON, 0)
    assert [w.id for w in go] == [1]
    assert wake == utc(2026, 6, 1, 15)


def test_failed_delivery_waits_for_retry_at():
    waiting = [Waiting(1, utc(2026, 6, 1, 9), retry_at=utc(2026, 6, 1, 10, 5))]
    go, wake = release(waiting, utc(2026, 6, 1, 10), Limits(), LISBON, 0)
    assert go == []
    assert wake == utc(2026, 6, 1, 10, 5)


def test_failed_delivery_goes_once_retry_at_passed():
    waiting = [Waiting(1, utc(2026, 6, 1, 9), retry_at=utc(2026, 6, 1, 10, 5))]
    go, wake = release(waiting, utc(2026, 6, 1, 10, 5), Limits(), LISBON, 0)
    assert [w.id for w in go] == [1]
    assert wake is None


# -- release: quiet hours --------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "wake"),
    [
        # 03:00 WEST, the same night: wake at 07:30 WEST
        (utc(2026, 6, 10, 2), utc(2026, 6, 10, 6, 30)),
        # 22:30 WEST, before midnight: wake at 07:30 WEST the next morning
        (utc(2026, 6, 9, 21, 30), utc(2026, 6, 10, 6, 30)),
        # 22:00 sharp: quiet hours have begun
        (utc(2026, 6, 9, 21), utc(2026, 6, 10, 6, 30)),
        # 07:29 WEST: still quiet
        (utc(2026, 6, 10, 6, 29), utc(2026, 6, 10, 6, 30)),
    ],
)
def test_quiet_hours_hold_everything_until_they_end(now, wake):
    waiting = [Waiting(1, utc(2026, 6, 1)), Waiting(2, utc(2026, 6, 9))]
    assert release(waiting, now, Limits(quiet_hours=QUIET), LISBON, 0) == ([], wake)


def test_quiet_hours_end_releases_at_local_end():
    waiting = [Waiting(1, utc(2026, 6, 1)), Waiting(2, utc(2026, 6, 9))]
    go, wake = release(waiting, utc(2026, 6, 10, 6, 30), Limits(quiet_hours=QUIET), LISBON, 0)
    assert [w.id for w in go] == [1, 2]
    assert wake is None


def test_quiet_hours_are_local_time():
    """21:30 UTC is 22:30 in Lisbon in summer (quiet) but 17:30 in New York (not)."""
    now = utc(2026, 6, 9, 21, 30)
    assert in_quiet_hours(now, QUIET, LISBON)
    assert not in_quiet_hours(now, QUIET, NEW_YORK)
    assert not in_quiet_hours(now, None, LISBON)


def test_quiet_hours_within_one_day():
    lunch = (time(12, 0), time(14, 0))
    waiting = [Waiting(1, utc(2026, 1, 1))]
    # Lisbon winter is UTC+0
    assert release(waiting, utc(2026, 1, 5, 13), Limits(quiet_hours=lunch), LISBON, 0) == (
        [],
        utc(2026, 1, 5, 14),
    )
    go, _ = release(waiting, utc(2026, 1, 5, 14), Limits(quiet_hours=lunch), LISBON, 0)
    assert [w.id for w in go] == [1]


@pytest.mark.parametrize(
    "now",
    [
        utc(2026, 3, 28, 22, 30),  # 22:30 WET, the evening before the change
        utc(2026, 3, 29, 0, 59),  # 00:59 WET, just before 01:00 -> 02:00
        utc(2026, 3, 29, 1, 30),  # 02:30 WEST, after the change
        utc(2026, 3, 29, 6, 0),  # 07:00 WEST (would be 06:00 in winter time)
    ],
)
def test_quiet_hours_end_at_local_0730_on_spring_forward_day(now):
    waiting = [Waiting(1, utc(2026, 3, 1))]
    # 07:30 WEST (UTC+1) on 29 March is 06:30 UTC
    assert release(waiting, now, Limits(quiet_hours=QUIET), LISBON, 0) == (
        [],
        utc(2026, 3, 29, 6, 30),
    )


@pytest.mark.parametrize(
    "now",
    [
        utc(2026, 10, 24, 21, 30),  # 22:30 WEST, the evening before the change
        utc(2026, 10, 25, 0, 30),  # 01:30 WEST, first pass through 01:xx
        utc(2026, 10, 25, 1, 30),  # 01:30 WET, second pass
        utc(2026, 10, 25, 7, 0),  # 07:00 WET (would be 08:00 in summer time)
    ],
)
def test_quiet_hours_end_at_local_0730_on_fall_back_day(now):
    waiting = [Waiting(1, utc(2026, 10, 1))]
    # 07:30 WET (UTC+0) on 25 October is 07:30 UTC
    assert release(waiting, now, Limits(quiet_hours=QUIET), LISBON, 0) == (
        [],
        utc(2026, 10, 25, 7, 30),
    )


def test_quiet_hours_over_after_local_0730_on_fall_back_day():
    waiting = [Waiting(1, utc(2026, 10, 1))]
    go, wake = release(waiting, utc(2026, 10, 25, 7, 30), Limits(quiet_hours=QUIET), LISBON, 0)
    assert [w.id for w in go] == [1]
    assert wake is None


@pytest.mark.parametrize(
    ("now", "wake"),
    [
        # 23:00 EST on 7 March; 07:30 EDT (UTC-4) on 8 March
        (utc(2026, 3, 8, 4), utc(2026, 3, 8, 11, 30)),
        # 23:00 EDT on 31 October; 07:30 EST (UTC-5) on 1 November
        (utc(2026, 11, 1, 3), utc(2026, 11, 1, 12, 30)),
    ],
)
def test_quiet_hours_end_across_new_york_dst(now, wake):
    waiting = [Waiting(1, utc(2026, 1, 1))]
    assert release(waiting, now, Limits(quiet_hours=QUIET), NEW_YORK, 0) == ([], wake)


# -- release: daily cap ----------------------------------------------------------------


def test_daily_cap_releases_the_room_left_most_overdue_first():
    waiting = [
        Waiting(1, utc(2026, 6, 10, 9)),
        Waiting(2, utc(2026, 6, 8)),
        Waiting(3, utc(2026, 6, 9)),
        Waiting(4, utc(2026, 6, 10, 8)),
    ]
    go, wake = release(waiting, utc(2026, 6, 10, 10), Limits(max_per_day=3), LISBON, 1)
    assert [w.id for w in go] == [2, 3]
    # next local midnight: 00:00 WEST on 11 June is 23:00 UTC on 10 June
    assert wake == utc(2026, 6, 10, 23)


def test_daily_cap_reached_holds_everything_until_local_midnight():
    waiting = [Waiting(1, utc(2026, 6, 8)), Waiting(2, utc(2026, 6, 9))]
    go, wake = release(waiting, utc(2026, 6, 10, 10), Limits(max_per_day=2), LISBON, 2)
    assert go == []
    assert wake == utc(2026, 6, 10, 23)


def test_daily_cap_overshot_releases_nothing():
    waiting = [Waiting(1, utc(2026, 6, 8))]
    go, wake = release(waiting, utc(2026, 6, 10, 10), Limits(max_per_day=2), LISBON, 5)
    assert go == []
    assert wake == utc(2026, 6, 10, 23)


def test_daily_cap_with_room_releases_all():
    waiting = [Waiting(1, utc(2026, 6, 8)), Waiting(2, utc(2026, 6, 9))]
    go, wake = release(waiting, utc(2026, 6, 10, 10), Limits(max_per_day=3), LISBON, 1)
    assert [w.id for w in go] == [1, 2]
    assert wake is None


@pytest.mark.parametrize(
    ("now", "midnight"),
    [
        (utc(2026, 3, 28, 10), utc(2026, 3, 29, 0)),  # 00:00 WET on 29 March
        (utc(2026, 3, 29, 10), utc(2026, 3, 29, 23)),  # 00:00 WEST on 30 March
        (utc(2026, 10, 24, 10), utc(2026, 10, 24, 23)),  # 00:00 WEST on 25 October
        (utc(2026, 10, 25, 10), utc(2026, 10, 26, 0)),  # 00:00 WET on 26 October
    ],
)
def test_daily_cap_wakes_at_local_midnight_across_dst(now, midnight):
    go, wake = release([Waiting(1, utc(2026, 3, 1))], now, Limits(max_per_day=1), LISBON, 1)
    assert go == []
    assert wake == midnight


# -- release: digest ---------------------------------------------------------------------


def test_digest_holds_a_nudge_until_the_first_tick_after_due():
    waiting = [Waiting(1, utc(2026, 6, 10, 7, 30))]
    go, wake = release(waiting, utc(2026, 6, 10, 7, 45), Limits(digest="0 8 * * *"), LISBON, 0)
    assert go == []
    # 08:00 WEST on 11 June
    assert wake == utc(2026, 6, 11, 7)


def test_digest_releases_everything_whose_tick_came_together():
    waiting = [Waiting(1, utc(2026, 6, 10, 7, 30)), Waiting(2, utc(2026, 6, 9, 15))]
    go, wake = release(waiting, utc(2026, 6, 11, 7), Limits(digest="0 8 * * *"), LISBON, 0)
    assert [w.id for w in go] == [2, 1]
    assert wake is None


def test_digest_releases_a_nudge_due_exactly_at_a_tick():
    waiting = [Waiting(1, utc(2026, 1, 10, 8))]  # 08:00 WET
    go, _ = release(waiting, utc(2026, 1, 10, 8), Limits(digest="0 8 * * *"), LISBON, 0)
    assert [w.id for w in go] == [1]


def test_digest_catch_up_releases_at_once_after_downtime():
    """The 08:00 tick passed while the daemon was down: release on start, not tomorrow."""
    waiting = [Waiting(1, utc(2026, 6, 1, 6)), Waiting(2, utc(2026, 6, 2, 6))]
    go, wake = release(waiting, utc(2026, 6, 3, 15, 17), Limits(digest="0 8 * * *"), LISBON, 0)
    assert [w.id for w in go] == [1, 2]
    assert wake is None


def test_digest_wakes_at_the_earliest_pending_tick():
    waiting = [Waiting(1, utc(2026, 6, 10, 9)), Waiting(2, utc(2026, 6, 12, 9))]
    go, wake = release(waiting, utc(2026, 6, 10, 10), Limits(digest="0 8 * * *"), LISBON, 0)
    assert go == []
    assert wake == utc(2026, 6, 11, 7)


def test_digest_and_retry_wait_for_the_later_of_both():
    waiting = [Waiting(1, utc(2026, 6, 10, 6), retry_at=utc(2026, 6, 10, 7, 10))]
    limits = Limits(digest="0 8 * * *")
    assert release(waiting, utc(2026, 6, 10, 7, 5), limits, LISBON, 0) == (
        [],
        utc(2026, 6, 10, 7, 10),
    )


def test_digest_with_cap_and_quiet_hours_together():
    limits = Limits(quiet_hours=QUIET, max_per_day=1, digest="0 8 * * *")
    waiting = [Waiting(1, utc(2026, 6, 9, 23)), Waiting(2, utc(2026, 6, 9, 22))]
    assert release(waiting, utc(2026, 6, 10, 5), limits, LISBON, 0) == (
        [],
        utc(2026, 6, 10, 6, 30),
    )
    go, wake = release(waiting, utc(2026, 6, 10, 7), limits, LISBON, 0)
    assert [w.id for w in go] == [2]
    assert wake == utc(2026, 6, 10, 23)


# -- digest_time -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("due", "tick"),
    [
        (utc(2026, 1, 10, 7), utc(2026, 1, 10, 8)),  # winter: 08:00 WET
        (utc(2026, 1, 10, 8), utc(2026, 1, 10, 8)),  # due at the tick
        (utc(2026, 1, 10, 8, 1), utc(2026, 1, 11, 8)),
        (utc(2026, 6, 10, 6), utc(2026, 6, 10, 7)),  # summer: 08:00 WEST
        (utc(2026, 3, 28, 9), utc(2026, 3, 29, 7)),  # over the spring change
        (utc(2026, 10, 24, 9), utc(2026, 10, 25, 8)),  # over the autumn change
    ],
)
def test_digest_time_is_the_first_local_tick_at_or_after_due(due, tick):
    assert digest_time(due, "0 8 * * *", LISBON) == tick


def test_digest_time_tick_is_never_before_a_sub_second_due_time():
    due = utc(2026, 1, 10, 8, 0, 0, 500_000)
    assert digest_time(due, "0 8 * * *", LISBON) == utc(2026, 1, 11, 8)


@pytest.mark.parametrize(
    "due",
    [
        utc(2026, 10, 24, 12),
        utc(2026, 10, 25, 0, 0),  # 01:00 WEST
        utc(2026, 10, 25, 0, 30),  # 01:30 WEST: the tick itself
    ],
)
def test_digest_time_autumn_dst_first_0130_is_the_tick(due):
    # 01:30 WEST (UTC+1) on 25 October is 00:30 UTC
    assert digest_time(due, "30 1 * * *", LISBON) == utc(2026, 10, 25, 0, 30)


@pytest.mark.parametrize(
    "due",
    [
        utc(2026, 10, 25, 1, 0),  # 01:00 WET, second pass through 01:xx
        utc(2026, 10, 25, 1, 29),  # 01:29 WET
        utc(2026, 10, 25, 1, 30),  # 01:30 WET
    ],
)
def test_digest_time_autumn_dst_due_in_repeated_hour_is_not_given_an_earlier_tick(due):
    # The day's 01:30 already passed (at 00:30 UTC): the next tick is 01:30 WET on 26 October.
    assert digest_time(due, "30 1 * * *", LISBON) == utc(2026, 10, 26, 1, 30)


def test_digest_time_autumn_dst_tick_is_never_before_due():
    """Nudges due every minute over the autumn night: none gets a tick before its due time."""
    start = utc(2026, 10, 24, 18)
    dues = [start + timedelta(minutes=m) for m in range(12 * 60)]
    early = [d for d in dues if digest_time(d, "30 1 * * *", LISBON) < d]
    assert early == []


def test_digest_time_autumn_dst_daily_cron_ticks_once_that_night():
    """A daily 01:30 digest fires once on 25 October, at the first 01:30 (as cron does);
    a nudge due between the two 01:30s waits for 01:30 on the 26th."""
    due = utc(2026, 10, 25, 0, 31)  # 01:31 WEST, after the first 01:30
    assert digest_time(due, "30 1 * * *", LISBON) == utc(2026, 10, 26, 1, 30)


def test_digest_time_spring_dst_never_before_due_and_one_tick_per_day():
    start = utc(2026, 3, 28, 18)
    dues = [start + timedelta(minutes=m) for m in range(12 * 60)]
    ticks = {due: digest_time(due, "0 8 * * *", LISBON) for due in dues}
    assert [d for d, t in ticks.items() if t < d] == []
    assert set(ticks.values()) == {utc(2026, 3, 29, 7)}


def test_release_does_not_send_a_repeated_hour_nudge_at_once_in_digest_mode():
    """Due at 01:10 WET (second pass) on 25 October: the 01:30 digest that night already
    went out at 00:30 UTC, so the nudge must wait for a later tick, not go at once."""
    waiting = [Waiting(1, utc(2026, 10, 25, 1, 10))]
    go, wake = release(waiting, utc(2026, 10, 25, 1, 10), Limits(digest="30 1 * * *"), LISBON, 0)
    assert go == []
    assert wake == utc(2026, 10, 26, 1, 30)


def test_snooze_after_a_nudge_replaces_renotify():
    sent = utc(2026, 3, 1)
    person = PersonState(
        id=1, name="Ana Lima", first_seen=sent - timedelta(days=30), last_nudge_at=sent,
        snoozed_until=sent + DAY,
    )  # fmt: skip
    result = plan(person, [rule()], sent + timedelta(hours=1))
    assert result.due_at == sent + DAY  # not a week later
    assert "snoozed until" in result.reason
