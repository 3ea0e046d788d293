"""The command line, run as a user runs it: `python -m nurtured -c CONFIG ...` in a subprocess.

The address book is imported once, by a short real run of the daemon; each
test then works on its own copy of that setup, without a daemon.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import TIMEZONE, Home, HttpSink, days_ago, now, nurtured, parse_time

from nurtured.health import STAGES

EVERYONE = {"Alice Moreau", "Alicia Ramos", "Bruno Costa", "Charles Okafor", "Diana Evans"}
NO_RULE = "Zoe Quinn"
PERSON_KEYS = {
    "name",
    "tags",
    "last_contact",
    "next_due",
    "kind",
    "unanswered",
    "paused",
    "paused_until",
    "stage",
    "rule",
    "reason",
}
TIME_KEYS = ("last_contact", "next_due", "paused_until")


def midday(days: int) -> datetime:
    """What a bare date `days` ago means: midday, local time (in UTC, for exact arithmetic)."""
    local = datetime.combine(date.fromisoformat(days_ago(days)), time(12), ZoneInfo(TIMEZONE))
    return local.astimezone(UTC)


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An address book of six, imported by the real daemon, which then stopped."""
    root = tmp_path_factory.mktemp("imported")
    home = Home(root)  # the console channel: the one nudge of the import is printed
    home.card("alice-1", "Alice Moreau", email="alice@example.org", tags=("friends",))
    home.card("alicia-2", "Alicia Ramos", email="alicia@example.org", tags=("friends",))
    home.card("bruno-3", "Bruno Costa", email="bruno@example.org", tags=("friends",))
    home.card(
        "chuck-4", "Charles Okafor", nickname="Chuck", email="chuck@example.org", tags=("network",)
    )
    home.card("diana-5", "Diana Evans", tags=("network",))
    home.card("zoe-6", "Zoe Quinn", email="zoe@example.org")  # no tags: no rule selects her
    home.contact("Alice Moreau", 10, channel="call", note="her trip to Porto")
    home.contact("bruno@example.org", 45)  # friends every 30d: overdue, nudged at import
    home.contact("chuck@example.org", 20, direction="out", channel="email")
    # Someone in no address book: kept, attached to no one, offered by `suggest`.
    home.contact("Stranger@Elsewhere.example", 3, direction="in", channel="email")
    home.contact("stranger@elsewhere.example", 2, direction="out", channel="email")
    daemon = home.daemon().start()
    try:
        daemon.wait_log("sent 1 nudge")
        daemon.wait(
            lambda: [r["state"] for r in home.json("export")["reminders"]] == ["sent"],
            "the import's nudge to be recorded as sent",
        )
        assert daemon.stop() == 0
    finally:
        home.close()
    assert "Reach out to Bruno" in daemon.all_output()
    yield root


@pytest.fixture
def book(imported: Path, tmp_path: Path, sink: HttpSink) -> Home:
    """A copy of the imported setup whose channel is the HTTP endpoint."""
    shutil.copytree(imported / "home", tmp_path / "home")
    home = Home(tmp_path, channels=[{"url": sink.url()}])
    home.write_config()
    return home


# -- check ------------------------------------------------------------------------------------


def test_check_accepts_a_good_config(book: Home) -> None:
    result = book.cli("check")
    assert "ok: 2 source(s), 2 rule(s), 1 channel(s)" in result.stdout
    assert str(book.state) in result.stdout


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda t: t.replace("every: 30d", "every: 30d: oops"), r"mapping values are not allowed"),
        (lambda t: t.replace("every: 30d", "evry: 30d"), r"rules\[0\]\.evry: unknown key"),
        (lambda t: t.replace("every: 30d", "every: 1m"), r"rules\[0\]\.every: expected a duration"),
        (lambda t: t.replace("url: json", "url: nosuchservice"), r"notify\[0\]\.url: Apprise"),
        (lambda t: t.replace("plugin: journal", "plugin: diary"), r"no plugin 'diary'"),
    ],
    ids=["yaml", "unknown-key", "duration", "apprise-url", "plugin"],
)
def test_check_rejects_a_bad_config_naming_file_and_line(
    book: Home, change: Any, expected: str
) -> None:
    good = book.config.read_text()
    bad = change(good)
    assert bad != good
    book.write_config(bad)
    result = book.cli("check", check=1)
    assert re.search(rf"config\.yaml:\d+: .*{expected}", result.stderr), result.stderr
    assert str(book.config) in result.stderr
    assert "Traceback" not in result.stderr


