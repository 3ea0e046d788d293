"""The SQLite store on a real database file: merging, idempotence, the reminder lifecycle."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from nurtured.model import Card, Interaction
from nurtured.planner import Plan
from nurtured.store import DB_NAME, MIGRATIONS, Store

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.fixture
async def store(tmp_path):
    store = await Store.open(tmp_path)
    yield store
    await store.close()


def card(uid: str, name: str, **fields) -> Card:
    return Card(uid=uid, name=name, **fields)


async def test_schema_is_migrated_once(tmp_path):
    store = await Store.open(tmp_path)
    await store.close()
    store = await Store.open(tmp_path)  # reopening must not re-run the migrations
    await store.close()
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_cards_sharing_an_email_across_sources_are_one_person(store):
    a = await store.upsert_cards(
        "phone", [card("u1", "Ana Lima", emails=("Ana@Example.org",), tags=("friends",))], {}
    )
    b = await store.upsert_cards(
        "work", [card("w9", "Ana L.", emails=("ana@example.org",), tags=("network",))], {}
    )
    assert a == b
    [person] = await store.people()
    assert person.tags == ["friends", "network"]
    assert person.emails == ["ana@example.org"]
    assert len(await store.cards_of(person.id)) == 2


async def test_cards_sharing_a_phone_merge_whatever_the_formatting(store):
    await store.upsert_cards("a", [card("1", "Jim", phones=("+351 912 345 678",))], {})
    await store.upsert_cards("b", [card("2", "James", phones=("00351912345678",))], {})
    assert len(await store.people()) == 1


async def test_upserting_the_same_card_again_changes_it_in_place(store):
    [first] = await store.upsert_cards("a", [card("1", "Jim", tags=("network",))], {})
    [again] = await store.upsert_cards("a", [card("1", "James Young", nickname="Jim")], {})
    assert first == again
    [person] = await store.people()
    assert (person.name, person.preferred, person.tags) == ("James Young", "Jim", [])


async def test_removing_the_last_card_hides_a_person_and_keeps_their_history(store):
    [pid] = await store.upsert_cards("a", [card("1", "Ana", emails=("ana@x.org",))], {})
    await store.record("j", [Interaction("e1", "ana@x.org", NOW, "mutual", "call", "coffee")])
    assert await store.remove_cards("a", ["1"], {}) == {pid}
    assert await store.people() == []
    # The card comes back (a file re-synced): the same person, history intact.
    assert await store.upsert_cards("a", [card("1", "Ana", emails=("ana@x.org",))], {}) == {pid}
    assert [t["note"] for t in await store.timeline(pid)] == ["coffee"]


async def test_interactions_are_idempotent_by_external_id(store):
    [pid] = await store.upsert_cards("a", [card("1", "Ana", emails=("ana@x.org",))], {})
    item = Interaction("mail-1", "ana@x.org", NOW, "in", "email", "hello")
    await store.record("mail", [item])
    await store.record("mail", [item])
    moved = Interaction("mail-1", "ana@x.org", NOW + timedelta(hours=1), "in", "email", "hi")
    await store.record("mail", [moved])
    timeline = await store.timeline(pid)
    assert len(timeline) == 1
    assert timeline[0]["note"] == "hi"
    # The same external id from another source is another interaction.
    await store.record("other", [item])
    assert len(await store.timeline(pid)) == 2


async def test_interaction_before_its_card_is_attached_when_the_card_arrives(store):
    early = Interaction("j1", "Meimei Chen", NOW, "in", "message", "marathon")
    assert await store.record("journal", [early]) == set()
    assert len(await store.unresolved()) == 1
    [pid] = await store.upsert_cards("a", [card("m", "Meimei Chen")], {})
    assert await store.unresolved() == []
    assert [t["note"] for t in await store.timeline(pid)] == ["marathon"]


async def test_names_resolve_only_when_unambiguous(store):
    await store.upsert_cards("a", [card("1", "Ana Lima"), card("2", "Ana Sousa")], {})
    await store.record("j", [Interaction("x", "Ana", NOW, "in")])
    assert len(await store.unresolved()) == 1  # "Ana" names two people: not guessed
    await store.record("j", [Interaction("y", "ana sousa", NOW, "in")])
    assert len(await store.unresolved()) == 1


async def test_cursor_is_saved_with_the_data_it_describes(store):
    await store.upsert_cards("a", [card("1", "Ana")], {"file.vcf": {"stamp": [1, 2]}})
    assert await store.cursor("a") == {"file.vcf": {"stamp": [1, 2]}}
    await store.remove_cards("a", ["1"], {"file.vcf": None})
    assert await store.cursor("a") == {}


async def test_a_failed_write_saves_neither_data_nor_cursor(store):
    bad = Interaction("x", "someone", NOW, "sideways")  # violates the direction CHECK
    with pytest.raises(sqlite3.IntegrityError):
        await store.record("j", [bad], cursor={"ids": ["x"]})
    assert await store.cursor("j") == {}
    assert await store.unresolved() == []


async def test_history_for_planning_starts_at_the_last_reply(store):
    [pid] = await store.upsert_cards("a", [card("1", "Ana", emails=("a@x.org",))], {})
    days = [NOW - timedelta(days=d) for d in (90, 60, 30, 10)]
    await store.record(
        "j",
        [
            Interaction("1", "a@x.org", days[0], "out"),
            Interaction("2", "a@x.org", days[1], "in"),
            Interaction("3", "a@x.org", days[2], "out"),
            Interaction("4", "a@x.org", days[3], "out"),
        ],
    )
    [state] = await store.person_states([pid])
    assert [(c.at, c.direction) for c in state.history] == [
        (days[1], "in"),
        (days[2], "out"),
        (days[3], "out"),
    ]


async def test_reminders_are_queued_once_and_survive_a_crash_mid_delivery(store):
    [pid] = await store.upsert_cards("a", [card("1", "Ana")], {})
    row = (pid, "friends", "cadence", NOW, None, "Reach out to Ana", "…")
    await store.add_reminders([row], NOW)
    await store.add_reminders([row], NOW)  # a restart queues the same due nudge again
    [waiting] = await store.waiting()
    await store.mark_sending([waiting.id])
    assert await store.waiting() == []
    # The process dies here; on the next start the nudge waits again.
    assert await store.recover_sending() == 1
    [again] = await store.waiting()
    assert (again.id, again.attempts) == (waiting.id, 1)


async def test_partial_delivery_remembers_which_channels_have_it(store):
    [pid] = await store.upsert_cards("a", [card("1", "Ana")], {})
    await store.add_reminders([(pid, "r", "cadence", NOW, None, "t", "b")], NOW)
    [r] = await store.waiting()
    retry = NOW + timedelta(seconds=30)
    await store.mark_delivered([(r.id, ["chan-a"], "chan-b: HTTP 500", retry)], NOW)
    [failed] = await store.failing()
    # It reached chan-a: it has gone out (renotify and the cap count it), and chan-b waits.
    assert (failed.delivered, failed.retry_at, failed.sent_at) == (["chan-a"], retry, NOW)
    await store.mark_delivered([(r.id, ["chan-a", "chan-b"], "", None)], NOW)
    assert await store.failing() == []
    assert await store.sent_since(NOW - timedelta(hours=1)) == 1


async def test_a_contact_after_a_sent_nudge_supersedes_it(store):
    [pid] = await store.upsert_cards("a", [card("1", "Ana", emails=("a@x.org",))], {})
    await store.add_reminders([(pid, "r", "cadence", NOW, None, "t", "b")], NOW)
    [r] = await store.waiting()
    await store.mark_delivered([(r.id, ["c"], "", None)], NOW)
    later = NOW + timedelta(days=1)
    await store.record("j", [Interaction("1", "a@x.org", later, "out")])
    [closed] = await store.reminders_of(pid)
    assert closed.state == "superseded"


async def test_what_the_user_logs_goes_to_the_person_they_chose(store):
    # Two people with one name: a reference by id is never ambiguous.
    first = await store.upsert_cards("a", [card("1", "Ana Lima", emails=("a1@x.org",))], {})
    second = await store.upsert_cards("a", [card("2", "Ana Lima", emails=("a2@x.org",))], {})
    [pid] = second
    assert first != second
    await store.record("cli", [Interaction("x", f"person:{pid}", NOW, "out")])
    assert [t["external_id"] for t in await store.timeline(pid)] == ["x"]
    assert await store.unresolved() == []


async def test_one_message_seen_by_two_sources_counts_once(store):
    [pid] = await store.upsert_cards("a", [card("1", "Ana", emails=("ana@x.org",))], {})
    mail = Interaction(
        "imap:INBOX:7", "ana@x.org", NOW, "in", "email", "Re: slides",
        message_id="<m1@x.org>", replies_to=("<m0@me.org>",),
    )  # fmt: skip
    await store.record("imap", [mail])
    await store.record("maildir", [replace(mail, external_id="cur/123")])
    await store.record("imap", [mail])  # and a re-read of the first
    [only] = await store.timeline(pid)
    assert only["source"] == "imap"


async def test_interactions_by_phone_or_mailto_wait_for_their_card(store):
    early = [
        Interaction("1", "+351 912 345 678", NOW, "in", "call"),
        Interaction("2", "MAILTO:Bo@X.org", NOW, "in", "email"),
    ]
    await store.record("journal", early)
    [ana] = await store.upsert_cards("a", [card("a", "Ana", phones=("00351912345678",))], {})
    [bo] = await store.upsert_cards("a", [card("b", "Bo", emails=("bo@x.org",))], {})
    assert [t["channel"] for t in await store.timeline(ana)] == ["call"]
    assert [t["channel"] for t in await store.timeline(bo)] == ["email"]
    assert await store.unresolved() == []


async def test_a_closed_nudge_reopens_only_under_a_later_plan(store):
    [pid] = await store.upsert_cards("a", [card("1", "Ana")], {})
    row = (pid, "r", "cadence", NOW, None, "t", "b")
    await store.add_reminders([row], NOW)
    await store.act(pid, "snooze", NOW, snoozed_until=NOW + timedelta(days=1))
    # A scheduler pass before the replan queues the same nudge again: it stays closed.
    await store.add_reminders([row], NOW)
    assert [r.state for r in await store.reminders_of(pid)] == ["snoozed"]
    # The user resumes; the new plan comes back to the same nudge: it reopens.
    await store.save_plans([(pid, [Plan("r", "cadence", NOW, "back")])])
    assert await store.plans_due(NOW) == [pid]
    await store.add_reminders([row], NOW)
    assert [r.state for r in await store.reminders_of(pid)] == ["due"]


async def test_a_source_reports_its_progress_for_plugins_and_status(store):
    await store.set_source_health("imap:mail", "imap", "running", "", NOW, None, 0)
    await store.set_source_progress("imap:mail", "INBOX: 40% (400 of 1000 messages read)")
    [health] = await store.source_health()
    assert health["progress"] == "INBOX: 40% (400 of 1000 messages read)"
    # A later health report (a restart) keeps the columns it does not name.
    await store.set_source_health("imap:mail", "imap", "failed", "LoginError", NOW, NOW, 1)
    [health] = await store.source_health()
    assert (health["state"], health["progress"]) == (
        "failed",
        "INBOX: 40% (400 of 1000 messages read)",
    )


async def test_key_dates_wait_for_their_person_and_never_outrank_the_card(store):
    from nurtured.model import KeyDate

    # Known to a birthday calendar before any card: kept, no person created.
    touched = await store.record(
        "cal", dates=[KeyDate("b1|birthday", "Ana Lima", "birthday", "--04-15")]
    )
    assert touched == set() and await store.people() == []
    [pid] = await store.upsert_cards("a", [card("1", "Ana Lima")], {})
    [state] = await store.person_states([pid])
    assert (state.birthday, state.anniversary) == ("--04-15", "")

    # One with the year is preferred; the card's own date wins over both.
    await store.record("cal2", dates=[KeyDate("x|birthday", "Ana Lima", "birthday", "1990-04-15")])
    assert (await store.person_states([pid]))[0].birthday == "1990-04-15"
    await store.upsert_cards("a", [card("1", "Ana Lima", birthday="1991-04-16")], {})
    assert (await store.person_states([pid]))[0].birthday == "1991-04-16"
    assert [(d["day"], d["source"]) for d in await store.key_dates_of(pid)] == [
        ("1991-04-16", "card"),  # in effect
        ("1990-04-15", "cal2"),
        ("--04-15", "cal"),
    ]
    await store.upsert_cards("a", [card("1", "Ana Lima")], {})

    # Forgotten with its id (the event deleted), and with its source (no longer configured).
    assert await store.record("cal2", gone=["x|birthday"]) == {pid}
    assert (await store.person_states([pid]))[0].birthday == "--04-15"
    assert await store.drop_sources(["a"]) == {pid}
    assert (await store.person_states([pid]))[0].birthday == ""


async def test_record_replaces_what_is_gone_in_the_same_transaction(store):
    [pid] = await store.upsert_cards("a", [card("1", "Ana", emails=("a@x.org",))], {})
    old = Interaction("e|1", "a@x.org", NOW - timedelta(days=2), "mutual", "meeting", "Lunch")
    await store.record("cal", [old])
    moved = replace(old, external_id="e|2", at=NOW - timedelta(days=1))
    # The same id in `gone` and recorded anew stays; the other goes, both in one call.
    assert await store.record("cal", [moved], gone=["e|1", "e|2"], cursor={"k": 1}) == {pid}
    assert [t["external_id"] for t in await store.timeline(pid)] == ["e|2"]
    assert await store.cursor("cal") == {"k": 1}


async def test_a_key_date_names_its_person_exactly(store):
    from nurtured.model import KeyDate

    [king] = await store.upsert_cards("a", [card("1", "Stephen King")], {})
    holiday = KeyDate("h|birthday", "King", "birthday", "--06-08")  # "King's Birthday"
    assert await store.record("holidays", dates=[holiday]) == set()
    assert (await store.person_states([king]))[0].birthday == ""
    # An interaction still finds the one person whose name holds it.
    assert await store.record("j", [Interaction("x", "King", NOW, "in")]) == {king}
    # A nickname is a name too ("Mum's birthday"), once the card says so.
    mum = KeyDate("m|birthday", "Mum", "birthday", "1960-03-01")
    assert await store.record("family", dates=[mum]) == set()
    [maria] = await store.upsert_cards("a", [card("2", "Maria Lima", nickname="Mum")], {})
    assert (await store.person_states([maria]))[0].birthday == "1960-03-01"


async def test_pulse_counts_a_persons_history_for_health(store):
    from nurtured.health import Pulse

    [pid] = await store.upsert_cards("a", [card("1", "Ana", emails=("a@x.org",))], {})
    contacts = [
        (400, "in", "email"),  # more than a year ago: only "ever" and the first contact
        (300, "mutual", "meeting"),  # the half-year before this one
        (250, "out", "email"),
        (100, "in", "message"),  # this half-year
        (40, "mutual", "call"),
        (10, "out", "email"),
        (-5, "mutual", "meeting"),  # planned: not counted yet
    ]
    await store.record("j", [
        Interaction(f"i{n}", "a@x.org", NOW - timedelta(days=d), direction, channel)
        for n, (d, direction, channel) in enumerate(contacts)
    ])  # fmt: skip
    [state] = await store.person_states([pid], until=NOW)
    assert state.pulse == Pulse(
        known_since=NOW - timedelta(days=400),
        last_two_way=NOW - timedelta(days=40),
        two_way=4,
        weight=3 + 1 + 1 + 3 + 1,
        outs=2,
        ins=1,
        months=3,
        recent=2,
        before=1,
    )


async def test_an_address_a_card_no_longer_holds_stops_merging_people(store):
    [ana] = await store.upsert_cards("a", [card("1", "Ana", emails=("shared@x.org",))], {})
    # Ana's card moves to a new address; the old one later belongs to someone else.
    await store.upsert_cards("a", [card("1", "Ana", emails=("ana@x.org",))], {})
    [bo] = await store.upsert_cards("b", [card("9", "Bo", emails=("shared@x.org",))], {})
    assert bo != ana
    assert set(await store.identifiers_of(ana)) == {("email", "ana@x.org"), ("uid", "1")}
    # A person whose last card went away keeps theirs, so the card coming back finds them.
    await store.remove_cards("b", ["9"], {})
    [again] = await store.upsert_cards("b", [card("9", "Bo", emails=("shared@x.org",))], {})
    assert again == bo
