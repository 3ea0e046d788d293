"""The daemon under systemd: sd_notify READY/RELOADING/WATCHDOG/STOPPING, journald logs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

CONFIG = """\
state_dir: ./state
sources:
  - plugin: vcard
    path: ./contacts
rules:
  - name: all
    every: 30d
"""


class NotifySocket:
    """What systemd listens on: a datagram socket collecting the daemon's messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[str] = []

    def wait_for(self, line: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.messages:
                if line in message.splitlines():
                    self.messages.remove(message)
                    return message
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                break
        raise AssertionError(f"no {line!r} from the daemon; got {self.messages}")


@pytest.fixture
def daemon_env(tmp_path):
    (tmp_path / "contacts").mkdir()
    (tmp_path / "contacts" / "a.vcf").write_text("BEGIN:VCARD\nVERSION:3.0\nFN:Ana\nEND:VCARD\n")
    (tmp_path / "config.yaml").write_text(CONFIG)
    notify = NotifySocket(tmp_path / "notify.sock")
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "400000"}
    env.pop("WATCHDOG_PID", None)
    yield tmp_path, notify, env
    notify.sock.close()


def start(tmp_path: Path, env: dict[str, str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "nurtured", "-c", str(tmp_path / "config.yaml"), "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=kwargs.pop("stderr", subprocess.DEVNULL),
        **kwargs,
    )


def test_ready_watchdog_reload_and_stop(daemon_env):
    tmp_path, notify, env = daemon_env
    process = start(tmp_path, env)
    try:
        ready = notify.wait_for("READY=1")
        assert "STATUS=1 source(s), 1 rule(s)" in ready
        notify.wait_for("WATCHDOG=1")
        notify.wait_for("WATCHDOG=1")  # pinged again, from the running event loop

        process.send_signal(signal.SIGHUP)
        reloading = notify.wait_for("RELOADING=1")
        [stamp] = [x for x in reloading.splitlines() if x.startswith("MONOTONIC_USEC=")]
        now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert 0 < now_usec - int(stamp.split("=")[1]) < 15_000_000
        notify.wait_for("READY=1")

        process.terminate()
        notify.wait_for("STOPPING=1")
        assert process.wait(timeout=15) == 0
    finally:
        process.kill()
        process.wait()


def test_a_bad_config_at_reload_still_answers_ready(daemon_env):
    tmp_path, notify, env = daemon_env
    process = start(tmp_path, env)
    try:
        notify.wait_for("READY=1")
        (tmp_path / "config.yaml").write_text(CONFIG.replace("every: 30d", "every: 30"))
        process.send_signal(signal.SIGHUP)
        ready = notify.wait_for("READY=1")
        assert "STATUS=config error, previous rules kept" in ready
        assert "config.yaml:7: rules[0].every" in ready
    finally:
        process.kill()
        process.wait()


def test_logs_carry_no_timestamps_under_journald(daemon_env):
    tmp_path, notify, env = daemon_env
    log = tmp_path / "stderr.log"
    with log.open("w") as stderr:
        st = os.fstat(stderr.fileno())
        env = {**env, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        process = start(tmp_path, env, stderr=stderr)
        try:
            notify.wait_for("READY=1")
        finally:
            process.terminate()
            process.wait(timeout=15)
    lines = log.read_text().splitlines()
    assert any(line.startswith("INFO nurtured.daemon: nurtured is running") for line in lines)
    assert not any(line[:4].isdigit() for line in lines)
