"""The built-in sources, run in-process against a real store and real file watching."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import date
from zoneinfo import ZoneInfo

import pytest
import yaml
from conftest import RunningSource, eventually

from nurtured import plugins
from nurtured.model import Card
from nurtured.store import Store

LISBON = ZoneInfo("Europe/Lisbon")


def vcard(uid: str, name: str, *extra: str, version: str = "3.0") -> str:
    lines = ["BEGIN:VCARD", f"VERSION:{version}", f"UID:{uid}", f"FN:{name}", *extra, "END:VCARD"]
    return "\r\n".join(lines) + "\r\n"


@pytest.fixture
async def store(tmp_path):
    store = await Store.open(tmp_path / "state")
    yield store
    await store.close()


# -- vcard ---------------------------------------------------------------------------------


async def test_vcard_folder_is_read_and_watched(tmp_path, running):
    book = tmp_path / "contacts"
    book.mkdir()
    (book / "ana.vcf").write_text(vcard("a", "Ana Lima", "CATEGORIES:friends"))
    (book / "many.vcf").write_text(vcard("b", "Bo Berg") + vcard("c", "Cy Chen"))
    source = await running("vcard", path=book)
    assert await source.names() == ["Ana Lima", "Bo Berg", "Cy Chen"]

    (book / "new.vcf").write_text(vcard("d", "Di Dias"))
    await eventually(lambda: _has(source, "Di Dias"))

    (book / "ana.vcf").write_text(vcard("a", "Ana Lima-Sousa", "CATEGORIES:family"))
    await eventually(lambda: _has(source, "Ana Lima-Sousa"))
    [ana] = await source.store.find_people("Ana Lima-Sousa")
    assert ana.tags == ["family"]

    (book / "many.vcf").write_text(vcard("b", "Bo Berg"))  # Cy was deleted from the file
    await eventually(lambda: _gone(source, "Cy Chen"))
    (book / "new.vcf").unlink()
    await eventually(lambda: _gone(source, "Di Dias"))
    assert await source.names() == ["Ana Lima-Sousa", "Bo Berg"]


async def test_an_editor_saving_by_rename_is_seen(tmp_path, running):
    book = tmp_path / "contacts"
    book.mkdir()
    (book / "ana.vcf").write_text(vcard("a", "Ana"))
    source = await running("vcard", path=book)
    temp = book / ".ana.vcf.swp"
    temp.write_text(vcard("a", "Ana Maria"))
    temp.rename(book / "ana.vcf")
    await eventually(lambda: _has(source, "Ana Maria"))


async def test_one_vcf_file_with_many_cards(tmp_path, running):
    file = tmp_path / "export.vcf"
    file.write_text(vcard("1", "One") + vcard("2", "Two"))
    (tmp_path / "unrelated.vcf").write_text(vcard("3", "Not Mine"))
    source = await running("vcard", path=file)
    assert await source.names() == ["One", "Two"]
    file.write_text(vcard("1", "One") + vcard("2", "Two") + vcard("4", "Four"))
    await eventually(lambda: _has(source, "Four"))
    assert "Not Mine" not in await source.names()


async def test_a_broken_card_is_skipped_with_a_warning_and_the_rest_read(tmp_path, running, caplog):
    book = tmp_path / "contacts"
    book.mkdir()
    broken = "BEGIN:VCARD\r\nVERSION:3.0\r\nNOTE:no name at all\r\nEND:VCARD\r\n"
    (book / "mixed.vcf").write_text(vcard("1", "Good One") + broken + vcard("2", "Good Two"))
    with caplog.at_level(logging.WARNING):
        source = await running("vcard", path=book)
    assert await source.names() == ["Good One", "Good Two"]
    assert any("mixed.vcf" in r.getMessage() for r in caplog.records)


async def test_restart_reads_only_files_changed_meanwhile(tmp_path, store, caplog):
    book = tmp_path / "contacts"
    book.mkdir()
    for i in range(20):
        (book / f"p{i}.vcf").write_text(vcard(str(i), f"Person {i}"))
    first = await RunningSource(store, "vcard", {"path": book}).started()
    await first.stop()
    (book / "p3.vcf").write_text(vcard("3", "Person Three"))
    (book / "p4.vcf").unlink()
    with caplog.at_level(logging.INFO, logger="nurtured.plugins.vcard"):
        second = await RunningSource(store, "vcard", {"path": book}).started()
    await second.stop()
    assert any("read 2 changed file(s)" in r.getMessage() for r in caplog.records)
    names = await second.names()
    assert "Person Three" in names and "Person 4" not in names and len(names) == 19


async def test_cards_without_uid_keep_their_person_when_others_move(tmp_path, running):
    book = tmp_path / "contacts"
    book.mkdir()

    def card(name: str) -> str:
        return f"BEGIN:VCARD\nVERSION:3.0\nFN:{name}\nEMAIL:{name}@x.org\nEND:VCARD\n"

    (book / "export.vcf").write_text(card("bo") + card("cy"))
    source = await running("vcard", path=book)
    [cy] = await source.store.find_people("cy")
    [(_, uid, _)] = await source.store.cards_of(cy.id)
    assert uid.startswith("export.vcf#")
    (book / "export.vcf").write_text(card("al") + card("cy"))  # bo removed, al added before cy
    await eventually(lambda: _has(source, "al"))
    assert await source.names() == ["al", "cy"]
    [still] = await source.store.find_people("cy")
    assert still.id == cy.id
    assert [u for _, u, _ in await source.store.cards_of(cy.id)] == [uid]


async def _has(source: RunningSource, name: str) -> bool:
    return name in await source.names()


async def _gone(source: RunningSource, name: str) -> bool:
    return name not in await source.names()


# -- journal -------------------------------------------------------------------------------


async def _timeline(store: Store, name: str) -> list[dict]:
    [person] = await store.find_people(name)
    return await store.timeline(person.id)


async def test_journal_yaml_is_read_and_rereads_on_change(tmp_path, running, store):
    await store.upsert_cards("book", [_card("Ana Lima", "ana@x.org")], {})
    journal = tmp_path / "journal.yaml"
    journal.write_text(
        "- {date: 2026-03-14, person: Ana Lima, direction: met, channel: call, note: Porto}\n"
        "- {date: '2026-04-01T09:30', person: ana@x.org, direction: out, channel: email}\n"
    )
    await running("journal", path=journal)
    timeline = await _timeline(store, "Ana")
    assert [(t["direction"], t["channel"]) for t in timeline] == [
        ("out", "email"),
        ("mutual", "call"),
    ]
    # A bare date is midday in the configured zone; a time without zone is local.
    assert timeline[1]["at"] == "2026-03-14T12:00:00+00:00"
    assert timeline[0]["at"] == "2026-04-01T08:30:00+00:00"  # Lisbon is UTC+1 in April

    journal.write_text(
        "- {date: 2026-03-14, person: Ana Lima, direction: met, channel: call, note: Porto}\n"
    )

    async def one_left() -> bool:
        return len(await _timeline(store, "Ana")) == 1

    await eventually(one_left)


async def test_journal_skips_a_bad_entry_and_keeps_everything_on_broken_yaml(
    tmp_path, running, store, caplog
):
    await store.upsert_cards("book", [_card("Ana Lima", "ana@x.org")], {})
    journal = tmp_path / "journal.yaml"
    journal.write_text(
        "- {date: 2026-03-14, person: Ana Lima, direction: met}\n"
        "- {date: 2026-03-15, person: Ana Lima, direction: sideways}\n"
        "- {date: 2026-03-16, person: Ana Lima, direction: in, channel: call}\n"
    )
    with caplog.at_level(logging.WARNING):
        await running("journal", path=journal)
    assert len(await _timeline(store, "Ana")) == 2
    assert any("entry 2" in r.getMessage() and "sideways" in r.getMessage() for r in caplog.records)

    caplog.clear()
    journal.write_text("- {date: 2026-03-14, person: [unclosed\n")

    async def warned() -> bool:
        return any("keeping what was read before" in r.getMessage() for r in caplog.records)

    await eventually(warned)
    assert len(await _timeline(store, "Ana")) == 2


async def test_journal_csv(tmp_path, running, store):
    await store.upsert_cards("book", [_card("Meimei Chen", "mm@x.org")], {})
    journal = tmp_path / "journal.csv"
    journal.write_text(
        "date,person,direction,channel,note\n"
        '2026-02-01,mm@x.org,in,message,"marathon, in April"\n'
        "2026-02-03,Meimei,out,call,\n"
    )
    await running("journal", path=journal)
    timeline = await _timeline(store, "Meimei")
    assert [t["note"] for t in timeline] == ["", "marathon, in April"]


def _card(name: str, email: str) -> Card:
    return Card(uid=email, name=name, emails=(email,))


# -- supervision ----------------------------------------------------------------------------


async def test_a_failing_plugin_is_restarted_with_backoff_and_reported():
    reports: list[tuple[str, str]] = []
    runs: list[float] = []

    async def flaky() -> None:
        runs.append(time.monotonic())
        if len(runs) < 3:
            raise ConnectionError("server unreachable")

    async def report(health: plugins.Health) -> None:
        reports.append((health.state, health.error))

    await asyncio.wait_for(plugins.supervise(flaky, "flaky", report, first_backoff=0.05), 5)
    assert len(runs) == 3
    assert ("failed", "ConnectionError: server unreachable") in reports
    assert reports[-1] == ("stopped", "")
    first_gap, second_gap = runs[1] - runs[0], runs[2] - runs[1]
    assert first_gap >= 0.05 and second_gap >= 0.1  # the back-off doubles


async def test_a_card_copied_into_two_files_lives_until_both_are_gone(tmp_path, running):
    book = tmp_path / "contacts"
    book.mkdir()
    (book / "ana.vcf").write_text(vcard("a", "Ana Lima"))
    (book / "ana-copy.vcf").write_text(vcard("a", "Ana Lima"))
    source = await running("vcard", path=book)
    (book / "ana-copy.vcf").unlink()
    (book / "bo.vcf").write_text(vcard("b", "Bo Berg"))  # a later change, to know we're past it
    await eventually(lambda: _has(source, "Bo Berg"))
    assert await source.names() == ["Ana Lima", "Bo Berg"]
    (book / "ana.vcf").unlink()
    await eventually(lambda: _gone(source, "Ana Lima"))


JOURNALS = [
    "- {date: 2026-03-14, person: Ana Lima, direction: met, channel: call, note: Porto}\n",
    "- date: 2026-03-14 09:30:00\n  person: ana@x.org\n  note: ~\n"
    "- date: '2026-04-01T09:30'\n  person: +351 912 345 678\n  note: 42\n"
    '- date: 2026-04-02T10:00:00+02:00\n  person: "Zé"\n  note: yes\n'
    "- date: !!str 2026-04-03\n  person: Bo\n  note: |\n    two\n    lines\n",
    "# a journal not started yet\n",
    "",
]


@pytest.mark.parametrize("text", JOURNALS)
def test_journal_entries_mean_what_yaml_says(text):
    from nurtured_plugins.journal import _yaml_entries

    assert [entry for _, entry in _yaml_entries(text)] == (yaml.safe_load(text) or [])


def test_journal_entries_that_are_not_flat_are_named_and_the_rest_kept():
    from nurtured_plugins.journal import _yaml_entries

    text = (
        "- {date: 2026-03-14, person: Ana}\n"
        "- just a line\n"
        "- {date: 2026-03-15, person: [Ana, Bo]}\n"
        "- &x {date: 2026-03-16, person: Bo}\n"
        "- {date: 2026-03-17, person: *x}\n"
        "- {date: 2026-03-18, person: Bo}\n"
    )
    assert _yaml_entries(text) == [
        ("entry 1 (line 1)", {"date": date(2026, 3, 14), "person": "Ana"}),
        ("entry 2 (line 2)", None),
        ("entry 3 (line 3)", None),
        ("entry 4 (line 4)", {"date": date(2026, 3, 16), "person": "Bo"}),
        ("entry 5 (line 5)", None),
        ("entry 6 (line 6)", {"date": date(2026, 3, 18), "person": "Bo"}),
    ]
    for bad in ("date: 2026-03-14\nperson: Ana\n", "- {date: 1}\n---\n- {date: 2}\n", "hello\n"):
        with pytest.raises(ValueError):
            _yaml_entries(bad)
