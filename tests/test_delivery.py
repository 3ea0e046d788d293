"""From due plans to delivered messages, through real Apprise to a real HTTP endpoint.

Time is passed in, so quiet hours, caps and retries are exact; everything
else is real: the SQLite store, Apprise, the loopback HTTP endpoint.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nurtured import config as configuration
from nurtured import reminders
from nurtured.model import Card, Interaction
from nurtured.notify import Notifier
from nurtured.store import Store

# 10:00 in Lisbon (UTC+0 in January).
NOW = datetime(2027, 1, 15, 10, tzinfo=UTC)
FIRST = ("Ana", "Bo", "Cy")


def setup(tmp_path: Path, notify: str, limits: str = "") -> configuration.Config:
    (tmp_path / "config.yaml").write_text(
        f"timezone: Europe/Lisbon\nstate_dir: ./state\nnotify:\n{notify}\n"
        f"limits:\n{limits or '  max_per_day: 50'}\n"
        "rules:\n  - name: friends\n    match: {tags: [friends]}\n    every: 30d\n"
    )
    return configuration.load(tmp_path / "config.yaml")


@pytest.fixture
async def store(tmp_path):
    store = await Store.open(tmp_path / "state")
    yield store
    await store.close()


async def people(store: Store, config, *overdue_days: int) -> list[int]:
    """Ana, Bo, Cy…: friends whose last call was 30 + n days before NOW, due n days ago."""
    cards = [
        Card(uid=f"p{i}", name=f"{FIRST[i]} Doe", emails=(f"f{i}@x.org",), tags=("friends",))
        for i in range(len(overdue_days))
    ]
    ids = await store.upsert_cards("book", cards, {}, now=NOW - timedelta(days=400))
    calls = [
        Interaction(f"c{i}", f"f{i}@x.org", NOW - timedelta(days=30 + n), "mutual", "call")
        for i, n in enumerate(overdue_days)
    ]
    await store.record("journal", calls)
    await reminders.replan(store, config, NOW)
    return sorted(ids)


async def run_once(store: Store, config, notifier: Notifier, now: datetime):
    await reminders.queue_due(store, config, now)
    return await reminders.deliver(store, config, notifier, now)


async def test_nudges_due_together_go_as_one_message_then_wait_for_renotify(tmp_path, store, sink):
    config = setup(tmp_path, f"  - url: {sink.url('/inbox')}")
    notifier = Notifier(config.channels)
    ids = await people(store, config, 3, 1)
    assert await run_once(store, config, notifier, NOW) is None
    [post] = sink.messages()
    assert post.title == "2 people to get in touch with"
    assert "Reach out to Ana" in post.message and "Reach out to Bo" in post.message
    # Nothing more now, and the next nudge for them is a renotify, a week later.
    await run_once(store, config, notifier, NOW + timedelta(hours=1))
    assert len(sink.messages()) == 1
    assert await store.next_due(NOW) == NOW + timedelta(days=7)
    states = [r.state for i in ids for r in await store.reminders_of(i)]
    assert states == ["sent", "sent"]


async def test_a_failed_channel_is_retried_alone_and_nothing_is_lost(tmp_path, store, sink):
    good, bad = sink.url("/a"), sink.url("/fail")
    config = setup(tmp_path, f"  - url: {good}\n  - url: {bad}")
    await people(store, config, 2)
    wake = await run_once(store, config, Notifier(config.channels), NOW)
    assert [p.path for p in sink.messages()] == ["/a"]
    assert len(sink.failures()) >= 1
    [failing] = await store.failing()
    assert "/fail" in failing.last_error and failing.attempts == 1
    assert wake == NOW + timedelta(seconds=30)  # the first back-off step

    # Before the back-off ends nothing is tried; the user fixes the URL meanwhile.
    config = setup(tmp_path, f"  - url: {good}\n  - url: {sink.url('/b')}")
    notifier = Notifier(config.channels)
    await run_once(store, config, notifier, NOW + timedelta(seconds=10))
    assert [p.path for p in sink.messages()] == ["/a"]
    await run_once(store, config, notifier, NOW + timedelta(seconds=31))
    # The channel that had it does not get it twice.
    assert [p.path for p in sink.messages()] == ["/a", "/b"]
    assert await store.failing() == []


async def test_back_off_grows_and_the_nudge_stays(tmp_path, store, sink):
    config = setup(tmp_path, f"  - url: {sink.url('/fail')}")
    notifier = Notifier(config.channels)
    await people(store, config, 1)
    now, waits = NOW, []
    for _ in range(4):
        wake = await run_once(store, config, notifier, now)
        waits.append((wake - now).total_seconds())
        now = wake
    assert waits == [30, 60, 120, 240]
    [failing] = await store.failing()
    assert failing.attempts == 4


async def test_quiet_hours_hold_nudges_until_they_end(tmp_path, store, sink):
    config = setup(tmp_path, f"  - url: {sink.url()}", '  quiet_hours: "22:00-07:30"')
    notifier = Notifier(config.channels)
    await people(store, config, 0)
    late = NOW.replace(hour=23)
    wake = await run_once(store, config, notifier, late)
    assert sink.messages() == []
    assert wake == datetime(2027, 1, 16, 7, 30, tzinfo=UTC)
    await run_once(store, config, notifier, wake)
    assert len(sink.messages()) == 1


async def test_daily_cap_sends_the_most_overdue_first(tmp_path, store, sink):
    config = setup(tmp_path, f"  - url: {sink.url()}", "  max_per_day: 1")
    notifier = Notifier(config.channels)
    await people(store, config, 1, 9, 4)
    wake = await run_once(store, config, notifier, NOW)
    [post] = sink.messages()
    assert post.title == "Reach out to Bo"  # the most overdue, alone: the personal form
    assert wake == datetime(2027, 1, 16, 0, 0, tzinfo=UTC)  # the next local midnight
    await run_once(store, config, notifier, wake)
    assert [p.title for p in sink.messages()] == ["Reach out to Bo", "Reach out to Cy"]


async def test_a_held_nudge_is_written_as_of_the_day_it_goes(tmp_path, store, sink):
    config = setup(tmp_path, f"  - url: {sink.url()}", "  max_per_day: 1")
    notifier = Notifier(config.channels)
    await people(store, config, 9, 1)  # both due today; the cap lets only Ana's go
    await run_once(store, config, notifier, NOW)
    assert [p.title for p in sink.messages()] == ["Reach out to Ana"]
    # While Bo's nudge waits for tomorrow, his card gains a note.
    bo = Card(uid="p1", name="Bo Doe", emails=("f1@x.org",), tags=("friends",),
              note="New job in Porto")  # fmt: skip
    await store.upsert_cards("book", [bo], {})
    await run_once(store, config, notifier, NOW + timedelta(days=1))
    [_, post] = sink.messages()
    assert post.title == "Reach out to Bo"
    assert "About Bo: New job in Porto" in post.text
    [sent] = [r for r in (await store.dump())["reminders"] if r["title"] == "Reach out to Bo"]
    assert "New job in Porto" in sent["body"]  # what went out is what is kept


async def test_digest_batches_at_the_cron_time(tmp_path, store, sink):
    config = setup(tmp_path, f"  - url: {sink.url()}", '  digest: "0 8 * * *"')
    notifier = Notifier(config.channels)
    await people(store, config, 0)  # due at 10:00, after today's digest
    wake = await run_once(store, config, notifier, NOW)
    assert sink.messages() == []
    assert wake == datetime(2027, 1, 16, 8, 0, tzinfo=UTC)
    await run_once(store, config, notifier, wake)
    assert len(sink.messages()) == 1


async def test_a_rule_sends_only_to_its_tagged_channels(tmp_path, store, sink):
    text = (
        f"  - url: {sink.url('/phone')}\n    tag: phone\n"
        f"  - url: {sink.url('/desk')}\n    tag: desk"
    )
    config = setup(tmp_path, text)
    config_text = (
        (tmp_path / "config.yaml").read_text().replace("every: 30d", "every: 30d\n    notify: desk")
    )
    (tmp_path / "config.yaml").write_text(config_text)
    config = configuration.load(tmp_path / "config.yaml")
    await people(store, config, 1)
    await run_once(store, config, Notifier(config.channels), NOW)
    assert [p.path for p in sink.messages()] == ["/desk"]


async def test_a_contact_before_delivery_supersedes_the_waiting_nudge(tmp_path, store, sink):
    config = setup(tmp_path, f"  - url: {sink.url()}", '  quiet_hours: "22:00-07:30"')
    notifier = Notifier(config.channels)
    [pid] = await people(store, config, 0)
    late = NOW.replace(hour=23)
    await run_once(store, config, notifier, late)  # queued, held by quiet hours
    reply = Interaction("r1", "f0@x.org", late + timedelta(minutes=5), "in", "message")
    await store.record("mail", [reply])
    await reminders.replan(store, config, late + timedelta(minutes=6), [pid])
    await run_once(store, config, notifier, datetime(2027, 1, 16, 7, 30, tzinfo=UTC))
    assert sink.messages() == []
    [reminder] = await store.reminders_of(pid)
    assert reminder.state == "superseded"
