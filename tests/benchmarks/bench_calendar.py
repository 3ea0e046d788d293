"""Benchmark: meetings from a large calendar, through the ics and caldav plugins.

    .venv/bin/python tests/benchmarks/bench_calendar.py --single 20000 --series 200 --years 10
    .venv/bin/python tests/benchmarks/bench_calendar.py --quick

Generates a calendar spanning `--years` years (ending 180 days ahead): single
events and weekly series (RRULE FREQ=WEEKLY, half with UNTIL, half
open-ended), one event per .ics file. Half have ORGANIZER/ATTENDEE lines with
addresses from an address book of 2 000 people (stored as cards first, so
meetings resolve to people), the other half are personal (no attendees, some
titled "Lunch with <Name>").

Each case runs in its own child process (this script with `--child`), on a
fresh Store, with the plugin's `run()` in-process as the daemon runs it:

- ics: the vdir folder; cold import (run() until `sink.ready()`), the
  interactions stored, then one event file rewritten (temp file + rename,
  start moved by a day) until its new interaction is in SQLite (read-only
  connection polled every 10 ms), median of 5;
- caldav: a real Radicale on 127.0.0.1 (as tests/radicale_server.py starts
  it), the events written straight into its collection folder and its item
  cache warmed by one PROPFIND before the clock starts; cold import; then one
  event changed by PUT with the source polling every 1 s, the total time from
  the PUT to the new interaction in SQLite (includes up to 1 s of poll wait and
  the server's own sync report), and the time from the sync report that names
  the change ("seen") to the interaction in SQLite.

Peak RSS is the child's `getrusage` ru_maxrss (the 2 000 cards included).
Timing never fails the script: it exits 0 when it ran. Temp dirs are removed
(unless --keep) and the server is stopped, also on error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import start_source

from nurtured.model import Card
from nurtured.store import Store

ME = ("me@home.example",)
PEOPLE = 2000
COLD_TARGET = 15.0  # seconds
RSS_TARGET = 200  # MB
CHANGE_TARGET = 1.0  # seconds after the change is seen
CHANGE_TIMEOUT = 30.0  # give up on one change after this
ROUNDS = 5
CHANGED = "single-0"  # the event that is moved
FIRST = (
    "Ana Bo Carla Dario Eva Filipe Greta Hugo Ines Joao Karin Luis Marta Nuno Olga Pedro"
    " Quinn Rita Sara Tiago Ursula Vasco Wanda Xavier Yara Zeca Alma Bruno Clara Diogo"
    " Elsa Fabio Gil Helena Igor Julia Kai Lara Mario Nadia Otto Paula Raul Sofia Tomas"
    " Uma Vera Walter Yolanda Zoe"
).split()
LAST = (
    "Lima Berg Costa Dias Evans Faria Gomes Horta Iglesias Jensen Klein Lopes Moreira"
    " Novak Oliveira Pinto Quental Ramos Silva Teixeira Uchoa Vaz Weber Xu Young Zimmer"
    " Abreu Brito Cunha Duarte Esteves Franco Garcia Henriques Ibsen Jardim Keller Leite"
    " Martins Nunes"
).split()
MEETINGS = "Planning Review Sync Workshop Retro Demo Kickoff Standup Interview Budget".split()
PERSONAL = "Dentist Gym Haircut Yoga Groceries Laundry Piano Run Doctor Taxes".split()


def name(i: int) -> str:
    return f"{FIRST[i % len(FIRST)]} {LAST[i // len(FIRST) % len(LAST)]}"


def email(i: int) -> str:
    return f"person{i}@example{i % 7}.org"


def stamp(at: datetime) -> str:
    return at.strftime("%Y%m%dT%H%M%SZ")


def event(uid: str, start: datetime, summary: str, people: list[int], rrule: str = "") -> str:
    """One VCALENDAR with one VEVENT (CRLF, as servers write them)."""
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//nurtured//bench//EN",
        "BEGIN:VEVENT",
        f"UID:{uid}@bench.example",
        "DTSTAMP:20260101T000000Z",
        f"DTSTART:{stamp(start)}",
        f"DTEND:{stamp(start + timedelta(hours=1))}",
        f"SUMMARY:{summary}",
    ]
    if rrule:
        lines.append(f"RRULE:{rrule}")
    if people:
        lines.append("ORGANIZER;CN=Me:mailto:me@home.example")
        lines.append("ATTENDEE;CN=Me;PARTSTAT=ACCEPTED:mailto:me@home.example")
        lines += [
            f"ATTENDEE;CN={name(k)};PARTSTAT=ACCEPTED;ROLE=REQ-PARTICIPANT:mailto:{email(k)}"
            for k in people
        ]
    lines += ["END:VEVENT", "END:VCALENDAR", ""]
    return "\r\n".join(lines)


def changed_start(now: datetime, shift: int) -> datetime:
    """When the moved event starts: 30 days ago plus `shift` days, at 10:00 UTC."""
    return (now - timedelta(days=30 - shift)).replace(hour=10, minute=0, second=0, microsecond=0)


def changed_event(now: datetime, shift: int) -> str:
    return event(CHANGED, changed_start(now, shift), "Planning", [1])


def generate(folder: Path, single: int, series: int, years: int, seed: int, now: datetime) -> int:
    """Write the vdir; returns its size in bytes."""
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    end = now + timedelta(days=180)
    span = int(years * 365.25 * 86400)
    first = end - timedelta(seconds=span)
    size = 0

    def when() -> datetime:
        at = first + timedelta(seconds=rng.randrange(span))
        return at.replace(minute=rng.choice((0, 30)), second=0, microsecond=0)

    def people() -> list[int]:
        count = rng.choice((1, 1, 1, 2, 2, 3, 4, 12))  # 12: over max_attendees
        return rng.sample(range(PEOPLE * 2), count)  # half of them in the address book

    def summary(with_people: bool) -> str:
        if with_people:
            return f"{rng.choice(MEETINGS)} {rng.randrange(1000)}"
        if rng.random() < 0.4:
            return f"Lunch with {name(rng.randrange(PEOPLE))}"
        return rng.choice(PERSONAL)

    for i in range(single):
        key = f"single-{i}"
        if key == CHANGED:
            text = changed_event(now, 0)
        else:
            attended = i % 2 == 0
            text = event(key, when(), summary(attended), people() if attended else [])
        size += (folder / f"{key}.ics").write_text(text, "utf-8", newline="")
    for i in range(series):
        key = f"series-{i}"
        start = when()
        rule = "FREQ=WEEKLY"
        if i % 2 == 0:
            rule += f";UNTIL={stamp(start + timedelta(weeks=rng.randrange(20, 200)))}"
        attended = i % 4 < 2
        text = event(key, start, summary(attended), people() if attended else [], rule)
        size += (folder / f"{key}.ics").write_text(text, "utf-8", newline="")
    return size


# -- in the child: one case --------------------------------------------------------------


async def child(domain: str, state: Path, options: dict[str, Any], target: str) -> dict[str, Any]:
    store = await Store.open(state)
    cards = [Card(uid=f"p{i}", name=name(i), emails=(email(i),)) for i in range(PEOPLE)]
    await store.upsert_cards("book", cards, {})
    seen = watch_sync() if domain == "caldav" else []
    start = time.perf_counter()
    task, ready = start_source(store, domain, options, ME)
    result: dict[str, Any] = {}
    db = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True)
    try:
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({waiter, task}, timeout=3600, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            waiter.cancel()
            task.result()
        result["cold"] = time.perf_counter() - start
        result["stored"] = db.execute("SELECT count(*) FROM interactions").fetchone()[0]
        result["people"] = db.execute(
            "SELECT count(DISTINCT person_id) FROM interactions WHERE person_id IS NOT NULL"
        ).fetchone()[0]
        await asyncio.sleep(0.5)  # the watcher is up
        now = datetime.now(UTC)
        times: list[float | None] = []
        after_seen: list[float] = []
        for shift in range(1, ROUNDS + 1):
            # Row ids are reused after a delete: look for the new start in the id instead.
            moved = f"{CHANGED}@bench.example|{changed_start(now, shift).date().isoformat()}T%"
            text = changed_event(now, shift)
            started = time.perf_counter()
            if domain == "ics":
                path = Path(target)
                tmp = path.parent / f".{path.name}.tmp"
                tmp.write_text(text, "utf-8", newline="")
                os.replace(tmp, path)
            else:
                await asyncio.to_thread(put, target, text)
            while not db.execute(
                "SELECT 1 FROM interactions WHERE external_id LIKE ?", (moved,)
            ).fetchone():
                if time.perf_counter() - started > CHANGE_TIMEOUT or task.done():
                    break
                await asyncio.sleep(0.01)
            else:
                stored = time.perf_counter()
                times.append(stored - started)
                after_seen += [stored - t for t in seen if started <= t <= stored][:1]
                continue
            times.append(None)
        result["changes"] = times
        result["after_seen"] = after_seen
    finally:
        db.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()
    result["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def watch_sync() -> list[float]:
    """When the caldav source's sync reports asked the server returned with the
    changed event in them: a changed event is "seen" then."""
    from nurtured_plugins.caldav import webdav

    seen: list[float] = []
    client = webdav.Client
    sync = client.sync

    async def timed(self: Any, href: str, token: str) -> Any:
        changes = await sync(self, href, token)
        if any(h.endswith(f"/{CHANGED}.ics") for h in changes.changed):
            seen.append(time.perf_counter())
        return changes

    client.sync = timed
    return seen


def put(url: str, text: str) -> None:
    import httpx

    with httpx.Client(auth=("alice", "secret"), timeout=30) as client:
        r = client.put(url, content=text.encode(), headers={"Content-Type": "text/calendar"})
        r.raise_for_status()


def run_child(args: list[str]) -> dict[str, Any] | str:
    """This script with --child in a fresh process: its result, or why it failed."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line.removeprefix("RESULT "))
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    return f"child exited {proc.returncode}: " + " | ".join(tail)


