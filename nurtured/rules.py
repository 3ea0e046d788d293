"""Rules: which people a rule selects and what it asks for.

Rules are plain values built by the config loader; the planner reads them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from fnmatch import fnmatchcase

DEFAULT_ANSWER_WINDOW = timedelta(days=14)
DEFAULT_RENOTIFY = timedelta(days=7)
DEFAULT_GRACE = timedelta(days=14)

#: Nudges tied to a date rather than a cadence, and the key of their one setting:
#: `birthday: {before: 3d}`, `follow_up: {after: 1d}`…
OCCASIONS = {
    "birthday": "before",
    "anniversary": "before",
    "follow_up": "after",
    "brief": "before",
}

#: Fields a message template may use, with what they hold.
TEMPLATE_FIELDS = {
    "name": "the person's full name",
    "preferred": "the name you call them by (NICKNAME, else the given name)",
    "since": "how long since the last contact, e.g. '2 months'",
    "last_channel": "how you were last in touch, e.g. 'call'",
    "last_note": "the note of the last interaction",
    "notes": "the person's notes from the address book",
    "rule": "the rule's name",
}


@dataclass(frozen=True, slots=True)
class Match:
    """Selects people. Every given criterion must hold; within one, any value may.

    Tags compare case-insensitively; names and emails are shell-style patterns
    (`*Müller`, `*@example.org`), also case-insensitive.
    """

    tags: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()

    def matches(self, name: str, tags: Iterable[str], emails: Iterable[str]) -> bool:
        if self.tags and not {t.casefold() for t in tags} & set(self.tags):
            return False
        if self.names and not any(fnmatchcase(name.casefold(), p) for p in self.names):
            return False
        return not self.emails or any(
            fnmatchcase(e.casefold(), p) for e in emails for p in self.emails
        )


@dataclass(frozen=True, slots=True)
class PullBack:
    """After `after` unanswered outreaches, wait `pause` and try one light touch."""

    after: int
    pause: timedelta


@dataclass(frozen=True, slots=True)
class Rule:
    """What a rule asks for. Each kind is independent: the first rule (in file
    order) that selects a person and has a kind decides that kind for them.

    `every` is the cadence (None: this rule sets none); `grace` holds a cadence
    nudge back when a meeting is scheduled within it; `occasions` maps
    birthday/anniversary/brief to their lead time and follow_up to its lag.
    """

    name: str
    match: Match
    every: timedelta | None
    grace: timedelta = DEFAULT_GRACE
    occasions: dict[str, timedelta] = field(default_factory=dict)
    answer_window: timedelta = DEFAULT_ANSWER_WINDOW
    pull_back: PullBack | None = None
    renotify: timedelta = DEFAULT_RENOTIFY
    notify: str | None = None
    message: str | None = None


def first_match(
    rules: Iterable[Rule],
    name: str,
    tags: Iterable[str],
    emails: Iterable[str],
    kind: str = "every",
) -> Rule | None:
    """The first rule in file order that selects this person and has this kind."""
    tags, emails = tuple(tags), tuple(emails)

    def has(rule: Rule) -> bool:
        return rule.every is not None if kind == "every" else kind in rule.occasions

    return next((r for r in rules if has(r) and r.match.matches(name, tags, emails)), None)
