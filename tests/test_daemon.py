"""The daemon end to end: the real `nurtured run`, real files, real Apprise, a real HTTP endpoint.

Time is never waited out: contacts are back-dated (the journal, `nurtured log
--at`) so that people are overdue at once. Each test reads the nudges the way
a user would get them, as messages at the endpoint, and the state the way a
user would see it, through `nurtured status --json` and friends.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from conftest import TIMEZONE, Home, HttpSink, days_ago, now, parse_time

RENOTIFY = timedelta(days=7)  # the default: a nudge without a contact since comes again after 1w
SLACK = timedelta(minutes=2)  # between a nudge going out and the test seeing it


def four_people(home: Home) -> None:
    """Two friends (every 30d) and two from the network (every 60d)."""
    home.card("alice-1", "Alice Moreau", email="alice@example.org", tags=("friends",))
    home.card("bruno-2", "Bruno Costa", email="bruno@example.org", tags=("friends",))
    home.card(
        "chuck-3",
        "Charles Okafor",
        nickname="Chuck",
        email="chuck@example.org",
        tags=("network",),
    )
    home.card("diana-4", "Diana Evans", tags=("network",))


def names_in(text: str) -> set[str]:
    """Which of the four people's preferred names a message mentions."""
    return {n for n in ("Alice", "Bruno", "Chuck", "Diana") if re.search(rf"\b{n}\b", text)}


def reminders(home: Home) -> list[dict[str, Any]]:
    return home.json("export")["reminders"]


def all_sent(home: Home, count: int) -> bool:
    """The database says `count` nudges went out (not merely that HTTP saw them)."""
    rows = reminders(home)
    return len(rows) == count and all(r["state"] == "sent" for r in rows)


# -- 1. import and catch-up ---------------------------------------------------------------------


def test_import_and_catch_up_sends_one_batched_message(home: Home, sink: HttpSink) -> None:
    four_people(home)
    home.contact("Alice Moreau", 40, channel="call")  # friends, 30d: overdue by 10 days
    home.contact("bruno@example.org", 10)  # friends: due in 20 days
    home.contact("chuck@example.org", 70, channel="email")  # network, 60d: overdue
    home.contact("Diana Evans", 20)  # network: due in 40 days

    daemon = home.daemon().start()

    [message] = sink.wait_for(1, daemon)
    sink.assert_stays(1, 2.0, daemon)  # one message for both, not one each
    assert message.path == "/nudges"
    assert message.title == "2 people to get in touch with", message.text
    assert names_in(message.text) == {"Alice", "Chuck"}, message.text
    assert set(message.body) >= {"version", "title", "message", "type"}

    def planned_again() -> dict[str, dict[str, Any]] | None:
        people = home.people()
        due = [parse_time(people[n]["next_due"]) for n in ("Alice Moreau", "Charles Okafor")]
        return people if all(d > now() for d in due) else None

    people = daemon.wait(planned_again, "the overdue people to be replanned after the nudge")
    for name in ("Alice Moreau", "Charles Okafor"):
        due = parse_time(people[name]["next_due"])
        assert abs(due - (message.at + RENOTIFY)) < SLACK, (name, people[name])
        assert people[name]["kind"] == "cadence"
    # The others keep their cadence from their last contact (midday local time).
    bruno, diana = people["Bruno Costa"], people["Diana Evans"]
    assert parse_time(bruno["next_due"]) == parse_time(bruno["last_contact"]) + timedelta(days=30)
    assert parse_time(diana["next_due"]) == parse_time(diana["last_contact"]) + timedelta(days=60)
    assert parse_time(bruno["last_contact"]).date().isoformat() == days_ago(10)
    assert daemon.alive


# -- 2. a back-dated contact logged on the command line -----------------------------------------


def test_backdated_log_reaches_the_running_daemon(home: Home, sink: HttpSink) -> None:
    four_people(home)
    home.contact("Alice Moreau", 5)
    daemon = home.daemon().start()
    assert home.json("due", "--within", "1d")["people"] == []

    started = time.monotonic()
    home.cli("log", "Bruno", "--met", "--at", days_ago(100))

    [message] = sink.wait_for(1, daemon, timeout=10)
    elapsed = time.monotonic() - started
    assert message.title == "Reach out to Bruno", message.text
    assert names_in(message.text) == {"Bruno"}
    assert elapsed < 8, f"the nudge took {elapsed:.1f}s"
    sink.assert_stays(1, 1.5, daemon)