def test_check_of_a_missing_file(tmp_path: Path) -> None:
    result = nurtured(tmp_path / "nowhere.yaml", "check", check=1, cwd=tmp_path)
    assert "cannot read the config" in result.stderr


# -- status, due, show ---------------------------------------------------------------------------


def test_status_json_has_every_person_with_iso_times(book: Home) -> None:
    status = book.status()
    assert status["config_error"] is None
    assert status["failing_deliveries"] == []
    assert {s["plugin"] for s in status["sources"]} == {"vcard", "journal"}
    people = {p["name"]: p for p in status["people"]}
    assert set(people) == EVERYONE | {NO_RULE}
    for person in people.values():
        assert set(person) >= PERSON_KEYS, person
        for key in TIME_KEYS:
            if person[key] is not None:
                parse_time(person[key])

    alice = people["Alice Moreau"]
    assert alice["tags"] == ["friends"]
    assert alice["rule"] == "friends" and alice["kind"] == "cadence"
    assert parse_time(alice["last_contact"]) == midday(10)
    assert parse_time(alice["next_due"]) == midday(10) + timedelta(days=30)
    assert alice["unanswered"] == 0 and alice["paused"] is False and alice["paused_until"] is None

    chuck = people["Charles Okafor"]  # reached out 20 days ago, no answer: past the 14d window
    assert chuck["unanswered"] == 1
    assert parse_time(chuck["next_due"]) == midday(20) + timedelta(days=60)

    bruno = people["Bruno Costa"]  # nudged at import: again after a week
    assert now() + timedelta(days=6) < parse_time(bruno["next_due"]) <= now() + timedelta(days=7)

    zoe = people[NO_RULE]
    assert zoe["rule"] is None and zoe["kind"] is None and zoe["next_due"] is None
    assert zoe["tags"] == []

    # Every person has a stage and a health score; Chuck has never written back.
    assert all(p["stage"] in STAGES and 0 <= p["health"] <= 100 for p in people.values())
    assert chuck["stage"] == "acquaintance"
    shown = book.json("show", "Chuck")["health_parts"]
    assert shown["stage"] == "acquaintance" and shown["why"] == "0 two-way contact(s) so far"
    assert shown["reciprocity"] == 0  # you wrote, he never did
    assert "health: " in book.cli("show", "Chuck").stdout


def test_status_table(book: Home) -> None:
    out = book.cli("status").stdout
    assert out.splitlines()[0].split()[:4] == ["NAME", "TAGS", "LAST", "CONTACT"]
    for name in EVERYONE | {NO_RULE}:
        assert name in out


def test_due_within(book: Home) -> None:
    due = book.json("due", "--within", "400d")["people"]
    assert {p["name"] for p in due} == EVERYONE  # not Zoe: no rule, nothing planned
    times = [parse_time(p["next_due"]) for p in due]
    assert times == sorted(times)
    assert book.json("due", "--within", "1d")["people"] == []
    assert [p["name"] for p in book.json("due", "--within", "8d")["people"]] == ["Bruno Costa"]
    assert "no one is due within 1d" in book.cli("due", "--within", "1d").stdout
    assert "expected a duration" in book.cli("due", "--within", "1m", check=1).stderr


def test_show_json_has_cards_identifiers_timeline(book: Home) -> None:
    chuck = book.json("show", "Chuck")
    assert chuck["name"] == "Charles Okafor"
    assert chuck["preferred"] == "Chuck"
    assert chuck["emails"] == ["chuck@example.org"]
    [card] = chuck["cards"]
    assert card["uid"] == "chuck-4"
    assert card["source"].startswith("vcard:")
    assert card["nickname"] == "Chuck" and card["tags"] == ["network"]
    identifiers = {(i["kind"], i["value"]) for i in chuck["identifiers"]}
    assert identifiers == {("email", "chuck@example.org"), ("uid", "chuck-4")}
    [entry] = chuck["timeline"]
    assert parse_time(entry["at"]) == midday(20)
    assert (entry["direction"], entry["channel"]) == ("out", "email")
    assert entry["source"].startswith("journal:")
    assert chuck["reminders"] == []

    bruno = book.json("show", "Bruno")
    [nudge] = bruno["reminders"]
    assert nudge["state"] == "sent" and nudge["error"] == ""
    parse_time(nudge["sent_at"])


