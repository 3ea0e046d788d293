"""Benchmark: cold import, one changed card, status --json, the planner, memory and idle CPU.

    .venv/bin/python tests/benchmarks/bench_import.py --sizes 2000 20000 --idle 60

For each size N it writes a synthetic book (generate.py: N .vcf files and a
journal of ~2 interactions per person), starts the real daemon on it
(`python -m nurtured -c CONFIG run`, delivering to a json:// sink on
127.0.0.1 that answers 200) and measures:

- cold start: seconds from process start to the log line "nurtured is running"
  (READY), and to the vcard source's "read N changed file(s)";
- one changed card: a .vcf rewritten with a new FN (atomically, as sync tools
  do), until the new name is in SQLite (read-only connection polled every
  10 ms); median of 5, with the daemon's CPU seconds per change;
- `status --json`: wall time of the CLI subprocess, median of 3;
- memory and idle CPU: VmRSS/VmHWM and utime+stime of the daemon over --idle
  seconds after the import settled;
- after the daemon stopped: a warm restart (nothing changed) to READY, the
  planner in-process (`reminders.replan` over everyone, median of 3), and the
  import alone in-process (the vcard plugin's `run` on a fresh Store until it
  calls `sink.ready()`, touched people replanned as the daemon does; then the
  journal plugin the same way).

Timing never fails the script: it exits 0 when every measurement was made,
1 when the daemon could not be started or died. Temp dirs are removed and the
daemon is killed at the end, also on error or Ctrl+C (--keep keeps the dirs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import Book, generate, write_card, write_config

CLK_TCK = os.sysconf("SC_CLK_TCK")
READY_LINE = "nurtured is running"
READ_LINE = "changed file(s)"
READY_TIMEOUT = 300.0  # give up on a daemon that is not READY by then
CHANGE_TIMEOUT = 10.0  # give up on one changed card after this


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the notification sink ------------------------------------------------------------------


class Sink:
    """A tiny HTTP server on 127.0.0.1 that answers 200 to whatever Apprise's json:// posts."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                sink.requests += 1
                sink.bytes += len(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- the daemon -----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all threads."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MB."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", float("nan")), values.get("VmHWM", float("nan"))


#: Left out of the children's environment: systemd's (the daemon would talk to it) and
#: PYTHONUNBUFFERED, which a user's shell rarely has and which turns `status --json`
#: into one write(2) per JSON token.
NOT_INHERITED = (
    "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "PYTHONUNBUFFERED",
)  # fmt: skip


def child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}


