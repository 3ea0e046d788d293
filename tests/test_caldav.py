"""The caldav source against a real Radicale on 127.0.0.1.

Each test writes a config as a user would (the password through `!secret` or
`password_command`), puts events on the server over HTTP, runs the plugin
in-process the way the daemon does (under `plugins.supervise`, against a real
store with an address book) and looks at what a user would see: the people's
timelines, and the source's health.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from conftest import SupervisedSource, eventually, write_source_config

from nurtured import config
from nurtured.model import Card
from nurtured.store import Store

if TYPE_CHECKING:
    from radicale_server import Radicale


ME = "me@home.example"
ANA = "ana@friends.example"
BO = "bo@work.example"
NOW = datetime.now(UTC).replace(microsecond=0, second=0, minute=0)
POLL = 0.3  # seconds
CALENDAR_HREF = "/alice/calendar/"


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def event(
    uid: str,
    start: datetime,
    *,
    attendees: tuple[str, ...] = (ANA,),
    summary: str = "Project sync",
    rrule: str = "",
) -> str:
    """One VEVENT as a client would PUT it: organized by me, with attendees."""
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//nurtured tests//EN",
        "BEGIN:VEVENT",
        f"UID:{uid}",
        f"DTSTAMP:{stamp(NOW)}",
        f"DTSTART:{stamp(start)}",
        f"DTEND:{stamp(start + timedelta(hours=1))}",
        f"SUMMARY:{summary}",
    ]
    if rrule:
        lines.append(f"RRULE:{rrule}")
    if attendees:
        lines.append(f"ORGANIZER:mailto:{ME}")
        lines += [f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{a}" for a in attendees]
    lines += ["END:VEVENT", "END:VCALENDAR"]
    return "\r\n".join(lines) + "\r\n"


# -- the setup: a config, a store with contacts, the source running ------------------------


@pytest.fixture
async def store(tmp_path: Path):
    store = await Store.open(tmp_path / "state")
    await store.upsert_cards(
        "book",
        [
            Card(uid="ana", name="Ana Lima", emails=(ANA,)),
            Card(uid="bo", name="Bo Berg", emails=(BO,)),
        ],
        {},
    )
    yield store
    await store.close()


def write_config(
    tmp_path: Path, server: Radicale, password: str = "secret", **options: Any
) -> config.Config:
    """Write config.yaml (and secrets.yaml) for this server; returns it loaded."""
    entry = {"plugin": "caldav", "url": server.url, "username": "alice", **options}
    return write_source_config(tmp_path, entry, password, [ME], "{name: all, every: 30d}")


@pytest.fixture
async def run_source(tmp_path: Path, store: Store):
    started: list[SupervisedSource] = []

    def run(cfg: config.Config, **overrides: Any) -> SupervisedSource:
        source = SupervisedSource(store, cfg, **{"poll": timedelta(seconds=POLL), **overrides})
        started.append(source)
        return source

    yield run
    for source in started:
        await source.stop()


async def meetings(store: Store, name: str) -> list[tuple[datetime, str]]:
    """A person's meetings: (when, title), oldest first."""
    [person] = await store.find_people(name)
    return sorted(
        (datetime.fromisoformat(i["at"]), i["note"])
        for i in await store.timeline(person.id)
        if i["channel"] == "meeting"
    )


async def meeting_count(store: Store) -> int:
    dump = await store.dump()
    return sum(1 for i in dump["interactions"] if i["channel"] == "meeting")


# -- tests --------------------------------------------------------------------------------