# -- who is meant ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("okafor", "Charles Okafor"),  # a unique part of a name, any case
        ("Chuck", "Charles Okafor"),  # the nickname
        ("CHUCK@Example.org", "Charles Okafor"),  # an email address
        ("Alice", "Alice Moreau"),  # a whole given name beats the longer "Alicia"
        ("Diana Evans", "Diana Evans"),
    ],
)
def test_person_is_found_by_part_nickname_or_email(book: Home, text: str, name: str) -> None:
    assert book.json("show", text)["name"] == name


def test_ambiguous_person_lists_the_candidates(book: Home) -> None:
    result = book.cli("show", "Ali", "--json", check=1)
    assert "Alice Moreau" in result.stderr and "Alicia Ramos" in result.stderr
    assert "be more specific" in result.stderr
    assert result.stdout == ""
    result = book.cli("log", "Ali", "--met", check=1)
    assert "Alicia Ramos" in result.stderr
    assert "no one matches" in book.cli("show", "Nobody Atall", check=1).stderr
    assert "no one matches" in book.cli("show", "ghost@example.org", check=1).stderr


# -- log, done ------------------------------------------------------------------------------------


def test_log_with_a_date_and_a_time(book: Home) -> None:
    result = book.cli(
        "log", "Diana", "--met", "--at", days_ago(20), "--channel", "call", "--note", "robots"
    )
    assert result.stdout.startswith("logged mutual call with Diana Evans")
    diana = book.person("Diana Evans")
    assert parse_time(diana["last_contact"]) == midday(20)
    assert parse_time(diana["next_due"]) == midday(20) + timedelta(days=60)
    [entry] = book.json("show", "Diana")["timeline"]
    assert entry["source"] == "cli"
    assert (entry["direction"], entry["channel"], entry["note"]) == ("mutual", "call", "robots")

    book.cli("log", "Diana", "--out", "--at", "2026-03-14T09:30")
    timeline = book.json("show", "Diana")["timeline"]
    expected = datetime(2026, 3, 14, 9, 30, tzinfo=ZoneInfo(TIMEZONE))
    assert [parse_time(e["at"]) for e in timeline] == [midday(20), expected]
    assert book.person("Diana Evans")["last_contact"] == diana["last_contact"]  # older: no change


def test_log_refuses_the_future_and_nonsense(book: Home) -> None:
    tomorrow = (now() + timedelta(days=2)).date().isoformat()
    assert "in the future" in book.cli("log", "Diana", "--met", "--at", tomorrow, check=1).stderr
    assert "expected a date" in book.cli("log", "Diana", "--met", "--at", "soon", check=1).stderr
    assert book.json("show", "Diana")["timeline"] == []


def test_done_closes_the_nudge(book: Home) -> None:
    book.cli("done", "Bruno", "--channel", "call")
    bruno = book.json("show", "Bruno")
    assert (bruno["timeline"][0]["direction"], bruno["timeline"][0]["channel"]) == ("out", "call")
    due = parse_time(bruno["next_due"])
    assert abs(due - (now() + timedelta(days=30))) < timedelta(minutes=2)
    # `done` closes the nudge as done (store.act), so the lifecycle says what the user did.
    assert [r["state"] for r in bruno["reminders"]] == ["done"]


# -- export, plugins, init ----------------------------------------------------------------------


def test_export_json_has_everything(book: Home) -> None:
    data = book.json("export")
    assert data["version"] == 1
    parse_time(datetime.fromisoformat(data["exported_at"]).isoformat(timespec="seconds"))
    assert {"people", "interactions", "reminders", "cards", "identifiers"} <= set(data)
    assert {p["name"] for p in data["people"]} == EVERYONE | {NO_RULE}
    assert len(data["interactions"]) == 5  # the stranger's two included
    [reminder] = data["reminders"]
    assert reminder["state"] == "sent" and reminder["title"] == "Reach out to Bruno"
    assert book.cli("export", check=2).returncode == 2  # --json is required


def test_plugins_json_lists_the_built_in_sources(book: Home) -> None:
    data = book.json("plugins")
    plugins = {p["domain"]: p for p in data["plugins"]}
    assert {"vcard", "journal"} <= set(plugins)
    for domain in ("vcard", "journal"):
        assert plugins[domain]["origin"] == "built-in"
        assert plugins[domain]["missing_requirements"] == []
    assert plugins["vcard"]["provides"] == ["contacts"]
    assert plugins["journal"]["provides"] == ["interactions"]
    sources = {s["plugin"]: s for s in data["sources"]}
    assert set(sources) == {"vcard", "journal"}
    assert sources["vcard"]["name"] == f"vcard:{book.contacts}"


