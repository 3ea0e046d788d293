"""Mail on an IMAP server as interactions: who you wrote to, who wrote to you, and when.

Only a dozen headers of each message are fetched (`BODY.PEEK`), never a
body, and nothing on the server changes: folders are opened read-only.

The first run reads the backfill window once. Every batch of interactions is
recorded together with its folder's cursor (UIDVALIDITY and the last UID
read), so a restart or a dropped connection resumes where it stopped. A
changed UIDVALIDITY means the server renumbered the folder: it is read again,
and nothing counts twice because an interaction's id comes from the message,
not from its UID. New mail is noticed by IDLE on INBOX where the server has
it (the other folders are looked at after each wake-up, at least every
`poll`), else by polling every `poll`.

Failures are raised, not retried here: the daemon's supervisor logs them,
shows the source as failed and restarts it with back-off; the cursor makes
the restart cheap.
"""

from __future__ import annotations

import asyncio
import imaplib
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from nurtured import mail
from nurtured.model import Interaction
from nurtured.plugins import Sink

from .session import SENT_NAMES, Account, LoginError, Session

__all__ = ["LoginError", "run"]

BATCH = 500  # messages per FETCH and per transaction
PROGRESS_EVERY = 5.0  # seconds between progress lines of a long read


async def run(options: dict[str, Any], sink: Sink) -> None:
    account = Account.from_options(options)
    if not sink.me:
        sink.log.warning(
            "no addresses under `me:` in the config: mail you sent cannot be told from mail"
            " you received, so no outreach is found"
        )
    session = await asyncio.to_thread(Session.open, account)
    try:
        await Mailbox(session, sink, options).follow(options["folders"])
    except (OSError, imaplib.IMAP4.abort) as exc:
        raise ConnectionError(f"{account.server}: connection lost: {exc}") from exc
    finally:
        session.interrupt()  # else close() would wait for an IDLE to end: up to `poll`
        await asyncio.to_thread(session.close)


