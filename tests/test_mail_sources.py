"""Local mail as a source: the maildir and mbox plugins, run against a real store and files."""

from __future__ import annotations

import logging
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import RunningSource, eventually

from nurtured.model import Card
from nurtured.store import Store

ME = ("me@home.example", "*@mycompany.example")
LISBON = ZoneInfo("Europe/Lisbon")
NOW = datetime.now(UTC).replace(microsecond=0)
CONTACTS = {"Ana Lima": "ana@friends.example", "Bo Berg": "bo@x.example", "Cy Chen": "cy@x.example"}


def message(
    sender: str,
    to: str,
    subject: str,
    days_ago: float,
    message_id: str | None = None,
    extra: tuple[str, ...] = (),
) -> bytes:
    """A message as it sits in a mailbox: inbound mail carries a Received line."""
    date = NOW - timedelta(days=days_ago)
    lines = []
    if sender not in ME:
        lines.append(f"Received: from mx.example by mx.home.example; {format_datetime(date)}")
    lines += [
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {subject}",
        f"Date: {format_datetime(date)}",
        f"Message-ID: {message_id or f'<{uuid.uuid4()}@mail.example>'}",
        *extra,
    ]
    # A body line starting with "From " that no writer escaped: in an mbox it must not
    # be taken for the start of the next message.
    return ("\n".join(lines) + "\n\nHello,\nFrom the body: not a header.\n").encode()


def deliver(maildir: Path, raw: bytes, flags: str | None = None) -> Path:
    """Write a message as an MDA does: into tmp/, then renamed into new/ (or cur/ with flags)."""
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns()}.{uuid.uuid4().hex[:8]}.host"
    temporary = maildir / "tmp" / name
    temporary.write_bytes(raw)
    final = maildir / "new" / name if flags is None else maildir / "cur" / f"{name}:2,{flags}"
    os.rename(temporary, final)
    return final


def mbox_entry(raw: bytes) -> bytes:
    """One message as Thunderbird and Postfix append it to an mbox file."""
    return b"From - Tue Mar 10 10:00:00 2026\n" + raw + b"\n"


@pytest.fixture
async def store(tmp_path):
    store = await Store.open(tmp_path / "state")
    await store.upsert_cards(
        "book", [Card(uid=e, name=n, emails=(e,)) for n, e in CONTACTS.items()], {}
    )
    yield store
    await store.close()


@pytest.fixture
def me() -> tuple[str, ...]:
    return ME


async def timeline(store: Store, name: str) -> list[dict]:
    [person] = await store.find_people(name)
    return await store.timeline(person.id)


async def interactions(store: Store) -> list[dict]:
    return (await store.dump())["interactions"]


def logged(caplog, text: str) -> bool:
    return any(text in r.getMessage() for r in caplog.records)


async def logs(caplog, text: str) -> bool:
    """`logged`, for `eventually`."""
    return logged(caplog, text)


# -- the classification, through a Maildir tree and through mbox files ----------------------------


class Maildirs:
    """A mail tree as mbsync keeps it: Mail/INBOX, Mail/Sent, ... each a Maildir."""

    domain = "maildir"

    def __init__(self, root: Path) -> None:
        self.root = root / "Mail"

    def put(self, folder: str, raw: bytes) -> None:
        deliver(self.root / folder, raw, flags="S")


class Mboxes:
    """Thunderbird's Local Folders: a file per folder, an .msf index beside each."""

    domain = "mbox"

    def __init__(self, root: Path) -> None:
        self.root = root / "Local Folders"

    def put(self, folder: str, raw: bytes) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / folder).open("ab") as file:
            file.write(mbox_entry(raw))
        (self.root / f"{folder}.msf").write_text('// <!-- <mdb:mork:z v="1.4"/> -->\n')


def sent(to: str, subject: str, days_ago: float, message_id: str | None = None) -> bytes:
    return message("me@home.example", to, subject, days_ago, message_id)


def received(sender: str, subject: str, days_ago: float, *extra: str) -> bytes:
    return message(sender, "me@home.example", subject, days_ago, extra=extra)


