"""Real parts for end-to-end tests: an HTTP endpoint for Apprise, the daemon, the CLI.

Nothing here is a mock. `HttpSink` is a stdlib HTTP server on 127.0.0.1 that
records what Apprise's `json://` channel posts to it (paths under `/fail`
answer 500). `Home` is one user's setup in a temporary folder: a config, a
vCard folder, a journal and a state dir, with the CLI at hand. `Daemon`
runs `python -m nurtured -c CONFIG run` as a real process, with its output
in files, and stops it with SIGTERM or kills it with SIGKILL.

Waits poll with a deadline; the only fixed waits are the short windows in
which a test checks that nothing more arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
import yaml

from nurtured import plugins
from nurtured.config import Config
from nurtured.config import load as load_config
from nurtured.store import Store

# The real Dovecot and Radicale the IMAP and CalDAV tests talk to.
pytest_plugins = ["imap_server", "radicale_server"]

DEADLINE = 15.0  # seconds: how long a wait for something the daemon should do may take
TIMEZONE = "Europe/Lisbon"

T = TypeVar("T")

# Environment that would make the daemon talk to systemd or find another config.
_FOREIGN_ENV = (
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "JOURNAL_STREAM",
    "NURTURED_CONFIG",
    "STATE_DIRECTORY",
    "CONFIGURATION_DIRECTORY",
)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def wait_until(
    predicate: Callable[[], T],
    timeout: float = DEADLINE,
    what: str | Callable[[], str] = "",
    interval: float = 0.1,
) -> T:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {detail}")
        time.sleep(interval)


def now() -> datetime:
    return datetime.now(UTC)


def days_ago(days: int) -> str:
    """A date `days` ago as the CLI's --at and the journal take it (midday, local)."""
    return (now() - timedelta(days=days)).date().isoformat()


def parse_time(text: str) -> datetime:
    """An ISO 8601 time from the CLI's JSON; it must carry an offset."""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", text), text
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None, text
    return moment


# -- the HTTP endpoint Apprise posts to ----------------------------------------------------


@dataclass(frozen=True)
class Post:
    """One request Apprise's json:// channel made."""

    path: str
    body: dict[str, Any]
    authorization: str | None
    at: datetime

    @property
    def title(self) -> str:
        return str(self.body.get("title", ""))

    @property
    def message(self) -> str:
        return str(self.body.get("message", ""))

    @property
    def text(self) -> str:
        return f"{self.title}\n{self.message}"


