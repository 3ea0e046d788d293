"""One logged-in IMAP connection, blocking: every method is meant to run in a thread.

IMAPClient is synchronous (and was measured about 4× faster than the asyncio
alternative at fetching headers); the plugin calls it through
`asyncio.to_thread`. IMAPClient is not thread-safe, so a lock lets one
thread at a time use the connection; only `interrupt()` bypasses it, to wake
a thread blocked in IDLE when the plugin is cancelled.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from functools import wraps
from typing import Any, Concatenate, ParamSpec, TypeVar

from imapclient import IMAPClient, SocketTimeout
from imapclient.exceptions import IMAPClientError
from imapclient.exceptions import LoginError as ServerLoginError

from nurtured.plugins import password

# Only the headers classification reads (nurtured.mail), never a body. Received is
# left out: there are many per message, and INTERNALDATE says when it arrived.
FIELDS = (
    "FROM TO CC DATE MESSAGE-ID IN-REPLY-TO REFERENCES SUBJECT"
    " AUTO-SUBMITTED X-AUTOREPLY X-AUTORESPOND LIST-ID PRECEDENCE"
)
HEADERS = f"BODY.PEEK[HEADER.FIELDS ({FIELDS})]"
SENT_NAMES = ("sent", "sent items", "sent mail", "sent messages")  # when no folder says \Sent
CONNECT_TIMEOUT = 30.0  # seconds
READ_TIMEOUT = 120.0  # seconds without a byte from the server: the connection is dead
IDLE_CHECK = 60.0  # seconds: the longest a thread waits in IDLE without looking up
IDLE_RENEW = 25 * 60.0  # seconds: servers may end an IDLE after 30 minutes (RFC 2177)


class LoginError(Exception):
    """The server refused the username or password (retrying at once would not help)."""


@dataclass(frozen=True, slots=True)
class Account:
    """Where and as whom to log in, checked before any connection is made."""

    host: str
    port: int
    security: str  # tls | starttls | none
    username: str
    password: str | None
    password_command: str | None

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> Account:
        security = options["security"].strip().lower()
        host = options["host"].strip()
        if security not in ("tls", "starttls", "none"):
            raise ValueError(f"security must be tls, starttls or none, not {security!r}")
        if security == "none" and not _is_loopback(host):
            raise ValueError(
                f"security: none would send the password to {host} unencrypted; it is only "
                "allowed for a server on 127.0.0.1 (use tls or starttls)"
            )
        if bool(options["password"]) == bool(options["password_command"]):
            raise ValueError("give either password (or !secret NAME) or password_command")
        return cls(
            host=host,
            port=options["port"] or (993 if security == "tls" else 143),
            security=security,
            username=options["username"],
            password=options["password"],
            password_command=options["password_command"],
        )

    @property
    def who(self) -> str:
        return f"{self.username}@{self.host}"

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"

    def secret(self) -> str:
        """The password, from the config or from the command (run anew at each login,
        so a rotated app password is picked up on the next reconnect)."""
        return password(self.password, self.password_command)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Folder:
    """A selected folder's identity: UIDs are only comparable within one UIDVALIDITY."""

    uidvalidity: int
    uidnext: int


P = ParamSpec("P")
R = TypeVar("R")


