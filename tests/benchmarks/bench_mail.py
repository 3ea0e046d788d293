"""Benchmark: reading local mail (Maildir or mbox) into a real store.

    .venv/bin/python tests/benchmarks/bench_mail.py --messages 100000 [--format mbox]

Writes a generated mailbox of N messages in a temp dir: sent and received
mail, replies threaded to earlier outreach, mailing-list and robot mail, mail
to many people, a few messages with a large attachment; headers as real mail
has them (Received, DKIM-Signature, MIME). As a Maildir tree (mbsync's
layout: INBOX, Sent, Archive, Lists, every file in cur/) or as one mbox file
per folder. An address book of 2 000 people is stored first, so interactions
resolve to people as they would for a user.

Then, in this process, the plugin's `run()` on a fresh Store until it calls
`sink.ready()` (the cold read), a second `run()` on the same state (a restart
with nothing new), and a new message dropped in (Maildir: tmp/ then new/;
mbox: appended) until its interaction is in SQLite, median of 5. Prints
messages/s and peak RSS (`getrusage` ru_maxrss: this process's high-water
mark; the mailbox is generated in a child process).

Each format in its own process (peak RSS is per process). Nothing here fails
a build; the temp dir is removed unless --keep.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from harness import start_source

from nurtured.model import Card
from nurtured.store import Store

ME = ("me@home.example",)
PEOPLE = 2000
FOLDERS = ("INBOX", "Sent", "Archive", "Lists")
TARGET = 5000  # messages/s from a Maildir (issue 4)
RSS_TARGET = 200  # MB
WORDS = "lunch slides talk budget trip photos party plan review call draft notes".split()


def person(i: int) -> str:
    return f"person{i}@example{i % 7}.org"


def header_block(rng: random.Random, i: int, now: datetime, sent_ids: list[str]) -> tuple[str, str]:
    """(folder, headers) for message i: a mix like a real mailbox's."""
    date = now - timedelta(seconds=rng.randrange(700 * 86400))
    message_id = f"<{i}.{rng.getrandbits(48):x}@{'home.example' if i % 3 else 'example.org'}>"
    subject = f"{rng.choice(WORDS)} {rng.choice(WORDS)} {i}"
    kind = rng.random()
    extra: list[str] = []
    if kind < 0.35:  # sent: to one to three people, sometimes to a crowd
        folder, sender = "Sent", "Me <me@home.example>"
        count = rng.choice((1, 1, 1, 2, 3, 12))
        to = ", ".join(f"P {k} <{person(k)}>" for k in rng.sample(range(PEOPLE * 2), count))
        sent_ids.append(message_id)
        received = ""
    else:
        k = rng.randrange(PEOPLE * 2)  # half of them in the address book
        sender = f'"Person, {k}" <{person(k)}>'
        to = "Me <me@home.example>"
        folder = "INBOX" if rng.random() < 0.6 else "Archive"
        received = (
            "Received: from mx.example.org (mx.example.org [192.0.2.1])\n"
            "\tby mx.home.example (Postfix) with ESMTPS id 4Zq1Y0Abcdz\n"
            f"\tfor <me@home.example>; {format_datetime(date + timedelta(seconds=3))}\n"
        )
        if kind < 0.75 and sent_ids:  # a reply to earlier outreach
            subject = f"Re: {subject}"
            parent = rng.choice(sent_ids)
            extra += [f"In-Reply-To: {parent}", f"References: {parent}"]
        elif kind < 0.92:
            folder = "Lists"
            extra += ["List-Id: <club.lists.example.org>", "Precedence: list"]
        else:
            sender = "Shop <noreply@shop.example>"
    head = (
        f"{received}"
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=s1;\n"
        "\th=from:to:subject:date:message-id; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\n"
        f"\tb={'A' * 340}\n"
        f"From: {sender}\nTo: {to}\nSubject: {subject}\nDate: {format_datetime(date)}\n"
        f"Message-ID: {message_id}\n"
        + "".join(f"{line}\n" for line in extra)
        + "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n"
    )
    return folder, head


def body(rng: random.Random) -> str:
    if rng.random() < 0.02:  # an attachment: reading headers only must not read this
        return ("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=" * 2 + "\n") * 3000
    return "Hello,\n\n" + " ".join(rng.choice(WORDS) for _ in range(rng.randrange(50, 400))) + "\n"


