"""The SQLite state: people, cards, interactions, reminders, cursors. No SQL lives elsewhere.

One long-lived aiosqlite connection in WAL mode; every multi-statement write
is one `BEGIN IMMEDIATE` transaction under a lock, so the daemon's coroutines
never interleave and the CLI (another process) never sees half a change.
Times are stored as UTC ISO 8601 text, which sorts as time does.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from nurtured.health import HALF, YEAR, Health, Pulse
from nurtured.model import Card, Interaction, KeyDate
from nurtured.planner import Contact, PersonState, Plan

DB_NAME = "nurtured.db"
CLI_SOURCE = "cli"  # what the user logs by hand
PERSON_REF = "person:"  # `who` naming a person by id, for what the user logs by hand
CHUNK = 900  # bound parameters per IN (...) list

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE people (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        preferred TEXT NOT NULL DEFAULT '',
        tags TEXT NOT NULL DEFAULT '[]',
        emails TEXT NOT NULL DEFAULT '[]',
        notes TEXT NOT NULL DEFAULT '',
        first_seen TEXT NOT NULL,
        active INTEGER NOT NULL DEFAULT 1,
        paused INTEGER NOT NULL DEFAULT 0,
        paused_until TEXT,
        snoozed_until TEXT,
        skipped_at TEXT,
        rule TEXT,
        kind TEXT,
        next_due TEXT,
        reason TEXT NOT NULL DEFAULT '',
        unanswered INTEGER NOT NULL DEFAULT 0,
        last_contact TEXT,
        stage TEXT
    );
    CREATE INDEX people_next_due ON people(next_due) WHERE next_due IS NOT NULL;
    CREATE TABLE identifiers (
        kind TEXT NOT NULL,
        value TEXT NOT NULL,
        person_id INTEGER NOT NULL REFERENCES people(id),
        PRIMARY KEY (kind, value)
    ) WITHOUT ROWID;
    CREATE TABLE cards (
        source TEXT NOT NULL,
        uid TEXT NOT NULL,
        person_id INTEGER NOT NULL REFERENCES people(id),
        data TEXT NOT NULL,
        PRIMARY KEY (source, uid)
    );
    CREATE INDEX cards_person ON cards(person_id);
    CREATE TABLE interactions (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        external_id TEXT NOT NULL,
        person_id INTEGER REFERENCES people(id),
        who TEXT NOT NULL,
        at TEXT NOT NULL,
        direction TEXT NOT NULL CHECK (direction IN ('out', 'in', 'mutual')),
        channel TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT '',
        UNIQUE (source, external_id)
    );
    CREATE INDEX interactions_person ON interactions(person_id, at);
    CREATE TABLE reminders (
        id INTEGER PRIMARY KEY,
        person_id INTEGER NOT NULL REFERENCES people(id),
        rule TEXT NOT NULL,
        kind TEXT NOT NULL,
        due_at TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'due',
        tag TEXT,
        title TEXT NOT NULL,
        body TEXT NOT NULL,
        delivered TEXT NOT NULL DEFAULT '[]',
        attempts INTEGER NOT NULL DEFAULT 0,
        retry_at TEXT,
        last_error TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        sent_at TEXT,
        closed_at TEXT,
        UNIQUE (person_id, kind, due_at)
    );
    CREATE INDEX reminders_open ON reminders(state) WHERE state IN ('due', 'sending', 'failed');
    CREATE INDEX reminders_sent ON reminders(sent_at) WHERE sent_at IS NOT NULL;
    CREATE TABLE cursors (
        source TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (source, key)
    ) WITHOUT ROWID;
    CREATE TABLE sources (
        name TEXT PRIMARY KEY,
        plugin TEXT NOT NULL,
        state TEXT NOT NULL,
        error TEXT NOT NULL DEFAULT '',
        since TEXT NOT NULL,
        retry_at TEXT,
        restarts INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    """
    ALTER TABLE interactions ADD COLUMN message_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE interactions ADD COLUMN replies_to TEXT NOT NULL DEFAULT '[]';
    CREATE INDEX interactions_message ON interactions(message_id) WHERE message_id != '';
    ALTER TABLE interactions ADD COLUMN who_key TEXT NOT NULL DEFAULT '';
    ALTER TABLE people ADD COLUMN plan_rev INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sources ADD COLUMN progress TEXT NOT NULL DEFAULT '';
    ALTER TABLE people ADD COLUMN birthday TEXT NOT NULL DEFAULT '';
    ALTER TABLE people ADD COLUMN anniversary TEXT NOT NULL DEFAULT '';
    ALTER TABLE reminders ADD COLUMN closed_rev INTEGER;
    CREATE TRIGGER reminders_closed AFTER UPDATE OF state ON reminders
    WHEN NEW.state IN ('done', 'snoozed', 'skipped', 'superseded', 'paused')
     AND OLD.state NOT IN ('done', 'snoozed', 'skipped', 'superseded', 'paused')
    BEGIN
        UPDATE reminders SET closed_rev = (SELECT plan_rev FROM people WHERE id = NEW.person_id)
        WHERE id = NEW.id;
    END;
    CREATE INDEX interactions_unresolved ON interactions(who_key) WHERE person_id IS NULL;
    """,
    """
    CREATE TABLE dates (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        external_id TEXT NOT NULL,
        person_id INTEGER REFERENCES people(id),
        who TEXT NOT NULL,
        who_key TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('birthday', 'anniversary')),
        day TEXT NOT NULL,
        UNIQUE (source, external_id)
    );
    CREATE INDEX dates_person ON dates(person_id, kind);
    CREATE INDEX dates_unresolved ON dates(who_key) WHERE person_id IS NULL;
    """,
    """
    ALTER TABLE people ADD COLUMN health TEXT;
    """,
)

#: Reminder states that end a nudge; before them: due, sending, failed, sent.
#: A closed nudge records the plan revision it was closed under (`closed_rev`):
#: only a later plan that comes back to the same nudge reopens it.
CLOSED = ("done", "snoozed", "skipped", "superseded", "paused")


def ts(moment: datetime | None) -> str | None:
    """A stored time: UTC, fixed width, so text order is time order."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


