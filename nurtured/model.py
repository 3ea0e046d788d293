"""The observations sources hand to the core, in the domain's words.

A source plugin never decides anything about reminders: it only reports
*cards* (what an address book says about someone), *interactions* (dated
traces of contact) and *key dates* (a birthday a calendar knows of). All are
plain values so that plugins stay independent of how the core stores them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Direction = Literal["out", "in", "mutual"]
DIRECTIONS: tuple[Direction, ...] = ("out", "in", "mutual")
CHANNELS = ("call", "email", "meeting", "message", "note")


@dataclass(frozen=True, slots=True)
class Card:
    """One record of a person in one source (a vCard, a CSV row).

    `uid` is stable within its source; `tags` are vCard CATEGORIES;
    `birthday`/`anniversary` are kept as the source wrote them.
    """

    uid: str
    name: str
    given_name: str = ""
    nickname: str = ""
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    note: str = ""
    org: str = ""
    birthday: str = ""
    anniversary: str = ""


@dataclass(frozen=True, slots=True)
class Interaction:
    """A dated trace of contact with someone.

    `who` names the person the way the source knows them: an email address,
    a phone number or a name. The store resolves it to a person; one it cannot
    resolve yet is kept and attached as soon as a matching card appears.
    `external_id` is unique within the source, so re-reading never
    double-counts. Mail carries its thread: `message_id` (the same message
    seen by two sources counts once) and `replies_to`, the Message-IDs it
    answers (In-Reply-To, References).
    """

    external_id: str
    who: str
    at: datetime
    direction: Direction
    channel: str = "note"
    note: str = ""
    message_id: str = ""
    replies_to: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class KeyDate:
    """A person's birthday or anniversary as a source other than their card knows it
    (a birthday calendar). It never creates a person, and a card's own date wins.

    `who` names the person as in `Interaction`; `day` is written as vCard does:
    `1990-04-15`, or `--04-15` when the year is not known.
    """

    external_id: str
    who: str
    kind: Literal["birthday", "anniversary"]
    day: str
