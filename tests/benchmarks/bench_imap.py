"""Benchmark: reading mail from a real Dovecot on 127.0.0.1 through the imap plugin.

    .venv/bin/python tests/benchmarks/bench_imap.py --messages 100000

The mailbox is bench_mail.py's (sent and received mail, threads, lists,
robots, crowds, a few large attachments) in the folders INBOX, Sent, Archive
and Lists, written straight into Dovecot's Maildir (cur/, the arrival date
as the file's mtime): APPEND would take minutes for 100 000 messages. An
address book of 2 000 people is stored first, as bench_mail.py does.

Then, in this process, the plugin's `run()` (options from a config file, as
the daemon reads them) on a fresh Store until it calls `sink.ready()`:

- first read: right after seeding, so Dovecot also indexes the new files and
  caches their headers meanwhile, as after a server migration;
- second read, fresh store: Dovecot's indexes warm, as a user's server is; the
  plugin's own throughput;
- new mail with IDLE: with the plugin following the mailbox, one message
  APPENDed to INBOX until its interaction is in SQLite (a read-only
  connection polled every 5 ms, as the CLI would look), median of --rounds.

Peak RSS is `getrusage` ru_maxrss of this process (the seeding included: it
writes one message at a time); Dovecot's own memory is not counted. Needs
Dovecot (scripts/install-test-servers). Nothing here fails a build.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import re
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from bench_mail import FOLDERS, body, book, header_block, person  # noqa: E402
from imap_server import ImapServer, NoServer, dovecot  # noqa: E402

from nurtured import config, plugins  # noqa: E402
from nurtured.store import Store  # noqa: E402

TARGET = 2000  # messages/s from IMAP on loopback (issue 4)
NEW_MAIL_TARGET = 2.0  # seconds from arrival to the stored interaction, with IDLE
RSS_TARGET = 200  # MB
DATE = re.compile(r"^Date: (.+)$", re.M)


def seed(server: ImapServer, n: int, seed: int) -> int:
    """Write n messages into the Maildir; returns their size in bytes."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    sent_ids: list[str] = []
    size = 0
    for i in range(n):
        folder, head = header_block(rng, i, now, sent_ids)
        raw = f"{head}\n{body(rng)}".replace("\n", "\r\n").encode()
        arrived = parsedate_to_datetime(DATE.search(head)[1])  # type: ignore[index]
        server.deliver(folder, raw, arrived)
        size += len(raw)
        if len(sent_ids) > 5000:
            del sent_ids[:2500]
    return size


def write_config(root: Path, server: ImapServer) -> config.Config:
    (root / "secrets.yaml").write_text(f"imap: {server.password}\n")
    (root / "config.yaml").write_text(
        "me: [me@home.example]\n"
        "timezone: UTC\n"
        "state_dir: ./state\n"
        "sources:\n"
        f"  - {{plugin: imap, host: {server.host}, port: {server.port}, security: none,\n"
        f"     username: {server.username}, password: !secret imap,\n"
        f"     folders: [{', '.join(FOLDERS)}]}}\n"
    )
    return config.load(root / "config.yaml")


class Running:
    """The imap source running in this process on its own Store."""

    def __init__(self, state: Path, cfg: config.Config) -> None:
        self.state = state
        self.cfg = cfg

    async def __aenter__(self) -> Running:
        [source] = self.cfg.sources
        self.store = await Store.open(self.state)
        self.ready = asyncio.Event()
        sink = plugins.Sink(
            source.name, self.store, self.cfg.timezone, _ignore, self.ready.set, self.cfg.me
        )
        module = plugins.load(source.manifest)
        self.started = time.perf_counter()
        self.task = asyncio.create_task(module.run(source.options, sink))
        return self

    async def read(self) -> float:
        """Seconds from start until the source said it read everything."""
        ready = asyncio.create_task(self.ready.wait())
        await asyncio.wait({ready, self.task}, timeout=3600, return_when=asyncio.FIRST_COMPLETED)
        if self.task.done():
            self.task.result()  # the plugin failed: show why
        return time.perf_counter() - self.started

    async def __aexit__(self, *exc: object) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.store.close()


async def _ignore(people: set[int]) -> None:
    pass


async def cold_read(state: Path, cfg: config.Config) -> tuple[float, int]:
    """A read on a fresh store: seconds, and the interactions it stored."""
    shutil.rmtree(state, ignore_errors=True)
    await book(state)
    async with Running(state, cfg) as running:
        seconds = await running.read()
        [(count,)] = await running.store.db.execute_fetchall("SELECT count(*) FROM interactions")
    return seconds, count


async def new_mail(state: Path, cfg: config.Config, server: ImapServer, rounds: int) -> list[float]:
    """APPEND to INBOX until the interaction is stored, while the source idles: seconds."""
    times = []
    async with Running(state, cfg) as running:
        await running.read()
        db = sqlite3.connect(f"file:{running.store.path}?mode=ro", uri=True)
        try:
            for i in range(rounds):
                await asyncio.sleep(0.5)  # the source is back in IDLE
                message_id = f"<new-{i}-{time.time_ns()}@example0.org>"
                now = datetime.now(UTC)
                raw = (
                    f"From: {person(0)}\r\nTo: me@home.example\r\nSubject: new {i}\r\n"
                    f"Date: {format_datetime(now)}\r\nMessage-ID: {message_id}\r\n\r\nhi\r\n"
                )
                start = time.perf_counter()
                await asyncio.to_thread(server.append, "INBOX", raw, now)
                while not db.execute(
                    "SELECT 1 FROM interactions WHERE message_id = ?", (message_id,)
                ).fetchone():
                    if time.perf_counter() - start > 30:
                        raise RuntimeError(f"message {i} not stored within 30 s")
                    await asyncio.sleep(0.005)
                times.append(time.perf_counter() - start)
        finally:
            db.close()
    return times


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5, help="new messages to time with IDLE")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    root = Path(tempfile.mkdtemp(prefix="nurtured-bench-imap-"))
    try:
        with dovecot() as server:
            for folder in FOLDERS:
                if folder not in ("INBOX", "Sent"):
                    server.create(folder)
            with server.client() as imap:  # Dovecot makes a folder's Maildir on first use
                for folder in FOLDERS:
                    imap.select(folder)
            started = time.perf_counter()
            size = seed(server, args.messages, args.seed)
            print(
                f"seeded {args.messages} messages, {size / 2**20:.0f} MB, into Dovecot's Maildir"
                f" in {time.perf_counter() - started:.1f} s"
            )
            cfg = write_config(root, server)
            state = root / "state"
            for label in ("first read (Dovecot indexing)", "second read (Dovecot warm)"):
                seconds, count = asyncio.run(cold_read(state, cfg))
                rate = args.messages / seconds
                print(
                    f"{label:31} {seconds:7.2f} s {rate:8.0f} messages/s, {count} interactions"
                    f"  (target >= {TARGET}: {verdict(rate >= TARGET)})"
                )
            times = asyncio.run(new_mail(state, cfg, server, args.rounds))
            median = statistics.median(times)
            print(
                f"new mail stored with IDLE: median {median * 1000:.0f} ms,"
                f" max {max(times) * 1000:.0f} ms of {len(times)}"
                f"  (target < {NEW_MAIL_TARGET:.0f} s: {verdict(median < NEW_MAIL_TARGET)})"
            )
            peak = rss_mb()
            print(f"peak RSS: {peak:.0f} MB  (target < {RSS_TARGET}: {verdict(peak < RSS_TARGET)})")
    except NoServer as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
