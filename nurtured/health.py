"""How a relationship is doing: a health score and a stage. Pure code.

Health is 0–100, the mean of four parts, each 0–100 and each explainable in
one line (`show` prints them):

- time: recency against the cadence. Full while the last two-way contact
  (they wrote, or you met or talked) is within one `every`, then falling to
  0 at three;
- intensity: weighted contact over the last year (a meeting or call counts
  3, a message 1) against two per cadence period;
- reciprocity: who initiates over the last year (your outreaches against
  theirs; meetings and calls are both sides at once), less 20 for each
  outreach of yours that is still unanswered;
- trust: longevity (known for five years: full) and regularity (calendar
  months, UTC, with a two-way contact in the last 365 days, out of twelve).

The stage follows Levinger's model of a relationship, judged in this order:

- ending: there was two-way contact, but none for a year and at least four
  cadence periods (someone who never answered stays an acquaintance);
- acquaintance: fewer than three two-way contacts so far;
- deterioration: the last two-way contact is more than two periods ago, two
  outreaches in a row went unanswered, or the last half-year has less than
  half the two-way contact of the half-year before (when that had two or more);
- buildup: known for less than a year, or the last half-year has clearly
  more two-way contact than the one before;
- continuation: otherwise, a relationship that holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

DEFAULT_EVERY = timedelta(days=90)  # for people no cadence rule selects
YEAR = timedelta(days=365)
HALF = timedelta(days=182)
STAGES = ("acquaintance", "buildup", "continuation", "deterioration", "ending")


@dataclass(frozen=True, slots=True)
class Pulse:
    """What the store counts of one person's history, as of `now` (see `Store`).

    `two_way` contacts are `in` and `mutual` ones; `weight` is the last year's
    contacts weighted (meetings and calls 3, the rest 1).
    """

    known_since: datetime  # the first contact, or when the card was first seen
    last_two_way: datetime | None = None
    two_way: int = 0  # ever
    weight: int = 0  # the last year
    outs: int = 0  # the last year
    ins: int = 0  # the last year
    months: int = 0  # of the last twelve, with a two-way contact
    recent: int = 0  # two-way contacts in the last half-year
    before: int = 0  # two-way contacts in the half-year before that


@dataclass(frozen=True, slots=True)
class Health:
    score: int
    time: int
    intensity: int
    reciprocity: int
    trust: int
    stage: str
    why: str  # the stage, in a few words

    def as_dict(self) -> dict[str, int | str]:
        return {name: getattr(self, name) for name in self.__slots__}


def assess(pulse: Pulse, every: timedelta | None, unanswered: int, now: datetime) -> Health:
    """The health and stage of one relationship."""
    period = every or DEFAULT_EVERY
    since = now - (pulse.last_two_way or pulse.known_since)
    time = _share(1 - (since - period) / (2 * period)) if since > period else 100
    expected = max(YEAR / period, 1.0) * 2
    intensity = _share(pulse.weight / expected)
    initiated = pulse.outs + pulse.ins
    balance = 1 - abs(pulse.outs - pulse.ins) / initiated if initiated else 1.0
    reciprocity = max(0, _share(balance) - 20 * unanswered)
    known = now - pulse.known_since
    trust = round(50 * min(known / (5 * YEAR), 1.0) + 50 * min(pulse.months, 12) / 12)
    score = round((time + intensity + reciprocity + trust) / 4)
    stage, why = _stage(pulse, period, unanswered, since, known)
    return Health(score, time, intensity, reciprocity, trust, stage, why)


def _stage(
    pulse: Pulse, period: timedelta, unanswered: int, since: timedelta, known: timedelta
) -> tuple[str, str]:
    if pulse.last_two_way and since >= max(YEAR, 4 * period):
        return "ending", f"no two-way contact for {since.days} days"
    if pulse.two_way < 3:
        return "acquaintance", f"{pulse.two_way} two-way contact(s) so far"
    if since > 2 * period:
        return "deterioration", f"last two-way contact {since.days} days ago"
    if unanswered >= 2:
        return "deterioration", f"{unanswered} outreaches in a row unanswered"
    if pulse.before >= 2 and pulse.recent * 2 < pulse.before:
        return "deterioration", f"{pulse.recent} contacts this half-year, {pulse.before} before"
    if known < YEAR:
        return "buildup", f"known for {known.days} days"
    if pulse.recent >= 2 and pulse.recent * 2 > pulse.before * 3:
        return "buildup", f"{pulse.recent} contacts this half-year, {pulse.before} before"
    return "continuation", "in touch as planned"


def _share(fraction: float) -> int:
    return round(100 * min(max(fraction, 0.0), 1.0))
