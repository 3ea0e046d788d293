"""The imap source against a real Dovecot on 127.0.0.1.

Each test writes a config as a user would (the password through `!secret` or
`password_command`), seeds the mailbox with APPEND, runs the plugin in-process
the way the daemon does (under `plugins.supervise`, against a real store) and
looks at what a user would see: the people's timelines and what the planner
makes of them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from conftest import SupervisedSource, eventually, write_source_config

from nurtured import config
from nurtured.model import Card
from nurtured.planner import CADENCE, LIGHT_TOUCH, plan
from nurtured.store import Store

if TYPE_CHECKING:
    from imap_server import ImapServer

ME = "me@home.example"
ANA = "ana@friends.example"
BO = "bo@work.example"
NOW = datetime.now(UTC).replace(microsecond=0)


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def message(
    sender: str,
    to: str | list[str],
    subject: str,
    *,
    at: datetime,
    message_id: str | None,
    replies_to: str = "",
    headers: tuple[str, ...] = (),
) -> str:
    """A plain mail; the body says something private that must never be read."""
    lines = [f"From: {sender}", f"To: {', '.join([to] if isinstance(to, str) else to)}"]
    lines += [f"Subject: {subject}", f"Date: {format_datetime(at)}"]
    if message_id:
        lines.append(f"Message-ID: <{message_id}>")
    if replies_to:
        lines += [f"In-Reply-To: <{replies_to}>", f"References: <{replies_to}>"]
    lines += [*headers, "", "A private body nurtured never fetches.", ""]
    return "\r\n".join(lines)


# -- the setup: a config, a store with contacts, the source running ------------------------


@pytest.fixture
def write_config(tmp_path: Path, imap_server: ImapServer) -> Callable[..., config.Config]:
    """Write config.yaml (and secrets.yaml) for this server; returns it loaded.

    The password comes through `!secret` unless a `password_command` is given.
    """

    def write(password: str = imap_server.password, **options: Any) -> config.Config:
        entry = {
            "plugin": "imap",
            "host": imap_server.host,
            "port": imap_server.port,
            "security": "none",
            "username": imap_server.username,
            **options,
        }
        rule = "{name: all, every: 30d, answer_window: 7d, pull_back: {after: 2, pause: 8w}}"
        return write_source_config(tmp_path, entry, password, [ME, "*@me.example"], rule)

    return write


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await Store.open(tmp_path / "state")
    await store.upsert_cards(
        "book",
        [
            Card(uid="ana", name="Ana Lima", emails=(ANA,)),
            Card(uid="bo", name="Bo Berg", emails=(BO,)),
            Card(uid="bjorn", name="Björn Åberg", emails=("bjorn@nord.example",)),
        ],
        {},
    )
    yield store
    await store.close()


@pytest.fixture
async def running(store: Store) -> AsyncIterator[Callable[..., Awaitable[SupervisedSource]]]:
    started: list[SupervisedSource] = []

    async def start(cfg: config.Config, **overrides: Any) -> SupervisedSource:
        source = SupervisedSource(store, cfg, **overrides)
        started.append(source)
        return await source.started()

    yield start
    for source in started:
        await source.stop()


async def timeline(store: Store, name: str) -> list[tuple[str, str]]:
    """(direction, note) of a person's interactions, oldest first."""
    [person] = await store.find_people(name)
    return [(t["direction"], t["note"]) for t in reversed(await store.timeline(person.id))]


async def planned(store: Store, cfg: config.Config, name: str) -> Any:
    [person] = await store.find_people(name)
    [state] = await store.person_states([person.id], until=datetime.now(UTC))
    return plan(state, cfg.rules, datetime.now(UTC))


@pytest.fixture
def caplog_info(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.INFO, logger="nurtured.plugins.imap"):
        yield caplog


