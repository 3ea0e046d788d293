"""Pure planning: when to nudge whom, and which waiting nudges may go out now.

Nothing here reads a clock, a file or a database: every function takes the
state it needs and a `now`. That keeps the rules exact and testable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from nurtured.clock import format_duration
from nurtured.health import Pulse
from nurtured.rules import OCCASIONS, Rule, first_match

CADENCE = "cadence"
LIGHT_TOUCH = "light_touch"


@dataclass(frozen=True, slots=True)
class Contact:
    """An interaction as the planner sees it."""

    at: datetime
    direction: str  # out | in | mutual
    channel: str = "note"
    note: str = ""


@dataclass(frozen=True, slots=True)
class PersonState:
    """What the planner knows of one person.

    `history` is sorted by time and holds at least the last `in`/`mutual`
    contact and everything after it; older history does not change the plan.
    `last_nudge_at` is when a cadence nudge for this person last went out,
    `nudged` when each occasion (birthday, follow_up…) last did.
    `upcoming` are the meetings scheduled with them (a title as note), soonest first;
    `last_meeting` the last one that took place. `birthday` and `anniversary`
    are as the address book wrote them.
    """

    id: int
    name: str
    first_seen: datetime
    preferred: str = ""
    tags: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    notes: str = ""
    history: tuple[Contact, ...] = ()
    paused: bool = False
    paused_until: datetime | None = None
    snoozed_until: datetime | None = None
    skipped_at: datetime | None = None
    last_nudge_at: datetime | None = None
    nudged: dict[str, datetime] = field(default_factory=dict)
    upcoming: tuple[Contact, ...] = ()
    last_meeting: datetime | None = None
    birthday: str = ""
    anniversary: str = ""
    pulse: Pulse | None = None  # what health and stage are judged from


@dataclass(frozen=True, slots=True)
class Plan:
    """The next nudge for a person (`kind` None: no nudge is planned) and why."""

    rule: str | None
    kind: str | None
    due_at: datetime | None
    reason: str
    unanswered: int = 0
    last_contact: Contact | None = None


def _day(moment: datetime, tz: tzinfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d")


def plan(person: PersonState, rules: Sequence[Rule], now: datetime, tz: tzinfo = UTC) -> Plan:
    """Plan one person's next nudge under the first rule that selects them (days in
    its reason are days in `tz`)."""
    past = [c for c in person.history if c.at <= now]
    last = past[-1] if past else None
    rule = first_match(rules, person.name, person.tags, person.emails)
    if rule is None or rule.every is None:
        return Plan(None, None, None, "no rule sets a cadence for this person", 0, last)

    # The outreaches since they were last in touch; any in/mutual contact resets all of it.
    outs: list[Contact] = []
    for contact in reversed(past):
        if contact.direction != "out":
            break
        outs.append(contact)
    outs.reverse()
    unanswered = sum(1 for o in outs if o.at + rule.answer_window <= now)

    def planned(kind: str | None, due: datetime | None, reason: str) -> Plan:
        return Plan(rule.name, kind, due, reason, unanswered, last)

    if person.paused and person.paused_until is None:
        return planned(None, None, "paused until you resume")

    pull_back = rule.pull_back
    if pull_back and len(outs) > pull_back.after:
        return planned(
            None,
            None,
            f"gone quiet: {len(outs)} outreaches without an answer, the light touch included;"
            " no more nudges until they get in touch",
        )
    if pull_back and len(outs) == pull_back.after:
        kind, step = LIGHT_TOUCH, pull_back.pause
        due = outs[-1].at + step
        reason = (
            f"{len(outs)} outreaches without an answer since {_day(outs[0].at, tz)}:"
            f" pulling back {format_duration(step)} after the last, then a light touch"
        )
    else:
        kind, step = CADENCE, rule.every
        if last is None:
            due = person.first_seen + step
            reason = (
                f"every {format_duration(step)}; no contact yet,"
                f" first seen {_day(person.first_seen, tz)}"
            )
        else:
            due = last.at + step
            reason = (
                f"every {format_duration(step)} after the last contact"
                f" ({last.direction} {last.channel}, {_day(last.at, tz)})"
            )

    if person.skipped_at and person.skipped_at + step > due:
        due = person.skipped_at + step
        reason += f"; skipped on {_day(person.skipped_at, tz)}"
    # A snooze after the last nudge is the user's answer to it: it replaces renotify.
    snoozed = person.snoozed_until and (
        person.last_nudge_at is None or person.snoozed_until > person.last_nudge_at
    )
    if person.last_nudge_at and person.last_nudge_at >= due and not snoozed:
        due = person.last_nudge_at + rule.renotify
        reason += (
            f"; reminded on {_day(person.last_nudge_at, tz)} without a contact since:"
            f" again after {format_duration(rule.renotify)}"
        )
    if person.snoozed_until and person.snoozed_until > due:
        due = person.snoozed_until
        reason += f"; snoozed until {_day(due, tz)}"
    if person.paused and person.paused_until and person.paused_until > due:
        due = person.paused_until
        reason += f"; paused until {_day(due, tz)}"
    # No nagging about someone you will see soon: the meeting resets the clock.
    meeting = next((m.at for m in person.upcoming if m.at > now), None)
    if kind == CADENCE and meeting and meeting <= due + rule.grace:
        due = meeting + step
        reason = f"held back: you meet on {_day(meeting, tz)}; then every {format_duration(step)}"
    return planned(kind, due, reason)


def plans(person: PersonState, rules: Sequence[Rule], now: datetime, tz: tzinfo) -> list[Plan]:
    """Everything planned for one person: the cadence plan first, then their occasions."""
    return [plan(person, rules, now, tz), *occasions(person, rules, now, tz)]


FOLLOW_UP_EXPIRY = timedelta(days=7)  # a follow-up not sent by then is let go


def occasions(person: PersonState, rules: Sequence[Rule], now: datetime, tz: tzinfo) -> list[Plan]:
    """The date-bound nudges of one person: birthday, anniversary, follow-up, brief.

    Each kind is decided by the first rule that selects the person and has it,
    and each occurrence is nudged once.
    """
    found = []
    for kind in OCCASIONS:
        rule = first_match(rules, person.name, person.tags, person.emails, kind)
        if rule is None or (person.paused and person.paused_until is None):
            continue
        lead = rule.occasions[kind]
        done = person.nudged.get(kind)
        if kind in ("birthday", "anniversary"):
            when = _next_anniversary(getattr(person, kind), now, tz, lead, done)
            due = None if when is None else when[0]
            reason = "" if when is None else f"{kind} on {when[1]}{when[2]}"
        elif kind == "follow_up":
            due = _follow_up(person, lead, now)
            if due is not None and done and done >= due:
                due = None
            reason = f"follow up on the meeting of {_day(person.last_meeting, tz)}" if due else ""
        else:  # brief
            meeting = next((m for m in person.upcoming if m.at > now), None)
            due = meeting.at - lead if meeting else None
            if due is not None and done and done >= due:
                due = None
            reason = _meeting(meeting, tz) if due and meeting else ""
            follow = first_match(rules, person.name, person.tags, person.emails, "follow_up")
            if reason and follow and _follow_up(person, follow.occasions["follow_up"], now):
                assert person.last_meeting is not None
                reason += f"; not yet followed up: the meeting of {_day(person.last_meeting, tz)}"
        if due is not None:
            if person.paused and person.paused_until and person.paused_until > due:
                continue  # paused over it: this occurrence is skipped
            last = next((c for c in reversed(person.history) if c.at <= now), None)
            found.append(Plan(rule.name, kind, due, reason, last_contact=last))
    return found


def _follow_up(person: PersonState, lag: timedelta, now: datetime) -> datetime | None:
    """When to follow up on the last meeting: `lag` after it, unless you have been in
    touch since (either way); a week past that, it is let go."""
    met = person.last_meeting
    if met is None or any(c.at > met for c in person.history):
        return None
    due = met + lag
    return due if due >= now - FOLLOW_UP_EXPIRY else None


def _meeting(meeting: Contact, tz: tzinfo) -> str:
    """The brief's reason, in the user's time: "you meet on Wed 25 Nov at 14:00: Review"."""
    at = meeting.at.astimezone(tz)
    return f"you meet on {at:%a %-d %b at %H:%M}" + (f": {meeting.note}" if meeting.note else "")


def _next_anniversary(
    written: str, now: datetime, tz: tzinfo, lead: timedelta, done: datetime | None
) -> tuple[datetime, str, str] | None:
    """When to nudge before the next occurrence of a date, that date, and the years it marks."""
    parsed = parse_day(written)
    if parsed is None:
        return None
    year, month, day = parsed
    today = now.astimezone(tz).date()
    for candidate_year in (today.year, today.year + 1, today.year + 2):
        moment = _on(candidate_year, month, day)
        nudge = datetime.combine(moment, time(9), tz).astimezone(UTC) - lead
        if moment < today or (done and done >= nudge):
            continue  # passed, or already nudged for this one
        years = f" ({candidate_year - year} years)" if year else ""
        return nudge, f"{moment:%-d %B}", years
    return None


def _on(year: int, month: int, day: int) -> date:
    """That day in that year; 29 February is kept on 28 February in common years."""
    try:
        return date(year, month, day)
    except ValueError:
        return date(year, month, day - 1)


def parse_day(written: str) -> tuple[int | None, int, int] | None:
    """A vCard BDAY/ANNIVERSARY as exporters write it: (year or None, month, day).

    `1980-04-15`, `19800415`, `--04-15`, `--0415`, with or without a time;
    Apple's year 1604 means "no year".
    """
    text = written.strip().split("T")[0]
    match = re.fullmatch(r"(\d{4}|--)-?(\d{2})-?(\d{2})", text)
    if not match:
        return None
    year = None if match[1] in ("--", "1604") else int(match[1])
    month, day = int(match[2]), int(match[3])
    try:
        date(2000, month, day)  # a leap year: 29 February is a real day
    except ValueError:
        return None
    return year, month, day


# -- delivery limits -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Waiting:
    """A nudge that fell due and waits for delivery."""

    id: int
    due_at: datetime
    retry_at: datetime | None = None  # after a failed delivery


@dataclass(frozen=True, slots=True)
class Limits:
    quiet_hours: tuple[time, time] | None = None
    max_per_day: int | None = None
    digest: str | None = None


def in_quiet_hours(now: datetime, quiet: tuple[time, time] | None, tz: tzinfo) -> bool:
    if quiet is None:
        return False
    start, end = quiet
    t = now.astimezone(tz).time()
    return start <= t < end if start < end else (t >= start or t < end)


def _next_local(now: datetime, at: time, tz: tzinfo) -> datetime:
    """The next moment after `now` when the local clock reads `at` (DST-aware)."""
    local = now.astimezone(tz)
    for days in (0, 1, 2):
        candidate = datetime.combine(local.date() + timedelta(days=days), at, tz)
        if candidate > now:
            return candidate.astimezone(UTC)
    raise AssertionError("unreachable")


def next_day(now: datetime, tz: tzinfo) -> datetime:
    """The next local midnight: when the daily cap starts over."""
    return _next_local(now, time(0), tz)


def digest_time(due_at: datetime, digest: str, tz: tzinfo) -> datetime:
    """The first digest tick at or after `due_at`.

    Cron reads the wall clock: when the clocks go back, a wall time that
    happens twice is one tick, at its first occurrence (as cron itself does).
    """
    from croniter import croniter

    # croniter gives the first tick strictly after `start`; ticks fall on whole seconds.
    # Step back in UTC: wall-clock arithmetic would lose the DST fold.
    start = due_at.replace(microsecond=0) - timedelta(seconds=0 if due_at.microsecond else 1)
    ticks = croniter(digest, start.astimezone(tz))
    while True:
        tick = ticks.get_next(datetime).astimezone(tz)
        if not tick.fold:
            return tick.astimezone(UTC)


def start_of_day(now: datetime, tz: tzinfo) -> datetime:
    local = now.astimezone(tz)
    return datetime.combine(local.date(), time(0), tz).astimezone(UTC)


def release(
    waiting: Sequence[Waiting],
    now: datetime,
    limits: Limits,
    tz: tzinfo,
    sent_today: int,
) -> tuple[list[Waiting], datetime | None]:
    """Which waiting nudges go out now (most overdue first), and when to look again.

    Quiet hours hold everything until they end; with a digest each nudge waits
    for the first tick after it fell due; the daily cap holds the rest for the
    next day. A nudge whose tick passed while the daemon was down goes at once.
    """
    if not waiting:
        return [], None
    if in_quiet_hours(now, limits.quiet_hours, tz):
        assert limits.quiet_hours is not None
        return [], _next_local(now, limits.quiet_hours[1], tz)

    def ready_at(w: Waiting) -> datetime:
        at = digest_time(w.due_at, limits.digest, tz) if limits.digest else w.due_at
        return max(at, w.retry_at) if w.retry_at else at

    ready, later = [], []
    for w in waiting:
        (ready if ready_at(w) <= now else later).append(w)
    ready.sort(key=lambda w: (w.due_at, w.id))
    wake = min((ready_at(w) for w in later), default=None)
    if limits.max_per_day is not None:
        room = max(0, limits.max_per_day - sent_today)
        if len(ready) > room:
            ready = ready[:room]
            tomorrow = next_day(now, tz)
            wake = min(wake, tomorrow) if wake else tomorrow
    return ready, wake