# -- 3. kill -9 and restart ---------------------------------------------------------------------


def test_kill_9_and_restart_sends_nothing_twice(home: Home, sink: HttpSink) -> None:
    four_people(home)
    home.contact("Alice Moreau", 40)
    home.contact("chuck@example.org", 70)
    home.contact("Diana Evans", 20)
    daemon = home.daemon().start()
    [first] = sink.wait_for(1, daemon)
    assert names_in(first.text) == {"Alice", "Chuck"}
    daemon.wait(lambda: all_sent(home, 2), lambda: f"2 sent nudges: {reminders(home)}")

    daemon.kill()
    daemon.start()
    sink.assert_stays(1, 3.0, daemon)

    # Bruno falls due while the daemon is down: the journal gains a contact 45 days ago.
    daemon.kill()
    home.contact("bruno@example.org", 45)
    daemon.start()
    messages = sink.wait_for(2, daemon)
    assert messages[1].title == "Reach out to Bruno", messages[1].text
    assert names_in(messages[1].text) == {"Bruno"}
    sink.assert_stays(2, 2.0, daemon)
    daemon.wait(lambda: all_sent(home, 3), lambda: f"3 sent nudges: {reminders(home)}")
    assert daemon.stop() == 0


def test_kill_9_in_mid_delivery_delivers_after_restart(home: Home, sink: HttpSink) -> None:
    """A nudge caught in flight by kill -9 is not lost: the next start sends it again."""
    home.channels = [{"url": sink.url("/slow/nudges")}]
    four_people(home)
    home.contact("Alice Moreau", 40)
    daemon = home.daemon().start()
    sink.wait_for(1, daemon)  # the request arrived; its answer is held back
    [row] = reminders(home)
    assert row["state"] == "sending"

    daemon.kill()
    sink.gate.set()
    daemon.start()
    daemon.wait_log("being delivered when nurtured stopped: sending again")
    messages = sink.wait_for(2, daemon)
    assert [m.title for m in messages] == ["Reach out to Alice"] * 2
    daemon.wait(lambda: all_sent(home, 1), lambda: f"1 sent nudge: {reminders(home)}")
    sink.assert_stays(2, 1.0, daemon)


# -- 4. a broken config edit --------------------------------------------------------------------


def _break_every_line(home: Home) -> tuple[str, int]:
    """The config with `every: 30d` of the first rule made invalid YAML, and that line's number."""
    lines = home.config_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.strip() == "every: 30d")
    lines[index] += ": oops"  # "mapping values are not allowed here"
    return "\n".join(lines) + "\n", index + 1


def test_broken_config_edit_keeps_the_previous_rules(home: Home, sink: HttpSink) -> None:
    four_people(home)
    home.contact("Alice Moreau", 10)  # friends every 30d: not due yet
    daemon = home.daemon().start()

    broken, line = _break_every_line(home)
    home.write_config(broken)
    log = daemon.wait_log(rf"config\.yaml:{line}: .*previous rules keep running")
    assert str(home.config) in log
    assert "ERROR" in log
    assert daemon.alive

    # The user hears of it on their channel too.
    [alert] = sink.wait_for(1, daemon)
    assert alert.title == "nurtured: your config has an error"
    assert f"config.yaml:{line}:" in alert.message

    # Someone made due now (through the journal: the CLI cannot read a broken config)
    # is nudged under the previous rules: friends every 30d.
    home.contact("bruno@example.org", 40)
    messages = sink.wait_for(2, daemon)
    assert messages[1].title == "Reach out to Bruno", messages[1].text

    # An edit that parses but has a channel Apprise cannot use: also kept out, and
    # `status` (which can read this config) shows the error.
    home.channels.append({"url": "nosuchservice://whatever"})
    home.write_config()
    daemon.wait_log(r"notify\[1\]\.url: Apprise cannot use", count=1)
    status = daemon.wait(lambda: (s := home.status())["config_error"] and s, "config_error")
    assert re.search(r"config\.yaml:\d+: notify\[1\]\.url", status["config_error"])
    home.channels.pop()

    # The fix: friends every 7d. Alice, last seen 10 days ago, is due at once.
    home.rules[0]["every"] = "7d"
    home.write_config()
    messages = sink.wait_for(4, daemon)  # the second alert, then Alice
    assert messages[2].title == "nurtured: your config has an error"
    assert messages[3].title == "Reach out to Alice", messages[3].text
    assert "config reloaded" in daemon.output
    status = home.status()
    assert status["config_error"] is None
    alice = {p["name"]: p for p in status["people"]}["Alice Moreau"]
    assert "every 1w" in alice["reason"]
    assert daemon.alive


