"""Meetings and birthdays from the calendars of a CalDAV server (Nextcloud, Radicale,
Fastmail, iCloud…).

Read-only: nothing is ever written to the server. The calendars are found
from a base URL (`/.well-known/caldav` → current-user-principal →
calendar-home-set → the collections that are calendars of events), all of
them or those chosen by display name.

A calendar is read in full once: its sync token (or ctag) first, then the
events from `history` ago on (`calendar-query` with an open-ended time
range: the years before are never fetched), with `calendar-multiget` in
batches, each turned into meetings and key dates by `nurtured.calendar.read`
while the next is fetched. From then on it is followed by its sync token
(`REPORT sync-collection`), asked every `poll`; a server without
sync-collection is followed by its ctag and then per-item etags. The cursor
keeps, per calendar, the token and for every item read its etag and the ids
it produced: a changed item replaces its ids (those it no longer produces are
removed), a deleted one removes them, and an expired token (403
`valid-sync-token`) makes a full read that reconciles the lot against the
list of every item's etag, so nothing ever counts twice.

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
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from nurtured import calendar
from nurtured.calendar import Reading
from nurtured.plugins import Sink, ahead, password

from . import webdav
from .webdav import LoginError

__all__ = ["LoginError", "run"]

AHEAD = timedelta(days=60)  # upcoming meetings are read this far ahead
REFRESH = timedelta(days=1)  # recurring series are expanded anew this often
BATCH = 500  # items per calendar-multiget
VERSION = 2  # of what an item's ids mean: 2 added birthdays (key dates)
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
            await self.sink.record(gone=self._unclaimed(ids), cursor={href: None})
        return found

    async def sync(self, cal: webdav.Calendar) -> None:
        """Bring one calendar's meetings and key dates up to date with the server."""
        before: dict[str, Any] = self.cursor.get(cal.href) or {}
        items: dict[str, list[Any]] = before.get("items") or {}
        now = datetime.now(UTC)
        stale = self._stale(before, now)
        found = await self._changes(cal, before, items, stale, now)
        if found is None:
            return
        marker, fetch, gone = found
        if stale:  # series expanded a while ago: expand them further
            again = [h for h in before.get("recurring", []) if h in items and h not in gone]
            fetch.update((h, items[h][0]) for h in again if h not in fetch)
        token, ctag = (marker, None) if cal.can_sync else ("", marker)
        expanded = now.isoformat() if stale or not before else before.get("expanded")
        entry: dict[str, Any] = {
            "version": VERSION,
            "token": token,
            "ctag": ctag,
            "items": items,
            "recurring": sorted(set(before.get("recurring", [])) - set(gone)),
            "expanded": expanded,
        }
        if not fetch and not gone:  # nothing to read: at most a new token
            if entry != {**before, "items": items}:
                await self.sink.record(cursor={cal.href: entry})
                self.cursor[cal.href] = entry
            return
        await self._read_items(cal, before, entry, fetch, gone, now)

    async def _changes(
        self,
        cal: webdav.Calendar,
        before: dict[str, Any],
        items: dict[str, list[Any]],
        stale: bool,
        now: datetime,
    ) -> tuple[str, dict[str, str], list[str]] | None:
        """What to fetch (href → etag) and what is gone, with the calendar's new sync
        token or ctag; None when a calendar without sync has the same ctag as before.

        Followed by its sync token, a calendar reports just what changed. Read in
        full (the first time, an expired token, a changed ctag), it is asked for
        the events from `history` ago on: a ten-year calendar is not fetched
        whole to count three years of it. Everything else is only listed (its
        etags) to see what was deleted.
        """
        token = before.get("token") or ""
        if before.get("version") != VERSION:  # read by an older nurtured: read it all again
            token, before = "", {}
        if cal.can_sync and token:
            try:
                changes = await self.client.sync(cal.href, token)
            except webdav.SyncTokenExpired:
                self.sink.log.warning(
                    "%s: the server no longer knows the sync token: reading it all again", cal.name
                )
            else:
                fetch = {h: e for h, e in changes.changed.items() if _etag(items, h) != e}
                return changes.token, fetch, [h for h in changes.gone if h in items]
        marker = await self.client.marker(cal)  # first: a change after it shows next time
        if not cal.can_sync and before and marker and marker == before.get("ctag") and not stale:
            return None
        listing = await self.client.etags(cal.href) if items else {}
        try:
            window = await self.client.since(cal.href, now - self.settings.history)
        except webdav.DavError as exc:  # a server that cannot filter: everything, then
            self.sink.log.info("%s: no time-range query (%s): reading every event", cal.name, exc)
            window = listing or await self.client.etags(cal.href)
        known = items if before else {}
        fetch = {h: e for h, e in window.items() if _etag(known, h) != e}
        fetch.update((h, e) for h, e in listing.items() if h in items and _etag(known, h) != e)
        return marker, fetch, [h for h in items if h not in listing]

    async def _read_items(
        self,
        cal: webdav.Calendar,
        before: dict[str, Any],
        entry: dict[str, Any],
        fetch: dict[str, str],
        gone: list[str],
        now: datetime,
    ) -> None:
        """Fetch and read items in batches (the next one fetched and parsed while this
        one is stored), saving the cursor at least every `SAVE_EVERY` seconds."""
        items: dict[str, list[Any]] = entry["items"]
        recurring = set(entry["recurring"])
        # Saved before the last batch: the old token and ctag, so a restart reads on.
        pending = {**entry, "version": before.get("version"), "token": before.get("token") or "",
                   "ctag": before.get("ctag"),
                   "expanded": before.get("expanded") or entry["expanded"]}  # fmt: skip
        self.cursor[cal.href] = entry
        if not before:
            self.sink.log.info("%s: reading %d item(s)", cal.name, len(fetch))
        started = last_saved = time.monotonic()
        removed = [i for h in gone for i in items.pop(h)[1]]
        hrefs = sorted(fetch)
        batches = [hrefs[i : i + BATCH] for i in range(0, len(hrefs), BATCH)] or [[]]
        read = meetings = done = 0
        fetched = ahead(self._fetch(cal, batch, now) for batch in batches)
        async with contextlib.aclosing(fetched):
            async for found, missing in fetched:
                done += 1
                for href in missing:  # deleted between the listing and the fetch
                    if href in items:
                        removed += items.pop(href)[1]
                    recurring.discard(href)
                for href, (etag, reading, repeats) in found.items():
                    etag = etag or fetch.get(href, "")
                    old = set(items[href][1]) if href in items else set()
                    # An unchanged item read again (to expand its series further) keeps
                    # what it produced before: only what it no longer produces goes.
                    unchanged = href in items and items[href][0] == etag
                    new = sorted(old | set(reading.ids)) if unchanged else reading.ids
                    removed += sorted(old - set(new))
                    items[href] = [etag, new]
                    (recurring.add if repeats else recurring.discard)(href)
                    for warning in reading.warnings:
                        self.sink.log.warning("%s", warning)
                entry["recurring"] = pending["recurring"] = sorted(recurring)
                last = done == len(batches)
                save = last or time.monotonic() - last_saved > SAVE_EVERY
                await self.sink.record(
                    [m for _, r, _ in found.values() for m in r.meetings],
                    dates=[d for _, r, _ in found.values() for d in r.dates],
                    gone=self._unclaimed(removed),
                    cursor={cal.href: entry if last else pending} if save else None,
                )
                if save:
                    last_saved = time.monotonic()
                read += len(found)
                meetings += sum(len(r.meetings) for _, r, _ in found.values())
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
            meetings,
        )

    async def _fetch(
        self, cal: webdav.Calendar, batch: list[str], now: datetime
    ) -> tuple[dict[str, tuple[str, Reading, bool]], list[str]]:
        """Items fetched and read: href → (etag, what it holds, whether it recurs), and
        the hrefs the server no longer has."""
        if not batch:
            return {}, []
        found, missing = await self.client.multiget(cal.href, batch)
        return await asyncio.to_thread(self._read, found, now), missing

    def _stale(self, entry: dict[str, Any], now: datetime) -> bool:
        expanded = entry.get("expanded")
        return bool(expanded) and now - datetime.fromisoformat(expanded) > REFRESH

    def _read(
        self, found: dict[str, tuple[str, str]], now: datetime
    ) -> dict[str, tuple[str, Reading, bool]]:
        """Turn fetched items into what they hold (in a thread: expanding series is work)."""
        result = {}
        for href, (etag, text) in found.items():
            try:
                reading = calendar.read(
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
                reading = Reading(warnings=[f"{href}: skipped: {exc!r}"])
            result[href] = (etag, reading, "RRULE" in text or "RDATE" in text)
        return result

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


def _etag(items: dict[str, list[Any]], href: str) -> str | None:
    return items[href][0] if href in items else None
