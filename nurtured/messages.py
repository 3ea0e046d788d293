"""What a nudge says: personal, short, with something to talk about."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from nurtured.clock import humanize
from nurtured.planner import LIGHT_TOUCH, PersonState, Plan
from nurtured.rules import Rule

_CHANNEL_PHRASES = {
    "call": "a call",
    "email": "an email",
    "meeting": "a meeting",
    "message": "a message",
    "note": "a note",
}


@dataclass(frozen=True, slots=True)
class Message:
    title: str
    body: str


def fields(person: PersonState, plan: Plan, rule: Rule, now: datetime) -> dict[str, str]:
    """The values a message template can use (see rules.TEMPLATE_FIELDS)."""
    last = plan.last_contact
    return {
        "name": person.name,
        "preferred": person.preferred or person.name.split()[0],
        "since": humanize(now - last.at) if last else "",
        "last_channel": last.channel if last else "",
        "last_note": last.note if last else "",
        "notes": person.notes,
        "rule": rule.name,
    }


def nudge(person: PersonState, plan: Plan, rule: Rule, now: datetime, tz: tzinfo = UTC) -> Message:
    """The nudge for one person, from the rule's template or the personal default."""
    values = fields(person, plan, rule, now)
    name = values["preferred"]
    light = plan.kind == LIGHT_TOUCH
    titles = {
        LIGHT_TOUCH: f"A light touch for {name}",
        "birthday": f"{name}'s birthday is coming",
        "anniversary": f"{name}'s anniversary is coming",
        "follow_up": f"Follow up with {name}",
        "brief": f"Before you meet {name}",
    }
    title = titles.get(plan.kind or "", f"Reach out to {name}")
    if rule.message:
        return Message(title, rule.message.format(**values).strip())

    last = plan.last_contact
    lines = []
    if plan.kind in ("birthday", "anniversary", "follow_up", "brief"):
        lines.append(plan.reason[:1].upper() + plan.reason[1:] + ".")
    if last is None:
        lines.append(f"You haven't been in touch with {name} since they joined your contacts.")
    else:
        how = _CHANNEL_PHRASES.get(last.channel, last.channel)
        who = {"out": "you reached out", "in": "they reached out", "mutual": "you talked"}
        lines.append(
            f"It's been {values['since']} since {who.get(last.direction, 'you were in touch')}"
            f" ({how}, {last.at.astimezone(tz).strftime('%-d %b %Y')})."
        )
    if light:
        tries = rule.pull_back.after if rule.pull_back else plan.unanswered
        lines.append(
            f"Your last {tries} attempts to reach them went unanswered, so keep it light:"
            " a short, friendly hello, no ask."
        )
    if last and last.note:
        lines.append(f"Last time: {last.note}")
    if person.notes:
        lines.append(f"About {name}: {person.notes}")
    return Message(title, "\n".join(lines))


def batch(messages: Sequence[Message]) -> Message:
    """Several nudges released together become one message: no burst."""
    if len(messages) == 1:
        return messages[0]
    title = f"{len(messages)} people to get in touch with"
    body = "\n\n".join(f"• {m.title}\n{m.body}" for m in messages)
    return Message(title, body)