# -- 5. the address book changes ----------------------------------------------------------------


def test_address_book_changes_are_seen(home: Home, sink: HttpSink) -> None:
    four_people(home)
    # The journal knows Erin before the address book does.
    home.contact("erin@example.org", 40, channel="meeting", note="her new band")
    daemon = home.daemon().start()
    assert "Erin Walsh" not in home.people()

    home.card("erin-5", "Erin Walsh", email="erin@example.org", tags=("friends",))
    erin = daemon.wait(lambda: home.people().get("Erin Walsh"), "Erin in status", 10)
    assert erin["tags"] == ["friends"]
    assert erin["rule"] == "friends"
    assert parse_time(erin["last_contact"]).date().isoformat() == days_ago(40)
    [message] = sink.wait_for(1, daemon)  # her contact made her overdue
    assert message.title == "Reach out to Erin"
    assert "her new band" in message.message

    # The same card (same UID) with a new name and new tags.
    home.card("erin-5", "Erin Walsh-Byrne", email="erin@example.org", tags=("network", "music"))
    renamed = daemon.wait(lambda: home.people().get("Erin Walsh-Byrne"), "the new name", 10)
    assert renamed["tags"] == ["network", "music"]
    assert renamed["rule"] == "network"
    assert "Erin Walsh" not in home.people()

    (home.contacts / "erin-5.vcf").unlink()
    daemon.wait(lambda: "Erin Walsh-Byrne" not in home.people(), "Erin gone", 10)
    assert set(home.people()) == {"Alice Moreau", "Bruno Costa", "Charles Okafor", "Diana Evans"}
    assert daemon.alive


# -- 6. a channel that fails --------------------------------------------------------------------


def test_failed_delivery_is_kept_and_retried_after_the_fix(home: Home, sink: HttpSink) -> None:
    home.channels = [{"url": sink.url("/fail/nudges"), "tag": "phone"}]
    for rule in home.rules:
        rule["notify"] = "phone"
    four_people(home)
    home.contact("Alice Moreau", 40)
    daemon = home.daemon().start()

    failing = daemon.wait(lambda: home.status()["failing_deliveries"], "a failing delivery")
    [entry] = failing
    assert entry["title"] == "Reach out to Alice"
    assert entry["attempts"] >= 1
    assert entry["error"], entry
    assert "500" in entry["error"] or "Internal Server Error" in entry["error"], entry
    assert parse_time(entry["retry_at"]) > now()
    assert [p.title for p in sink.failures()][:1] == ["Reach out to Alice"]
    assert sink.messages() == []
    assert "delivery failed" in daemon.output

    # The fix. The reload replans; the nudge waits for its retry time (30 s after the
    # first failure), then goes to the new URL.
    fixed = time.monotonic()
    home.channels = [{"url": sink.url("/nudges"), "tag": "phone"}]
    home.write_config()
    daemon.wait_log("config reloaded")
    [message] = sink.wait_for(1, daemon, timeout=45)
    print(f"the retry came {time.monotonic() - fixed:.1f}s after the fix")
    assert message.title == "Reach out to Alice"
    daemon.wait(lambda: not home.status()["failing_deliveries"], "no failing delivery")
    [row] = reminders(home)
    assert row["state"] == "sent"
    assert row["attempts"] == 2


# -- 7. pause, resume, snooze -------------------------------------------------------------------