def generate(root: Path, n: int, layout: str, seed: int) -> tuple[Path, int]:
    """Write the mailbox; returns its path and size in bytes."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    sent_ids: list[str] = []
    mail = root / "Mail"
    files = {}
    if layout == "maildir":
        for folder in FOLDERS:
            for sub in ("cur", "new", "tmp"):
                (mail / folder / sub).mkdir(parents=True)
    else:
        mail.mkdir()
        files = {folder: (mail / folder).open("w", encoding="utf-8") for folder in FOLDERS}
    try:
        for i in range(n):
            folder, head = header_block(rng, i, now, sent_ids)
            if layout == "maildir":
                name = f"{int(now.timestamp()) - i}.M{i}P{os.getpid()}.bench,U={i}:2,S"
                (mail / folder / "cur" / name).write_text(f"{head}\n{body(rng)}", "utf-8")
            else:
                files[folder].write(f"From - Tue Mar 10 10:00:00 2026\n{head}\n{body(rng)}\n")
            if len(sent_ids) > 5000:
                del sent_ids[:2500]
    finally:
        for file in files.values():
            file.close()
    return mail, sum(f.stat().st_size for f in mail.rglob("*") if f.is_file())


async def read(state: Path, domain: str, path: Path) -> float:
    """The plugin's run() until it calls sink.ready(): seconds."""
    store = await Store.open(state)
    start = time.perf_counter()
    task, ready = start_source(store, domain, {"path": path}, ME)
    try:
        await asyncio.wait_for(ready.wait(), 3600)
        return time.perf_counter() - start
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()


async def reflected(state: Path, domain: str, path: Path, rounds: int) -> list[float]:
    """A new message until its interaction is stored, while the plugin runs: seconds."""
    store = await Store.open(state)
    task, ready = start_source(store, domain, {"path": path}, ME)
    times = []
    db = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True)  # as the CLI would look
    try:
        await asyncio.wait_for(ready.wait(), 3600)
        await asyncio.sleep(0.5)  # the watcher is up
        for i in range(rounds):
            message_id = f"<new-{i}-{time.time_ns()}@example0.org>"
            raw = (
                f"From: {person(0)}\nTo: me@home.example\nSubject: new {i}\n"
                f"Date: {format_datetime(datetime.now(UTC))}\nMessage-ID: {message_id}\n\nhi\n"
            )
            start = time.perf_counter()
            if domain == "maildir":
                name = f"{time.time_ns()}.new{i}.bench"
                (path / "INBOX" / "tmp" / name).write_text(raw)
                os.rename(path / "INBOX" / "tmp" / name, path / "INBOX" / "new" / name)
            else:
                with (path / "INBOX").open("a") as file:
                    file.write(f"From - Tue Mar 10 10:00:00 2026\n{raw}\n")
            while not db.execute(  # noqa: ASYNC110 - polled as another process would
                "SELECT 1 FROM interactions WHERE message_id = ?", (message_id,)
            ).fetchone():
                await asyncio.sleep(0.005)
            times.append(time.perf_counter() - start)
        return times
    finally:
        db.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()


async def book(state: Path) -> None:
    store = await Store.open(state)
    cards = [Card(uid=f"p{i}", name=f"Person {i}", emails=(person(i),)) for i in range(PEOPLE)]
    await store.upsert_cards("book", cards, {})
    await store.close()


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--format", choices=("maildir", "mbox"), default="maildir")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    root = Path(tempfile.mkdtemp(prefix="nurtured-bench-mail-"))
    try:
        started = time.perf_counter()
        # In a child process: the peak RSS printed below is the reading's alone.
        with ProcessPoolExecutor(1) as pool:
            job = pool.submit(generate, root, args.messages, args.format, args.seed)
            path, size = job.result()
        print(
            f"generated {args.messages} messages as {args.format}, {size / 2**20:.0f} MB,"
            f" in {time.perf_counter() - started:.1f} s"
        )
        asyncio.run(book(root / "state"))
        cold = asyncio.run(read(root / "state", args.format, path))
        rate = args.messages / cold
        verdict = "ok" if args.format != "maildir" or rate >= TARGET else "MISS"
        print(
            f"cold read:  {cold:7.2f} s  {rate:8.0f} messages/s"
            + (f"  (target >= {TARGET}: {verdict})" if args.format == "maildir" else "")
        )
        warm = asyncio.run(read(root / "state", args.format, path))
        print(f"restart:    {warm:7.2f} s  (nothing new)")
        times = asyncio.run(reflected(root / "state", args.format, path, 5))
        print(f"new message stored: median {statistics.median(times) * 1000:.0f} ms of 5")
        peak = rss_mb()
        verdict = "ok" if peak < RSS_TARGET else "MISS"
        print(f"peak RSS:   {peak:7.0f} MB  (target < {RSS_TARGET}: {verdict})")
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
