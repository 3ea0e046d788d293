"""The ics source, run in-process against a real store, real files and a real HTTP server."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import RunningSource, eventually

from nurtured.model import Card
from nurtured.store import Store

LISBON = ZoneInfo("Europe/Lisbon")
ME = ("me@example.org",)
NOW = datetime.now(UTC).replace(microsecond=0)


def stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def event(uid: str, at: datetime, summary: str, *lines: str) -> str:
    body = [
        "BEGIN:VEVENT",
        f"UID:{uid}",
        f"DTSTAMP:{stamp(NOW)}",
        f"DTSTART:{stamp(at)}",
        f"DTEND:{stamp(at + timedelta(hours=1))}",
        f"SUMMARY:{summary}",
        *lines,
        "END:VEVENT",
    ]
    return "\r\n".join(body) + "\r\n"


def ics(*events: str) -> str:
    head = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Radicale//NONSGML//EN\r\n"
    return head + "".join(events) + "END:VCALENDAR\r\n"


def with_ana(uid: str, at: datetime, summary: str = "Project") -> str:
    return ics(
        event(
            uid,
            at,
            summary,
            "ORGANIZER:mailto:me@example.org",
            "ATTENDEE;PARTSTAT=ACCEPTED:MAILTO:Ana@Example.org",
        )
    )


@pytest.fixture
async def store(tmp_path):
    store = await Store.open(tmp_path / "state")
    await store.upsert_cards(
        "book",
        [
            Card(uid="ana", name="Ana Lima", emails=("ana@example.org",)),
            Card(uid="bo", name="Bo Berg", emails=("bo@example.com",)),
        ],
        {},
    )
    yield store
    await store.close()


@pytest.fixture
def me() -> tuple[str, ...]:
    return ME


async def meetings(store: Store, name: str) -> list[tuple[str, str]]:
    """(at, note) of a person's meetings, oldest first."""
    [person] = await store.find_people(name)
    rows = await store.timeline(person.id)
    return sorted((r["at"], r["note"]) for r in rows if r["channel"] == "meeting")


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


# -- local files ------------------------------------------------------------------------


async def test_a_vdir_folder_is_read_and_watched(tmp_path, store, running, caplog):
    vdir = tmp_path / "calendar"
    vdir.mkdir()
    past, later = NOW - timedelta(days=10), NOW + timedelta(days=5)
    (vdir / "a1.ics").write_text(with_ana("a1", past, "Kick-off"))
    (vdir / "b1.ics").write_text(ics(event("b1", later, "Lunch with Bo Berg")))
    (vdir / "x.ics").write_text(ics(event("x1", past, "Call: Zé Ninguém")))
    (vdir / "old.ics").write_text(with_ana("old", NOW - timedelta(weeks=200), "Too old"))
    (vdir / "broken.ics").write_text("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:cut")
    (vdir / "notes.txt").write_text("not a calendar")
    with caplog.at_level(logging.WARNING):
        source = await running("ics", path=vdir)
    assert await meetings(store, "Ana Lima") == [(iso(past), "Kick-off")]
    assert await meetings(store, "Bo Berg") == [(iso(later), "Lunch with Bo Berg")]
    assert ("ics:test", "Zé Ninguém", iso(past)) in await store.unresolved()
    assert any("broken.ics" in r.getMessage() for r in caplog.records)

    # added, moved, deleted: each seen within seconds
    added = NOW - timedelta(days=3)
    (vdir / "a2.ics").write_text(with_ana("a2", added, "Follow-up"))
    await eventually(lambda: _has(store, "Ana Lima", iso(added)))
    moved = NOW - timedelta(days=2)
    (vdir / "a2.ics").write_text(with_ana("a2", moved, "Follow-up"))
    await eventually(lambda: _has(store, "Ana Lima", iso(moved)))
    assert await meetings(store, "Ana Lima") == [
        (iso(past), "Kick-off"),
        (iso(moved), "Follow-up"),
    ]
    (vdir / "a1.ics").unlink()
    await eventually(lambda: _lacks(store, "Ana Lima", iso(past)))
    assert await meetings(store, "Ana Lima") == [(iso(moved), "Follow-up")]
    assert source.task.done() is False


