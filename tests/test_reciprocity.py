"""Reciprocity: response rates and reply latencies, from threads or the answer window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from nurtured.reciprocity import Trace, reciprocity

T0 = datetime(2026, 3, 1, 9, tzinfo=UTC)
WINDOW = timedelta(days=14)
NOW = T0 + timedelta(days=100)


def at(days: float) -> datetime:
    return T0 + timedelta(days=days)


def test_a_threaded_reply_answers_the_message_it_names():
    history = [
        Trace(at(0), "out", "<a@me>"),
        Trace(at(1), "out", "<b@me>"),
        Trace(at(3), "in", "<c@them>", ("<a@me>",)),  # answers the first, two days on
    ]
    they = reciprocity(history, WINDOW, NOW).they_answer
    assert (they.asked, they.answered) == (2, 2)  # the second is answered by the window rule
    assert they.median_latency == timedelta(days=2)


def test_broken_threads_fall_back_to_the_answer_window():
    history = [Trace(at(0), "out", "<a@me>"), Trace(at(20), "in", "<x@them>")]
    they = reciprocity(history, WINDOW, NOW).they_answer
    assert (they.asked, they.answered, they.rate) == (1, 0, 0.0)
    history = [Trace(at(0), "out", "<a@me>"), Trace(at(5), "in", "<x@them>")]
    assert reciprocity(history, WINDOW, NOW).they_answer.rate == 1.0


def test_a_meeting_answers_an_outreach():
    history = [Trace(at(0), "out"), Trace(at(2), "mutual")]
    assert reciprocity(history, WINDOW, NOW).they_answer.answered == 1


def test_a_message_still_in_its_window_is_not_counted_yet():
    history = [Trace(NOW - timedelta(days=3), "out", "<a@me>")]
    they = reciprocity(history, WINDOW, NOW).they_answer
    assert (they.asked, they.rate) == (0, None)


def test_both_directions_are_measured_separately():
    history = [
        Trace(at(0), "in", "<q1@them>"),
        Trace(at(0.5), "out", "<r1@me>", ("<q1@them>",)),  # you answer in 12 hours
        Trace(at(10), "in", "<q2@them>"),
        Trace(at(40), "out", "<later@me>"),  # no thread, outside the window
    ]
    result = reciprocity(history, WINDOW, NOW)
    assert (result.you_answer.asked, result.you_answer.answered) == (2, 1)
    assert result.you_answer.median_latency == timedelta(hours=12)
    assert result.they_answer.asked == 2  # r1 (answered by nothing later) and the last
    assert result.they_answer.answered == 1  # r1 is followed by q2 within the window