def test_pause_resume_and_snooze(home: Home, sink: HttpSink) -> None:
    four_people(home)
    daemon = home.daemon().start()

    home.cli("pause", "Bruno")
    home.cli("log", "Bruno", "--met", "--at", days_ago(100))
    bruno = home.person("Bruno Costa")
    assert bruno["paused"] is True
    assert bruno["kind"] is None and bruno["next_due"] is None

    # Diana, made due after Bruno, is nudged alone: by then Bruno's change was seen too.
    home.cli("log", "Diana", "--met", "--at", days_ago(100))
    [message] = sink.wait_for(1, daemon)
    assert names_in(message.text) == {"Diana"}, message.text

    home.cli("resume", "Bruno")
    messages = sink.wait_for(2, daemon)
    assert messages[1].title == "Reach out to Bruno", messages[1].text

    def bruno_sent() -> bool:
        rows = home.json("show", "Bruno")["reminders"]
        return bool(rows) and rows[0]["state"] == "sent"

    daemon.wait(bruno_sent, "Bruno's nudge to be recorded as sent")
    before = now()
    home.cli("snooze", "Bruno", "3d")
    shown = home.json("show", "Bruno")
    assert [r["state"] for r in shown["reminders"]] == ["snoozed"]
    # The snooze answers the nudge: three days, not the renotify week (times shown to the second).
    due = parse_time(shown["next_due"])
    assert before + timedelta(days=3, seconds=-1) <= due <= now() + timedelta(days=3)

    home.cli("snooze", "Bruno", "10d")  # longer than the renotify week: it decides
    due = parse_time(home.person("Bruno Costa")["next_due"])
    assert abs(due - (now() + timedelta(days=10))) < SLACK
    sink.assert_stays(2, 1.5, daemon)


# -- 8. secrets ---------------------------------------------------------------------------------


def test_channel_secrets_stay_out_of_logs_and_output(home: Home, sink: HttpSink) -> None:
    secrets = ("SuperSecret123", "OtherSecret456")
    home.channels = [
        {"url": sink.url("/nudges", f"user:{secrets[0]}")},
        {"url": sink.url("/fail/nudges", f"user:{secrets[1]}")},
    ]
    four_people(home)
    home.contact("Alice Moreau", 40)
    daemon = home.daemon().start()

    [message] = sink.wait_for(1, daemon)
    assert message.authorization and message.authorization.startswith("Basic ")  # used, though
    status = daemon.wait(
        lambda: (out := home.cli("status", "--json").stdout) and '"error": "json' in out and out,
        "the failing channel in status",
    )
    assert "json://user:****@127.0.0.1" in status  # the masked form is what is shown
    daemon.wait_log("delivery failed")

    # A reload (a rule that selects no one) and a config error go through the logs too.
    home.rules.append({"name": "nobody", "match": {"tags": ["nobody"]}, "every": "1w"})
    home.write_config()
    daemon.wait_log("config reloaded")
    broken, _ = _break_every_line(home)
    home.write_config(broken)
    daemon.wait_log("previous rules keep running")
    home.write_config()
    daemon.wait_log("config reloaded", count=2)

    def both(result: Any) -> str:
        return result.stdout + result.stderr

    outputs = {
        "status --json (failing)": status,
        "status --json": both(home.cli("status", "--json")),
        "status": both(home.cli("status")),
        "plugins --json": both(home.cli("plugins", "--json")),
        "show --json": both(home.cli("show", "Alice", "--json")),
        "export --json": both(home.cli("export", "--json")),
        "notify-test": both(home.cli("notify-test", check=1)),
        "check": both(home.cli("check")),
    }
    assert daemon.stop() == 0
    outputs["daemon log"] = daemon.all_output()
    outputs["messages"] = "\n".join(p.text for p in sink.all_posts())
    for where, text in outputs.items():
        for secret in secrets:
            assert secret not in text, f"{secret} shown in {where}:\n{text}"


# -- found bugs, kept as failing tests ----------------------------------------------------------


def test_status_shows_config_error_while_the_yaml_is_broken(home: Home, sink: HttpSink) -> None:
    """`status` is where the user looks for `config_error`, yet it cannot start on broken YAML."""
    four_people(home)
    daemon = home.daemon().start()
    broken, line = _break_every_line(home)
    home.write_config(broken)
    daemon.wait_log("previous rules keep running")

    result = home.cli("status", "--json", check=None)
    assert result.returncode == 0, f"status exited {result.returncode}: {result.stderr}"
    status = json.loads(result.stdout)
    assert f"config.yaml:{line}:" in (status["config_error"] or "")