async def test_one_ics_file_an_event_removed_from_it_is_removed(tmp_path, store, running):
    file = tmp_path / "work.ics"
    first, second = NOW - timedelta(days=30), NOW - timedelta(days=20)
    organizer = "ORGANIZER:mailto:bo@example.com"
    file.write_text(
        ics(event("e1", first, "One", organizer), event("e2", second, "Two", organizer))
    )
    (tmp_path / "other.ics").write_text(with_ana("o", first))  # beside it, not read
    await running("ics", path=file)
    assert await meetings(store, "Bo Berg") == [(iso(first), "One"), (iso(second), "Two")]
    assert await meetings(store, "Ana Lima") == []
    file.write_text(ics(event("e2", second, "Two", organizer)))
    await eventually(lambda: _lacks(store, "Bo Berg", iso(first)))
    assert await meetings(store, "Bo Berg") == [(iso(second), "Two")]


async def test_a_weekly_series_counts_each_occurrence_in_the_window(tmp_path, store, running):
    file = tmp_path / "series.ics"
    begin = NOW - timedelta(weeks=4, hours=1)
    file.write_text(
        ics(event("s", begin, "1:1", "RRULE:FREQ=WEEKLY", "ATTENDEE:mailto:ana@example.org"))
    )
    await running("ics", path=file)
    found = await meetings(store, "Ana Lima")
    # four weeks back to now, and about 60 days ahead: never an endless expansion
    assert len(found) in (4 + 8, 4 + 9)
    assert found[0] == (iso(begin), "1:1")


async def test_restart_reads_only_files_changed_meanwhile(tmp_path, store, caplog):
    vdir = tmp_path / "calendar"
    vdir.mkdir()
    for n in range(10):
        (vdir / f"e{n}.ics").write_text(with_ana(f"e{n}", NOW - timedelta(days=n + 1)))
    first = await RunningSource(store, "ics", {"path": vdir}, ME).started()
    await first.stop()
    (vdir / "e3.ics").unlink()
    (vdir / "e4.ics").write_text(with_ana("e4", NOW - timedelta(days=40)))
    with caplog.at_level(logging.INFO, logger="nurtured.plugins.ics"):
        second = await RunningSource(store, "ics", {"path": vdir}, ME).started()
    await second.stop()
    assert any("read 2 changed file(s)" in r.getMessage() for r in caplog.records)
    found = [at for at, _ in await meetings(store, "Ana Lima")]
    assert len(found) == 9
    assert iso(NOW - timedelta(days=4)) not in found
    assert iso(NOW - timedelta(days=40)) in found


async def test_options_are_checked(tmp_path, store):
    for options in ({}, {"path": tmp_path, "url": "https://example.org/cal.ics"}):
        with pytest.raises(ValueError, match="exactly one of path"):
            await RunningSource(store, "ics", options, ME).started()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        await RunningSource(store, "ics", {"path": tmp_path / "nowhere"}, ME).started()
    with pytest.raises(ValueError, match="url must start with"):
        await RunningSource(store, "ics", {"url": "ftp://example.org/cal.ics"}, ME).started()


async def test_a_birthday_calendar_gives_birthdays_to_people_who_have_a_card(
    tmp_path, store, running
):
    vdir = tmp_path / "contact_birthdays"
    vdir.mkdir()

    def birthday(uid: str, day: str, summary: str, *lines: str) -> str:
        head = [f"UID:{uid}", f"DTSTART;VALUE=DATE:{day}", "RRULE:FREQ=YEARLY"]
        body = [*head, f"SUMMARY:{summary}", "X-NEXTCLOUD-BC-FIELD-TYPE:BDAY", *lines]
        return ics("BEGIN:VEVENT\r\n" + "\r\n".join(body) + "\r\nEND:VEVENT\r\n")

    (vdir / "ana.ics").write_text(
        birthday("ana", "19900415", "🎂 Ana Lima (1990)", "X-NEXTCLOUD-BC-YEAR:1990"), "utf-8"
    )
    (vdir / "zoe.ics").write_text(birthday("zoe", "19700701", "🎂 Zoé Nobody"), "utf-8")
    await running("ics", path=vdir)

    [ana] = await store.find_people("Ana Lima")
    [bo] = await store.find_people("Bo Berg")
    states = {s.name: s for s in await store.person_states()}
    assert (states["Ana Lima"].birthday, states["Bo Berg"].birthday) == ("1990-04-15", "")
    assert sorted(states) == ["Ana Lima", "Bo Berg"]  # Zoé is no one's card: nobody new
    assert await meetings(store, "Ana Lima") == []  # and a birthday is not a meeting

    # Bo's birthday added, Ana's removed from the calendar: both followed.
    (vdir / "bo.ics").write_text(birthday("bo", "19700302", "🎂 Bo Berg"), "utf-8")
    (vdir / "ana.ics").unlink()

    async def followed() -> bool:
        days = {s.id: s.birthday for s in await store.person_states([ana.id, bo.id])}
        return days == {ana.id: "", bo.id: "--03-02"}

    await eventually(followed)