class HttpSink:
    """Records every POST; answers 200, or 500 for paths starting with /fail.

    A POST to a path starting with /slow is recorded on arrival and answered
    only once `gate` is set (or after 20 s): a delivery caught in flight.
    """

    def __init__(self) -> None:
        self.posts: list[Post] = []
        self.gate = threading.Event()
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"raw": raw.decode("utf-8", "replace")}
                with sink._lock:
                    sink.posts.append(
                        Post(self.path, body, self.headers.get("Authorization"), now())
                    )
                if self.path.startswith("/slow"):
                    sink.gate.wait(20)
                status = 500 if self.path.startswith("/fail") else 200
                payload = b"failing on purpose" if status == 500 else b"ok"
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client is gone (killed mid-delivery)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str = "/nudges", credentials: str = "") -> str:
        """The Apprise URL of this endpoint; `credentials` like 'user:password'."""
        auth = f"{credentials}@" if credentials else ""
        return f"json://{auth}127.0.0.1:{self.port}{path}"

    def all_posts(self) -> list[Post]:
        with self._lock:
            return list(self.posts)

    def messages(self) -> list[Post]:
        """What was delivered: posts to paths not under /fail."""
        return [p for p in self.all_posts() if not p.path.startswith("/fail")]

    def failures(self) -> list[Post]:
        return [p for p in self.all_posts() if p.path.startswith("/fail")]

    def wait_for(
        self, count: int, daemon: Daemon | None = None, timeout: float = DEADLINE
    ) -> list[Post]:
        """Wait until at least `count` messages were delivered; returns them all.

        With `daemon`, fail at once if it exits, and show its output on failure.
        """

        def what() -> str:
            got = [p.title for p in self.all_posts()]
            return f"{count} message(s) at the HTTP endpoint; all posts so far: {got}"

        def enough() -> bool:
            return len(self.messages()) >= count

        if daemon is None:
            wait_until(enough, timeout, what)
        else:
            daemon.wait(enough, what, timeout)
        return self.messages()

    def assert_stays(self, count: int, seconds: float, daemon: Daemon | None = None) -> None:
        """Check that the count of messages stays `count` for `seconds` (a quiet window)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            got = self.messages()
            context = daemon.describe() if daemon else ""
            assert len(got) == count, (
                f"expected {count} message(s), got {[p.text for p in got]}\n{context}"
            )
            time.sleep(0.1)

    def close(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    server = HttpSink()
    yield server
    server.close()


# -- the daemon -----------------------------------------------------------------------------


class Daemon:
    """`nurtured run` as a real process; each start writes its own output files."""

    READY = "nurtured is running"

    def __init__(self, config: Path, logs: Path) -> None:
        self.config = config
        self.logs = logs
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self._files: list[tuple[Path, Path]] = []

    def start(self, wait_ready: bool = True) -> Daemon:
        assert not self.alive, "the daemon is already running"
        self.runs += 1
        self.logs.mkdir(parents=True, exist_ok=True)
        out = self.logs / f"daemon-{self.runs}.out"
        err = self.logs / f"daemon-{self.runs}.err"
        self._files.append((out, err))
        with out.open("wb") as stdout, err.open("wb") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "nurtured", "-c", str(self.config), "run"],
                stdout=stdout,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                env=clean_env(),
                cwd=self.logs,  # not the repository: the installed package runs
            )
        if wait_ready:
            self.wait_log(self.READY)
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def output(self) -> str:
        """Standard output and error of the current (or last) run."""
        if not self._files:
            return ""
        return _read_pair(*self._files[-1])

    def all_output(self) -> str:
        return "\n".join(_read_pair(out, err) for out, err in self._files)

    def describe(self) -> str:
        state = "running" if self.alive else f"exited with {self.proc and self.proc.returncode}"
        return f"daemon run {self.runs} ({state}); its output:\n{self.output}"

    def wait(
        self,
        predicate: Callable[[], T],
        what: str | Callable[[], str] = "",
        timeout: float = DEADLINE,
    ) -> T:
        """`wait_until`, failing at once if the daemon exits, with its output."""

        def described() -> str:
            return f"{what() if callable(what) else what}\n{self.describe()}"

        def check() -> T | None:
            value = predicate()
            if value:
                return value
            if not self.alive:
                raise AssertionError(f"the daemon exited waiting for {described()}")
            return None

        return wait_until(check, timeout, described)  # type: ignore[arg-type]

    def wait_log(self, pattern: str, timeout: float = DEADLINE, count: int = 1) -> str:
        """Wait until the current run's output matches `pattern` (a regex) `count` times."""
        regex = re.compile(pattern)

        def found() -> str | None:
            text = self.output
            return text if len(regex.findall(text)) >= count else None

        return self.wait(found, f"{pattern!r} in the log", timeout)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then wait for a clean exit; returns the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the daemon did not stop on SIGTERM\n{self.describe()}") from None

    def kill(self) -> None:
        """kill -9: no chance to clean up."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def _read_pair(out: Path, err: Path) -> str:
    parts = [p.read_text("utf-8", "replace") for p in (out, err) if p.exists()]
    return "\n".join(parts)


# -- a user's setup ---------------------------------------------------------------------------

DEFAULT_RULES: list[dict[str, Any]] = [
    {"name": "friends", "match": {"tags": ["friends"]}, "every": "30d"},
    {"name": "network", "match": {"tags": ["network"]}, "every": "60d"},
]


class Home:
    """One user's nurtured setup under `root`.

    root/home/config.yaml, root/home/contacts/*.vcf, root/home/journal/journal.yaml,
    root/home/state/ and, outside every watched folder, root/logs/ for daemon output.
    """

    def __init__(self, root: Path, channels: list[dict[str, Any]] | None = None) -> None:
        self.root = root
        self.dir = root / "home"
        self.config = self.dir / "config.yaml"
        self.contacts = self.dir / "contacts"
        self.journal = self.dir / "journal" / "journal.yaml"
        self.state = self.dir / "state"
        self.logs = root / "logs"
        self.channels: list[dict[str, Any]] = channels or [{"url": "console://"}]
        self.rules: list[dict[str, Any]] = [dict(r) for r in DEFAULT_RULES]
        self.limits: dict[str, Any] = {}
        self.timezone = TIMEZONE
        self.journal_entries: list[dict[str, Any]] = []
        self.sources: list[dict[str, Any]] = []  # more sources, after the address book and journal
        self._daemons: list[Daemon] = []

    # -- files ---------------------------------------------------------------------

    def config_text(self) -> str:
        data: dict[str, Any] = {
            "timezone": self.timezone,
            "state_dir": "./state",
            "sources": [
                {"plugin": "vcard", "path": "./contacts"},
                {"plugin": "journal", "path": "./journal/journal.yaml"},
                *self.sources,
            ],
            "notify": self.channels,
            "rules": self.rules,
        }
        if self.limits:
            data["limits"] = self.limits
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)

    def write_config(self, text: str | None = None) -> Path:
        """Write the config (from the attributes unless `text` is given), atomically."""
        write_atomically(self.config, self.config_text() if text is None else text)
        return self.config

    def card(
        self,
        uid: str,
        name: str,
        *,
        nickname: str = "",
        email: str = "",
        tags: tuple[str, ...] = (),
        note: str = "",
        filename: str | None = None,
    ) -> Path:
        """Write one vCard 3.0 file into the address book."""
        given, _, family = name.partition(" ")
        lines = ["BEGIN:VCARD", "VERSION:3.0", f"UID:{uid}", f"FN:{name}", f"N:{family};{given};;;"]
        if nickname:
            lines.append(f"NICKNAME:{nickname}")
        if email:
            lines.append(f"EMAIL;TYPE=INTERNET:{email}")
        if tags:
            lines.append(f"CATEGORIES:{','.join(tags)}")
        if note:
            lines.append(f"NOTE:{note}")
        lines.append("END:VCARD")
        path = self.contacts / (filename or f"{uid}.vcf")
        write_atomically(path, "\r\n".join(lines) + "\r\n")
        return path

    def contact(self, person: str, days: int, direction: str = "met", **more: str) -> None:
        """Add a journal entry `days` ago and write the journal."""
        entry = {"date": days_ago(days), "person": person, "direction": direction, **more}
        self.journal_entries.append(entry)
        self.write_journal()

    def write_journal(self) -> None:
        text = yaml.safe_dump(self.journal_entries, sort_keys=False, allow_unicode=True)
        write_atomically(self.journal, text)

    def setup(self) -> Home:
        """Write whatever is missing so the daemon can start."""
        self.contacts.mkdir(parents=True, exist_ok=True)
        if not self.journal.exists():
            self.write_journal()
        if not self.config.exists():
            self.write_config()
        return self

    # -- the CLI -------------------------------------------------------------------------

    def cli(self, *args: str, check: int | None = 0) -> subprocess.CompletedProcess[str]:
        """Run `nurtured -c CONFIG ARGS...`; `check` is the expected exit status (None: any)."""
        return nurtured(self.config, *args, check=check, cwd=self.root)

    def json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def status(self) -> dict[str, Any]:
        return self.json("status")

    def people(self) -> dict[str, dict[str, Any]]:
        """status --json's people, by name."""
        return {p["name"]: p for p in self.status()["people"]}

    def person(self, name: str) -> dict[str, Any]:
        people = self.people()
        assert name in people, f"{name!r} not in status: {sorted(people)}"
        return people[name]

    # -- the daemon ----------------------------------------------------------------------

    def daemon(self, logs: Path | None = None) -> Daemon:
        """The daemon for this setup (stopped at teardown); output under `logs`."""
        self.setup()
        d = Daemon(self.config, logs or self.logs)
        self._daemons.append(d)
        return d

    def close(self) -> None:
        for d in self._daemons:
            if d.alive:
                with contextlib.suppress(AssertionError):  # killed if it would not stop
                    d.stop(5)


def nurtured(
    config: Path, *args: str, check: int | None = 0, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would; `check` is the expected exit status (None: any)."""
    proc = subprocess.run(
        [sys.executable, "-m", "nurtured", "-c", str(config), *args],
        capture_output=True,
        text=True,
        env=clean_env(**env),
        cwd=cwd or config.parent,
        timeout=60,
    )
    if check is not None:
        assert proc.returncode == check, (
            f"nurtured {' '.join(args)} exited {proc.returncode}, expected {check}\n"
            f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
        )
    return proc


def write_atomically(path: Path, text: str) -> None:
    """Write as editors and sync tools do: a temporary name, then a rename over the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


@pytest.fixture
def home(tmp_path: Path, sink: HttpSink) -> Iterator[Home]:
    """A setup whose only channel is the HTTP endpoint (no tag: every nudge goes there)."""
    h = Home(tmp_path, channels=[{"url": sink.url()}])
    yield h
    h.close()


# -- source plugins in-process ----------------------------------------------------------


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> float:
    """Wait until `check` holds; returns how long it took."""
    start = time.monotonic()
    while not await check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not true within {timeout} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def write_source_config(
    folder: Path, entry: dict[str, Any], password: str, me: Sequence[str], rule: str
) -> Config:
    """config.yaml with one source and one rule, as a user writes it: the source's
    password through `!secret` from a secrets.yaml beside it (unless the entry has a
    `password_command`). Returns it loaded."""
    source = yaml.safe_dump([entry], sort_keys=False, allow_unicode=True)
    if "password_command" not in entry:
        source += "  password: !secret source_password\n"
    (folder / "secrets.yaml").write_text(yaml.safe_dump({"source_password": password}))
    (folder / "config.yaml").write_text(
        f"timezone: {TIMEZONE}\n"
        "state_dir: ./state\n"
        f"me: {yaml.safe_dump(list(me), default_flow_style=True).strip()}\n"
        f"sources:\n{textwrap.indent(source, '  ')}"
        f"rules:\n  - {rule}\n"
    )
    return load_config(folder / "config.yaml")


@pytest.fixture
def me() -> tuple[str, ...]:
    """The user's own addresses for sources started by `running` (a module may override)."""
    return ()


@pytest.fixture
async def running(store: Store, me: tuple[str, ...]) -> AsyncIterator[Any]:
    """`await running(domain, **options)`: a source running on the module's `store`,
    after its first read; all are stopped at teardown."""
    started: list[RunningSource] = []

    async def start(domain: str, **options: Any) -> RunningSource:
        source = await RunningSource(store, domain, options, me).started()
        started.append(source)
        return source

    yield start
    for source in started:
        await source.stop()


class RunningSource:
    """A source plugin running in-process as the daemon runs it, on a real store."""

    def __init__(
        self, store: Store, domain: str, options: dict[str, Any], me: tuple[str, ...] = ()
    ) -> None:
        self.store = store
        self.touched: set[int] = set()
        self.ready = asyncio.Event()
        manifest = plugins.find(domain, Path("."))
        assert manifest is not None
        module = plugins.load(manifest)
        self.sink = plugins.Sink(
            f"{domain}:test", store, ZoneInfo(TIMEZONE), self._changed, self.ready.set, me
        )
        self.task = asyncio.create_task(module.run(options, self.sink))

    async def _changed(self, people: set[int]) -> None:
        self.touched |= people

    async def started(self) -> RunningSource:
        """Wait for the first read; a plugin that fails first raises its error here."""
        ready = asyncio.create_task(self.ready.wait())
        await asyncio.wait({ready, self.task}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if self.task.done():
            ready.cancel()
            self.task.result()
        assert self.ready.is_set(), "the source did not finish its first read within 10 s"
        return self

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    async def names(self) -> list[str]:
        return sorted(p.name for p in await self.store.people())


class SupervisedSource:
    """The one source of a config, run under the supervisor as the daemon runs it,
    with the health it reported."""

    def __init__(self, store: Store, cfg: Config, **overrides: Any) -> None:
        [source] = cfg.sources
        self.name = source.name
        self.options = {**source.options, **overrides}
        self.store = store
        self.health: list[tuple[str, str]] = []
        self.delays: list[float] = []  # seconds the supervisor waited before each retry
        self.ready = asyncio.Event()
        self.readies = 0
        self.sink = plugins.Sink(
            source.name, store, cfg.timezone, self._changed, self._ready, cfg.me
        )
        module = plugins.load(source.manifest)
        self.task = asyncio.create_task(
            plugins.supervise(
                lambda: module.run(self.options, self.sink),
                source.name,
                self._report,
                first_backoff=0.1,
            )
        )

    def _ready(self) -> None:
        self.readies += 1
        self.ready.set()

    async def _changed(self, people: set[int]) -> None:
        pass

    async def _report(self, health: plugins.Health) -> None:
        self.health.append((health.state, health.error))
        if health.retry_at is not None:
            self.delays.append((health.retry_at - health.since).total_seconds())

    def failures(self) -> list[str]:
        return [error for state, error in self.health if state == "failed"]

    async def failed(self) -> bool:
        return bool(self.failures())

    async def started(self) -> SupervisedSource:
        async def ready_or_failed() -> bool:
            return self.ready.is_set() or await self.failed()

        await eventually(ready_or_failed)
        assert self.ready.is_set(), f"the source failed: {self.failures()}"
        return self

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    async def cursor(self) -> dict[str, Any]:
        return await self.store.cursor(self.name)
