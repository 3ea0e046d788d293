"""An address book of vCard files: a vdir folder of .vcf files, or one .vcf with many cards.

The cursor remembers each file's size, modification time and card UIDs, so
a restart reads only what changed while nurtured was down, and a change
while it runs costs the changed files, not the whole book.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

from nurtured.model import Card
from nurtured.plugins import Sink, watch

from .reader import read_cards

SUFFIXES = (".vcf", ".vcard")
BATCH = 5000  # files per transaction on a cold import


async def run(options: dict[str, Any], sink: Sink) -> None:
    root: Path = options["path"]
    folder = root if root.is_dir() or not root.suffix else root.parent
    cursor = await sink.cursor()
    present = _files(root)
    gone = [key for key in cursor if key not in present]
    await _sync(root, sorted(present.keys() | set(gone)), cursor, sink)
    sink.ready()
    async for paths in watch(folder, recursive=root.is_dir()):
        keys = {_key(root, p) for p in paths if p.suffix.lower() in SUFFIXES}
        keys = {k for k in keys if k is not None}
        if keys:
            await _sync(root, sorted(keys), cursor, sink)


def _files(root: Path) -> dict[str, Path]:
    if root.is_file():
        return {root.name: root}
    if not root.is_dir():
        return {}
    return {
        str(p.relative_to(root)): p
        for p in root.rglob("*")
        if p.suffix.lower() in SUFFIXES and not p.name.startswith(".") and p.is_file()
    }


def _key(root: Path, path: Path) -> str | None:
    if root.is_dir() or not root.suffix:
        try:
            return str(path.relative_to(root))
        except ValueError:
            return None
    return root.name if path == root else None


def _stat(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_size]


async def _sync(root: Path, keys: list[str], cursor: dict[str, Any], sink: Sink) -> None:
    """Bring the cards of these files (relative keys) up to date; `cursor` is updated."""
    base = root if root.is_dir() or not root.suffix else root.parent
    changed = []
    for key in keys:
        stamp = _stat(base / key)
        if stamp is None or stamp != cursor.get(key, {}).get("stamp"):
            changed.append((key, stamp))
    for start in range(0, len(changed), BATCH):
        batch = changed[start : start + BATCH]
        parsed = await asyncio.to_thread(_parse, base, batch, sink)
        stale = [
            uid
            for key, _, cards in parsed
            for uid in set(cursor.get(key, {}).get("uids", ())) - {c.uid for c in cards}
        ]
        if stale:
            await sink.remove_cards(stale)
        entries = {
            key: ({"stamp": stamp, "uids": [c.uid for c in cards]} if stamp else None)
            for key, stamp, cards in parsed
        }
        await sink.upsert_cards([c for _, _, cards in parsed for c in cards], cursor=entries)
        for key, entry in entries.items():
            if entry is None:
                cursor.pop(key, None)
            else:
                cursor[key] = entry
    if changed:
        sink.log.info("read %d changed file(s) under %s", len(changed), root)


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
            cards = [_with_uid(card, key, i) for i, card in enumerate(found)]
        result.append((key, stamp, cards))
    return result


def _with_uid(card: Card, key: str, index: int) -> Card:
    """A card without a UID is known by its file and position."""
    return card if card.uid else replace(card, uid=f"{key}#{index}")