def test_init_writes_a_config_check_accepts_and_never_overwrites(tmp_path: Path) -> None:
    config = tmp_path / "fresh" / "config.yaml"
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": "", "XDG_STATE_HOME": ""}
    result = nurtured(config, "init", cwd=tmp_path, **env)
    assert config.is_file()
    assert str(config) in result.stdout
    written = config.read_text()
    nurtured(config, "check", cwd=tmp_path, **env)
    result = nurtured(config, "init", check=1, cwd=tmp_path, **env)
    assert "not overwriting" in result.stderr
    assert config.read_text() == written


# -- notify-test --------------------------------------------------------------------------------


def test_notify_test_reaches_the_endpoint(book: Home, sink: HttpSink) -> None:
    book.channels = [
        {"url": sink.url("/ok"), "tag": "good"},
        {"url": sink.url("/fail/here"), "tag": "bad"},
    ]
    book.write_config()
    result = book.cli("notify-test", "--tag", "good")
    assert result.stdout.startswith("ok")
    [message] = sink.messages()
    assert message.path == "/ok"
    assert message.title == "nurtured test"
    assert "can reach you" in message.message
    assert "no channel tagged 'none'" in book.cli("notify-test", "--tag", "none", check=1).stderr


def test_notify_test_reports_a_failing_channel(book: Home, sink: HttpSink) -> None:
    book.channels = [
        {"url": sink.url("/ok"), "tag": "good"},
        {"url": sink.url("/fail/here"), "tag": "bad"},
    ]
    book.write_config()
    result = book.cli("notify-test", "--tag", "bad", check=1)
    assert [p.path for p in sink.failures()] == ["/fail/here"]
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stdout.startswith("FAILED"), result.stdout
    assert "500" in result.stdout or "error" in result.stdout.lower()
    result = book.cli("notify-test", check=1)  # both: one ok, one failed
    assert sorted(line.split()[0] for line in result.stdout.splitlines()) == ["FAILED", "ok"]


# -- found bugs, kept as failing tests ------------------------------------------------------------


def morning_zone() -> str:
    """A fixed-offset zone where the local time is now between 01:00 and 11:00."""
    for offset in range(-12, 15):
        name = f"Etc/GMT{-offset:+d}" if offset else "Etc/GMT"
        if 1 <= now().astimezone(ZoneInfo(name)).hour < 11:
            return name
    raise AssertionError("unreachable: 27 offsets cover every hour")


def test_log_today_in_the_morning(book: Home) -> None:
    """`log --at TODAY` before local noon is refused as "in the future" (a bare date is midday)."""
    zone = morning_zone()
    book.timezone = zone  # a zone where it is morning now
    book.write_config()
    today = now().astimezone(ZoneInfo(zone)).date().isoformat()
    result = book.cli("log", "Diana", "--met", "--at", today, check=None)
    assert result.returncode == 0, f"{zone}: {result.stderr}"
    last = parse_time(book.person("Diana Evans")["last_contact"])
    assert last.date().isoformat() == today and last <= now()


def test_suggest_lists_correspondents_in_no_address_book(book: Home) -> None:
    [found] = book.json("suggest")["suggestions"]
    assert (found["address"], found["written_to"], found["heard_from"]) == (
        "stranger@elsewhere.example",
        1,
        1,
    )
    assert parse_time(found["last"]) == midday(2)
    assert not any(p["name"].startswith("Stranger") for p in book.status()["people"])


def test_show_reports_who_answers_whom(book: Home) -> None:
    # Chuck was written to 20 days ago and never answered: 0 of 1, past the 14-day window.
    shown = book.json("show", "Chuck")["reciprocity"]
    assert shown["they_answer"] == {
        "asked": 1,
        "answered": 0,
        "rate": 0.0,
        "median_latency_hours": None,
    }
    book.cli("log", "Chuck", "--in", "--channel", "email", "--at", days_ago(17))
    shown = book.json("show", "Chuck")["reciprocity"]
    assert shown["they_answer"]["rate"] == 1.0
    assert shown["they_answer"]["median_latency_hours"] == 72.0