@pytest.mark.parametrize("layout", [Maildirs, Mboxes])
async def test_local_mail_is_classified_by_its_headers(tmp_path, running, store, layout):
    mailbox = layout(tmp_path)
    mailbox.put("Sent", sent("Ana <ana@friends.example>", "Lunch?", 10, "<o1@home.example>"))
    answer = "In-Reply-To: <o1@home.example>"
    mailbox.put("INBOX", received("ana@friends.example", "Re: Lunch?", 9, answer))
    mailbox.put("Sent", sent("bo@x.example", "Coffee?", 8))
    mailbox.put("Sent", sent("bo@x.example", "Coffee, maybe?", 4))
    mailbox.put("INBOX", received("cy@x.example", "Crag?", 3, "List-Id: <club.lists.example>"))
    mailbox.put("INBOX", received("cy@x.example", "Away", 2, "Auto-Submitted: auto-replied"))
    thirty = ", ".join(["cy@x.example", *(f"p{i}@x.example" for i in range(29))])
    mailbox.put("Sent", sent(thirty, "Party!", 2))
    mailbox.put("Drafts", sent("cy@x.example", "Unsent", 1))
    mailbox.put("INBOX", received("Stranger <new@else.example>", "Hi", 1))

    await running(layout.domain, path=mailbox.root)

    ana = await timeline(store, "Ana Lima")
    assert [(t["direction"], t["note"]) for t in ana] == [("in", "Lunch?"), ("out", "Lunch?")]
    assert datetime.fromisoformat(ana[0]["at"]) == NOW - timedelta(days=9)  # the Date header
    bo = await timeline(store, "Bo Berg")
    assert [t["direction"] for t in bo] == ["out", "out"]  # two outreaches, unanswered
    assert [t["note"] for t in bo] == ["Coffee, maybe?", "Coffee?"]
    assert await timeline(store, "Cy Chen") == []  # a list, an auto-reply, a party, a draft
    [reply] = [
        i
        for i in await interactions(store)
        if i["who"] == "ana@friends.example" and i["direction"] == "in"
    ]
    assert reply["replies_to"] == '["<o1@home.example>"]'
    # Someone not in the address book is kept, waiting for a card, not made a person.
    assert [who for _, who, _ in await store.unresolved()] == ["new@else.example"]


@pytest.mark.parametrize("layout", [Maildirs, Mboxes])
async def test_subjects_can_be_left_out(tmp_path, running, store, layout):
    mailbox = layout(tmp_path)
    mailbox.put("INBOX", message("ana@friends.example", "me@home.example", "Private", 1))
    await running(layout.domain, path=mailbox.root, subjects=False)
    assert [t["note"] for t in await timeline(store, "Ana Lima")] == [""]


@pytest.mark.parametrize("layout", [Maildirs, Mboxes])
async def test_mail_older_than_the_backfill_is_not_read(tmp_path, running, store, layout):
    mailbox = layout(tmp_path)
    mailbox.put("INBOX", message("ana@friends.example", "me@home.example", "Old", 40))
    mailbox.put("INBOX", message("ana@friends.example", "me@home.example", "Recent", 20))
    await running(layout.domain, path=mailbox.root, backfill=timedelta(days=30))
    assert [t["note"] for t in await timeline(store, "Ana Lima")] == ["Recent"]


# -- maildir --------------------------------------------------------------------------------


async def test_the_same_message_in_two_folders_counts_once(tmp_path, running, store):
    raw = message("ana@friends.example", "me@home.example", "Slides", 3, "<s1@friends.example>")
    deliver(tmp_path / "Mail" / "INBOX", raw, flags="S")
    deliver(tmp_path / "Mail" / "Archive" / "2026", raw, flags="RS")
    await running("maildir", path=tmp_path / "Mail")
    assert len(await timeline(store, "Ana Lima")) == 1


