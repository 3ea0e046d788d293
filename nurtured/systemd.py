"""The few lines of systemd integration a Type=notify service needs, and journald-aware logs."""

from __future__ import annotations

import logging
import os
import socket
import sys
import time


def notify(*lines: str) -> bool:
    """Send sd_notify lines (READY=1, STATUS=…); a no-op outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.connect(address)
            sock.sendall("\n".join(lines).encode())
        except OSError:
            return False
    return True


def reloading() -> bool:
    """RELOADING=1 with the monotonic timestamp systemd needs to wait for READY."""
    return notify(
        "RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"
    )


def watchdog_interval() -> float | None:
    """Half the watchdog timeout, in seconds, when systemd asked for pings."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and int(pid) != os.getpid()):
        return None
    return int(usec) / 2_000_000


def under_journald() -> bool:
    """True when stderr is the journal: it stamps lines itself."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    try:
        device, inode = (int(x) for x in stream.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (device, inode)


def setup_logging(level: int = logging.INFO) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not under_journald():
        fmt = "%(asctime)s " + fmt
    handler.setFormatter(logging.Formatter(fmt, "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # watchfiles logs every change at INFO: a log file in a watched folder would feed itself.
    for noisy in ("apprise", "watchfiles", "imapclient"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return handler