class Mailbox:
    """The account's folders as this source follows them, with their cursors."""

    def __init__(self, session: Session, sink: Sink, options: dict[str, Any]) -> None:
        self.session = session
        self.sink = sink
        self.settings = mail.Settings.of(options)
        self.poll: timedelta = options["poll"]
        self.cursor: dict[str, Any] = {}

    async def follow(self, wanted: tuple[str, ...] | None) -> None:
        """Read every folder once, say ready, then read what arrives, forever."""
        folders = await asyncio.to_thread(self._folders, wanted)
        self.cursor = await self.sink.cursor()
        for folder in folders:
            await self.sync(folder)
        self.sink.ready()
        watched = next((f for f in folders if f.upper() == "INBOX"), folders[0])
        while True:
            if self.session.can_idle:
                await asyncio.to_thread(
                    self.session.wait_for_mail,
                    watched,
                    self._last_uid(watched),
                    self.poll.total_seconds(),
                )
            else:
                await asyncio.sleep(self.poll.total_seconds())
            for folder in folders:
                await self.sync(folder)

    def _folders(self, wanted: tuple[str, ...] | None) -> list[str]:
        """The folders to read, as the server spells them (INBOX is case-insensitive).

        By default INBOX and the folder flagged `\\Sent` (RFC 6154), else one
        with a usual name for it. A configured folder the server lacks is an
        error naming the ones it has: a typo must not go unnoticed.
        """
        listed = self.session.folders()
        if wanted:
            names = {name for _, _, name in listed} | {"INBOX"}
            found = ["INBOX" if name.upper() == "INBOX" else name for name in wanted]
            for name in found:
                if name not in names:
                    there = ", ".join(sorted(names)[:30])
                    raise ValueError(
                        f"folders: no folder {name!r} on {self.session.account.server}"
                        f" (there are: {there})"
                    )
            return found
        sent = next((name for flags, _, name in listed if b"\\Sent" in flags), None)
        if sent is None:
            sent = next(
                (
                    name
                    for _, delimiter, name in listed
                    if name.rsplit(delimiter.decode() if delimiter else "/", 1)[-1].casefold()
                    in SENT_NAMES
                ),
                None,
            )
        if sent is None:
            self.sink.log.info("no Sent folder found: reading INBOX only (set folders: to add one)")
            return ["INBOX"]
        return ["INBOX", sent]

    def _last_uid(self, folder: str) -> int:
        return (self.cursor.get(folder) or {}).get("last_uid", 0)

    async def sync(self, folder: str) -> None:
        """Read the messages of `folder` not read yet (all of the window at first)."""
        state = await asyncio.to_thread(self.session.select, folder)
        known = self.cursor.get(folder) or {}
        last = known.get("last_uid", 0)
        renumbered = bool(known) and known.get("uidvalidity") != state.uidvalidity
        if renumbered:
            self.sink.log.warning(
                "%s: the server renumbered this folder (its UIDVALIDITY changed): reading it again",
                folder,
            )
            last = 0
        since = (datetime.now(UTC) - self.settings.backfill).date()
        uids = await asyncio.to_thread(self.session.search, since, last)
        # Everything below UIDNEXT is read or outside the window: don't search it again.
        final = max(last, state.uidnext - 1, *uids[-1:])
        if not uids:
            if known != {"uidvalidity": state.uidvalidity, "last_uid": final}:
                await self._record(folder, [], state.uidvalidity, final)
            return
        # A first read, or a long one (catching up after downtime), is worth an INFO line.
        level = logging.INFO if not known or renumbered or len(uids) > BATCH else logging.DEBUG
        self.sink.log.log(level, "%s: reading %d message(s) since %s", folder, len(uids), since)
        started = last_progress = time.monotonic()
        batches = [uids[i : i + BATCH] for i in range(0, len(uids), BATCH)]
        counts = {"read": 0, "interactions": 0, "unreadable": 0}
        upcoming = self._read_soon(folder, batches[0])
        try:
            for i, batch in enumerate(batches):
                interactions, unreadable = await upcoming
                # Fetch the next batch while this one is stored.
                if i + 1 < len(batches):
                    upcoming = self._read_soon(folder, batches[i + 1])
                done = i + 1 == len(batches)
                await self._record(
                    folder, interactions, state.uidvalidity, final if done else batch[-1]
                )
                counts["read"] += len(batch)
                counts["interactions"] += len(interactions)
                counts["unreadable"] += unreadable
                if not done and time.monotonic() - last_progress > PROGRESS_EVERY:
                    last_progress = time.monotonic()
                    progress = (
                        f"{folder}: {100 * counts['read'] // len(uids)}%"
                        f" ({counts['read']} of {len(uids)} messages read)"
                    )
                    self.sink.log.info("%s", progress)
                    await self.sink.progress(progress)
        finally:
            upcoming.cancel()  # a failure mid-way leaves the thread's result unwanted
        await self.sink.progress("")
        self.sink.log.log(
            level,
            "%s: read %d message(s) in %.1f s: %d interaction(s), %d without usable headers",
            folder,
            counts["read"],
            time.monotonic() - started,
            counts["interactions"],
            counts["unreadable"],
        )

    def _read_soon(
        self, folder: str, uids: list[int]
    ) -> asyncio.Future[tuple[list[Interaction], int]]:
        return asyncio.ensure_future(asyncio.to_thread(self._read, folder, uids))

    def _read(self, folder: str, uids: list[int]) -> tuple[list[Interaction], int]:
        """Fetch and classify one batch (in a thread); returns its interactions and
        how many messages had no usable headers."""
        now = datetime.now(UTC)
        found: list[Interaction] = []
        unreadable = 0
        for uid, raw, arrived in self.session.headers(uids):
            try:
                headers = mail.parse(raw)
                if headers is None:
                    unreadable += 1
                    continue
                found += self.settings.interactions(headers, self.sink.me, arrived=arrived, now=now)
            except Exception as exc:  # one odd message must not stop the folder for good
                self.sink.log.warning("%s: message UID %d skipped: %r", folder, uid, exc)
                unreadable += 1
        return found, unreadable

    async def _record(
        self, folder: str, interactions: list[Interaction], uidvalidity: int, last_uid: int
    ) -> None:
        """Store a batch and the folder's progress in one transaction."""
        entry = {"uidvalidity": uidvalidity, "last_uid": last_uid}
        await self.sink.record(interactions, cursor={folder: entry})
        self.cursor[folder] = entry