async def test_every_maildir_in_a_tree_is_found(tmp_path, running, store):
    root = tmp_path / "Maildir"  # Maildir++: the root is INBOX, folders are .Name
    deliver(root, message("ana@friends.example", "me@home.example", "In the inbox", 3))
    deliver(root / ".Sent", message("me@home.example", "ana@friends.example", "Sent", 2), "S")
    deliver(root / ".Drafts", message("me@home.example", "bo@x.example", "Draft", 1), "D")
    (root / ".notmuch" / "xapian").mkdir(parents=True)
    # A draft flagged as one, even outside a Drafts folder, is not sent mail.
    deliver(root / ".Sent", message("me@home.example", "cy@x.example", "Draft", 1), "DS")
    await running("maildir", path=root)
    assert {t["note"] for t in await timeline(store, "Ana Lima")} == {"In the inbox", "Sent"}
    assert await timeline(store, "Bo Berg") == []
    assert await timeline(store, "Cy Chen") == []

    # A folder created while running, as mbsync does when the server gains one. (Named
    # without a dot: the watcher leaves dot-names out, see plugins.watch.)
    deliver(root / "Projects", message("bo@x.example", "me@home.example", "Plan", 1))

    async def bo_seen() -> bool:
        return len(await timeline(store, "Bo Berg")) == 1

    await eventually(bo_seen)


async def test_new_mail_is_seen_within_seconds_and_a_flag_change_counts_nothing_twice(
    tmp_path, running, store, caplog
):
    inbox = tmp_path / "Mail" / "INBOX"
    deliver(inbox, message("bo@x.example", "me@home.example", "Earlier", 5), flags="S")
    await running("maildir", path=tmp_path / "Mail")
    assert len(await timeline(store, "Ana Lima")) == 0

    arrived = deliver(inbox, message("ana@friends.example", "me@home.example", "News!", 0))

    async def seen() -> bool:
        return len(await timeline(store, "Ana Lima")) == 1

    took = await eventually(seen)
    assert took < 2.0

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="nurtured.plugins.maildir"):
        # The user reads it: the client moves new/x to cur/x:2,S.
        os.rename(arrived, inbox / "cur" / f"{arrived.name}:2,S")
        await eventually(lambda: logs(caplog, "read 1 new message(s)"))
    assert len(await timeline(store, "Ana Lima")) == 1
    assert len(await timeline(store, "Bo Berg")) == 1


async def test_a_restart_reads_only_what_arrived_meanwhile(tmp_path, store, caplog):
    inbox = tmp_path / "Mail" / "INBOX"
    for i in range(20):
        deliver(inbox, message("bo@x.example", "me@home.example", f"Note {i}", 5), flags="S")
    first = await RunningSource(store, "maildir", {"path": tmp_path / "Mail"}, ME).started()
    await first.stop()
    deliver(inbox, message("ana@friends.example", "me@home.example", "While away", 1))
    deliver(tmp_path / "Mail" / "Sent", message("me@home.example", "ana@friends.example", "Re", 0))
    with caplog.at_level(logging.INFO, logger="nurtured.plugins.maildir"):
        second = await RunningSource(store, "maildir", {"path": tmp_path / "Mail"}, ME).started()
    await second.stop()
    assert logged(caplog, "read 2 new message(s) of 2 file(s)")
    assert len(await timeline(store, "Bo Berg")) == 20
    assert len(await timeline(store, "Ana Lima")) == 2

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="nurtured.plugins.maildir"):
        third = await RunningSource(store, "maildir", {"path": tmp_path / "Mail"}, ME).started()
    await third.stop()
    assert not logged(caplog, "new message(s)")  # nothing new: nothing read
    saved = await store.cursor("maildir:test")
    assert set(saved) == {"INBOX", "Sent"}  # one small entry per Maildir, not per message


async def test_a_broken_message_is_skipped_with_a_warning(tmp_path, running, store, caplog):
    inbox = tmp_path / "Mail" / "INBOX"
    deliver(inbox, message("ana@friends.example", "me@home.example", "Fine", 2))
    broken = deliver(inbox, b"\x00\x01 this is not mail at all\n\n\xff\xfe")
    with caplog.at_level(logging.WARNING):
        await running("maildir", path=tmp_path / "Mail")
    assert [t["note"] for t in await timeline(store, "Ana Lima")] == ["Fine"]
    assert logged(caplog, str(broken))


# -- mbox ---------------------------------------------------------------------------------------