_NOT_DIGITS = re.compile(r"[^\d+]")


def normalize_phone(number: str) -> str:
    """Digits with a leading + kept (00 means +): enough to match the same number."""
    digits = _NOT_DIGITS.sub("", number)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    return digits[:1] + digits[1:].replace("+", "")


def card_identifiers(card: Card) -> list[tuple[str, str]]:
    ids = [("email", e.strip().lower()) for e in card.emails if e.strip()]
    ids += [("phone", p) for p in map(normalize_phone, card.phones) if len(p) >= 5]
    if card.uid:
        ids.append(("uid", card.uid))
    return ids


def _statements(script: str) -> Iterable[str]:
    """Split a migration into statements (a trigger's body holds semicolons too)."""
    statement = ""
    for piece in script.split(";"):
        statement += piece + ";"
        if sqlite3.complete_statement(statement):
            if statement.strip(" \n;"):
                yield statement
            statement = ""


def reference(who: str) -> tuple[str, str]:
    """What kind of reference a source's `who` is, and its normalized key.

    ("person", id) from the CLI, ("email", address), ("phone", digits), or
    ("name", case-folded name).
    """
    text = who.strip()
    if text.startswith(PERSON_REF) and text[len(PERSON_REF) :].isdigit():
        return "person", text[len(PERSON_REF) :]
    if "@" in text:
        return "email", text.lower().removeprefix("mailto:")
    if len(normalize_phone(text)) >= 5 and not re.search(r"[^\d+\-(). /]", text):
        return "phone", normalize_phone(text)
    return "name", text.casefold()


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _marks(items: Sequence[Any]) -> str:
    return ",".join("?" * len(items))


@dataclass(frozen=True, slots=True)
class PersonRow:
    """A person as `status` and `due` show them."""

    id: int
    name: str
    preferred: str
    tags: list[str]
    emails: list[str]
    notes: str
    first_seen: datetime
    paused: bool
    paused_until: datetime | None
    snoozed_until: datetime | None
    rule: str | None
    kind: str | None
    next_due: datetime | None
    reason: str
    unanswered: int
    last_contact: datetime | None
    stage: str | None
    health: dict[str, Any] | None  # score, its four parts, stage and why (`health.Health`)


@dataclass(frozen=True, slots=True)
class Reminder:
    id: int
    person_id: int
    rule: str
    kind: str
    due_at: datetime
    state: str
    tag: str | None
    title: str
    body: str
    delivered: list[str]
    attempts: int
    retry_at: datetime | None
    last_error: str
    sent_at: datetime | None


_PERSON_COLUMNS = (
    "id, name, preferred, tags, emails, notes, first_seen, paused, paused_until,"
    " snoozed_until, rule, kind, next_due, reason, unanswered, last_contact, stage, health"
)
_REMINDER_COLUMNS = (
    "id, person_id, rule, kind, due_at, state, tag, title, body, delivered, attempts,"
    " retry_at, last_error, sent_at"
)


def _person_row(r: Sequence[Any]) -> PersonRow:
    return PersonRow(
        r[0], r[1], r[2], json.loads(r[3]), json.loads(r[4]), r[5], dt(r[6]), bool(r[7]),
        dt(r[8]), dt(r[9]), r[10], r[11], dt(r[12]), r[13], r[14], dt(r[15]), r[16],
        json.loads(r[17]) if r[17] else None,
    )  # fmt: skip


def _reminder(r: Sequence[Any]) -> Reminder:
    return Reminder(
        r[0], r[1], r[2], r[3], dt(r[4]), r[5], r[6], r[7], r[8], json.loads(r[9]), r[10],
        dt(r[11]), r[12], dt(r[13]),
    )  # fmt: skip