def test_log_file_beside_a_watched_folder_does_not_feed_back(home: Home, sink: HttpSink) -> None:
    """Output written into a folder the daemon watches must not make it log forever."""
    four_people(home)
    home.contact("Alice Moreau", 40)  # a nudge at start: something to log once running
    daemon = home.daemon(logs=home.dir).start()  # output files beside the config
    sink.wait_for(1, daemon)
    daemon.wait_log("sent 1 nudge")
    time.sleep(1.0)  # let start-up settle
    size = len(daemon.output)
    time.sleep(2.0)
    grown = daemon.output[size:]
    assert grown == "", f"the log grew while nothing happened:\n{grown[:600]}"


def test_held_nudge_snoozed_then_resumed_is_still_sent(home: Home, sink: HttpSink) -> None:
    """A nudge held back (here by max_per_day), snoozed, then resumed must still go out.

    Resuming restores the plan's old due time; the closed ('snoozed') reminder row
    for that same (person, kind, due_at) stops a new one from being queued, forever.
    """
    home.limits = {"max_per_day": 1}
    four_people(home)
    home.contact("Alice Moreau", 60)  # the most overdue goes first
    home.contact("bruno@example.org", 40)  # held for tomorrow by the cap
    daemon = home.daemon().start()
    [first] = sink.wait_for(1, daemon)
    assert names_in(first.text) == {"Alice"}
    daemon.wait(
        lambda: [r["state"] for r in home.json("show", "Bruno")["reminders"]] == ["due"],
        "Bruno's nudge to be held",
    )
    home.cli("snooze", "Bruno", "3d")
    home.cli("resume", "Bruno")
    home.limits = {"max_per_day": 10}  # room for Bruno now
    home.write_config()
    daemon.wait_log("config reloaded")
    try:
        messages = sink.wait_for(2, daemon, timeout=6)
    except AssertionError as exc:
        bruno = home.json("show", "Bruno")
        raise AssertionError(
            f"Bruno was never nudged: next_due {bruno['next_due']} (past),"
            f" reminders {bruno['reminders']}"
        ) from exc
    assert names_in(messages[1].text) == {"Bruno"}


def test_held_nudge_of_a_removed_card_is_not_sent(home: Home, sink: HttpSink) -> None:
    """Deleting someone's card must drop their waiting nudge, not deliver it later."""
    home.limits = {"max_per_day": 1}
    four_people(home)
    home.contact("Alice Moreau", 60)
    home.contact("bruno@example.org", 40)  # held for tomorrow by the cap
    daemon = home.daemon().start()
    sink.wait_for(1, daemon)
    daemon.wait(
        lambda: [r["state"] for r in home.json("show", "Bruno")["reminders"]] == ["due"],
        "Bruno's nudge to be held",
    )
    (home.contacts / "bruno-2.vcf").unlink()
    daemon.wait(lambda: "Bruno Costa" not in home.people(), "Bruno gone from status")
    home.limits = {"max_per_day": 10}
    home.write_config()
    daemon.wait_log("config reloaded")
    sink.assert_stays(1, 2.0, daemon)


def test_partly_delivered_nudge_is_not_repeated_after_a_rule_edit(
    home: Home, sink: HttpSink
) -> None:
    """A nudge one channel got and another did not must not reach the first one again."""
    home.channels = [{"url": sink.url("/nudges")}, {"url": sink.url("/fail/nudges")}]
    four_people(home)
    home.contact("Alice Moreau", 40)
    daemon = home.daemon().start()
    [message] = sink.wait_for(1, daemon)
    assert message.title == "Reach out to Alice"
    daemon.wait(lambda: home.status()["failing_deliveries"], "the failing channel")

    home.rules[0]["every"] = "29d"  # Alice is as overdue as before
    home.write_config()
    daemon.wait_log("config reloaded")
    sink.assert_stays(1, 1.5, daemon)


def test_log_names_each_channel_url_once(home: Home, sink: HttpSink) -> None:
    """The redactor must not rewrite an already shown URL (its query string was doubled)."""
    four_people(home)
    home.contact("Alice Moreau", 40)
    daemon = home.daemon().start()
    sink.wait_for(1, daemon)
    line = daemon.wait_log(r"sent 1 nudge\(s\) to \S+")
    [shown] = re.findall(r"sent 1 nudge\(s\) to (\S+)", line)
    assert shown.startswith(f"json://127.0.0.1:{sink.port}/nudges")
    assert shown.count("?") <= 1, shown