async def _has(store: Store, name: str, at: str) -> bool:
    return at in [a for a, _ in await meetings(store, name)]


async def _lacks(store: Store, name: str, at: str) -> bool:
    return not await _has(store, name, at)


# -- over HTTP --------------------------------------------------------------------------


class Calendar:
    """A published calendar on 127.0.0.1 that answers as real servers do."""

    def __init__(self, text: str) -> None:
        self.status = 200
        self.requests: list[dict[str, str]] = []
        self.answers: list[int] = []
        self.publish(text)
        calendar = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                # Noted before answering: the client may look as soon as it has the answer.
                calendar.requests.append(dict(self.headers))
                if calendar.status != 200:
                    calendar.answers.append(calendar.status)
                    self.send_error(calendar.status)
                elif self.headers.get("If-None-Match") == calendar.etag:
                    calendar.answers.append(304)
                    self.send_response(304)
                    self.send_header("ETag", calendar.etag)
                    self.end_headers()
                else:
                    calendar.answers.append(200)
                    body = calendar.text.encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/calendar; charset=utf-8")
                    self.send_header("ETag", calendar.etag)
                    self.send_header("Last-Modified", "Sun, 01 Mar 2026 10:00:00 GMT")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/private-s3cr3t/basic.ics"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def publish(self, text: str) -> None:
        self.text = text
        self.etag = '"' + hashlib.sha256(text.encode()).hexdigest()[:16] + '"'

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def published():
    servers: list[Calendar] = []

    def serve(text: str) -> Calendar:
        servers.append(Calendar(text))
        return servers[-1]

    yield serve
    for server in servers:
        server.close()


async def test_a_published_calendar_200_304_changed_500(store, published, caplog):
    first, second = NOW - timedelta(days=9), NOW - timedelta(days=1)
    calendar = published(with_ana("p1", first, "Planning"))
    source = await RunningSource(
        store, "ics", {"url": calendar.url, "poll": timedelta(seconds=0.1)}, ME
    ).started()
    try:
        assert calendar.answers[0] == 200
        assert await meetings(store, "Ana Lima") == [(iso(first), "Planning")]

        async def answered_304() -> bool:
            return 304 in calendar.answers

        await eventually(answered_304)
        assert calendar.requests[-1]["If-None-Match"] == calendar.etag
        assert calendar.requests[-1]["If-Modified-Since"] == "Sun, 01 Mar 2026 10:00:00 GMT"

        calendar.publish(with_ana("p1", second, "Planning"))  # the meeting moved
        await eventually(lambda: _has(store, "Ana Lima", iso(second)))
        assert await meetings(store, "Ana Lima") == [(iso(second), "Planning")]

        with caplog.at_level(logging.ERROR):
            calendar.status = 500
            with pytest.raises(ConnectionError, match="HTTP 500") as failure:
                await asyncio.wait_for(source.task, 5)
        assert "s3cr3t" not in str(failure.value)  # a secret address stays out of the logs
        assert await meetings(store, "Ana Lima") == [(iso(second), "Planning")]

        calendar.status = 200  # what the supervisor's restart sees: the cursor resumes
        before = len(calendar.answers)
        again = await RunningSource(
            store, "ics", {"url": calendar.url, "poll": timedelta(hours=1)}, ME
        ).started()
        await again.stop()
        assert calendar.answers[before:] == [304]
        assert await meetings(store, "Ana Lima") == [(iso(second), "Planning")]
    finally:
        await source.stop()


async def test_an_unreachable_url_raises_a_clear_error(store, published):
    calendar = published(ics())
    url = calendar.url
    calendar.close()
    with pytest.raises(ConnectionError, match=r"http://127\.0\.0\.1:\d+/… cannot be reached"):
        await RunningSource(store, "ics", {"url": url}, ME).started()


def test_webcal_means_https_and_urls_are_redacted_for_logs():
    from nurtured_plugins.ics import _http_url, shown

    assert _http_url("webcal://p01-caldav.icloud.com/published/2/x") == (
        "https://p01-caldav.icloud.com/published/2/x"
    )
    assert _http_url("https://example.org/a.ics") == "https://example.org/a.ics"
    assert shown("https://calendar.google.com/calendar/ical/x/private-abc/basic.ics") == (
        "https://calendar.google.com/…"
    )
    assert shown("https://example.org") == "https://example.org"