class Store:
    """The only owner of the database connection."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self.db = db
        self.path = path
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, state_dir: Path) -> Store:
        state_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, at start
        path = state_dir / DB_NAME
        db = await aiosqlite.connect(path, isolation_level=None)
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.execute("PRAGMA busy_timeout=10000")
            await db.execute("PRAGMA foreign_keys=ON")
            store = cls(db, path)
            await store._migrate()
        except BaseException:
            await db.close()
            raise
        return store

    async def close(self) -> None:
        await self.db.close()

    async def _migrate(self) -> None:
        async with self.transaction():
            (version,) = await self._one("PRAGMA user_version")
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in _statements(script):
                    await self.db.execute(statement)
                await self.db.execute(f"PRAGMA user_version = {number}")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        async with self._lock:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self.db.execute("COMMIT")

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        async with self.db.execute(sql, params) as cursor:
            return await cursor.fetchone()

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(await self.db.execute_fetchall(sql, params))

    async def _all_in(self, sql: str, values: Sequence[Any], before: Sequence[Any] = ()) -> list:
        """Run `sql` (with one `{}` for an IN list) over `values` in chunks; rows it returns."""
        rows: list[Any] = []
        for chunk in _chunks(list(values)):
            rows += await self._all(sql.format(_marks(chunk)), (*before, *chunk))
        return rows

    # -- cursors ----------------------------------------------------------------

    async def cursor(self, source: str) -> dict[str, Any]:
        rows = await self._all("SELECT key, value FROM cursors WHERE source = ?", (source,))
        return {key: json.loads(value) for key, value in rows}

    async def _save_cursor(self, source: str, cursor: dict[str, Any]) -> None:
        if not cursor:
            return
        await self.db.executemany(
            "INSERT INTO cursors (source, key, value) VALUES (?, ?, ?)"
            " ON CONFLICT (source, key) DO UPDATE SET value = excluded.value",
            [(source, k, json.dumps(v)) for k, v in cursor.items() if v is not None],
        )
        await self.db.executemany(
            "DELETE FROM cursors WHERE source = ? AND key = ?",
            [(source, k) for k, v in cursor.items() if v is None],
        )

    # -- cards and people -------------------------------------------------------

    async def upsert_cards(
        self,
        source: str,
        cards: Sequence[Card],
        cursor: dict[str, Any],
        now: datetime | None = None,
    ) -> set[int]:
        """Record cards, merging each into a person by UID, email or phone.

        Returns the people touched. Work is proportional to the cards given.
        """
        now = now or datetime.now(UTC)
        async with self.transaction():
            uids = [c.uid for c in cards]
            owner = dict(
                await self._all_in(
                    "SELECT uid, person_id FROM cards WHERE source = ? AND uid IN ({})",
                    uids,
                    (source,),
                )
            )
            identifiers = [card_identifiers(c) for c in cards]
            wanted = {i for c, ids in zip(cards, identifiers, strict=True) if c.uid not in owner
                      for i in ids}  # fmt: skip
            known: dict[tuple[str, str], int] = {}
            for kind in ("email", "phone", "uid"):
                values = [v for k, v in wanted if k == kind]
                rows = await self._all_in(
                    "SELECT value, person_id FROM identifiers WHERE kind = ? AND value IN ({})",
                    values,
                    (kind,),
                )
                known.update(((kind, v), p) for v, p in rows)
            (next_id,) = await self._one("SELECT coalesce(max(id), 0) + 1 FROM people")

            new_people, card_rows, id_rows, touched = [], [], [], set()
            fresh: dict[int, dict[str, dict[str, Any]]] = {}  # new people: all their cards
            for card, ids in zip(cards, identifiers, strict=True):
                person = owner.get(card.uid) or next((known[i] for i in ids if i in known), None)
                if person is None:
                    person, next_id = next_id, next_id + 1
                    new_people.append((person, card.name, ts(now)))
                    fresh[person] = {}
                for i in ids:
                    known.setdefault(i, person)
                owner[card.uid] = person
                touched.add(person)
                data = _card_data(card)
                if person in fresh:
                    fresh[person][card.uid] = data
                card_rows.append((source, card.uid, person, json.dumps(data)))
                id_rows += [(k, v, person) for k, v in ids]
            await self.db.executemany(
                "INSERT INTO people (id, name, first_seen) VALUES (?, ?, ?)", new_people
            )
            await self.db.executemany(
                "INSERT INTO cards (source, uid, person_id, data) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (source, uid) DO UPDATE"
                " SET person_id = excluded.person_id, data = excluded.data",
                card_rows,
            )
            await self.db.executemany(
                "INSERT OR IGNORE INTO identifiers (kind, value, person_id) VALUES (?, ?, ?)",
                id_rows,
            )
            await self._refresh_people(
                touched, {p: [d for _, d in sorted(c.items())] for p, c in fresh.items()}
            )
            touched |= await self._attach_unresolved(cards)
            await self._save_cursor(source, cursor)
        return touched

    async def remove_cards(
        self, source: str, uids: Sequence[str], cursor: dict[str, Any]
    ) -> set[int]:
        async with self.transaction():
            rows = await self._all_in(
                "SELECT person_id FROM cards WHERE source = ? AND uid IN ({})", uids, (source,)
            )
            touched = {p for (p,) in rows}
            await self.db.executemany(
                "DELETE FROM cards WHERE source = ? AND uid = ?", [(source, u) for u in uids]
            )
            await self._refresh_people(touched)
            await self._save_cursor(source, cursor)
        return touched

    async def _refresh_people(
        self, people: set[int], known: dict[int, list[dict[str, Any]]] | None = None
    ) -> None:
        """Derive each person's name, tags and notes from all of their cards.

        `known` holds the cards of people who have no others (just created), so
        a cold import does not read back what it has just written.
        """
        known = known or {}
        cards: dict[int, list[dict[str, Any]]] = {p: known.get(p, []) for p in people}
        rows = await self._all_in(
            "SELECT person_id, uid, data FROM cards WHERE person_id IN ({}) ORDER BY source, uid",
            sorted(people - known.keys()),
        )
        kept: dict[int, set[tuple[str, str]]] = {}
        for person, uid, data in rows:
            card = json.loads(data)
            cards[person].append(card)
            kept.setdefault(person, set()).update(card_identifiers(Card(
                uid, "", emails=tuple(card.get("emails", ())), phones=tuple(card.get("phones", ()))
            )))  # fmt: skip
        await self._forget_identifiers(kept)
        updates, gone = [], []
        for person, datas in cards.items():
            if not datas:
                gone.append((person,))
                continue
            first = datas[0]
            tags = list(dict.fromkeys(t for d in datas for t in d.get("tags", ())))
            emails = list(
                dict.fromkeys(e.strip().lower() for d in datas for e in d.get("emails", ()))
            )
            notes = "\n".join(dict.fromkeys(d["note"] for d in datas if d.get("note")))
            preferred = next((d["nickname"] for d in datas if d.get("nickname")), "") or next(
                (d["given_name"] for d in datas if d.get("given_name")), ""
            )
            birthday = next((d["birthday"] for d in datas if d.get("birthday")), "")
            anniversary = next((d["anniversary"] for d in datas if d.get("anniversary")), "")
            updates.append(
                (first["name"], preferred, json.dumps(tags), json.dumps(emails), notes,
                 birthday, anniversary, person)
            )  # fmt: skip
        await self.db.executemany(
            "UPDATE people SET name = ?, preferred = ?, tags = ?, emails = ?, notes = ?,"
            " birthday = ?, anniversary = ?, active = 1 WHERE id = ?",
            updates,
        )
        # A person whose last card went away leaves status and planning; their
        # identifiers and history stay, so the card coming back restores them.
        await self.db.executemany(
            "UPDATE people SET active = 0, kind = NULL, next_due = NULL WHERE id = ?", gone
        )
        await self.db.executemany(
            "UPDATE reminders SET state = 'superseded', closed_at = ?"
            " WHERE person_id = ? AND state IN ('due', 'failed')",
            [(ts(datetime.now(UTC)), person) for (person,) in gone],
        )

    async def _forget_identifiers(self, kept: dict[int, set[tuple[str, str]]]) -> None:
        """An address no card of a person holds any more stops pointing to them, so it
        cannot merge them with whoever has it next. (A person with no cards left keeps
        theirs: the card coming back restores them.)"""
        rows = await self._all_in(
            "SELECT kind, value, person_id FROM identifiers WHERE person_id IN ({})", list(kept)
        )
        await self.db.executemany(
            "DELETE FROM identifiers WHERE kind = ? AND value = ?",
            [(kind, value) for kind, value, person in rows if (kind, value) not in kept[person]],
        )

    async def _attach_unresolved(self, cards: Sequence[Card]) -> set[int]:
        """Give interactions and key dates recorded before their person's card arrived
        their person.

        Only those naming these cards (an email, the name, the nickname or given
        name) are looked at: the work follows the cards, not the backlog.
        """
        keys = sorted(
            {
                reference(r)[1]
                for c in cards
                for r in (*c.emails, *c.phones, c.name, c.nickname, c.given_name)
                if r
            }
        )
        touched: set[int] = set()
        for table in ("interactions", "dates"):
            rows = await self._all_in(
                f"SELECT id, who FROM {table} INDEXED BY {table}_unresolved"
                " WHERE person_id IS NULL AND who_key IN ({})",
                keys,
            )
            if not rows:
                continue
            # A birthday calendar's "King's Birthday" must not find Stephen King.
            resolved = await self._resolve_many({who for _, who in rows}, table == "dates")
            updates = [(resolved[who], i) for i, who in rows if resolved.get(who)]
            await self.db.executemany(f"UPDATE {table} SET person_id = ? WHERE id = ?", updates)
            touched |= {p for p, _ in updates}
        return touched

    async def _resolve_many(
        self, refs: Iterable[str], exact: bool = False
    ) -> dict[str, int | None]:
        """Map how sources name people (email, phone, name) to person ids, in bulk.

        A name is matched as `_by_name` says.
        """
        result: dict[str, int | None] = {}
        keys: dict[str, dict[str, list[str]]] = {"email": {}, "phone": {}}
        names: list[str] = []
        for ref in refs:
            kind, key = reference(ref)
            if kind == "person":
                result[ref] = int(key)
            elif kind == "name":
                names.append(ref)
            else:
                keys[kind].setdefault(key, []).append(ref)
        for kind, wanted in keys.items():
            result.update((ref, None) for refs_ in wanted.values() for ref in refs_)
            rows = await self._all_in(
                "SELECT value, person_id FROM identifiers WHERE kind = ? AND value IN ({})",
                list(wanted),
                (kind,),
            )
            result.update((ref, person) for value, person in rows for ref in wanted[value])
        if names:
            rows = await self._all("SELECT id, name, preferred FROM people WHERE active = 1")
            folded = [(person, name.casefold(), short.casefold()) for person, name, short in rows]
            result.update((ref, _by_name(folded, ref.strip(), exact)) for ref in names)
        return result

    # -- interactions -----------------------------------------------------------

    async def record(
        self,
        source: str,
        interactions: Sequence[Interaction] = (),
        dates: Sequence[KeyDate] = (),
        gone: Sequence[str] = (),
        cursor: dict[str, Any] | None = None,
    ) -> set[int]:
        """Record what a source observed, in one transaction; returns the people touched.

        Interactions and key dates are idempotent: the same external id updates,
        never adds. `gone` are external ids the source no longer has (an event
        deleted, a file removed): their interactions and key dates are deleted,
        unless recorded anew in this same call. A message another source
        already recorded (same Message-ID, same person) is left out: one mail in
        two folders or two sources counts once.
        """
        async with self.transaction():
            touched = await self._forget(source, sorted(
                set(gone) - {i.external_id for i in interactions} - {d.external_id for d in dates}
            ))  # fmt: skip
            if interactions:
                touched |= await self._record(source, interactions)
            if dates:
                touched |= await self._record_dates(source, dates)
            await self._save_cursor(source, cursor or {})
        return touched

    async def _record(self, source: str, items: Sequence[Interaction]) -> set[int]:
        resolved = await self._resolve_many({i.who for i in items})
        seen = await self._all_in(
            "SELECT message_id, who FROM interactions WHERE source != ? AND message_id IN ({})",
            sorted({i.message_id for i in items if i.message_id}),
            (source,),
        )
        seen_set = {tuple(row) for row in seen}
        items = [i for i in items if (i.message_id, i.who) not in seen_set]
        before = await self._owners("interactions", source, [i.external_id for i in items])
        await self.db.executemany(
            "INSERT INTO interactions (source, external_id, person_id, who, who_key, at,"
            " direction, channel, note, message_id, replies_to)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (source, external_id) DO UPDATE SET person_id = excluded.person_id,"
            " who = excluded.who, who_key = excluded.who_key, at = excluded.at,"
            " direction = excluded.direction,"
            " channel = excluded.channel, note = excluded.note,"
            " message_id = excluded.message_id, replies_to = excluded.replies_to",
            [
                (source, i.external_id, resolved[i.who], i.who, reference(i.who)[1],
                 ts(i.at), i.direction, i.channel, i.note, i.message_id,
                 json.dumps(list(i.replies_to)))
                for i in items
            ],
        )  # fmt: skip
        touched = {p for p in resolved.values() if p} | before
        await self._supersede_sent(touched)
        return touched

    async def _record_dates(self, source: str, dates: Sequence[KeyDate]) -> set[int]:
        resolved = await self._resolve_many({d.who for d in dates}, exact=True)
        before = await self._owners("dates", source, [d.external_id for d in dates])
        await self.db.executemany(
            "INSERT INTO dates (source, external_id, person_id, who, who_key, kind, day)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (source, external_id) DO UPDATE SET person_id = excluded.person_id,"
            " who = excluded.who, who_key = excluded.who_key, kind = excluded.kind,"
            " day = excluded.day",
            [(source, d.external_id, resolved[d.who], d.who, reference(d.who)[1], d.kind, d.day)
             for d in dates],
        )  # fmt: skip
        return {p for p in resolved.values() if p} | before

    async def _forget(self, source: str, external_ids: Sequence[str]) -> set[int]:
        touched: set[int] = set()
        for table in ("interactions", "dates"):
            touched |= await self._owners(table, source, external_ids)
            await self.db.executemany(
                f"DELETE FROM {table} WHERE source = ? AND external_id = ?",
                [(source, e) for e in external_ids],
            )
        return touched

    async def _owners(self, table: str, source: str, external_ids: Sequence[str]) -> set[int]:
        """The people what a source recorded under these ids (in `table`) belongs to."""
        rows = await self._all_in(
            f"SELECT person_id FROM {table} WHERE source = ? AND external_id IN ({{}})"
            " AND person_id IS NOT NULL",
            external_ids,
            (source,),
        )
        return {p for (p,) in rows}

    async def unresolved(self) -> list[tuple[str, str, str]]:
        """Interactions whose person is not known yet: (source, who, at)."""
        return await self._all(
            "SELECT source, who, at FROM interactions WHERE person_id IS NULL ORDER BY at"
        )

    async def _supersede_sent(self, people: set[int]) -> None:
        """A contact after a nudge went out answers that nudge by itself."""
        await self._all_in(
            "UPDATE reminders SET state = 'superseded', closed_at = ?"
            " WHERE state IN ('sent', 'failed') AND sent_at IS NOT NULL"
            " AND person_id IN ({}) AND sent_at <= (SELECT max(at) FROM interactions i"
            " WHERE i.person_id = reminders.person_id)",
            sorted(people),
            (ts(datetime.now(UTC)),),
        )

    # -- planning -----------------------------------------------------------------

    async def person_states(
        self, people: Iterable[int] | None = None, until: datetime | None = None
    ) -> list[PersonState]:
        """What the planner needs, for some people or (None) every active one.

        History is read up to `until` (now, when planning): a contact logged for
        the future must not hide the real ones before it.
        """
        limit = ts(until) or "9999"
        where, ids = "", sorted(people) if people is not None else None
        if ids is not None:
            if not ids:
                return []
            where = " AND p.id IN ({})"
        person_sql = (
            "SELECT p.id, p.name, p.first_seen, p.preferred, p.tags, p.emails, p.notes,"
            " p.paused, p.paused_until, p.snoozed_until, p.skipped_at,"
            " (SELECT max(sent_at) FROM reminders r WHERE r.person_id = p.id"
            "  AND r.kind IN ('cadence', 'light_touch')),"
            " (SELECT json_group_object(kind, sent) FROM (SELECT kind, max(sent_at) AS sent"
            "  FROM reminders r WHERE r.person_id = p.id AND sent_at IS NOT NULL GROUP BY kind)),"
            " (SELECT json_group_array(json_array(at, note)) FROM (SELECT at, note"
            "  FROM interactions i WHERE i.person_id = p.id AND i.channel = 'meeting'"
            "  AND i.at > ? ORDER BY at LIMIT 3)),"
            " (SELECT max(at) FROM interactions i WHERE i.person_id = p.id"
            "  AND i.channel = 'meeting' AND i.at <= ?),"
            f" {_key_date('birthday')}, {_key_date('anniversary')}"
            " FROM people p WHERE p.active = 1" + where
        )
        # Only the last in/mutual contact and what came after it change a plan.
        history_sql = (
            "SELECT i.person_id, i.at, i.direction, i.channel, i.note FROM interactions i"
            " JOIN people p ON p.id = i.person_id"
            " WHERE p.active = 1 AND i.at <= ? AND i.at >= coalesce((SELECT max(at)"
            " FROM interactions j WHERE j.person_id = i.person_id AND j.direction != 'out'"
            " AND j.at <= ?), '')"
            + where.replace("p.id", "i.person_id")
            + " ORDER BY i.person_id, i.at"
        )
        if ids is None:
            person_rows = await self._all(person_sql, (limit, limit))
            history_rows = await self._all(history_sql, (limit, limit))
        else:
            person_rows = await self._all_in(person_sql, ids, (limit, limit))
            history_rows = await self._all_in(history_sql, ids, (limit, limit))
        history: dict[int, list[Contact]] = {}
        for person, at, direction, channel, note in history_rows:
            history.setdefault(person, []).append(Contact(dt(at), direction, channel, note))
        pulses = await self._pulses(ids, until or datetime.now(UTC))
        return [
            PersonState(
                id=r[0], name=r[1], first_seen=dt(r[2]), preferred=r[3],
                tags=tuple(json.loads(r[4])), emails=tuple(json.loads(r[5])), notes=r[6],
                history=tuple(history.get(r[0], ())), paused=bool(r[7]),
                paused_until=dt(r[8]), snoozed_until=dt(r[9]), skipped_at=dt(r[10]),
                last_nudge_at=dt(r[11]),
                nudged={k: dt(v) for k, v in json.loads(r[12] or "{}").items()},
                upcoming=tuple(Contact(dt(a), "mutual", "meeting", note)
                               for a, note in json.loads(r[13] or "[]")),
                last_meeting=dt(r[14]), birthday=r[15], anniversary=r[16],
                pulse=_pulse(pulses.get(r[0]), dt(r[2])),
            )
            for r in person_rows
        ]  # fmt: skip

    async def _pulses(self, ids: list[int] | None, now: datetime) -> dict[int, Sequence[Any]]:
        """What `health.Pulse` counts of each person's history up to `now`, in one pass."""
        year, half = ts(now - YEAR), ts(now - HALF)
        sql = (
            "SELECT person_id, min(at), max(CASE WHEN direction != 'out' THEN at END),"
            " sum(direction != 'out'),"
            " sum(CASE WHEN at > ?1 THEN (CASE WHEN channel IN ('meeting', 'call') THEN 3"
            "  ELSE 1 END) ELSE 0 END),"
            " sum(at > ?1 AND direction = 'out'), sum(at > ?1 AND direction = 'in'),"
            " count(DISTINCT CASE WHEN at > ?1 AND direction != 'out' THEN substr(at, 1, 7) END),"
            " sum(at > ?2 AND direction != 'out'),"
            " sum(at > ?3 AND at <= ?2 AND direction != 'out')"
            " FROM interactions WHERE person_id IS NOT NULL AND at <= ?4 {} GROUP BY person_id"
        )
        windows = (year, half, ts(now - 2 * HALF), ts(now))
        if ids is None:
            rows = await self._all(sql.format(""), windows)
        else:
            rows = await self._all_in(sql.format("AND person_id IN ({})"), ids, windows)
        return {r[0]: r[1:] for r in rows}

    async def save_plans(
        self,
        plans: Sequence[tuple[int, Sequence[Plan]]],
        health: dict[int, Health] | None = None,
    ) -> None:
        """Store each person's plans: the cadence plan first, then their occasions.

        `status` shows the soonest nudge (or the cadence plan's reason when none
        is planned); a waiting nudge no plan wants any more is superseded.
        """
        soonest = [(person, min((p for p in ps if p.due_at), key=_due, default=ps[0]))
                   for person, ps in plans]  # fmt: skip
        wanted = {(person, p.kind, ts(p.due_at)) for person, ps in plans for p in ps if p.due_at}
        async with self.transaction():
            waiting = await self._all_in(
                # A nudge that reached some channels keeps going to the others.
                "SELECT id, person_id, kind, due_at FROM reminders"
                " WHERE state IN ('due', 'failed') AND sent_at IS NULL AND person_id IN ({})",
                [person for person, _ in plans],
            )
            await self.db.executemany(
                "UPDATE people SET rule = ?, kind = ?, next_due = ?, reason = ?, unanswered = ?,"
                " last_contact = ?, plan_rev = plan_rev + 1 WHERE id = ?",
                [
                    (p.rule, p.kind, ts(p.due_at), p.reason, p.unanswered,
                     ts(p.last_contact.at) if p.last_contact else None, person)
                    for person, p in soonest
                ],
            )  # fmt: skip
            await self.db.executemany(
                "UPDATE reminders SET state = 'superseded', closed_at = ? WHERE id = ?",
                [
                    (ts(datetime.now(UTC)), rid)
                    for rid, person, kind, due in waiting
                    if (person, kind, due) not in wanted
                ],
            )
            await self.db.executemany(
                "UPDATE people SET stage = ?, health = ? WHERE id = ?",
                [(h.stage, json.dumps(h.as_dict()), p) for p, h in (health or {}).items()],
            )

    async def next_due(self, after: datetime) -> datetime | None:
        row = await self._one(
            "SELECT min(next_due) FROM people WHERE next_due > ? AND kind IS NOT NULL",
            (ts(after),),
        )
        return dt(row[0])

    async def plans_due(self, now: datetime) -> list[int]:
        """People whose planned nudge is due and has no reminder yet."""
        rows = await self._all(
            "SELECT p.id FROM people p WHERE p.next_due <= ? AND p.kind IS NOT NULL"
            " AND p.active = 1 AND NOT EXISTS (SELECT 1 FROM reminders r"
            " WHERE r.person_id = p.id AND r.kind = p.kind AND r.due_at = p.next_due"
            f" AND (r.state NOT IN {CLOSED} OR r.closed_rev >= p.plan_rev))",
            (ts(now),),
        )
        return [r[0] for r in rows]

    # -- reminders (the outbox) ---------------------------------------------------

    async def add_reminders(
        self, rows: Sequence[tuple[int, str, str, datetime, str | None, str, str]], now: datetime
    ) -> None:
        """Queue nudges: (person, rule, kind, due_at, tag, title, body). Idempotent.

        A nudge closed under an earlier plan that the plan has come back to
        (snoozed, then resumed) is reopened, keeping the channels that have it.
        """
        async with self.transaction():
            await self.db.executemany(
                "INSERT INTO reminders"
                " (person_id, rule, kind, due_at, tag, title, body, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (person_id, kind, due_at) DO UPDATE SET state = 'due',"
                " rule = excluded.rule, tag = excluded.tag, title = excluded.title,"
                " body = excluded.body, retry_at = NULL, closed_at = NULL"
                f" WHERE reminders.state IN {CLOSED} AND reminders.closed_rev"
                " < (SELECT plan_rev FROM people WHERE id = excluded.person_id)",
                [(p, r, k, ts(d), tag, t, b, ts(now)) for p, r, k, d, tag, t, b in rows],
            )

    async def waiting(self) -> list[Reminder]:
        rows = await self._all(
            f"SELECT {_REMINDER_COLUMNS} FROM reminders WHERE state IN ('due', 'failed')"
            " ORDER BY due_at, id"
        )
        return [_reminder(r) for r in rows]

    async def waiting_count(self) -> int:
        (count,) = await self._one(
            "SELECT count(*) FROM reminders WHERE state IN ('due', 'failed')"
        )
        return count

    async def recover_sending(self) -> int:
        """After a crash, nudges caught mid-delivery wait again (never dropped)."""
        async with self.transaction():
            cursor = await self.db.execute(
                "UPDATE reminders SET state = 'due' WHERE state = 'sending'"
            )
            return cursor.rowcount

    async def mark_sending(self, ids: Sequence[int]) -> set[int]:
        """Take nudges for delivery; returns those still waiting (not closed meanwhile)."""
        taken: set[int] = set()
        async with self.transaction():
            for chunk in _chunks(list(ids)):
                rows = await self._all(
                    "UPDATE reminders SET state = 'sending', attempts = attempts + 1"
                    f" WHERE id IN ({_marks(chunk)}) AND state IN ('due', 'failed') RETURNING id",
                    chunk,
                )
                taken |= {i for (i,) in rows}
        return taken

    async def rewrite_messages(self, rows: Sequence[tuple[str, str, int]]) -> None:
        """Keep the text a nudge goes out with: (title, body, reminder id)."""
        if rows:
            async with self.transaction():
                await self.db.executemany(
                    "UPDATE reminders SET title = ?, body = ? WHERE id = ?", rows
                )

    async def mark_channel(self, ids: Sequence[int], channel: str, now: datetime) -> None:
        """One channel has these nudges: recorded at once, so a crash never resends to it."""
        async with self.transaction():
            await self._all_in(
                "UPDATE reminders SET delivered = json_insert(delivered, '$[#]', ?),"
                " sent_at = coalesce(sent_at, ?) WHERE NOT EXISTS"
                " (SELECT 1 FROM json_each(reminders.delivered) WHERE value = ?) AND id IN ({})",
                ids,
                (channel, ts(now), channel),
            )

    async def mark_delivered(
        self, outcomes: Sequence[tuple[int, list[str], str, datetime | None]], now: datetime
    ) -> None:
        """Record each reminder's delivery: (id, channels that have it, error, retry_at).

        No error means sent. A failure keeps the channels that did get it, so a
        retry sends only to the others; a nudge that reached any channel has
        gone out (`sent_at`), for renotify and the daily cap alike.
        """
        async with self.transaction():
            await self.db.executemany(
                "UPDATE reminders SET delivered = ?, last_error = ?, retry_at = ?,"
                " state = CASE WHEN ? = '' THEN 'sent' ELSE 'failed' END,"
                " sent_at = CASE WHEN ? THEN coalesce(sent_at, ?) ELSE sent_at END WHERE id = ?",
                [
                    (json.dumps(chans), error, ts(retry), error, bool(chans), ts(now), rid)
                    for rid, chans, error, retry in outcomes
                ],
            )

    async def retry_now(self) -> None:
        """Failed deliveries may go at once (the channels were just changed)."""
        async with self.transaction():
            await self.db.execute("UPDATE reminders SET retry_at = NULL WHERE state = 'failed'")

    async def sent_since(self, since: datetime) -> int:
        (count,) = await self._one(
            "SELECT count(*) FROM reminders WHERE sent_at >= ?", (ts(since),)
        )
        return count

    async def failing(self) -> list[Reminder]:
        rows = await self._all(
            f"SELECT {_REMINDER_COLUMNS} FROM reminders WHERE state = 'failed' ORDER BY due_at"
        )
        return [_reminder(r) for r in rows]

    async def reminders_of(self, person: int) -> list[Reminder]:
        rows = await self._all(
            f"SELECT {_REMINDER_COLUMNS} FROM reminders WHERE person_id = ? ORDER BY due_at DESC",
            (person,),
        )
        return [_reminder(r) for r in rows]

    # -- what the user does -------------------------------------------------------

    async def act(
        self,
        person: int,
        action: str,
        now: datetime,
        contact: Interaction | None = None,
        **changes: Any,
    ) -> None:
        """Apply a user's action (done, snooze, skip, pause, resume) to a person.

        `changes` are person columns to set; `contact` an interaction the action
        records (done: you reached out), under the `cli` source. Open and
        delivered nudges are closed with the action's name, so the lifecycle
        stays visible. All in one transaction.
        """
        allowed = {"paused", "paused_until", "snoozed_until", "skipped_at"}
        assert set(changes) <= allowed, changes
        closed = {"done": "done", "snooze": "snoozed", "skip": "skipped", "pause": "paused"}
        async with self.transaction():
            if changes:
                columns = ", ".join(f"{c} = ?" for c in changes)
                values = [ts(v) if isinstance(v, datetime) else v for v in changes.values()]
                await self.db.execute(
                    f"UPDATE people SET {columns} WHERE id = ?", (*values, person)
                )
            if action in closed:
                await self.db.execute(
                    "UPDATE reminders SET state = ?, closed_at = ? WHERE person_id = ?"
                    " AND state IN ('due', 'failed', 'sent')",
                    (closed[action], ts(now), person),
                )
            if contact is not None:  # after closing: the nudge is done, not superseded
                await self._record(CLI_SOURCE, [contact])

    # -- reading, for the CLI -----------------------------------------------------

    async def people(self, due_before: datetime | None = None) -> list[PersonRow]:
        sql = f"SELECT {_PERSON_COLUMNS} FROM people WHERE active = 1"
        params: tuple[Any, ...] = ()
        if due_before is not None:
            sql += " AND next_due <= ? AND kind IS NOT NULL ORDER BY next_due"
            params = (ts(due_before),)
        else:
            sql += " ORDER BY name COLLATE NOCASE"
        return [_person_row(r) for r in await self._all(sql, params)]

    async def person(self, person: int) -> PersonRow:
        row = await self._one(f"SELECT {_PERSON_COLUMNS} FROM people WHERE id = ?", (person,))
        return _person_row(row)

    async def find_people(self, text: str) -> list[PersonRow]:
        """People named by a part of their name, or by an email address."""
        text = text.strip()
        if "@" in text:
            sql = (
                f"SELECT {_PERSON_COLUMNS} FROM people WHERE active = 1 AND id IN"
                " (SELECT person_id FROM identifiers WHERE kind = 'email' AND value = ?)"
            )
            return [_person_row(r) for r in await self._all(sql, (text.lower(),))]
        rows = [_person_row(r) for r in await self._all(
            f"SELECT {_PERSON_COLUMNS} FROM people WHERE active = 1"
        )]  # fmt: skip
        folded = text.casefold()
        exact = [p for p in rows if folded in (p.name.casefold(), p.preferred.casefold())]
        return exact or [
            p for p in rows if folded in p.name.casefold() or folded in p.preferred.casefold()
        ]

    async def cards_of(self, person: int) -> list[tuple[str, str, dict[str, Any]]]:
        rows = await self._all(
            "SELECT source, uid, data FROM cards WHERE person_id = ? ORDER BY source, uid",
            (person,),
        )
        return [(s, u, json.loads(d)) for s, u, d in rows]

    async def key_dates_of(self, person: int) -> list[dict[str, str]]:
        """A person's birthdays and anniversaries and where each comes from ("card" or a
        source), the one in effect first for each kind."""
        row = await self._one("SELECT birthday, anniversary FROM people WHERE id = ?", (person,))
        found = [
            {"kind": kind, "day": day, "source": "card"}
            for kind, day in zip(("birthday", "anniversary"), row or ("", ""), strict=True)
            if day
        ]
        rows = await self._all(
            "SELECT kind, day, source FROM dates WHERE person_id = ?"
            " ORDER BY length(day) DESC, day, source",
            (person,),
        )
        found += [{"kind": kind, "day": day, "source": source} for kind, day, source in rows]
        return sorted(found, key=lambda d: d["kind"] != "birthday")  # stable: the order holds

    async def identifiers_of(self, person: int) -> list[tuple[str, str]]:
        return await self._all(
            "SELECT kind, value FROM identifiers WHERE person_id = ? ORDER BY kind, value",
            (person,),
        )

    async def timeline(self, person: int) -> list[dict[str, Any]]:
        """A person's interactions, newest first."""
        rows = await self._all(
            "SELECT at, direction, channel, note, source, external_id, message_id, replies_to"
            " FROM interactions WHERE person_id = ? ORDER BY at DESC",
            (person,),
        )
        keys = ("at", "direction", "channel", "note", "source", "external_id", "message_id")
        return [
            {**dict(zip(keys, r[:7], strict=True)), "replies_to": json.loads(r[7])} for r in rows
        ]

    async def unknown_correspondents(self, limit: int) -> list[dict[str, Any]]:
        """Addresses in your mail that no address book knows, most in touch first."""
        rows = await self._all(
            "SELECT lower(trim(who)) AS address, sum(direction = 'out'), sum(direction = 'in'),"
            " max(at) FROM interactions WHERE person_id IS NULL AND who LIKE '%@%'"
            " GROUP BY address ORDER BY count(*) DESC, max(at) DESC LIMIT ?",
            (limit,),
        )
        keys = ("address", "written_to", "heard_from", "last")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    async def dump(self) -> dict[str, list[dict[str, Any]]]:
        """Every table, as rows of dicts: the backup `export --json` writes."""
        result = {}
        for table in (
            "people",
            "identifiers",
            "cards",
            "interactions",
            "reminders",
            "cursors",
            "sources",
        ):
            async with self.db.execute(f"SELECT * FROM {table}") as cursor:
                names = [d[0] for d in cursor.description]
                result[table] = [dict(zip(names, r, strict=True)) for r in await cursor.fetchall()]
        return result

    # -- sources' health and daemon facts ------------------------------------------

    async def set_source_health(
        self, name: str, plugin: str, state: str, error: str, since: datetime,
        retry_at: datetime | None, restarts: int,
    ) -> None:  # fmt: skip
        async with self.transaction():
            await self.db.execute(
                "INSERT INTO sources (name, plugin, state, error, since, retry_at, restarts)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                " plugin = excluded.plugin, state = excluded.state, error = excluded.error,"
                " since = excluded.since, retry_at = excluded.retry_at,"
                " restarts = excluded.restarts",
                (name, plugin, state, error, ts(since), ts(retry_at), restarts),
            )

    async def drop_sources(self, keep: Iterable[str]) -> set[int]:
        """Forget what sources no longer configured said: cards, history, dates, cursor.

        What the user logged by hand (the `cli` source) is never dropped.
        Returns the people touched.
        """
        keep = [*keep, CLI_SOURCE]
        not_kept = f"source NOT IN ({_marks(keep)})"
        async with self.transaction():
            rows = await self._all(
                f"SELECT person_id FROM cards WHERE {not_kept} UNION"
                f" SELECT person_id FROM interactions WHERE {not_kept} AND person_id IS NOT NULL"
                f" UNION SELECT person_id FROM dates WHERE {not_kept} AND person_id IS NOT NULL",
                keep * 3,
            )
            touched = {p for (p,) in rows}
            for table in ("cards", "interactions", "dates", "cursors"):
                await self.db.execute(f"DELETE FROM {table} WHERE {not_kept}", keep)
            await self.db.execute(f"DELETE FROM sources WHERE name NOT IN ({_marks(keep)})", keep)
            await self._refresh_people(touched)
        return touched

    async def set_source_progress(self, name: str, progress: str) -> None:
        async with self.transaction():
            await self.db.execute(
                "UPDATE sources SET progress = ? WHERE name = ?", (progress, name)
            )

    async def source_health(self) -> list[dict[str, Any]]:
        async with self.db.execute("SELECT * FROM sources ORDER BY name") as cursor:
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, r, strict=True)) for r in await cursor.fetchall()]

    async def set_meta(self, key: str, value: Any) -> None:
        async with self.transaction():
            if value is None:
                await self.db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                await self.db.execute(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value))
                )

    async def meta(self, key: str) -> Any:
        row = await self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(row[0]) if row else None