# -- a birthday calendar ------------------------------------------------------------------------


def test_a_birthday_calendar_brings_the_birthday_nudge(home: Home, sink: HttpSink) -> None:
    four_people(home)  # no BDAY on any card
    for name in ("Alice Moreau", "Bruno Costa", "Charles Okafor", "Diana Evans"):
        home.contact(name, 1)  # nobody is due for a cadence nudge
    day = (now().astimezone(ZoneInfo(TIMEZONE)) + timedelta(days=2)).date()
    folder = home.dir / "birthdays"
    folder.mkdir(parents=True)
    (folder / "alice.ics").write_text(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//IDN nextcloud.com//Birthday calendar//EN\r\n"
        f"BEGIN:VEVENT\r\nUID:alice-1\r\nDTSTART;VALUE=DATE:1990{day:%m%d}\r\nRRULE:FREQ=YEARLY\r\n"
        "SUMMARY:🎂 Alice Moreau (1990)\r\nX-NEXTCLOUD-BC-FIELD-TYPE:BDAY\r\n"
        "X-NEXTCLOUD-BC-UNKNOWN-YEAR:0\r\nX-NEXTCLOUD-BC-YEAR:1990\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        "utf-8",
    )
    home.sources.append({"plugin": "ics", "path": "./birthdays"})
    birthdays = {"name": "birthdays", "match": {"tags": ["friends"]}, "birthday": {"before": "3d"}}
    home.rules.insert(0, birthdays)
    daemon = home.daemon().start()

    [message] = sink.wait_for(1, daemon)
    assert message.title == "Alice's birthday is coming", message.text
    assert f"{day:%-d %B}" in message.text and f"({day.year - 1990} years)" in message.text
    sink.assert_stays(1, 1.5, daemon)  # Bruno, a friend too, has no birthday anywhere
    [source] = [s for s in home.json("status")["sources"] if s["name"].startswith("ics:")]
    assert home.json("show", "Alice")["dates"] == [
        {"kind": "birthday", "day": f"1990-{day:%m-%d}", "source": source["name"]}
    ]


# -- once a day ---------------------------------------------------------------------------------


async def test_everyone_is_judged_anew_after_local_midnight() -> None:
    from types import SimpleNamespace

    from nurtured.clock import FixedClock
    from nurtured.daemon import Daemon

    lisbon = ZoneInfo(TIMEZONE)
    midnight = datetime(2026, 6, 2, tzinfo=lisbon)  # 23:00 UTC the day before
    clock = FixedClock((midnight - timedelta(seconds=0.2)).astimezone(UTC))
    calls: list[set[int] | None] = []

    async def changed(people: set[int] | None) -> None:
        calls.append(people)

    daemon = SimpleNamespace(clock=clock, config=SimpleNamespace(timezone=lisbon), changed=changed)
    task = asyncio.create_task(Daemon._daily(daemon))  # type: ignore[arg-type]
    try:
        await asyncio.sleep(0.5)
        assert calls == []  # the clock has not reached midnight yet
        clock.advance(timedelta(seconds=1))
        for _ in range(50):
            if calls:
                break
            await asyncio.sleep(0.05)
        assert calls == [None]  # everyone, once
        await asyncio.sleep(0.5)
        assert calls == [None]  # the next midnight is a day away
    finally:
        task.cancel()


async def test_people_noted_during_a_full_replan_in_the_first_read_are_kept(tmp_path) -> None:
    from nurtured import config as configuration
    from nurtured.clock import Clock
    from nurtured.daemon import Daemon
    from nurtured.notify import Redactor
    from nurtured.store import Store

    (tmp_path / "config.yaml").write_text(
        "state_dir: ./state\nrules:\n  - {name: all, every: 30d}\nnotify:\n  - url: console://\n"
    )
    cfg = configuration.load(tmp_path / "config.yaml")
    store = await Store.open(tmp_path / "state")
    try:
        daemon = Daemon(cfg, store, Clock(), Redactor())
        everyone = asyncio.create_task(daemon.changed(None))  # a reload while sources read
        await asyncio.sleep(0)  # it has started, and waits on the database
        await daemon.changed({42})  # a source's batch arrives meanwhile
        await everyone
        assert daemon._deferred == {42}  # still to be replanned at READY
    finally:
        await store.close()
