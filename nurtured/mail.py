"""Mail as interactions: pure classification of a message's headers.

Shared by the mail sources (IMAP, Maildir, mbox). Only headers are read,
never bodies. Classification follows the message, not the folder it is in:
outbound when From is one of the user's addresses (`me:`), inbound when it
is someone else's.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.errors import MessageError
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from nurtured.model import Interaction

DEFAULT_MAX_RECIPIENTS = 5
DEFAULT_BACKFILL = timedelta(weeks=104)
NO_MESSAGE_ID = "nomsgid:"  # prefix of the stand-in Message-ID of a message without one

# Folders whose mail is not contact: unsent drafts, templates, spam (often forged senders).
NOT_CONTACT_FOLDERS = frozenset({"drafts", "draft", "templates", "junk", "spam", "junk e-mail"})

FUTURE_SLACK = timedelta(days=1)  # clocks and time zones are a little off; more is wrong
PAST_SLACK = timedelta(days=30)  # written this long before it arrived: the sender's clock lied
EPOCH = datetime(1990, 1, 1, tzinfo=UTC)  # before this, a Date is a broken clock, not a mail

# Only what classification needs: every other header is skipped in one pass.
_WANTED = frozenset(
    {
        "from",
        "to",
        "cc",
        "date",
        "subject",
        "message-id",
        "in-reply-to",
        "references",
        "auto-submitted",
        "x-autoreply",
        "x-autorespond",
        "list-id",
        "precedence",
        "received",
    }
)
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_REPLY_PREFIX = re.compile(
    r"^(?:\s*(?:re|fwd?|aw|sv|wg|vs|antw|tr)\s*(?:\[\d+\])?\s*:)+\s*", re.IGNORECASE
)
_NO_REPLY = re.compile(
    r"(?<![a-z])(?:(?:no|do[._-]?not)[._-]?reply|mailer[._-]?daemon|postmaster)(?![a-z])"
)
_PATTERN_CHARS = frozenset("*?[")
_BULK = frozenset({"bulk", "list", "junk", "auto_reply"})
_parser = BytesHeaderParser()  # compat32: several times faster than policy.default


@dataclass(frozen=True, slots=True)
class Headers:
    """The headers nurtured reads from a message."""

    message_id: str
    date: datetime | None
    sender: str  # the From address, lowercased
    recipients: tuple[str, ...]  # To and Cc addresses, lowercased
    subject: str = ""
    in_reply_to: tuple[str, ...] = ()  # In-Reply-To, then References
    auto_submitted: str = ""
    list_id: str = ""
    precedence: str = ""
    sender_name: str = ""  # the From display name, RFC 2047 decoded
    received: datetime | None = None  # the newest Received hop: when it arrived, if known


@dataclass(frozen=True, slots=True)
class Settings:
    """What a mail source's config says about reading mail, the same for every source."""

    max_recipients: int = DEFAULT_MAX_RECIPIENTS
    keep_subject: bool = True
    backfill: timedelta = DEFAULT_BACKFILL  # older mail is not read

    @classmethod
    def of(cls, options: dict[str, Any]) -> Settings:
        """From a plugin's options; an option left out (None) takes its default."""
        given = {
            "max_recipients": options.get("max_recipients"),
            "keep_subject": options.get("subjects"),
            "backfill": options.get("backfill"),
        }
        return cls(**{key: value for key, value in given.items() if value is not None})

    def interactions(
        self, headers: Headers, me: Sequence[str], *, arrived: datetime | None, now: datetime
    ) -> list[Interaction]:
        """`interactions()` with these settings, leaving out what is older than the backfill."""
        found = interactions(
            headers,
            me,
            arrived=arrived,
            now=now,
            max_recipients=self.max_recipients,
            keep_subject=self.keep_subject,
        )
        return [i for i in found if i.at >= now - self.backfill]


def parse(raw: bytes) -> Headers | None:
    """Read the headers of a raw message (the body, if given, is ignored).

    Broken headers are read as far as they make sense: a bad Date is no date,
    a missing Message-ID gets a stable stand-in. Only a message without a
    usable From is no message (None): nobody can be said to have written it.
    """
    if end := _HEADER_END.search(raw):
        raw = raw[: end.start()]
    found: dict[str, list[str]] = {}
    # raw_items: the text as sent, in one pass. Values with 8-bit bytes (UTF-8
    # written raw, as many clients do) come back as surrogates, decoded below.
    for name, value in _parser.parsebytes(raw).raw_items():
        key = name.lower()
        if key in _WANTED:
            found.setdefault(key, []).append(_unfold(value))
    first = {key: values[0] for key, values in found.items()}
    senders = [pair for value in found.get("from", ()) for pair in _addresses(value)]
    if not senders:
        return None
    name, sender = senders[0]
    recipients = dict.fromkeys(
        address.lower()
        for value in found.get("to", []) + found.get("cc", [])
        for _, address in _addresses(value)
    )
    auto = first.get("auto-submitted", "")
    if not auto and ("x-autoreply" in first or "x-autorespond" in first):
        auto = "auto-replied"
    return Headers(
        message_id=_message_id(first),
        date=_date(first.get("date")),
        sender=sender.strip().lower(),
        recipients=tuple(recipients),
        subject=_decoded(first.get("subject", "")),
        in_reply_to=tuple(dict.fromkeys(_thread(first))),
        auto_submitted=auto.strip().lower(),
        list_id=first.get("list-id", "").strip(),
        precedence=first.get("precedence", "").strip().lower(),
        sender_name=_decoded(name),
        received=_date(first["received"].rpartition(";")[2]) if "received" in first else None,
    )