def _pulse(row: Sequence[Any] | None, first_seen: datetime) -> Pulse:
    if row is None:
        return Pulse(first_seen)
    first, last_two_way, *counts = row
    known = min(first_seen, dt(first) or first_seen)
    return Pulse(known, dt(last_two_way), *(int(c or 0) for c in counts))


def _key_date(kind: str) -> str:
    """SQL for a person's birthday or anniversary: their card's, else one a source
    such as a birthday calendar knows (one with the year first)."""
    return (
        f"coalesce(nullif(p.{kind}, ''), (SELECT day FROM dates d WHERE d.person_id = p.id"
        f" AND d.kind = '{kind}' ORDER BY length(d.day) DESC, d.day LIMIT 1), '')"
    )


def _due(plan: Plan) -> datetime:
    assert plan.due_at is not None
    return plan.due_at


def _card_data(card: Card) -> dict[str, Any]:
    data = {k: getattr(card, k) for k in Card.__slots__ if k != "uid" and getattr(card, k)}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def _by_name(people: Sequence[tuple[int, str, str]], text: str, exact: bool = False) -> int | None:
    """The one person a name means: the one with exactly that name, else the one whose
    nickname (or given name) it is, else (unless `exact`) the one whose name holds it.

    `people` holds (id, name, nickname or given name), case-folded.
    """
    folded = text.casefold()
    for column in (1, 2):
        same = [p[0] for p in people if p[column] == folded]
        if same:
            return same[0] if len(same) == 1 else None
    if exact:
        return None
    partial = [i for i, name, _ in people if folded in name]
    return partial[0] if len(partial) == 1 else None
