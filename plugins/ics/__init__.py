"""Meetings from iCalendar: a .ics file, a folder of them (a vdir), or a published URL.

Every occurrence from `history` ago on with people on it is a `mutual`
meeting (recurring series expanded up to 60 days ahead; see
`nurtured.calendar` for which events count), and birthday events are key
dates.
Future occurrences are recorded with their real times: the core counts them
once they are past and holds back nudges for people you will see soon.

Local files are watched; the cursor keeps each file's size, modification
time and the ids it produced, so a restart reads only what changed, and an
event removed from a file, or a file removed, removes its meetings. A URL
is polled with If-None-Match/If-Modified-Since; a server error or an
unreachable server raises (the supervisor retries with back-off) and keeps
what was read before. Once a day everything is read again, so the 60-day
window ahead moves on even when nothing changes.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any

from nurtured import calendar
from nurtured.calendar import Reading
from nurtured.plugins import FileSet, Sink, file_stamp, in_thread, watch

SUFFIXES = (".ics",)
AHEAD = timedelta(days=60)
REFRESH = timedelta(days=1)  # re-read everything this often: the window moves on
BATCH = 500  # files per transaction on a cold import of a vdir
MAX_BYTES = 64 * 1024 * 1024
TIMEOUT = 60.0
FILE = "file:"  # cursor keys of local files; "refreshed" is when all were last read
VERSION = 2  # of what a file's ids mean: 2 added birthdays; an older cursor reads all again


@dataclass(frozen=True, slots=True)
class Settings:
    history: timedelta = timedelta(weeks=156)
    max_attendees: int = 8
    titles: bool = True

    def read(self, text: str, origin: str, sink: Sink) -> Reading:
        """What `text` holds (raises ValueError when it is not iCalendar at all)."""
        now = datetime.now(UTC)
        return calendar.read(
            text,
            origin,
            sink.me,
            start=now - self.history,
            end=now + AHEAD,
            tz=sink.timezone,
            max_attendees=self.max_attendees,
            titles=self.titles,
            strict=True,
        )


async def run(options: dict[str, Any], sink: Sink) -> None:
    path, url = options.get("path"), (options.get("url") or "").strip()
    if bool(path) == bool(url):
        raise ValueError("ics: give exactly one of path (a .ics file or a folder) or url")
    defaults = Settings()
    settings = Settings(
        history=options.get("history") or defaults.history,
        max_attendees=(
            defaults.max_attendees
            if options.get("max_attendees") is None
            else int(options["max_attendees"])
        ),
        titles=defaults.titles if options.get("titles") is None else bool(options["titles"]),
    )
    if url:
        await _run_url(url, options.get("poll") or timedelta(minutes=15), settings, sink)
    else:
        await _run_local(Path(path), settings, sink)


# -- local files ------------------------------------------------------------------------


class Files:
    """What the source knows of its files: the cursor, and how many files make each id."""

    def __init__(self, cursor: dict[str, Any]) -> None:
        self.entries: dict[str, dict[str, Any]] = {
            k.removeprefix(FILE): v for k, v in cursor.items() if k.startswith(FILE)
        }
        self.refreshed: str | None = cursor.get("refreshed")
        if cursor.get("version") != VERSION:
            self.refreshed = None
        self.owners = Counter(i for e in self.entries.values() for i in e.get("ids", ()))
        self.lock = asyncio.Lock()

    def due(self) -> bool:
        if not self.refreshed:
            return True
        return datetime.now(UTC) - datetime.fromisoformat(self.refreshed) >= REFRESH


def _wanted(name: str) -> bool:
    return name.lower().endswith(SUFFIXES)


async def _run_local(path: Path, settings: Settings, sink: Sink) -> None:
    is_folder = await asyncio.to_thread(path.is_dir) or not _wanted(path.name)
    where = FileSet(path, is_folder, _wanted)
    if not await asyncio.to_thread(where.folder.is_dir):
        raise FileNotFoundError(f"ics: {where.folder} does not exist (or is not a folder)")
    files = Files(await sink.cursor())
    await _sync(where, None, files, settings, sink, everything=files.due())
    sink.ready()

    async def refresh() -> None:
        while True:
            await asyncio.sleep(REFRESH.total_seconds())
            await _sync(where, None, files, settings, sink, everything=True)

    async def follow() -> None:
        async for paths in watch(where.folder, recursive=where.is_folder):
            keys = {k for p in paths if (k := where.key(p))}
            if keys:
                await _sync(where, keys, files, settings, sink)

    async with asyncio.TaskGroup() as group:
        group.create_task(refresh())
        group.create_task(follow())


def _changed(
    where: FileSet, keys: set[str] | None, files: Files, everything: bool
) -> list[tuple[str, list[int] | None]]:
    """Files (all when `keys` is None) whose size or mtime differ from the cursor's."""
    if keys is None:
        stamps = where.stamps()
        keys = stamps.keys() | files.entries.keys()
    else:
        stamps = {k: s for k in keys if (s := file_stamp(where.folder / k))}
    return [
        (key, stamps.get(key))
        for key in sorted(keys)
        if everything or stamps.get(key) != files.entries.get(key, {}).get("stamp")
    ]


async def _sync(
    where: FileSet,
    keys: set[str] | None,
    files: Files,
    settings: Settings,
    sink: Sink,
    everything: bool = False,
) -> None:
    """Bring what changed files hold (all files, with `everything`) up to date.

    Listing and parsing run in a thread, the next batch while this one is stored.
    """
    async with files.lock:
        changed = await asyncio.to_thread(_changed, where, keys, files, everything)
        batches = (
            _parse(where.folder, changed[i : i + BATCH], settings, sink)
            for i in range(0, len(changed), BATCH)
        )
        async for parsed in in_thread(batches):
            await _store(parsed, files, sink)
        if everything:
            files.refreshed = datetime.now(UTC).isoformat()
            await sink.record(cursor={"refreshed": files.refreshed, "version": VERSION})
        if changed:
            sink.log.info("read %d changed file(s) under %s", len(changed), where.path)


