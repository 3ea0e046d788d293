"""An address book of vCard files: a vdir folder of .vcf files, or one .vcf with many cards.

The cursor remembers each file's size, modification time and card UIDs, so
a restart reads only what changed while nurtured was down, and a change
while it runs costs the changed files, not the whole book.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from nurtured.model import Card
from nurtured.plugins import FileSet, Sink, file_stamp, in_thread, merge_cursor, watch

from .reader import read_cards

SUFFIXES = (".vcf", ".vcard")
BATCH = 2000  # files per transaction on a cold import


def _wanted(name: str) -> bool:
    return name.lower().endswith(SUFFIXES)


async def run(options: dict[str, Any], sink: Sink) -> None:
    path: Path = options["path"]
    book = FileSet(path, await asyncio.to_thread(path.is_dir) or not _wanted(path.name), _wanted)
    cursor = await sink.cursor()
    # How many files hold each UID: a card copied into two files lives until both are gone.
    owners = Counter(uid for entry in cursor.values() for uid in entry.get("uids", ()))
    await _sync(book, None, cursor, owners, sink)
    sink.ready()
    async for paths in watch(book.folder, recursive=book.is_folder):
        keys = {k for p in paths if (k := book.key(p))}
        if keys:
            await _sync(book, keys, cursor, owners, sink)


def _changed(book: FileSet, keys: set[str] | None, cursor: dict[str, Any]) -> list[tuple[str, Any]]:
    """Files (all when `keys` is None) whose size or mtime differ from the cursor's."""
    if keys is None:
        stamps = book.stamps()
        keys = stamps.keys() | cursor.keys()
    else:
        stamps = {k: s for k in keys if (s := file_stamp(book.folder / k))}
    changed = []
    for key in sorted(keys):
        stamp = stamps.get(key)
        if stamp != cursor.get(key, {}).get("stamp"):
            changed.append((key, stamp))
    return changed


async def _sync(
    book: FileSet, keys: set[str] | None, cursor: dict[str, Any], owners: Counter[str], sink: Sink
) -> None:
    """Bring the cards of changed files up to date; `cursor` and `owners` follow.

    Listing, stat and parsing run in a thread: a big book must not block the event
    loop. The next batch is parsed while the current one is stored.
    """
    changed = await asyncio.to_thread(_changed, book, keys, cursor)
    batches = (
        _parse(book.folder, changed[i : i + BATCH], sink) for i in range(0, len(changed), BATCH)
    )
    async for parsed in in_thread(batches):
        before = {key: set(cursor.get(key, {}).get("uids", ())) for key, _, _ in parsed}
        for key, _, cards in parsed:
            owners.subtract(before[key])
            owners.update({c.uid for c in cards})
        stale = sorted({uid for uids in before.values() for uid in uids if owners[uid] <= 0})
        if stale:
            await sink.remove_cards(stale)
        entries = {
            key: ({"stamp": stamp, "uids": [c.uid for c in cards]} if stamp else None)
            for key, stamp, cards in parsed
        }
        await sink.upsert_cards([c for _, _, cards in parsed for c in cards], cursor=entries)
        merge_cursor(cursor, entries)
    if changed:
        sink.log.info("read %d changed file(s) under %s", len(changed), book.path)


def _parse(
    base: Path, batch: list[tuple[str, list[int] | None]], sink: Sink
) -> list[tuple[str, list[int] | None, list[Card]]]:
    """Read files (in a thread: parsing a big book must not block the event loop)."""
    result = []
    for key, stamp in batch:
        cards: list[Card] = []
        if stamp is not None:
            try:
                text = (base / key).read_bytes().decode("utf-8", errors="replace")
            except OSError as exc:
                sink.log.warning("%s: cannot read: %s", base / key, exc.strerror)
                continue
            found, warnings = read_cards(text, str(base / key))
            for warning in warnings:
                sink.log.warning("%s", warning)
            cards = _with_uids(found, key)
        result.append((key, stamp, cards))
    return result


def _with_uids(cards: list[Card], key: str) -> list[Card]:
    """A card without a UID (Google's exports) is known by its file and contents.

    Its name and addresses, not its position, so adding or removing another
    card in the same file does not make it a new card.
    """
    seen: dict[str, int] = {}
    result = []
    for card in cards:
        if not card.uid:
            what = "|".join((card.name, *card.emails, *card.phones))
            digest = hashlib.sha256(what.encode()).hexdigest()[:12]
            seen[digest] = seen.get(digest, 0) + 1
            suffix = f".{seen[digest]}" if seen[digest] > 1 else ""
            card = replace(card, uid=f"{key}#{digest}{suffix}")
        result.append(card)
    return result
