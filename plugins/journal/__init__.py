"""A hand-kept log of calls, coffees and messages, in YAML or CSV.

YAML: a list of entries; CSV: a header row with the same names.

    - date: 2026-03-14            # a date (midday) or a date-time, in your timezone
      person: Ana Lima            # a name, an email address or a phone number
      direction: met              # out (you reached out), in (they did), met (both)
      channel: call               # call, email, meeting, message, note
      note: her new job in Porto  # optional: something to pick up next time

The whole file is re-read when it changes; an entry removed from the file is
removed from the history. A broken entry is skipped with a warning naming
it; the others are read.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml

from nurtured.clock import parse_when
from nurtured.model import CHANNELS, Interaction
from nurtured.plugins import Sink, file_stamp, watch

DIRECTIONS = {"out": "out", "in": "in", "met": "mutual", "mutual": "mutual"}


async def run(options: dict[str, Any], sink: Sink) -> None:
    path: Path = options["path"]
    await _read(path, sink, unless_unchanged=True)
    sink.ready()
    async for paths in watch(path.parent, recursive=False):
        if path in paths:
            await _read(path, sink)


async def _read(path: Path, sink: Sink, unless_unchanged: bool = False) -> None:
    cursor = await sink.cursor()
    stamp = await asyncio.to_thread(file_stamp, path)
    if unless_unchanged and stamp is not None and stamp == cursor.get("stamp"):
        return  # read before, unchanged since: a restart costs nothing
    try:
        entries = await asyncio.to_thread(_entries, path)
    except FileNotFoundError:
        sink.log.warning("%s does not exist (yet): no entries", path)
        entries = []
    except (OSError, yaml.YAMLError, csv.Error, UnicodeDecodeError, ValueError) as exc:
        sink.log.warning("%s: %s; keeping what was read before", path, exc)
        return
    interactions, seen = [], Counter()
    for where, entry in entries:
        try:
            interaction = _interaction(entry, sink)
        except (KeyError, ValueError, TypeError) as exc:
            sink.log.warning("%s: %s: entry skipped: %s", path, where, exc)
            continue
        seen[interaction.external_id] += 1  # the same line twice is two interactions
        if (n := seen[interaction.external_id]) > 1:
            interaction = replace(interaction, external_id=f"{interaction.external_id}.{n}")
        interactions.append(interaction)
    ids = sorted(i.external_id for i in interactions)
    gone = sorted(set(cursor.get("ids", ())) - set(ids))
    await sink.record(interactions, gone=gone, cursor={"ids": ids, "stamp": stamp})


def _entries(path: Path) -> list[tuple[str, dict[str, Any]]]:
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".csv":
        rows = csv.DictReader(text.splitlines())
        return [(f"line {rows.line_num}", dict(row)) for row in rows]
    # libyaml's loader when PyYAML has it: several times faster on a long journal.
    data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or []
    if not isinstance(data, list):
        raise ValueError("expected a list of entries")
    return [
        (f"entry {i + 1}", item if isinstance(item, dict) else {}) for i, item in enumerate(data)
    ]


def _interaction(entry: dict[str, Any], sink: Sink) -> Interaction:
    unknown = set(entry) - {"date", "person", "direction", "channel", "note"}
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    when = entry["date"]
    if isinstance(when, datetime):
        when = when.isoformat()
    elif isinstance(when, date):
        when = when.isoformat()
    at = parse_when(str(when).strip(), sink.timezone, datetime.now(UTC))
    person = str(entry["person"]).strip()
    if not person:
        raise ValueError("no person")
    direction = DIRECTIONS.get(str(entry.get("direction") or "met").strip().lower())
    if direction is None:
        raise ValueError(f"direction must be out, in or met, not {entry.get('direction')!r}")
    channel = str(entry.get("channel") or "note").strip().lower()
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {', '.join(CHANNELS)}, not {channel!r}")
    note = str(entry.get("note") or "").strip()
    # The entry as written, not the time it means: a bare date of today means
    # "now" until midday, and the entry must keep its id as the day goes on.
    key = "|".join((str(when).strip(), person.casefold(), direction, channel, note))
    external_id = hashlib.sha256(key.encode()).hexdigest()[:20]
    return Interaction(external_id, person, at, direction, channel, note)
