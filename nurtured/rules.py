"""Rules: which people a rule selects and what it asks for.

Rules are plain values built by the config loader; the planner reads them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from fnmatch import fnmatchcase

DEFAULT_ANSWER_WINDOW = timedelta(days=14)
DEFAULT_RENOTIFY = timedelta(days=7)

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
    name: str
    match: Match
    every: timedelta
    answer_window: timedelta = DEFAULT_ANSWER_WINDOW
    pull_back: PullBack | None = None
    renotify: timedelta = DEFAULT_RENOTIFY
    notify: str | None = None
    message: str | None = None


def first_match(
    rules: Iterable[Rule], name: str, tags: Iterable[str], emails: Iterable[str]
) -> Rule | None:
    """The first rule in file order that selects this person sets their cadence."""
    tags, emails = tuple(tags), tuple(emails)
    return next((r for r in rules if r.match.matches(name, tags, emails)), None)