def logged(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


# -- classification through a real server ---------------------------------------------------


async def test_a_thread_where_the_contact_replies(imap_server, write_config, running, store):
    imap_server.append(
        "Sent",
        message(ME, ANA, "Tromsø talk slides", at=ago(10), message_id="talk@home.example"),
        ago(10),
    )
    imap_server.append(
        "INBOX",
        message(
            f"Ana Lima <{ANA}>",
            ME,
            "Re: Tromsø talk slides",
            at=ago(9),
            message_id="reply@friends.example",
            replies_to="talk@home.example",
        ),
        ago(9),
    )
    cfg = write_config()
    await running(cfg)  # no folders given: INBOX and the folder flagged \Sent
    assert await timeline(store, "Ana") == [
        ("out", "Tromsø talk slides"),
        ("in", "Tromsø talk slides"),
    ]
    now_plan = await planned(store, cfg, "Ana")
    assert now_plan.unanswered == 0 and now_plan.kind == CADENCE
    assert now_plan.last_contact.direction == "in"


async def test_two_unanswered_outreaches_plan_a_pull_back(
    imap_server, write_config, running, store
):
    for days, n in ((40, 1), (20, 2)):
        mail = message(ME, BO, f"Coffee? ({n})", at=ago(days), message_id=f"out{n}@home.example")
        imap_server.append("Sent", mail, ago(days))
    cfg = write_config()
    await running(cfg)
    assert await timeline(store, "Bo") == [("out", "Coffee? (1)"), ("out", "Coffee? (2)")]
    now_plan = await planned(store, cfg, "Bo")
    assert now_plan.unanswered == 2
    assert now_plan.kind == LIGHT_TOUCH and "pulling back" in now_plan.reason


async def test_sent_is_found_by_name_where_the_server_does_not_flag_it(
    imap_server, write_config, running, store
):
    imap_server.stop()
    imap_server.sent_flag = False
    imap_server.start()
    imap_server.append("Sent", message(ME, ANA, "by name", at=ago(3), message_id="n@h"), ago(3))
    await running(write_config())
    assert await timeline(store, "Ana") == [("out", "by name")]


async def test_lists_auto_replies_and_robots_are_not_interactions(
    imap_server, write_config, running, store
):
    def from_ana(subject: str, *headers: str, sender: str = ANA) -> str:
        return message(sender, ME, subject, at=ago(3), message_id=f"{subject}@x", headers=headers)

    imap_server.append("INBOX", from_ana("list", "List-Id: <hikers.lists.example>"), ago(3))
    imap_server.append("INBOX", from_ana("away", "Auto-Submitted: auto-replied"), ago(3))
    imap_server.append("INBOX", from_ana("bulk", "Precedence: bulk"), ago(3))
    imap_server.append("INBOX", from_ana("robot", sender="noreply@friends.example"), ago(3))
    imap_server.append("INBOX", from_ana("personal", "Auto-Submitted: no"), ago(3))
    await running(write_config())
    assert await timeline(store, "Ana") == [("in", "personal")]
    assert await store.unresolved() == []  # the robot is not even an unknown correspondent


async def test_the_same_message_in_two_folders_counts_once(
    imap_server, write_config, running, store
):
    imap_server.create("Archive")
    mail = message(ANA, ME, "Photos from Porto", at=ago(5), message_id="porto@friends.example")
    imap_server.append("INBOX", mail, ago(5))
    imap_server.append("Archive", mail, ago(5))
    await running(write_config(folders=["inbox", "Archive"]))  # INBOX in any case
    assert await timeline(store, "Ana") == [("in", "Photos from Porto")]


async def test_a_mail_to_thirty_people_is_no_outreach(imap_server, write_config, running, store):
    everyone = [ANA, BO] + [f"guest{i}@party.example" for i in range(28)]
    imap_server.append(
        "Sent",
        message(ME, everyone, "Party on Saturday", at=ago(4), message_id="party@home.example"),
        ago(4),
    )
    imap_server.append(
        "Sent",
        message(ME, [ANA, BO], "Dinner, the three of us?", at=ago(2), message_id="d@home.example"),
        ago(2),
    )
    cfg = write_config(password_command="printf 'secret\\nsecond line\\n'")
    await running(cfg)
    assert await timeline(store, "Ana") == [("out", "Dinner, the three of us?")]
    assert await timeline(store, "Bo") == [("out", "Dinner, the three of us?")]
    assert await store.unresolved() == []  # no guest became an interaction either


async def test_encoded_names_and_broken_headers(
    imap_server, write_config, running, store, caplog_info
):
    encoded = (
        "From: =?utf-8?q?Bj=C3=B6rn_=C3=85berg?= <BJORN@nord.example>\r\n"
        f"To: {ME}\r\n"
        "Subject: =?utf-8?b?VHJvbXPDuCBkaW5uZXI=?=\r\n"  # "Tromsø dinner"
        f"Date: {format_datetime(ago(6))}\r\n"
        "Message-ID: <b1@nord.example>\r\n\r\nhi\r\n"
    )
    raw_utf8 = (
        f"From: Ana <{ANA}>\r\nTo: {ME}\r\nSubject: Café à Porto\r\n"
        f"Date: {format_datetime(ago(5))}\r\n\r\nno Message-ID at all\r\n"
    ).encode()
    bad_date = (
        f"From: {BO}\r\nTo: {ME}\r\nSubject: odd clock\r\nDate: yesterday, more or less\r\n"
        "Message-ID: <clock@work.example>\r\n\r\n"
    )
    no_sender = f"To: {ME}\r\nSubject: who wrote this?\r\nMessage-ID: <anon@x>\r\n\r\n"
    folded_garbage = (
        f"From: {ANA}\r\nTo: {ME}\r\nSubject: still\r\n readable\r\nX-Broken header line\r\n"
        f"Date: {format_datetime(ago(1))}\r\nMessage-ID: <<<weird>>\r\n\r\n"
    )
    imap_server.append("INBOX", encoded, ago(6))
    imap_server.append("INBOX", raw_utf8, ago(5))
    imap_server.append("INBOX", no_sender, ago(4))
    imap_server.append("INBOX", bad_date, ago(3))
    imap_server.append("INBOX", folded_garbage, ago(1))
    await running(write_config())
    assert await timeline(store, "Björn") == [("in", "Tromsø dinner")]
    assert await timeline(store, "Ana") == [("in", "Café à Porto"), ("in", "still readable")]
    [person] = await store.find_people("Bo")
    [odd] = await store.timeline(person.id)
    assert odd["at"] == ago(3).isoformat()  # no usable Date: the arrival time
    assert logged(caplog_info, "INBOX: read 5 message(s)")[0].endswith(
        "4 interaction(s), 1 without usable headers"
    )


async def test_backfill_reads_only_the_window(imap_server, write_config, running, store):
    for days in (400, 20):
        mail = message(ANA, ME, f"{days} days ago", at=ago(days), message_id=f"{days}@x")
        imap_server.append("INBOX", mail, ago(days))
    await running(write_config(backfill="52w"))
    assert await timeline(store, "Ana") == [("in", "20 days ago")]


# -- following the mailbox -----------------------------------------------------------------


async def test_a_reply_while_idle_ends_the_pull_back_within_seconds(
    imap_server, write_config, running, store
):
    for days, n in ((40, 1), (20, 2)):
        mail = message(ME, ANA, f"Coffee? ({n})", at=ago(days), message_id=f"c{n}@home.example")
        imap_server.append("Sent", mail, ago(days))
    cfg = write_config()
    source = await running(cfg)
    assert (await planned(store, cfg, "Ana")).kind == LIGHT_TOUCH

    async def answered() -> bool:
        return (await planned(store, cfg, "Ana")).unanswered == 0

    # Her client broke the thread: no In-Reply-To, a new subject. Any mail from her answers.
    reply = message(ANA, ME, "sorry, was travelling!", at=NOW, message_id="back@friends.example")
    imap_server.append("INBOX", reply, NOW)
    took = await eventually(answered, timeout=5)  # the poll interval is 5 minutes: IDLE did it
    assert took < 3
    assert (await planned(store, cfg, "Ana")).kind == CADENCE

    # Sent mail written meanwhile (from the phone) is read on INBOX's next wake-up.
    imap_server.append("Sent", message(ME, BO, "Re: lunch", at=NOW, message_id="l@h"), NOW)
    imap_server.append("INBOX", message(BO, ME, "lunch?", at=NOW, message_id="q@w"), NOW)

    async def both() -> bool:
        return sorted(await timeline(store, "Bo")) == [("in", "lunch?"), ("out", "lunch")]

    await eventually(both, timeout=5)
    assert source.failures() == []


async def test_stopping_while_idle_is_prompt(imap_server, write_config, running):
    source = await running(write_config())
    await asyncio.sleep(0.5)  # waiting in IDLE by now
    started = time.monotonic()
    await source.stop()
    # What asyncio.run waits for when the daemon exits: no thread may still be in IDLE.
    await asyncio.get_running_loop().shutdown_default_executor()
    assert time.monotonic() - started < 2


async def test_without_idle_the_mailbox_is_polled(imap_server, write_config, running, store):
    imap_server.stop()
    imap_server.idle = False
    imap_server.start()
    await running(write_config(), poll=timedelta(seconds=0.5))

    async def arrived() -> bool:
        return await timeline(store, "Ana") == [("in", "polled")]

    imap_server.append("INBOX", message(ANA, ME, "polled", at=NOW, message_id="p@x"), NOW)
    await eventually(arrived, timeout=5)


async def test_a_renumbered_folder_is_read_again_without_double_counting(
    imap_server, write_config, running, store, caplog_info
):
    imap_server.create("Archive")
    first = message(ANA, ME, "first", at=ago(30), message_id="first@x")
    second = message(ANA, ME, "second", at=ago(20), message_id="second@x")
    imap_server.append("Archive", first, ago(30))
    imap_server.append("Archive", second, ago(20))
    source = await running(write_config(folders=["INBOX", "Archive"]))
    assert len(await timeline(store, "Ana")) == 2
    before = (await source.sink.cursor())["Archive"]

    # Deleted and made again (a restore, a server move): same mail, new UIDVALIDITY.
    imap_server.delete("Archive")
    imap_server.create("Archive")
    # The new message gets UID 1: only a full re-read finds it, not "UIDs above 2".
    imap_server.append("Archive", message(ANA, ME, "third", at=ago(10), message_id="3@x"), ago(10))
    imap_server.append("Archive", second, ago(20))
    imap_server.append("Archive", first, ago(30))
    assert imap_server.uidvalidity("Archive") != before["uidvalidity"]
    # Mail in INBOX wakes the source up; it looks at every folder then.
    imap_server.append("INBOX", message(BO, ME, "wake up", at=NOW, message_id="w@x"), NOW)

    async def third_read() -> bool:
        return len(await timeline(store, "Ana")) == 3

    await eventually(third_read)
    assert await timeline(store, "Ana") == [("in", "first"), ("in", "second"), ("in", "third")]
    after = (await source.sink.cursor())["Archive"]
    assert after == {"uidvalidity": imap_server.uidvalidity("Archive"), "last_uid": 3}
    assert logged(caplog_info, "Archive: the server renumbered this folder")


# -- failures --------------------------------------------------------------------------------


async def test_a_wrong_password_fails_clearly_and_is_retried_with_backoff(
    imap_server, write_config, store
):
    source = SupervisedSource(store, write_config(password="not-the-password"))
    try:

        async def retried() -> bool:
            return len(source.failures()) >= 3

        await eventually(retried)
        assert set(source.failures()) == {"LoginError: alice@127.0.0.1: authentication failed"}
        assert not source.task.done()  # the supervisor keeps going
        assert not source.ready.is_set()
        assert "not-the-password" not in repr(source.health)
        # Back in business once the password is right (a rotated password_command, say).
        source.options["password"] = imap_server.password
        await asyncio.wait_for(source.ready.wait(), 10)
    finally:
        await source.stop()


async def test_a_failing_password_command_says_why(write_config, store):
    source = SupervisedSource(
        store, write_config(password_command="echo 'vault is locked' >&2; exit 3")
    )
    try:
        await eventually(source.failed)
        assert source.failures()[0] == (
            "RuntimeError: password_command failed (exit 3): vault is locked"
        )
    finally:
        await source.stop()


async def test_the_server_going_away_and_coming_back(
    imap_server, write_config, running, store, caplog_info
):
    imap_server.append("INBOX", message(ANA, ME, "before", at=ago(2), message_id="b@x"), ago(2))
    source = await running(write_config())
    assert await timeline(store, "Ana") == [("in", "before")]

    await asyncio.to_thread(imap_server.stop)
    await eventually(source.failed)
    where = f"ConnectionError: 127.0.0.1:{imap_server.port}"
    assert source.failures()[0].startswith(f"{where}: connection lost: ")
    await asyncio.sleep(0.5)  # retries meet a closed port meanwhile
    assert f"{where}: cannot connect: Connection refused" in source.failures()

    await asyncio.to_thread(imap_server.start)
    imap_server.append("INBOX", message(ANA, ME, "after", at=NOW, message_id="a@x"), NOW)

    async def caught_up() -> bool:
        return len(await timeline(store, "Ana")) >= 2

    await eventually(caught_up, timeout=15)  # the back-off has grown to a second or two
    assert await timeline(store, "Ana") == [("in", "before"), ("in", "after")]
    # Resumed from the cursor: the whole INBOX was read once, on the first start only.
    assert len(logged(caplog_info, "INBOX: reading")) == 1


async def test_tls_and_starttls_with_a_trusted_certificate(
    imap_server, write_config, running, store, monkeypatch
):
    imap_server.stop()
    imap_server.tls = True
    imap_server.start()
    monkeypatch.setenv("SSL_CERT_FILE", str(imap_server.certificate))  # trust it, as a CA
    imap_server.append("INBOX", message(ANA, ME, "over TLS", at=ago(2), message_id="t@x"), ago(2))
    tls = await running(write_config(security="tls", port=imap_server.tls_port))
    assert await timeline(store, "Ana") == [("in", "over TLS")]
    await tls.stop()

    imap_server.append("INBOX", message(ANA, ME, "STARTTLS", at=ago(1), message_id="s@x"), ago(1))
    await running(write_config(security="starttls"))
    assert await timeline(store, "Ana") == [("in", "over TLS"), ("in", "STARTTLS")]


async def test_an_untrusted_certificate_is_refused(imap_server, write_config, store):
    imap_server.stop()
    imap_server.tls = True
    imap_server.start()
    tls = SupervisedSource(store, write_config(security="tls", port=imap_server.tls_port))
    starttls = SupervisedSource(store, write_config(security="starttls"))
    try:
        await eventually(tls.failed)
        await eventually(starttls.failed)
        for source, port in ((tls, imap_server.tls_port), (starttls, imap_server.port)):
            where = f"ConnectionError: 127.0.0.1:{port}: cannot connect"
            assert source.failures()[0].startswith(f"{where}: [SSL: CERTIFICATE_VERIFY_FAILED]")
    finally:
        await tls.stop()
        await starttls.stop()


async def test_starttls_is_required_when_asked_for(imap_server, write_config, store):
    source = SupervisedSource(store, write_config(security="starttls"))  # this server has no TLS
    try:
        await eventually(source.failed)
        assert source.failures()[0] == (
            f"ConnectionError: 127.0.0.1:{imap_server.port}: the server does not offer STARTTLS"
        )
    finally:
        await source.stop()


async def test_unsafe_or_wrong_settings_are_refused(imap_server, write_config, store):
    remote = SupervisedSource(store, write_config(host="imap.example.com"))
    unknown = SupervisedSource(store, write_config(folders=["INBOX", "Archiv"]))
    try:
        await eventually(remote.failed)
        await eventually(unknown.failed)
        assert remote.failures()[0].startswith(
            "ValueError: security: none would send the password to imap.example.com unencrypted"
        )
        assert unknown.failures()[0] == (
            "ValueError: folders: no folder 'Archiv' on 127.0.0.1:"
            f"{imap_server.port} (there are: INBOX, Sent)"
        )
    finally:
        await remote.stop()
        await unknown.stop()