# -- the table ---------------------------------------------------------------------------


def verdict(value: float, target: float) -> str:
    return "ok" if value < target else "MISS"


def report(label: str, result: dict[str, Any] | str, change_note: str) -> list[tuple[str, ...]]:
    if isinstance(result, str):
        return [(f"{label}", "FAILED", result)]
    rows = [
        (f"{label} cold import", f"{result['cold']:.2f} s", f"< {COLD_TARGET:.0f} s", ""),
        (
            f"{label} interactions stored",
            f"{result['stored']}",
            "",
            f"{result['people']} people",
        ),
        (f"{label} peak RSS", f"{result['rss']:.0f} MB", f"< {RSS_TARGET} MB", ""),
    ]
    rows[0] = (*rows[0][:3], verdict(result["cold"], COLD_TARGET))
    rows[2] = (*rows[2][:3], verdict(result["rss"], RSS_TARGET))
    done = [t for t in result["changes"] if t is not None]
    missed = len(result["changes"]) - len(done)
    if done:
        median = statistics.median(done)
        figure = f"{median * 1000:.0f} ms"
        note = f"median of {len(done)}" + (f", {missed} timed out" if missed else "")
        ok = verdict(median, CHANGE_TARGET) if label == "ics" else ""
        rows.append((f"{label} changed event", figure, f"< {CHANGE_TARGET:.0f} s", ok))
        rows.append(("", "", "", f"{note}{change_note}"))
        if result.get("after_seen"):
            seen = statistics.median(result["after_seen"])
            rows.append((f"{label} changed event, seen → stored", f"{seen * 1000:.0f} ms",
                         f"< {CHANGE_TARGET:.0f} s", verdict(seen, CHANGE_TARGET)))  # fmt: skip
            rows.append(("", "", "", "from the sync report naming it to the interaction in SQLite"))
    else:
        rows.append((f"{label} changed event", "timeout", f"< {CHANGE_TARGET:.0f} s", "MISS"))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--single", type=int, default=20000)
    parser.add_argument("--series", type=int, default=200)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="2000 single, 20 series, 3 years")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--skip-caldav", action="store_true")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.child:
        domain, state, options, target = args.child
        opts = json.loads(options)
        if "poll" in opts:
            opts["poll"] = timedelta(seconds=opts["poll"])
        result = asyncio.run(child(domain, Path(state), opts, target))
        print("RESULT " + json.dumps(result), flush=True)
        return 0
    if args.quick:
        args.single, args.series, args.years = 2000, 20, 3
    args.single = max(args.single, 1)
    from radicale_server import Radicale

    root = Path(tempfile.mkdtemp(prefix="nurtured-bench-calendar-"))
    server: Radicale | None = None
    rows: list[tuple[str, ...]] = []
    try:
        started = time.perf_counter()
        now = datetime.now(UTC)
        vdir = root / "calendar"
        size = generate(vdir, args.single, args.series, args.years, args.seed, now)
        print(
            f"generated {args.single} single events and {args.series} weekly series over"
            f" {args.years} years, {size / 2**20:.1f} MB, in {time.perf_counter() - started:.1f} s"
        )
        ics = run_child(
            ["ics", str(root / "state-ics"), json.dumps({"path": str(vdir)}),
             str(vdir / f"{CHANGED}.ics")]
        )  # fmt: skip
        rows += report("ics", ics, "; file rewrite until the interaction is in SQLite")
        if not args.skip_caldav:
            server = Radicale(root / "radicale").start()
            folder = server.file(CHANGED).parent
            for item in vdir.iterdir():
                shutil.copyfile(item, folder / item.name)
            # Warm Radicale's item cache: a running server has it already.
            started = time.perf_counter()
            with server.client() as client:
                client.request(
                    "PROPFIND", server.calendar_url(), headers={"Depth": "1"}, timeout=600
                )
            warm = time.perf_counter() - started
            print(f"radicale: {args.single + args.series} items, cache warmed in {warm:.1f} s")
            options = {"url": server.url, "username": "alice", "password": "secret", "poll": 1}
            caldav = run_child(
                ["caldav", str(root / "state-caldav"), json.dumps(options),
                 f"{server.calendar_url()}{CHANGED}.ics"]
            )  # fmt: skip
            rows += report("caldav", caldav, "; PUT until in SQLite, incl. up to 1 s poll wait")
    finally:
        if server is not None:
            server.stop()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    header = ("case", "figure", "target", "")
    widths = [max(len(r[i]) if i < len(r) else 0 for r in [header, *rows]) for i in range(3)]
    print()
    for row in [header, *rows]:
        cells = [row[i].ljust(widths[i]) if i < len(row) else "" for i in range(3)]
        print("  ".join(cells + list(row[3:])).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