async def test_appended_mail_is_read_from_where_reading_stopped(tmp_path, store, caplog):
    inbox = tmp_path / "Inbox"
    inbox.write_bytes(
        b"".join(
            mbox_entry(message("bo@x.example", "me@home.example", f"Note {i}", 5)) for i in range(3)
        )
    )
    with caplog.at_level(logging.INFO, logger="nurtured.plugins.mbox"):
        source = await RunningSource(store, "mbox", {"path": inbox}, ME).started()
        assert logged(caplog, "read 3 new message(s)")
        caplog.clear()
        with inbox.open("ab") as file:
            file.write(mbox_entry(message("ana@friends.example", "me@home.example", "Hi", 0)))

        async def seen() -> bool:
            return len(await timeline(store, "Ana Lima")) == 1

        await eventually(seen)
        await source.stop()
        assert logged(caplog, "read 1 new message(s)")  # the new one only, from the offset

        caplog.clear()
        with inbox.open("ab") as file:  # while nurtured is down
            file.write(mbox_entry(message("ana@friends.example", "me@home.example", "Hey", 0)))
        again = await RunningSource(store, "mbox", {"path": inbox}, ME).started()
        await again.stop()
    assert logged(caplog, "read 1 new message(s)")
    assert len(await timeline(store, "Ana Lima")) == 2
    assert len(await timeline(store, "Bo Berg")) == 3


async def test_a_rewritten_mbox_is_read_again_without_counting_twice(tmp_path, store, caplog):
    inbox = tmp_path / "Inbox"
    entries = [
        mbox_entry(message("bo@x.example", "me@home.example", f"Note {i}", 5 - i)) for i in range(3)
    ]
    inbox.write_bytes(b"".join(entries))
    first = await RunningSource(store, "mbox", {"path": inbox}, ME).started()
    await first.stop()
    # Thunderbird compacts a folder: a new file without the deleted message, renamed over.
    compacted = tmp_path / "Inbox.tmp"
    compacted.write_bytes(entries[0] + entries[2])
    os.replace(compacted, inbox)
    with caplog.at_level(logging.INFO, logger="nurtured.plugins.mbox"):
        second = await RunningSource(store, "mbox", {"path": inbox}, ME).started()
    await second.stop()
    assert logged(caplog, "read 2 new message(s)")  # from the start: it is another file
    assert len(await timeline(store, "Bo Berg")) == 3  # what was read before stays, once


async def test_mbox_skips_index_files_and_broken_messages(tmp_path, running, store, caplog):
    folder = tmp_path / "Local Folders"
    (folder / "Inbox.sbd").mkdir(parents=True)
    (folder / "Inbox.msf").write_bytes(b"From - Tue Mar 10 10:00:00 2026\nFrom: x@y.example\n\n")
    (folder / "filterlog.html").write_text("<html>not mail</html>")
    (folder / "Inbox.sbd" / "Family").write_bytes(
        mbox_entry(message("ana@friends.example", "me@home.example", "First", 3))
        + b"From - Tue Mar 10 10:00:00 2026\nno headers here, just words\n\nand a body\n"
        + mbox_entry(message("ana@friends.example", "me@home.example", "Third", 1))
    )
    with caplog.at_level(logging.WARNING):
        await running("mbox", path=folder)
    assert [t["note"] for t in await timeline(store, "Ana Lima")] == ["Third", "First"]
    assert await store.unresolved() == []  # the .msf index was not read as mail
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "Family" in warnings[0] and "skipped" in warnings[0]


@pytest.mark.parametrize("written", ["half the From_ line", "half the headers"])
async def test_a_message_still_being_written_is_read_once_complete(
    tmp_path, running, store, written
):
    inbox = tmp_path / "Inbox"
    complete = mbox_entry(message("bo@x.example", "me@home.example", "Done", 2))
    partial = mbox_entry(message("ana@friends.example", "me@home.example", "Slow", 1))
    cut = 12 if written == "half the From_ line" else partial.index(b"\n\n")
    inbox.write_bytes(complete + partial[:cut])
    await running("mbox", path=inbox)
    assert len(await timeline(store, "Bo Berg")) == 1
    assert await timeline(store, "Ana Lima") == []
    with inbox.open("ab") as file:
        file.write(partial[cut:])

    async def seen() -> bool:
        return len(await timeline(store, "Ana Lima")) == 1

    await eventually(seen)
    assert len(await timeline(store, "Bo Berg")) == 1