class Daemon:
    """`python -m nurtured -c CONFIG run` with its log lines timestamped as they arrive."""

    def __init__(self, config: Path, log_path: Path, profile: Path | None = None) -> None:
        cmd = [sys.executable]
        if profile is not None:
            cmd += ["-m", "cProfile", "-o", str(profile)]
        cmd += ["-m", "nurtured", "-c", str(config), "run"]
        env = child_env()
        self.lines: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._log = open(log_path, "w", encoding="utf-8")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.PIPE,
            env=env, start_new_session=True, text=True, errors="replace",
        )  # fmt: skip
        self.pid = self.proc.pid
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            now = time.monotonic()
            with self._cond:
                self.lines.append((now, line.rstrip("\n")))
                self._cond.notify_all()
            self._log.write(line)
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, text: str, timeout: float) -> float | None:
        """Seconds from process start to the first log line containing `text`, or None."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for at, line in self.lines:
                    if text in line:
                        return at - self.started
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return None
                self._cond.wait(min(left, 0.5))

    def seen(self, text: str) -> list[str]:
        with self._cond:
            return [line for _, line in self.lines if text in line]

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def settle(self, window: float = 0.5, threshold: float = 0.02, timeout: float = 120.0) -> float:
        """Wait until the daemon uses < `threshold` CPU seconds in a window; returns the wait."""
        start = time.monotonic()
        last = self.cpu()
        while time.monotonic() - start < timeout:
            time.sleep(window)
            if self.proc.poll() is not None:
                raise RuntimeError(f"the daemon exited with {self.proc.returncode}")
            now = self.cpu()
            if now - last < threshold:
                return max(0.0, time.monotonic() - start - window)
            last = now
        return time.monotonic() - start

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL to its process group if it does not stop in time."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"daemon {self.pid} ignored SIGTERM for {timeout:.0f} s: killing it")
        self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the daemon's process group (its own session) if it still runs."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self._reader.join(5)
        if not self._log.closed:
            self._log.close()

    def tail(self, n: int = 25) -> str:
        with self._cond:
            return "\n".join(line for _, line in self.lines[-n:])


# -- measurements ---------------------------------------------------------------------------


def db_path(state: Path) -> Path:
    return state / "nurtured.db"


def read_only(state: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db_path(state)}?mode=ro", uri=True, isolation_level=None)


def name_by_email(db: sqlite3.Connection, email: str) -> str | None:
    row = db.execute(
        "SELECT p.name FROM people p JOIN identifiers i ON i.person_id = p.id"
        " WHERE i.kind = 'email' AND i.value = ?",
        (email,),
    ).fetchone()
    return row[0] if row else None


class ImportWatch:
    """Polls the database (read-only, every 100 ms) from the daemon's start until every card
    is a person and every interaction has found its person: when the cold import is done,
    whatever READY said."""

    def __init__(self, state: Path, people: int, interactions: int, started: float) -> None:
        self.state, self.people, self.interactions = state, people, interactions
        self.started = started
        self.done: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        db = None
        while not self._stop.wait(0.1):
            try:
                if db is None:
                    if not db_path(self.state).exists():
                        continue
                    db = read_only(self.state)
                people = db.execute("SELECT count(*) FROM people WHERE active = 1").fetchone()[0]
                linked = db.execute(
                    "SELECT count(*) FROM interactions WHERE person_id IS NOT NULL"
                ).fetchone()[0]
            except sqlite3.Error:
                continue  # not created yet, or busy: look again
            if people >= self.people and linked >= self.interactions:
                self.done = time.monotonic() - self.started
                break
        if db is not None:
            db.close()

    def wait(self, timeout: float) -> float | None:
        self._thread.join(timeout)
        self.stop()
        return self.done

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def changed_cards(daemon: Daemon, book: Book, state: Path, count: int) -> dict[str, Any]:
    """Rewrite `count` cards with a new FN, one at a time; time each until SQLite shows it."""
    rng = random.Random(len(book.people))
    picks = rng.sample(book.people, min(count, len(book.people)))
    latencies: list[float | None] = []
    cpu: list[float] = []
    db = read_only(state)
    try:
        for k, person in enumerate(picks):
            new = f"Renamed{k} {person.family}"
            before = daemon.cpu()
            start = time.monotonic()
            write_card(book, person, new)
            seen = None
            while time.monotonic() - start < CHANGE_TIMEOUT:
                if name_by_email(db, person.emails[0]) == new:
                    seen = time.monotonic() - start
                    break
                time.sleep(0.01)
            latencies.append(seen)
            daemon.settle(window=0.3, threshold=0.005, timeout=30)  # let the replan finish
            cpu.append(daemon.cpu() - before)
            shown = f"{seen:.3f} s" if seen is not None else f"not seen in {CHANGE_TIMEOUT:.0f} s"
            log(f"  change {k + 1}: {shown}, daemon CPU {cpu[-1]:.2f} s")
    finally:
        db.close()
    seen_all = [x for x in latencies if x is not None]
    return {
        "change_median": statistics.median(seen_all) if seen_all else None,
        "change_max": max(seen_all) if seen_all else None,
        "change_missed": len(latencies) - len(seen_all),
        "change_cpu": statistics.median(cpu) if cpu else None,
    }


def status_json(config: Path, runs: int = 3) -> dict[str, Any]:
    times, people, size = [], None, 0
    for _ in range(runs):
        start = time.monotonic()
        out = subprocess.run(
            [sys.executable, "-m", "nurtured", "-c", str(config), "status", "--json"],
            capture_output=True, stdin=subprocess.DEVNULL, timeout=120, env=child_env(),
        )  # fmt: skip
        times.append(time.monotonic() - start)
        if out.returncode != 0:
            raise RuntimeError(
                f"status --json exited {out.returncode}: {out.stderr.decode()[-500:]}"
            )
        size = len(out.stdout)
        people = len(json.loads(out.stdout)["people"])
    return {"status": statistics.median(times), "status_people": people, "status_bytes": size}


def check_db(state: Path) -> dict[str, Any]:
    db = read_only(state)
    try:
        q = lambda sql: db.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "db_people": q("SELECT count(*) FROM people WHERE active = 1"),
            "db_interactions": q("SELECT count(*) FROM interactions"),
            "db_unresolved": q("SELECT count(*) FROM interactions WHERE person_id IS NULL"),
            "db_planned": q("SELECT count(*) FROM people WHERE next_due IS NOT NULL"),
            "db_reminders": q("SELECT count(*) FROM reminders"),
            "db_mb": sum(f.stat().st_size for f in state.glob(f"{db_path(state).name}*")) / 1e6,
        }
    finally:
        db.close()


async def planner(config_path: Path, runs: int = 3) -> float:
    from nurtured import config as configuration
    from nurtured import reminders
    from nurtured.store import Store

    config = configuration.load(config_path)
    store = await Store.open(config.state_dir)
    try:
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            await reminders.replan(store, config, datetime.now(UTC))
            times.append(time.perf_counter() - start)
        return statistics.median(times)
    finally:
        await store.close()


async def import_in_process(config_path: Path, state: Path) -> dict[str, Any]:
    """The vcard plugin's own `run` on a fresh Store, until it says ready; then the journal's."""
    from dataclasses import replace

    from nurtured import config as configuration
    from nurtured import plugins, reminders
    from nurtured.store import Store

    config = replace(configuration.load(config_path), state_dir=state)
    store = await Store.open(state)
    result: dict[str, Any] = {}
    try:
        for source in config.sources:
            replan_time = 0.0

            async def changed(people: set[int]) -> None:
                nonlocal replan_time
                t = time.perf_counter()
                await reminders.replan(store, config, datetime.now(UTC), people)
                replan_time += time.perf_counter() - t

            ready = asyncio.Event()
            sink = plugins.Sink(source.name, store, config.timezone, changed, ready.set)
            module = plugins.load(source.manifest)
            start = time.perf_counter()
            task = asyncio.create_task(module.run(source.options, sink))
            waiter = asyncio.create_task(ready.wait())
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            elapsed = time.perf_counter() - start
            for t in (task, waiter):
                t.cancel()
            await asyncio.gather(task, waiter, return_exceptions=True)
            if task.done() and not task.cancelled() and task.exception():
                raise task.exception()  # type: ignore[misc]
            result[f"inproc_{source.plugin}"] = elapsed
            result[f"inproc_{source.plugin}_replan"] = replan_time
    finally:
        await store.close()
    return result


# -- one size ---------------------------------------------------------------------------------


def run_size(
    n: int, args: argparse.Namespace, sink: Sink, temps: list[Path], daemons: list[Daemon]
) -> dict[str, Any]:
    r: dict[str, Any] = {"n": n, "notes": []}
    root = Path(tempfile.mkdtemp(prefix=f"nurtured-bench-{n}-"))
    temps.append(root)
    t = time.monotonic()
    book = generate(root, n, seed=args.seed)
    state = root / "state"
    config = write_config(root, state, sink.url)
    r["interactions"] = book.interactions
    took = time.monotonic() - t
    log(f"N={n}: wrote {n} cards and {book.interactions} interactions in {took:.1f} s in {root}")

    profile = Path(args.profile) / f"daemon-{n}.prof" if args.profile else None
    posts_before = sink.requests  # the sink serves every size
    daemon = Daemon(config, root / "daemon.log", profile)
    daemons.append(daemon)
    complete = ImportWatch(state, n, book.interactions, daemon.started)
    try:
        ready = daemon.wait_for(READY_LINE, READY_TIMEOUT)
        if ready is None:
            raise RuntimeError(
                f"the daemon was not READY within {READY_TIMEOUT:.0f} s:\n{daemon.tail()}"
            )
        r["ready"] = ready
        if daemon.seen("still reading"):
            r["notes"].append(f"N={n}: READY came from the daemon's 15 s timeout, not the sources")
        log(f"N={n}: READY after {ready:.2f} s; waiting for the daemon to go quiet")
        r["settle"] = daemon.settle()
        r["complete"] = complete.wait(READY_TIMEOUT)
    finally:
        complete.stop()
    r["read_line"] = daemon.wait_for(READ_LINE, 0.1)  # its arrival time, even if after READY
    r["rss_import"], r["hwm_import"] = memory_mb(daemon.pid)
    r.update(check_db(state))
    r["sent"] = sink.requests - posts_before

    log(f"N={n}: {args.changes} changed card(s)")
    r.update(changed_cards(daemon, book, state, args.changes))
    log(f"N={n}: status --json x3")
    r.update(status_json(config))

    log(f"N={n}: idle for {args.idle:.0f} s")
    daemon.settle(timeout=30)
    cpu0 = daemon.cpu()
    time.sleep(args.idle)
    cpu1 = daemon.cpu()
    r["idle_cpu_per_min"] = (cpu1 - cpu0) * 60 / args.idle if args.idle else None
    r["rss"], r["hwm"] = memory_mb(daemon.pid)
    r["cpu_total"] = cpu1
    errors = daemon.seen("ERROR")
    if errors:
        r["notes"].append(
            f"N={n}: {len(errors)} ERROR line(s) in the daemon log, first: {errors[0]}"
        )
    code = daemon.stop()
    if code not in (0, None):
        r["notes"].append(f"N={n}: the daemon exited with {code} on SIGTERM")

    log(f"N={n}: warm restart")
    again = Daemon(config, root / "daemon-warm.log")
    daemons.append(again)
    r["warm_ready"] = again.wait_for(READY_LINE, READY_TIMEOUT)
    if again.seen("still reading"):
        r["notes"].append(f"N={n}: warm restart: READY came from the daemon's 15 s timeout too")
    again.settle(timeout=60)
    r["warm_rss"] = memory_mb(again.pid)[0]
    again.stop()

    log(f"N={n}: planner in-process x3")
    r["planner"] = asyncio.run(planner(config))
    log(f"N={n}: import in-process")
    r.update(asyncio.run(import_in_process(config, root / "state-inproc")))
    return r


# -- the table ----------------------------------------------------------------------------------


def fmt(value: Any, spec: str = ".2f") -> str:
    if value is None:
        return "-"
    return f"{value:{spec}}" if isinstance(value, float) else str(value)


def ratio(a: Any, b: Any) -> float | None:
    return a / b if a is not None and b else None


#: Targets: (limit, for which sizes). The absolute targets stated for 20 000 people
#: hold for any smaller book too; above 20 000 the figure is shown without a verdict.
UP_TO_20K = "up to 20 000"
ALL = "all"


@dataclass(frozen=True)
class Row:
    label: str
    value: Callable[[dict[str, Any]], Any]
    spec: str = ".2f"
    limit: float | None = None
    applies: str = UP_TO_20K
    target: str = ""

    def cell(self, r: dict[str, Any]) -> str:
        if "error" in r:
            return "error"
        value = self.value(r)
        text = value if isinstance(value, str) else fmt(value, self.spec)
        if self.limit is None or not isinstance(value, float):
            return text
        if self.applies == UP_TO_20K and r["n"] > 20_000:
            return text
        return text + (" ok" if value < self.limit else " MISS")


def both(a: str, b: str) -> Callable[[dict[str, Any]], str]:
    return lambda r: f"{fmt(r.get(a))} / {fmt(r.get(b))}"


ROWS = (
    Row("cold start to READY, daemon process (s)", lambda r: r.get("ready"),
        limit=3, target="20 000 cards < 3 s"),
    Row("cold import complete: people and history in the db (s)", lambda r: r.get("complete"),
        limit=3, target="20 000 cards < 3 s"),
    Row("  cards/s (N / import complete)", lambda r: ratio(r["n"], r.get("complete")), ".0f"),
    Row("  log 'read N changed file(s)' at (s)", lambda r: r.get("read_line")),
    Row("  busy after READY until quiet (s)", lambda r: r.get("settle")),
    Row("vCard import alone, in-process (s)", lambda r: r.get("inproc_vcard"),
        limit=3, target="20 000 cards < 3 s"),
    Row("  cards/s", lambda r: ratio(r["n"], r.get("inproc_vcard")), ".0f"),
    Row("  of which replanning touched people (s)", lambda r: r.get("inproc_vcard_replan")),
    Row("journal import alone, in-process (s)", lambda r: r.get("inproc_journal")),
    Row("  interactions in the journal", lambda r: r.get("interactions")),
    Row("warm restart (nothing changed) to READY (s)", lambda r: r.get("warm_ready")),
    Row("one changed card reflected, median of 5 (s)", lambda r: r.get("change_median"), ".3f",
        limit=0.5, applies=ALL, target="< 0.5 s"),
    Row("  slowest of 5 (s)", lambda r: r.get("change_max"), ".3f"),
    Row("  not seen within 10 s", lambda r: r.get("change_missed"), target="0"),
    Row("  daemon CPU per change, median (s)", lambda r: r.get("change_cpu"), ".3f",
        target="same for both sizes"),
    Row("status --json, CLI wall, median of 3 (s)", lambda r: r.get("status"),
        limit=1, target="20 000 people < 1 s"),
    Row("  output (MB)", lambda r: ratio(r.get("status_bytes"), 1e6)),
    Row("planner: replan everyone, in-process, median of 3 (s)", lambda r: r.get("planner")),
    Row("daemon RSS after import (MB)", lambda r: r.get("rss_import"), ".0f"),
    Row("daemon RSS after idle (MB)", lambda r: r.get("rss"), ".0f",
        limit=100, target="20 000 people < 100 MB"),
    Row("daemon peak RSS, VmHWM (MB)", lambda r: r.get("hwm"), ".0f",
        limit=100, target="20 000 people < 100 MB"),
    Row("idle CPU (s per minute)", lambda r: r.get("idle_cpu_per_min"), ".3f",
        limit=0.1, applies=ALL, target="< 0.1 s/min"),
    Row("check: active people / planned", both("db_people", "db_planned"), target="= N"),
    Row("check: interactions / unresolved", both("db_interactions", "db_unresolved"),
        target="unresolved 0"),
    Row("check: nudges queued / POSTs to the sink", both("db_reminders", "sent")),
    Row("database with WAL (MB)", lambda r: r.get("db_mb"), ".1f"),
)  # fmt: skip


def table(results: list[dict[str, Any]]) -> str:
    headers = ["measure", *(f"N={r['n']}" for r in results), "target"]
    body = [[row.label, *(row.cell(r) for r in results), row.target] for row in ROWS]
    widths = [max(len(cells[i]) for cells in [headers, *body]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, body)])


# -- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000], help="address book sizes")
    p.add_argument("--idle", type=float, default=60, help="seconds of idle to measure CPU over")
    p.add_argument("--changes", type=int, default=5, help="changed cards to time")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--keep", action="store_true", help="keep the temp dirs (daemon logs, databases)"
    )
    p.add_argument(
        "--profile",
        metavar="DIR",
        help="run the first daemon of each size under cProfile, writing DIR/daemon-N.prof",
    )
    args = p.parse_args(argv)
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)

    def terminated(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)
    temps: list[Path] = []
    daemons: list[Daemon] = []
    results: list[dict[str, Any]] = []
    failed = False
    sink = Sink()
    started = time.monotonic()
    try:
        for n in args.sizes:
            try:
                results.append(run_size(n, args, sink, temps, daemons))
            except Exception as exc:  # report, go on with the next size
                failed = True
                log(f"N={n}: failed: {exc}")
                traceback.print_exc()
                results.append({"n": n, "error": str(exc), "notes": [f"N={n}: failed: {exc}"]})
            finally:
                for d in daemons:
                    d.kill()
    finally:
        for d in daemons:
            d.kill()
        sink.close()
        if args.keep:
            log("kept: " + " ".join(map(str, temps)))
        else:
            import shutil

            for t in temps:
                shutil.rmtree(t, ignore_errors=True)

    print()
    print(f"nurtured benchmark: {os.cpu_count()} CPU(s), Python {sys.version.split()[0]},"
          f" {time.monotonic() - started:.0f} s in all, idle window {args.idle:.0f} s")  # fmt: skip
    print(table(results))
    print()
    print(
        "Daemon times count from process start. READY is the log line 'nurtured is running';"
        " 'import complete' is when\nthe database, polled read-only, holds every person and"
        " every interaction has its person. 'Alone,\nin-process' is the plugin's run() on a"
        " fresh Store in this process, up to sink.ready()."
    )
    for r in results:
        for note in r["notes"]:
            print(f"note: {note}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
