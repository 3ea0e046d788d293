"""Reciprocity: who answers whom, and how fast. Pure functions of a history.

A message is answered by a later one in the other direction that names it in
its thread (In-Reply-To, References); clients break threads, so failing
that, the first contact from the other side within the answer window counts.
A meeting or a call (`mutual`) answers everything before it.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Trace:
    """An interaction as reciprocity sees it."""

    at: datetime
    direction: str  # out | in | mutual
    message_id: str = ""
    replies_to: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Side:
    """How one side answers the other's messages."""

    asked: int  # messages whose answer window has passed, or that were answered
    answered: int
    median_latency: timedelta | None

    @property
    def rate(self) -> float | None:
        return self.answered / self.asked if self.asked else None


@dataclass(frozen=True, slots=True)
class Reciprocity:
    they_answer: Side  # your outreaches, answered by them
    you_answer: Side  # their messages, answered by you


def _side(history: Sequence[Trace], asking: str, window: timedelta, now: datetime) -> Side:
    answering = "in" if asking == "out" else "out"
    asked = answered = 0
    latencies: list[timedelta] = []
    for i, message in enumerate(history):
        if message.direction != asking:
            continue
        later = history[i + 1 :]
        linked = next(
            (
                t
                for t in later
                if t.direction == answering
                and message.message_id
                and message.message_id in t.replies_to
            ),
            None,
        )
        fallback = next(
            (
                t
                for t in later
                if t.direction in (answering, "mutual") and t.at - message.at <= window
            ),
            None,
        )
        answer = linked or fallback
        if answer is None:
            if message.at + window <= now:
                asked += 1
            continue
        asked += 1
        answered += 1
        latencies.append(answer.at - message.at)
    median = statistics.median_low(latencies) if latencies else None
    return Side(asked, answered, median)


def reciprocity(history: Sequence[Trace], window: timedelta, now: datetime) -> Reciprocity:
    """Response rates and median reply latencies in both directions.

    `history` is sorted by time; a message still inside its answer window
    and not answered yet is left out of the rate.
    """
    past = [t for t in history if t.at <= now]
    return Reciprocity(_side(past, "out", window, now), _side(past, "in", window, now))
