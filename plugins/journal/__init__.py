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
            if entry is None:
                raise ValueError("not a list of fields (date, person, direction…)")
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


def _entries(path: Path) -> list[tuple[str, dict[str, Any] | None]]:
    """The entries, each with where it is written; None for one that is not a mapping
    of plain values."""
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".csv":
        rows = csv.DictReader(text.splitlines())
        return [(f"line {rows.line_num}", dict(row)) for row in rows]
    return _yaml_entries(text)


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when PyYAML has it
_STR = "tag:yaml.org,2002:str"


def _yaml_entries(text: str) -> list[tuple[str, dict[str, Any] | None]]:
    """A YAML list of flat entries, read from the parser's events.

    `yaml.load` builds the whole node tree first: on a journal of 40 000 entries
    that took 3.4 s and left the heap 150 MB larger. Events are dropped as they
    are read (1.2 s, 50 MB), and each value still means what YAML says (a date,
    a number, null), resolved and constructed by PyYAML itself.
    """
    resolver, constructor = yaml.resolver.Resolver(), yaml.constructor.SafeConstructor()

    def value(event: yaml.ScalarEvent) -> Any:
        tag = resolver.resolve(yaml.ScalarNode, event.value, event.implicit)
        if event.tag and event.tag != "!":
            tag = event.tag
        if tag == _STR:
            return event.value
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        return constructor.construct_object(node)

    found: list[tuple[str, dict[str, Any] | None]] = []
    depth, documents = 0, 0
    entry: dict[str, Any] | None = None
    key: str | None = None
    for event in yaml.parse(text, Loader=_LOADER):
        kind = type(event)
        if kind is yaml.DocumentStartEvent:
            documents += 1
            if documents > 1:
                raise ValueError("expected one document, found another")
        elif kind in (yaml.SequenceStartEvent, yaml.MappingStartEvent):
            depth += 1
            if depth == 1 and kind is yaml.MappingStartEvent:
                raise ValueError("expected a list of entries")
            if depth == 2:
                where = f"entry {len(found) + 1} (line {event.start_mark.line + 1})"
                found.append((where, {} if kind is yaml.MappingStartEvent else None))
                entry, key = found[-1][1], None
            elif depth > 2 and found:
                found[-1] = (found[-1][0], None)  # a nested list or mapping: not an entry
                entry = None
        elif kind in (yaml.SequenceEndEvent, yaml.MappingEndEvent):
            depth -= 1
        elif kind is yaml.ScalarEvent or kind is yaml.AliasEvent:
            if depth == 0 and kind is yaml.ScalarEvent and event.value.strip():
                raise ValueError("expected a list of entries")
            if depth == 1:  # an item that is a lone value
                where = f"entry {len(found) + 1} (line {event.start_mark.line + 1})"
                found.append((where, None))
            elif depth == 2 and entry is not None:
                if kind is yaml.AliasEvent:
                    found[-1], entry = (found[-1][0], None), None
                elif key is None:
                    key = event.value
                else:
                    entry[key], key = value(event), None
    return found


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
