"""From plans to delivered nudges: replan, queue what fell due, deliver what may go now.

These are the effects around the pure planner. The daemon's scheduler calls
them; the CLI calls `replan` after a change so `status` is right at once.
A nudge is a reminder row from the moment it falls due; its state moves
due → sending → sent (or failed, retried with back-off), so a crash at any
point leaves a row that is delivered again, never a lost or doubled one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta

from nurtured import health, messages, planner
from nurtured.config import Config
from nurtured.notify import Notifier
from nurtured.store import Reminder, Store

log = logging.getLogger(__name__)

FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(hours=1)


def retry_delay(attempts: int) -> timedelta:
    """Back-off after the n-th failed delivery: 30 s, 1 min, 2 min … at most an hour."""
    return min(FIRST_RETRY * 2 ** max(0, attempts - 1), MAX_RETRY)


async def replan(
    store: Store, config: Config, now: datetime, people: Iterable[int] | None = None
) -> list[tuple[planner.PersonState, list[planner.Plan]]]:
    """Recompute and store the plans of some people, or of everyone (None).

    Each person has a cadence plan, then their occasions (birthday, follow-up…),
    and their health and stage are judged anew.
    """
    rules, tz = config.rules, config.timezone
    by_name = {r.name: r for r in rules}
    plans = [(s, planner.plans(s, rules, now, tz)) for s in await store.person_states(people, now)]
    assessed = {}
    for s, (cadence, *_) in plans:
        if s.pulse is not None:
            rule = by_name.get(cadence.rule or "")
            every = rule.every if rule else None
            assessed[s.id] = health.assess(s.pulse, every, cadence.unanswered, now)
    await store.save_plans([(s.id, ps) for s, ps in plans], assessed)
    return plans


async def queue_due(store: Store, config: Config, now: datetime) -> int:
    """Turn every plan that fell due into a reminder row with its message."""
    people = await store.plans_due(now)
    if not people:
        return 0
    rules = {r.name: r for r in config.rules}
    rows = []
    for person, plans in await replan(store, config, now, people):
        for plan in plans:
            if plan.kind is None or plan.due_at is None or plan.due_at > now:
                continue
            rule = rules[plan.rule]
            message = messages.nudge(person, plan, rule, now, config.timezone)
            rows.append(
                (person.id, rule.name, plan.kind, plan.due_at, rule.notify, message.title,
                 message.body)
            )  # fmt: skip
    await store.add_reminders(rows, now)
    if rows:
        log.info("%d nudge(s) fell due", len(rows))
    return len(rows)


async def deliver(
    store: Store, config: Config, notifier: Notifier, now: datetime
) -> datetime | None:
    """Send what quiet hours, the daily cap and the digest let go now.

    Nudges released together for the same channel become one message.
    Returns when to look again for held-back or failed nudges.
    """
    sent_today = await store.sent_since(planner.start_of_day(now, config.timezone))
    cap = config.limits.max_per_day
    if cap is not None and sent_today >= cap:  # nothing more today: don't even load the backlog
        return planner.next_day(now, config.timezone) if await store.waiting_count() else None
    waiting = await store.waiting()
    if not waiting:
        return None
    go, wake = planner.release(
        [planner.Waiting(r.id, r.due_at, r.retry_at) for r in waiting],
        now,
        config.limits,
        config.timezone,
        sent_today,
    )
    if not go:
        return wake
    by_id = {r.id: r for r in waiting}
    taken = await store.mark_sending([w.id for w in go])  # none closed since we looked
    batch = await _as_of_now(store, config, [by_id[w.id] for w in go if w.id in taken], now)

    # The tag comes from the rule as it is now: a renamed tag must not strand a nudge.
    tags = {r.name: r.notify for r in config.rules}
    groups: dict[str | None, list[Reminder]] = {}
    for reminder in batch:
        groups.setdefault(tags.get(reminder.rule, reminder.tag), []).append(reminder)
    delivered = {r.id: set(r.delivered) for r in batch}
    errors: dict[int, list[str]] = {r.id: [] for r in batch}
    for tag, group in groups.items():
        targets = notifier.for_tag(tag)
        if not targets:
            for r in group:
                errors[r.id].append(f"no channel tagged {tag!r}")
        for target in targets:
            todo = [r for r in group if target.channel.key not in delivered[r.id]]
            if not todo:
                continue
            message = messages.batch([messages.Message(r.title, r.body) for r in todo])
            error = await notifier.send(target, message.title, message.body)
            if error:
                log.warning("delivery failed: %s", error)
                for r in todo:
                    errors[r.id].append(error)
                continue
            await store.mark_channel([r.id for r in todo], target.channel.key, now)
            for r in todo:
                delivered[r.id].add(target.channel.key)
            log.info("sent %d nudge(s) to %s", len(todo), target.shown)

    outcomes = []
    for r in batch:
        error = "; ".join(errors[r.id])
        retry = now + retry_delay(r.attempts + 1) if error else None
        outcomes.append((r.id, sorted(delivered[r.id]), error, retry))
        if retry and (wake is None or retry < wake):
            wake = retry
    await store.mark_delivered(outcomes, now)
    sent = {r.person_id for r, (_, _, error, _) in zip(batch, outcomes, strict=True) if not error}
    if sent:  # the next nudge for them waits for `renotify`
        await replan(store, config, now, sent)
    return wake


async def _as_of_now(
    store: Store, config: Config, batch: list[Reminder], now: datetime
) -> list[Reminder]:
    """The nudges about to go, written anew as of now: one held back for days by the
    daily cap or quiet hours must not say how long it has been as of the day it fell
    due, nor miss a note added since. A nudge whose plan has changed keeps its text."""
    rules, tz = {r.name: r for r in config.rules}, config.timezone
    people = await store.person_states({r.person_id for r in batch}, now)
    planned = {s.id: (s, planner.plans(s, config.rules, now, tz)) for s in people}
    fresh, rows = [], []
    for reminder in batch:
        person, plans = planned.get(reminder.person_id, (None, []))
        rule = rules.get(reminder.rule)
        wanted = (reminder.rule, reminder.kind, reminder.due_at)
        plan = next((p for p in plans if (p.rule, p.kind, p.due_at) == wanted), None)
        if person is None or rule is None or plan is None:
            fresh.append(reminder)
            continue
        message = messages.nudge(person, plan, rule, now, tz)
        fresh.append(replace(reminder, title=message.title, body=message.body))
        rows.append((message.title, message.body, reminder.id))
    await store.rewrite_messages(rows)
    return fresh
