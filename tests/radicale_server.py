"""A real Radicale (CalDAV/CardDAV server) on 127.0.0.1 for the CalDAV tests.

Started from Python in a subprocess, as TESTING.md describes: a free port,
data under the test's tmp_path, a predefined calendar `calendar` for every
user (created on the user's first request), fsync off. `radicale` gives a
server without authentication (any user and password are accepted);
`radicale_htpasswd` one that knows only `alice:secret`. Both can be stopped
and started again on the same port and data (the server going away and
coming back), and are stopped at teardown.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

USER = "alice"
PASSWORD = "secret"
CALENDAR = "calendar"
START_TIMEOUT = 15.0  # seconds

# Runs in the subprocess: argv[1] is the JSON of the test config.
_SERVE = """
import json, sys
from radicale import config, server
cfg = config.load()
cfg.update(json.loads(sys.argv[1]), "test", privileged=True)
server.serve(cfg)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Radicale:
    """One Radicale server process with its data folder; `stop()` and `start()` at will."""

    def __init__(self, root: Path, *, htpasswd: bool = False) -> None:
        self.root = root
        self.port = free_port()
        self.htpasswd = htpasswd
        self.proc: subprocess.Popen[bytes] | None = None
        root.mkdir(parents=True, exist_ok=True)
        self.log = root / "radicale.log"
        auth: dict[str, str] = {"type": "none"}
        if htpasswd:
            users = root / "users"
            users.write_text(f"{USER}:{PASSWORD}\n")
            auth = {
                "type": "htpasswd",
                "htpasswd_filename": str(users),
                "htpasswd_encryption": "plain",
                "delay": "0",
            }
        collections = {
            CALENDAR: {
                "tag": "VCALENDAR",
                "D:displayname": "Personal",
                "C:supported-calendar-component-set": "VEVENT,VTODO",
            },
            "tasks": {
                "tag": "VCALENDAR",
                "D:displayname": "Tasks",
                "C:supported-calendar-component-set": "VTODO",
            },
            "contacts": {"tag": "VADDRESSBOOK"},
        }
        self.config = {
            "server": {"hosts": f"127.0.0.1:{self.port}"},
            "auth": auth,
            "storage": {
                "filesystem_folder": str(root / "collections"),
                "predefined_collections": json.dumps(collections),
                "_filesystem_fsync": "False",
            },
            "logging": {"level": "warning", "mask_passwords": "True"},
        }

    @property
    def url(self) -> str:
        """The base URL a user would configure."""
        return f"http://127.0.0.1:{self.port}/"

    def calendar_url(self, name: str = CALENDAR) -> str:
        return f"{self.url}{USER}/{name}/"

    def start(self) -> Radicale:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _SERVE, json.dumps(self.config)],
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"radicale exited at start:\n{self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"radicale did not start:\n{self.log.read_text()}") from None
                time.sleep(0.05)
        # The first authenticated request creates the predefined collections.
        self.client().request("PROPFIND", f"{self.url}{USER}/", headers={"Depth": "1"})
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def client(self) -> httpx.Client:
        return httpx.Client(auth=(USER, PASSWORD), timeout=10)

    # -- events ------------------------------------------------------------------------

    def put(self, name: str, ics: str, calendar: str = CALENDAR) -> str:
        """PUT an event as `<name>.ics`; returns its href (path)."""
        url = f"{self.calendar_url(calendar)}{name}.ics"
        with self.client() as c:
            r = c.put(url, content=ics.encode(), headers={"Content-Type": "text/calendar"})
        assert r.status_code in (201, 204), (r.status_code, r.text)
        return httpx.URL(url).path

    def delete(self, name: str, calendar: str = CALENDAR) -> None:
        with self.client() as c:
            r = c.delete(f"{self.calendar_url(calendar)}{name}.ics")
        assert r.status_code in (200, 204), (r.status_code, r.text)

    def file(self, name: str, calendar: str = CALENDAR) -> Path:
        """Where the server keeps an item: write here for large fixtures, no PUT needed."""
        return self.root / "collections" / "collection-root" / USER / calendar / f"{name}.ics"


def _started(root: Path, htpasswd: bool) -> Iterator[Radicale]:
    server = Radicale(root, htpasswd=htpasswd)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def radicale(tmp_path: Path) -> Iterator[Radicale]:
    """A Radicale accepting any user and password, with `alice`'s calendar."""
    yield from _started(tmp_path / "radicale", htpasswd=False)


@pytest.fixture
def radicale_htpasswd(tmp_path: Path) -> Iterator[Radicale]:
    """A Radicale that knows only alice:secret (failed logins are not delayed)."""
    yield from _started(tmp_path / "radicale-auth", htpasswd=True)


__all__ = ["CALENDAR", "PASSWORD", "USER", "Radicale", "free_port"]