async def test_first_sync_finds_the_calendars_from_the_base_url(tmp_path, radicale, run_source):
    radicale.put("lunch", event("lunch", ago(10), summary="Lunch"))
    radicale.put("review", event("review", ago(3), attendees=(ANA, BO), summary="Review"))
    radicale.put("weekly", event("weekly", ago(29), summary="Weekly", rrule="FREQ=WEEKLY;COUNT=4"))
    radicale.put("dentist", event("dentist", ago(5), attendees=(), summary="Dentist"))
    radicale.put("old", event("old", ago(400), summary="Too old"))
    source = await run_source(write_config(tmp_path, radicale, history="52w")).started()

    ana = await meetings(source.store, "Ana Lima")
    assert ana == [
        (ago(29), "Weekly"),
        (ago(22), "Weekly"),
        (ago(15), "Weekly"),
        (ago(10), "Lunch"),
        (ago(8), "Weekly"),
        (ago(3), "Review"),
    ]
    assert await meetings(source.store, "Bo Berg") == [(ago(3), "Review")]

    # Only the event calendar is read (not the task list), and only its events from
    # `history` ago on (not the one from 400 days ago). The cursor knows every item
    # read, with its etag and the ids it produced.
    cursor = await source.cursor()
    assert list(cursor) == [CALENDAR_HREF]
    entry = cursor[CALENDAR_HREF]
    assert entry["token"]
    items = entry["items"]
    assert sorted(items) == [f"{CALENDAR_HREF}{n}.ics" for n in
                             ("dentist", "lunch", "review", "weekly")]  # fmt: skip
    assert items[f"{CALENDAR_HREF}dentist.ics"][1] == []
    assert len(items[f"{CALENDAR_HREF}review.ics"][1]) == 2
    assert len(items[f"{CALENDAR_HREF}weekly.ics"][1]) == 4
    assert all(etag for etag, _ in items.values())
    assert source.failures() == []


async def test_calendars_are_chosen_by_display_name(tmp_path, radicale, run_source, store):
    radicale.put("lunch", event("lunch", ago(10)))
    source = await run_source(write_config(tmp_path, radicale, calendars=["Personal"])).started()
    assert len(await meetings(store, "Ana Lima")) == 1
    await source.stop()

    other = tmp_path / "other"
    other.mkdir()
    missing = run_source(write_config(other, radicale, calendars=["Work"]))
    await eventually(missing.failed)
    assert missing.failures()[0] == (
        f"ValueError: calendars: no calendar named 'Work' on 127.0.0.1:{radicale.port}"
        " (there are: Personal)"
    )


async def test_added_moved_and_deleted_events_are_followed(tmp_path, radicale, run_source):
    radicale.put("lunch", event("lunch", ago(10), summary="Lunch"))
    radicale.put("review", event("review", ago(3), attendees=(ANA, BO), summary="Review"))
    source = await run_source(write_config(tmp_path, radicale)).started()
    store = source.store
    assert await meeting_count(store) == 3

    radicale.put("call", event("call", ago(1), attendees=(BO,), summary="Call"))

    async def bo_has_two() -> bool:
        return len(await meetings(store, "Bo Berg")) == 2

    await eventually(bo_has_two)

    radicale.put("lunch", event("lunch", ago(9), summary="Lunch moved"))  # moved a day

    async def lunch_moved() -> bool:
        return (ago(9), "Lunch moved") in await meetings(store, "Ana Lima")

    await eventually(lunch_moved)
    assert await meetings(store, "Ana Lima") == [(ago(9), "Lunch moved"), (ago(3), "Review")]

    radicale.put("review", event("review", ago(3), attendees=(ANA,), summary="Review"))  # Bo left

    async def bo_left() -> bool:
        return await meetings(store, "Bo Berg") == [(ago(1), "Call")]

    await eventually(bo_left)

    radicale.delete("lunch")

    async def lunch_gone() -> bool:
        return await meetings(store, "Ana Lima") == [(ago(3), "Review")]

    await eventually(lunch_gone)
    assert await meeting_count(store) == 2
    items = (await source.cursor())[CALENDAR_HREF]["items"]
    assert sorted(items) == [f"{CALENDAR_HREF}call.ics", f"{CALENDAR_HREF}review.ics"]
    assert source.failures() == []