def is_mine(address: str, me: Sequence[str]) -> bool:
    """Whether an address is one of the user's own (`me:` entries may be patterns)."""
    address = address.strip().lower()
    for entry in me:
        entry = entry.strip().lower()
        if _PATTERN_CHARS.isdisjoint(entry):
            if address == entry:
                return True
        elif fnmatch.fnmatchcase(address, entry):
            return True
    return False


def is_contact_folder(name: str) -> bool:
    """Whether a mail folder holds contact (not Drafts, Templates, Junk or Spam).

    `name` is the folder's own name; a Maildir++ name (`.Archive.Drafts`)
    counts by its last part.
    """
    base = name.rsplit(".", 1)[-1] if name.startswith(".") else name
    return base.strip().lower() not in NOT_CONTACT_FOLDERS


def is_no_reply(address: str) -> bool:
    """A robot's address: noreply@, do-not-reply@, mailer-daemon@, postmaster@."""
    return bool(_NO_REPLY.search(address.partition("@")[0].lower()))


def interactions(
    headers: Headers,
    me: Sequence[str],
    *,
    arrived: datetime | None,
    now: datetime,
    max_recipients: int = DEFAULT_MAX_RECIPIENTS,
    keep_subject: bool = True,
) -> list[Interaction]:
    """The interactions one message is: one `out` per person addressed, or one `in`.

    None at all for what is not personal contact: auto-replies, mailing lists
    and bulk mail, robots, mail to oneself, and mail to more than
    `max_recipients` people (a newsletter or a group announcement, in either
    direction). `arrived` (the Received or IMAP arrival time) corrects a
    Date that cannot be right; without any trustworthy time there is nothing.
    """
    if headers.auto_submitted not in ("", "no") or headers.list_id:
        return []
    if headers.precedence in _BULK or is_no_reply(headers.sender):
        return []
    others = [r for r in headers.recipients if r != headers.sender and not is_mine(r, me)]
    if len(others) > max_recipients:
        return []
    at = sane_date(headers.date, arrived, now)
    if at is None:
        return []
    note = _REPLY_PREFIX.sub("", headers.subject).strip() if keep_subject else ""

    def interaction(who: str, direction: str) -> Interaction:
        return Interaction(
            external_id=f"{headers.message_id}|{who}",
            who=who,
            at=at,
            direction=direction,  # type: ignore[arg-type]
            channel="email",
            note=note,
            message_id=headers.message_id,
            replies_to=headers.in_reply_to,
        )

    if is_mine(headers.sender, me):
        return [interaction(who, "out") for who in others]
    return [interaction(headers.sender, "in")]


def sane_date(date: datetime | None, arrived: datetime | None, now: datetime) -> datetime | None:
    """The time a message stands for: its Date, unless that cannot be right.

    Missing: when it arrived. In the future (beyond a day of clock skew):
    when it arrived, or now. Before 1990, or more than 30 days before it
    arrived: a broken clock, so when it arrived; None when that is unknown.
    """
    if date is None:
        return arrived
    if date > now + FUTURE_SLACK:
        return arrived if arrived is not None and arrived <= now + FUTURE_SLACK else now
    if date < EPOCH or (arrived is not None and date < arrived - PAST_SLACK):
        return arrived
    return date


@functools.lru_cache(maxsize=4096)
def _addresses(value: str) -> tuple[tuple[str, str], ...]:
    """The (name, address) pairs of one address header; empty ones (`group:;`) left out.

    Cached: the same From and To values come back in thousands of messages
    (every mail to you says `To: You <you@…>`), and parsing addresses is the
    largest part of reading a header block.
    """
    return tuple((name, address) for name, address in getaddresses([value]) if "@" in address)


def _unfold(value: str) -> str:
    """One line of text; raw 8-bit bytes (surrogates here) read as UTF-8."""
    if not value.isascii():
        value = value.encode("ascii", "surrogateescape").decode("utf-8", "replace")
    return value.replace("\r", "").replace("\n", "").strip()


def _decoded(text: str) -> str:
    """RFC 2047 encoded words (`=?utf-8?q?Bj=C3=B6rn?=`) as text; broken ones as written."""
    if "=?" not in text:
        return text
    try:
        return str(make_header(decode_header(text)))
    except (MessageError, LookupError, UnicodeDecodeError, ValueError):  # a bad charset
        return text


def _date(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = parsedate_to_datetime(text.strip())
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):  # OverflowError: year 9999
        return None


def _message_id(first: dict[str, str]) -> str:
    """The Message-ID, or a stand-in that is the same wherever the message is stored."""
    value = first.get("message-id", "")
    if match := _MESSAGE_ID.search(value):
        return match.group()
    if value and not any(c.isspace() for c in value):
        return f"<{value.strip('<>')}>"
    seed = "\n".join(first.get(k, "") for k in ("date", "from", "subject"))
    return NO_MESSAGE_ID + hashlib.sha256(seed.encode("utf-8", "replace")).hexdigest()[:32]


def _thread(first: dict[str, str]) -> Iterator[str]:
    for key in ("in-reply-to", "references"):
        yield from _MESSAGE_ID.findall(first.get(key, ""))
