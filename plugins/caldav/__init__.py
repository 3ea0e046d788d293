"""Meetings from the calendars of a CalDAV server (Nextcloud, Radicale, Fastmail, iCloud…).

Read-only: nothing is ever written to the server. The calendars are found
from a base URL (`/.well-known/caldav` → current-user-principal →
calendar-home-set → the collections that are calendars of events), all of
them or those chosen by display name.

Each calendar is read once in full, then followed by its sync token
(`REPORT sync-collection`), asked every `poll`; a server without
sync-collection is followed by its ctag and then per-item etags. Changed
items are fetched with `calendar-multiget` and turned into interactions by
`nurtured.calendar.occurrences`. The cursor keeps, per calendar, the token
and for every item its etag and the interaction ids it produced: a changed
item replaces its ids (those it no longer produces are removed), a deleted
one removes them, and an expired token (403 `valid-sync-token`) makes a full
read that reconciles the lot, so nothing ever counts twice.

Recurring series are expanded up to `AHEAD` from the time of reading, so
the items with recurrences are read again once a `REFRESH` to expand
further (nothing they produced before is removed by that).

Failures are raised, not retried here: wrong credentials as `LoginError`,
an unreachable server as `ConnectionError`; the daemon's supervisor shows
the source as failed and restarts it with back-off, and the cursor makes the
restart cheap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from nurtured import calendar
from nurtured.model import Interaction
from nurtured.plugins import Sink, password

from . import webdav
from .webdav import LoginError

__all__ = ["LoginError", "run"]

AHEAD = timedelta(days=60)  # upcoming meetings are read this far ahead
REFRESH = timedelta(days=1)  # recurring series are expanded anew this often
BATCH = 100  # items per calendar-multiget
SAVE_EVERY = 5.0  # seconds: the longest a long read goes without saving its cursor
DEFAULTS: dict[str, Any] = {
    "calendars": None,
    "history": timedelta(weeks=156),
    "poll": timedelta(minutes=15),
    "max_attendees": 8,
    "titles": True,
    "password": None,
    "password_command": None,
}


async def run(options: dict[str, Any], sink: Sink) -> None:
    settings = Settings.of(options)
    password = await asyncio.to_thread(settings.secret)
    async with webdav.Client(settings.url, settings.username, password) as client:
        await Account(client, sink, settings).follow()


@dataclass(frozen=True, slots=True)
class Settings:
    url: str
    username: str
    password: str | None
    password_command: str | None
    calendars: tuple[str, ...] | None
    history: timedelta
    poll: timedelta
    max_attendees: int
    titles: bool

    @classmethod
    def of(cls, options: dict[str, Any]) -> Settings:
        o = {**DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
        if bool(o["password"]) == bool(o["password_command"]):
            raise ValueError("give either password (or !secret NAME) or password_command")
        calendars = o["calendars"]
        if isinstance(calendars, str):
            calendars = (calendars,)
        return cls(
            url=str(o["url"]).strip(),
            username=str(o["username"]),
            password=o["password"],
            password_command=o["password_command"],
            calendars=tuple(calendars) if calendars else None,
            history=o["history"],
            poll=o["poll"],
            max_attendees=int(o["max_attendees"]),
            titles=bool(o["titles"]),
        )

    def secret(self) -> str:
        """The password, from the config or from the command (run anew at each start,
        so a rotated app password is picked up on the next restart)."""
        return password(self.password, self.password_command)


class Account:
    """The account's calendars as this source follows them, with their cursors.

    The cursor has one key per calendar (its href): `{"token": sync token,
    "ctag": ..., "items": {href: [etag, [interaction ids]]}, "recurring":
    [hrefs], "expanded": ISO time of the last expansion of the recurring}`.
    """

    def __init__(self, client: webdav.Client, sink: Sink, settings: Settings) -> None:
        self.client = client
        self.sink = sink
        self.settings = settings
        self.cursor: dict[str, Any] = {}

    async def follow(self) -> None:
        """Read every calendar once, say ready, then look for changes every `poll`."""
        self.cursor = await self.sink.cursor()
        home = await self.client.calendar_home()
        calendars = await self._calendars(home)
        for cal in calendars:
            await self.sync(cal)
        self.sink.ready()
        while True:
            await asyncio.sleep(self.settings.poll.total_seconds())
            for cal in await self._calendars(home):
                await self.sync(cal)

    async def _calendars(self, home: str) -> list[webdav.Calendar]:
        """The calendars to read; what is known of calendars gone or no longer chosen
        is removed (a chosen name the server lacks is an error naming those it has)."""
        found = await self.client.calendars(home)
        wanted = self.settings.calendars
        if wanted:
            names = {c.name for c in found}
            missing = [n for n in wanted if n not in names]
            if missing:
                there = ", ".join(sorted(names)) or "none"
                raise ValueError(
                    f"calendars: no calendar named {', '.join(map(repr, missing))} on"
                    f" {self.client.server} (there are: {there})"
                )
            found = [c for c in found if c.name in wanted]
        keep = {c.href for c in found}
        for href in [h for h in self.cursor if h not in keep]:
            ids = [i for _, item_ids in self.cursor[href].get("items", {}).values()
                   for i in item_ids]  # fmt: skip
            self.sink.log.info("%s: no longer read: its %d meeting(s) removed", href, len(ids))
            del self.cursor[href]
            await self.sink.remove_interactions(self._unclaimed(ids), cursor={href: None})
        return found

    async def sync(self, cal: webdav.Calendar) -> None:
        """Bring one calendar's interactions up to date with the server."""
        before: dict[str, Any] = self.cursor.get(cal.href) or {}
        items: dict[str, list[Any]] = before.get("items") or {}
        token = before.get("token") or ""
        now = datetime.now(UTC)
        stale = self._stale(before, now)
        if cal.can_sync:
            try:
                changes = await self.client.sync(cal.href, token)
            except webdav.SyncTokenExpired:
                self.sink.log.warning(
                    "%s: the server no longer knows the sync token: reading it all again", cal.name
                )
                token = ""
                changes = await self.client.sync(cal.href, "")
            full = not token
        else:
            if before and cal.ctag and before.get("ctag") == cal.ctag and not stale:
                return
            changes = webdav.Changes("", await self.client.etags(cal.href), [])
            full = True
        if full:  # everything the server has is listed: what it lacks is gone
            gone = [h for h in items if h not in changes.changed]
        else:
            gone = [h for h in changes.gone if h in items]
        fetch = [h for h, etag in changes.changed.items() if h not in items or items[h][0] != etag]
        if stale:  # series expanded a while ago: expand them further
            fetch += [h for h in before.get("recurring", []) if h in items and h not in fetch]
        if before and not fetch and not gone:  # nothing to read: at most a new token
            expanded = now.isoformat() if stale else before.get("expanded")
            after = {**before, "token": changes.token, "ctag": cal.ctag, "expanded": expanded}
            if after != before:
                await self.sink.record_interactions([], cursor={cal.href: after})
                self.cursor[cal.href] = after
            return
        if not before:
            self.sink.log.info("%s: reading %d item(s)", cal.name, len(fetch))
        recurring = set(before.get("recurring", [])) - set(gone)
        entry: dict[str, Any] = {
            "token": changes.token,
            "ctag": cal.ctag,
            "items": items,
            "recurring": [],
            "expanded": before.get("expanded") if before and not stale else now.isoformat(),
        }
        # Saved before the last batch: the old token and ctag, so a restart reads on.
        pending = {**entry, "token": token, "ctag": before.get("ctag"),
                   "expanded": before.get("expanded") or entry["expanded"]}  # fmt: skip
        self.cursor[cal.href] = entry
        started = last_saved = time.monotonic()
        removed = [i for h in gone for i in items.pop(h)[1]]
        batches = [fetch[i : i + BATCH] for i in range(0, len(fetch), BATCH)] or [[]]
        read = occurrences = 0
        for n, batch in enumerate(batches):
            found, missing = await self.client.multiget(cal.href, batch) if batch else ({}, [])
            interactions, warnings, produced = await asyncio.to_thread(
                self._read, found, now, recurring
            )
            for warning in warnings:
                self.sink.log.warning("%s", warning)
            for href in missing:  # deleted between the listing and the fetch
                if href in items:
                    removed += items.pop(href)[1]
                    recurring.discard(href)
            for href, (etag, ids) in produced.items():
                etag = etag or changes.changed.get(href, "")
                old = set(items[href][1]) if href in items else set()
                # An unchanged item read again (to expand its series further) keeps
                # what it produced before: only what it no longer produces goes.
                unchanged = href in items and items[href][0] == etag
                new = sorted(set(ids) | old) if unchanged else ids
                removed += sorted(old - set(new))
                items[href] = [etag, new]
            entry["recurring"] = pending["recurring"] = sorted(recurring)
            last = n + 1 == len(batches)
            save = last or time.monotonic() - last_saved > SAVE_EVERY
            cursor = {cal.href: entry if last else pending} if save else None
            removed = self._unclaimed(removed)
            if removed:
                await self.sink.record_interactions(interactions)
                await self.sink.remove_interactions(removed, cursor=cursor)
            else:
                await self.sink.record_interactions(interactions, cursor=cursor)
            if save:
                last_saved = time.monotonic()
            read += len(found)
            occurrences += len(interactions)
            removed = []
            if not last:
                await self.sink.progress(f"{cal.name}: {read} of {len(fetch)} items read")
        if len(batches) > 1:
            await self.sink.progress("")
        self.sink.log.log(
            logging.INFO if not before or len(batches) > 1 else logging.DEBUG,
            "%s: %d item(s) read, %d gone, in %.1f s: %d meeting occurrence(s)",
            cal.name,
            read,
            len(gone),
            time.monotonic() - started,
            occurrences,
        )

    def _stale(self, entry: dict[str, Any], now: datetime) -> bool:
        expanded = entry.get("expanded")
        return bool(expanded) and now - datetime.fromisoformat(expanded) > REFRESH

    def _read(
        self, found: dict[str, tuple[str, str]], now: datetime, recurring: set[str]
    ) -> tuple[list[Interaction], list[str], dict[str, tuple[str, list[str]]]]:
        """Turn fetched items into interactions (in a thread: expanding series is work)."""
        interactions: list[Interaction] = []
        warnings: list[str] = []
        produced: dict[str, tuple[str, list[str]]] = {}
        for href, (etag, text) in found.items():
            try:
                got, said = calendar.occurrences(
                    text,
                    href,
                    self.sink.me,
                    start=now - self.settings.history,
                    end=now + AHEAD,
                    tz=self.sink.timezone,
                    max_attendees=self.settings.max_attendees,
                    titles=self.settings.titles,
                )
            except Exception as exc:  # one odd item must not stop the calendar for good
                got, said = [], [f"{href}: skipped: {exc!r}"]
            interactions += got
            warnings += said
            produced[href] = (etag, sorted({i.external_id for i in got}))
            if "RRULE" in text or "RDATE" in text:
                recurring.add(href)
            else:
                recurring.discard(href)
        return interactions, warnings, produced

    def _unclaimed(self, ids: list[str]) -> list[str]:
        """Of ids an item no longer produces, those no other item produces either
        (an event moved between calendars keeps its UID, hence its ids)."""
        if not ids:
            return []
        claimed = {
            i
            for entry in self.cursor.values()
            for _, item_ids in (entry.get("items") or {}).values()
            for i in item_ids
        }
        return sorted(set(ids) - claimed)