def _exclusive(
    method: Callable[Concatenate[Session, P], R],
) -> Callable[Concatenate[Session, P], R]:
    """Hold the session's lock for the call: one thread at a time on the connection."""

    @wraps(method)
    def locked(self: Session, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._lock:
            return method(self, *args, **kwargs)

    return locked


class Session:
    """A logged-in connection; `open()` raises LoginError or ConnectionError."""

    def __init__(self, client: IMAPClient, account: Account) -> None:
        self.client = client
        self.account = account
        self.can_idle = client.has_capability("IDLE")
        self._lock = threading.RLock()

    @classmethod
    def open(cls, account: Account) -> Session:
        password = account.secret()  # first: a locked vault needs no connection to say so
        context = ssl.create_default_context()
        try:
            client = IMAPClient(
                account.host,
                account.port,
                ssl=account.security == "tls",
                ssl_context=context,
                timeout=SocketTimeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT),
            )
        except OSError as exc:
            raise ConnectionError(f"{account.server}: cannot connect: {_reason(exc)}") from exc
        client.normalise_times = False  # INTERNALDATE with its zone, not naive local time
        if account.security == "starttls" and not client.has_capability("STARTTLS"):
            _shutdown(client)
            raise ConnectionError(f"{account.server}: the server does not offer STARTTLS")
        try:
            if account.security == "starttls":
                client.starttls(context)
            client.login(account.username, password)
        except ServerLoginError:
            _shutdown(client)
            raise LoginError(f"{account.who}: authentication failed") from None
        except OSError as exc:  # the TLS handshake (an untrusted certificate), a reset
            _shutdown(client)
            raise ConnectionError(f"{account.server}: cannot connect: {_reason(exc)}") from exc
        except BaseException:
            _shutdown(client)
            raise
        return cls(client, account)

    @_exclusive
    def folders(self) -> list[tuple[tuple[bytes, ...], bytes | None, str]]:
        """Every selectable folder: its flags (`\\Sent`, `\\Archive`…), delimiter and name."""
        return [
            (tuple(flags), delimiter, name)
            for flags, delimiter, name in self.client.list_folders()
            if b"\\Noselect" not in flags and b"\\NonExistent" not in flags
        ]

    @_exclusive
    def select(self, folder: str) -> Folder:
        """EXAMINE the folder: read-only, so no flag is ever changed."""
        info = self.client.select_folder(folder, readonly=True)
        return Folder(int(info[b"UIDVALIDITY"]), int(info.get(b"UIDNEXT", 0)))

    @_exclusive
    def search(self, since: date, after: int) -> list[int]:
        """UIDs above `after` that arrived since `since`, ascending.

        `UID after+1:*` matches the newest message even when it is below
        `after+1` (the `*` is the highest UID): hence the filter.
        """
        uids = self.client.search(["UID", f"{after + 1}:*", "SINCE", since])
        return sorted(uid for uid in uids if uid > after)

    @_exclusive
    def headers(self, uids: Iterable[int]) -> list[tuple[int, bytes, datetime | None]]:
        """(UID, raw header block, arrival time) per message, in UID order."""
        found = []
        for uid, data in sorted(self.client.fetch(list(uids), [HEADERS, "INTERNALDATE"]).items()):
            raw = next((v for k, v in data.items() if k.startswith(b"BODY[")), None) or b""
            found.append((uid, raw, data.get(b"INTERNALDATE")))
        return found

    @_exclusive
    def wait_for_mail(self, folder: str, last_uid: int, seconds: float) -> None:
        """Wait in IDLE until `folder` has new mail or `seconds` passed (25 minutes at most).

        Mail that came between the last read and this call is seen at once
        through UIDNEXT. A wake-up with nothing to say ends the wait early:
        IMAPClient reports a closed connection that way, and the DONE that
        ends IDLE then fails loudly instead of spinning.
        """
        if self.select(folder).uidnext > last_uid + 1:
            return
        deadline = time.monotonic() + min(seconds, IDLE_RENEW)
        self.client.idle()
        news = False
        while not news and (left := deadline - time.monotonic()) > 0:
            wait = min(left, IDLE_CHECK)
            started = time.monotonic()
            responses = self.client.idle_check(timeout=wait)
            news = any(len(r) > 1 and r[1] == b"EXISTS" for r in responses)
            if not responses and time.monotonic() - started < wait - 0.5:
                break
        self.client.idle_done()

    def interrupt(self) -> None:
        """Wake a thread blocked on the connection (in IDLE, say): it fails at once.

        Never blocks, so the event loop may call it. Only the socket is shut
        down, not closed: a thread about to wait on its descriptor must not
        find it closed and reused by another connection. The plain socket's
        shutdown, not SSLSocket's, which would also drop the TLS state under
        the reading thread's feet.
        """
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self.client.socket(), socket.SHUT_RDWR)

    @_exclusive
    def close(self) -> None:
        """Drop the connection, once no other thread uses it; safe on a dead connection."""
        _shutdown(self.client)


def _shutdown(client: IMAPClient) -> None:
    with contextlib.suppress(OSError, IMAPClientError, ValueError):
        client.shutdown()


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