async def test_an_expired_sync_token_means_a_full_read_without_double_counting(
    tmp_path, radicale, run_source, store
):
    radicale.put("lunch", event("lunch", ago(10), summary="Lunch"))
    radicale.put("review", event("review", ago(3), attendees=(ANA, BO), summary="Review"))
    cfg = write_config(tmp_path, radicale)
    first = await run_source(cfg).started()
    assert await meeting_count(store) == 3
    await first.stop()

    # While nurtured is away the token expires, an event is deleted, one added.
    entry = (await first.cursor())[CALENDAR_HREF]
    bogus = {**entry, "token": "http://radicale.org/ns/sync/0000"}
    await store.record(first.name, cursor={CALENDAR_HREF: bogus})
    radicale.delete("lunch")
    radicale.put("call", event("call", ago(1), attendees=(BO,), summary="Call"))

    second = await run_source(cfg).started()
    assert await meetings(store, "Ana Lima") == [(ago(3), "Review")]
    assert await meetings(store, "Bo Berg") == [(ago(3), "Review"), (ago(1), "Call")]
    assert await meeting_count(store) == 3
    entry = (await second.cursor())[CALENDAR_HREF]
    assert entry["token"] not in ("", bogus["token"])
    assert sorted(entry["items"]) == [f"{CALENDAR_HREF}call.ics", f"{CALENDAR_HREF}review.ics"]

    # And it goes on following the server with the new token.
    radicale.put("tea", event("tea", ago(0.5), summary="Tea"))

    async def tea() -> bool:
        return (ago(0.5), "Tea") in await meetings(store, "Ana Lima")

    await eventually(tea)
    assert second.failures() == []