Parsed = list[tuple[str, list[int] | None, Reading]]


def _parse(
    base: Path, batch: list[tuple[str, list[int] | None]], settings: Settings, sink: Sink
) -> Parsed:
    """Read files; a file that cannot be read now is left for its next change."""
    result = []
    for key, stamp in batch:
        reading = Reading()
        if stamp is not None:
            try:
                text = (base / key).read_bytes().decode("utf-8-sig", errors="replace")
                reading = settings.read(text, str(base / key), sink)
            except OSError as exc:
                sink.log.warning("%s: cannot read: %s", base / key, exc.strerror or exc)
                continue
            except ValueError as exc:
                sink.log.warning("%s; keeping what was read before", exc)
                continue
            for warning in reading.warnings:
                sink.log.warning("%s", warning)
        result.append((key, stamp, reading))
    return result


async def _store(parsed: Parsed, files: Files, sink: Sink) -> None:
    """Record what the files hold now; forget what they held before and no file holds now."""
    before = {key: set(files.entries.get(key, {}).get("ids", ())) for key, _, _ in parsed}
    ids_now = {key: reading.ids for key, _, reading in parsed}
    for key, ids in ids_now.items():
        files.owners.subtract(before[key])
        files.owners.update(ids)
    gone = sorted({i for ids in before.values() for i in ids if files.owners[i] <= 0})
    for i in gone:
        del files.owners[i]
    entries = {key: ({"stamp": stamp, "ids": ids_now[key]} if stamp else None)
               for key, stamp, _ in parsed}  # fmt: skip
    await sink.record(
        [m for _, _, reading in parsed for m in reading.meetings],
        dates=[d for _, _, reading in parsed for d in reading.dates],
        gone=gone,
        cursor={FILE + key: entry for key, entry in entries.items()},
    )
    for key, entry in entries.items():
        if entry is None:
            files.entries.pop(key, None)
        else:
            files.entries[key] = entry


# -- a published calendar ---------------------------------------------------------------


def shown(url: str) -> str:
    """A URL fit for logs: a secret address carries its token in the path or query."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}/…" if parts.path.strip("/") or parts.query else url


def _http_url(url: str) -> str:
    scheme, rest = url.split("://", 1) if "://" in url else ("", url)
    scheme = scheme.lower()
    if scheme in ("webcal", "webcals"):
        return "https://" + rest
    if scheme not in ("http", "https"):
        raise ValueError(f"ics: url must start with http://, https:// or webcal://, not {url!r}")
    return url


@dataclass(frozen=True, slots=True)
class Response:
    status: int  # 200 or 304
    text: str = ""
    etag: str | None = None
    modified: str | None = None


def fetch(url: str, etag: str | None, modified: str | None) -> Response:
    """GET a calendar (blocking: run it in a thread); errors raise with the URL redacted."""
    request = urllib.request.Request(
        url, headers={"User-Agent": "nurtured", "Accept": "text/calendar, */*;q=0.5"}
    )
    if etag:
        request.add_header("If-None-Match", etag)
    if modified:
        request.add_header("If-Modified-Since", modified)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            body = response.read(MAX_BYTES + 1)
            headers: Message = response.headers
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return Response(304, etag=etag, modified=modified)
        raise ConnectionError(f"{shown(url)} answered HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConnectionError(f"{shown(url)} cannot be reached: {reason}") from None
    if len(body) > MAX_BYTES:
        raise ValueError(f"{shown(url)}: more than {MAX_BYTES // 2**20} MB, not read")
    charset = headers.get_content_charset() or "utf-8"
    try:
        text = body.decode(charset, errors="replace")
    except LookupError:
        text = body.decode("utf-8", errors="replace")
    return Response(200, text.lstrip("\ufeff"), headers.get("ETag"), headers.get("Last-Modified"))


async def _run_url(url: str, poll: timedelta, settings: Settings, sink: Sink) -> None:
    target = _http_url(url)
    cursor = await sink.cursor()
    ready = False
    while True:
        refreshed = cursor.get("refreshed") if cursor.get("version") == VERSION else None
        due = not refreshed or (datetime.now(UTC) - datetime.fromisoformat(refreshed) >= REFRESH)
        # A full GET once a day even when unchanged: the window ahead moves on.
        etag, modified = (None, None) if due else (cursor.get("etag"), cursor.get("modified"))
        response = await asyncio.to_thread(fetch, target, etag, modified)
        if response.status == 200:
            cursor = await _reconcile(response, url, cursor, settings, sink)
        if not ready:
            sink.ready()
            ready = True
        await asyncio.sleep(poll.total_seconds())


async def _reconcile(
    response: Response, url: str, cursor: dict[str, Any], settings: Settings, sink: Sink
) -> dict[str, Any]:
    try:
        reading = await asyncio.to_thread(settings.read, response.text, shown(url), sink)
    except ValueError as exc:
        sink.log.warning("%s; keeping what was read before", exc)
        return cursor
    for warning in reading.warnings:
        sink.log.warning("%s", warning)
    new = {
        "ids": reading.ids,
        "etag": response.etag,
        "modified": response.modified,
        "refreshed": datetime.now(UTC).isoformat(),
        "version": VERSION,
    }
    gone = sorted(set(cursor.get("ids", ())) - set(reading.ids))
    await sink.record(reading.meetings, dates=reading.dates, gone=gone, cursor=new)
    sink.log.info("read %d meeting(s) from %s", len(reading.meetings), shown(url))
    return {**cursor, **new}