async def test_events_before_the_history_are_not_fetched_until_moved_into_it(
    tmp_path, radicale, run_source, store
):
    radicale.put("old", event("old", ago(400), summary="Long ago"))
    radicale.put(
        "bday",
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//IDN nextcloud.com//Birthday calendar//EN\r\n"
        "BEGIN:VEVENT\r\nUID:bo\r\nDTSTART;VALUE=DATE:19700302\r\nRRULE:FREQ=YEARLY\r\n"
        "SUMMARY:🎂 Bo Berg\r\nX-NEXTCLOUD-BC-FIELD-TYPE:BDAY\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    )
    source = await run_source(write_config(tmp_path, radicale, history="52w")).started()
    assert await meeting_count(store) == 0
    items = (await source.cursor())[CALENDAR_HREF]["items"]
    assert sorted(items) == [f"{CALENDAR_HREF}bday.ics"]  # the old event was never fetched
    [bo] = await store.find_people("Bo Berg")
    assert (await store.person_states([bo.id]))[0].birthday == "--03-02"

    radicale.put("old", event("old", ago(2), summary="Not so old after all"))

    async def moved_in() -> bool:
        return await meetings(store, "Ana Lima") == [(ago(2), "Not so old after all")]

    await eventually(moved_in)
    assert source.failures() == []


async def test_a_calendar_read_by_an_older_version_is_read_again_for_its_birthdays(
    tmp_path, radicale, run_source, store
):
    radicale.put("lunch", event("lunch", ago(10), summary="Lunch"))
    radicale.put(
        "bday",
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Google Inc//Google Calendar 70.9054//EN\r\n"
        "BEGIN:VEVENT\r\nUID:2026_BIRTHDAY_79d3@google.com\r\nDTSTART;VALUE=DATE:20260302\r\n"
        "SUMMARY:Bo Berg's birthday\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    )
    cfg = write_config(tmp_path, radicale)
    first = await run_source(cfg).started()
    await first.stop()
    # What the version before key dates left: no version, the birthday item read as nothing.
    entry = (await first.cursor())[CALENDAR_HREF]
    bday = f"{CALENDAR_HREF}bday.ics"
    ids = entry["items"][bday][1]
    assert ids == ["BIRTHDAY_79d3@google.com|birthday"]
    old = {k: v for k, v in entry.items() if k != "version"}
    old["items"] = {**entry["items"], bday: [entry["items"][bday][0], []]}
    await store.record(first.name, gone=ids, cursor={CALENDAR_HREF: old})
    [bo] = await store.find_people("Bo Berg")
    assert (await store.person_states([bo.id]))[0].birthday == ""

    second = await run_source(cfg).started()
    assert (await store.person_states([bo.id]))[0].birthday == "--03-02"
    assert await meetings(store, "Ana Lima") == [(ago(10), "Lunch")]  # counted once
    assert (await second.cursor())[CALENDAR_HREF]["version"] == 2


async def test_a_server_that_cannot_filter_by_time_is_read_whole(
    tmp_path, radicale, run_source, store, monkeypatch
):
    from nurtured_plugins.caldav import webdav

    async def refused(self: webdav.Client, href: str, start: datetime) -> dict[str, str]:
        raise webdav.DavError(f"REPORT {href} on {self.server}: HTTP 501 Not Implemented")

    monkeypatch.setattr(webdav.Client, "since", refused)
    radicale.put("lunch", event("lunch", ago(10), summary="Lunch"))
    radicale.put("old", event("old", ago(400), summary="Long ago"))
    source = await run_source(write_config(tmp_path, radicale, history="52w")).started()
    assert await meetings(store, "Ana Lima") == [(ago(10), "Lunch")]
    items = (await source.cursor())[CALENDAR_HREF]["items"]
    assert sorted(items) == [f"{CALENDAR_HREF}lunch.ics", f"{CALENDAR_HREF}old.ics"]
    assert source.failures() == []


async def test_wrong_credentials_are_a_clear_error_retried_with_back_off(
    tmp_path, radicale_htpasswd, run_source, store
):
    radicale_htpasswd.put("lunch", event("lunch", ago(10)))
    wrong = run_source(write_config(tmp_path, radicale_htpasswd, password="wrong"))

    async def retried() -> bool:
        return len(wrong.failures()) >= 3

    await eventually(retried)
    assert set(wrong.failures()) == {
        f"LoginError: 127.0.0.1:{radicale_htpasswd.port} refused the username or password"
        " (401): check username, password or password_command (an app password, where the"
        " provider has them)"
    }
    assert [state for state, _ in wrong.health[:4]] == ["failed", "starting"] * 2
    assert wrong.delays[:3] == [0.1, 0.2, 0.4]  # tried again, backing off
    assert not wrong.ready.is_set()
    assert await meeting_count(store) == 0
    await wrong.stop()

    # The right password, from a password manager's command, works.
    other = tmp_path / "right"
    other.mkdir()
    cfg = write_config(other, radicale_htpasswd, password_command="echo secret")
    right = await run_source(cfg).started()
    assert right.failures() == []
    assert len(await meetings(store, "Ana Lima")) == 1


async def test_the_server_going_away_and_coming_back(tmp_path, radicale, run_source, store):
    radicale.put("lunch", event("lunch", ago(10), summary="Lunch"))
    radicale.put("review", event("review", ago(3), attendees=(ANA, BO), summary="Review"))
    source = await run_source(write_config(tmp_path, radicale)).started()
    assert await meeting_count(store) == 3

    radicale.stop()
    await eventually(source.failed)
    assert source.failures()[0].startswith(
        f"ConnectionError: 127.0.0.1:{radicale.port}: cannot reach the server"
    )
    # Changed while nurtured could not look: written as files, seen once it is back.
    radicale.file("call").write_text(event("call", ago(1), attendees=(BO,), summary="Call"))
    radicale.start()

    async def call_read() -> bool:
        return (ago(1), "Call") in await meetings(store, "Bo Berg")

    await eventually(call_read)
    assert await meetings(store, "Ana Lima") == [(ago(10), "Lunch"), (ago(3), "Review")]
    assert await meetings(store, "Bo Berg") == [(ago(3), "Review"), (ago(1), "Call")]
    assert await meeting_count(store) == 4
    assert source.readies >= 2  # restarted by the supervisor, read again from its cursor


async def test_a_server_without_sync_collection_is_followed_by_ctag_and_etags(
    tmp_path, radicale, run_source, store, monkeypatch
):
    from nurtured_plugins.caldav import webdav

    listed = webdav.Client.calendars

    async def without_sync(self: webdav.Client, home: str) -> list[webdav.Calendar]:
        # As a server would answer that lists no sync-collection among its reports.
        return [replace(c, can_sync=False) for c in await listed(self, home)]

    monkeypatch.setattr(webdav.Client, "calendars", without_sync)
    sent: list[bytes] = []
    request = webdav.Client.request

    async def recorded(self: webdav.Client, method: str, path: str, body: bytes, *a, **k):
        sent.append(body)
        return await request(self, method, path, body, *a, **k)

    monkeypatch.setattr(webdav.Client, "request", recorded)

    radicale.put("lunch", event("lunch", ago(10), summary="Lunch"))
    radicale.put("review", event("review", ago(3), attendees=(ANA, BO), summary="Review"))
    source = await run_source(write_config(tmp_path, radicale)).started()
    assert await meeting_count(store) == 3
    assert not any(b"sync-collection" in body for body in sent)

    radicale.put("lunch", event("lunch", ago(9), summary="Lunch moved"))
    radicale.delete("review")
    radicale.put("call", event("call", ago(1), attendees=(BO,), summary="Call"))

    async def followed() -> bool:
        return await meetings(store, "Ana Lima") == [(ago(9), "Lunch moved")] and await meetings(
            store, "Bo Berg"
        ) == [(ago(1), "Call")]

    await eventually(followed)
    assert await meeting_count(store) == 2
    entry = (await source.cursor())[CALENDAR_HREF]
    assert entry["ctag"] and entry["token"] == ""
    # An unchanged calendar costs one PROPFIND of its ctag per poll, no item is fetched.
    multigets = sum(b"calendar-multiget" in body for body in sent)
    await asyncio.sleep(4 * POLL)
    assert sum(b"calendar-multiget" in body for body in sent) == multigets
    assert source.failures() == []


async def test_recurring_series_are_expanded_again_as_time_passes(
    tmp_path, radicale, run_source, store
):
    radicale.put("weekly", event("weekly", ago(29), summary="Weekly", rrule="FREQ=WEEKLY"))
    cfg = write_config(tmp_path, radicale)
    first = await run_source(cfg, history=timedelta(days=10)).started()
    assert [at for at, _ in await meetings(store, "Ana Lima") if at < NOW] == [ago(8), ago(1)]
    await first.stop()

    # Two days later (the series was expanded long enough ago), with a longer history:
    # the unchanged series is read again and what it produced before is kept.
    entry = (await first.cursor())[CALENDAR_HREF]
    before = entry["items"][f"{CALENDAR_HREF}weekly.ics"][1]
    assert entry["recurring"] == [f"{CALENDAR_HREF}weekly.ics"]
    earlier = {**entry, "expanded": (datetime.now(UTC) - timedelta(days=2)).isoformat()}
    await store.record(first.name, cursor={CALENDAR_HREF: earlier})
    second = await run_source(cfg, history=timedelta(days=40)).started()
    past = [at for at, _ in await meetings(store, "Ana Lima") if at < NOW]
    assert past == [ago(29), ago(22), ago(15), ago(8), ago(1)]
    after = (await second.cursor())[CALENDAR_HREF]
    assert set(before) <= set(after["items"][f"{CALENDAR_HREF}weekly.ics"][1])
    assert datetime.fromisoformat(after["expanded"]) > datetime.now(UTC) - timedelta(minutes=1)


def test_answers_are_read_by_namespace_whatever_the_prefixes():
    from nurtured_plugins.caldav import webdav

    # As Nextcloud writes it: prefixes, full URLs and escaped paths in hrefs.
    body = b"""<?xml version="1.0"?>
    <d:multistatus xmlns:d="DAV:" xmlns:cal="urn:ietf:params:xml:ns:caldav">
      <d:response>
        <d:href>https://cloud.example/remote.php/dav/calendars/ana/work/a%20b.ics</d:href>
        <d:propstat><d:prop><d:getetag>"1"</d:getetag></d:prop>
          <d:status>HTTP/1.1 200 OK</d:status></d:propstat>
        <d:propstat><d:prop><cal:calendar-data/></d:prop>
          <d:status>HTTP/1.1 404 Not Found</d:status></d:propstat>
      </d:response>
      <d:response>
        <d:href>/remote.php/dav/calendars/ana/work/gone.ics</d:href>
        <d:status>HTTP/1.1 404 Not Found</d:status>
      </d:response>
      <d:sync-token>http://sabre.io/ns/sync/7</d:sync-token>
    </d:multistatus>"""
    responses, root = webdav.parse_multistatus(body, "https://cloud.example/remote.php/dav/")
    assert [(r.href, r.status, r.text(webdav.DAV, "getetag")) for r in responses] == [
        ("/remote.php/dav/calendars/ana/work/a b.ics", 200, '"1"'),
        ("/remote.php/dav/calendars/ana/work/gone.ics", 404, None),
    ]
    assert root.findtext("d:sync-token", namespaces=webdav.NS) == "http://sabre.io/ns/sync/7"
    with pytest.raises(webdav.DavError, match="cannot be read"):
        webdav.parse_multistatus(b"<html>oops", "https://cloud.example/")
