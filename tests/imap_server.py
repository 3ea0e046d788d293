"""A real Dovecot IMAP server on 127.0.0.1 for the mail tests (the recipe in TESTING.md).

Dovecot refuses to run its login process as root, and CI runs as root: the
server then runs as the unprivileged user `scripts/install-test-servers`
creates, in a temporary folder that user owns (pytest's own temporary folders
are 0700 root). As any other user it runs as that user. One account,
`alice` / `secret`, with INBOX and a `\\Sent` special-use folder; the IDLE
keep-alive comes every 2 s so a dead connection shows quickly. A failed
login is answered within half a second and the per-IP penalty is off, so a
test that retries a wrong password does not wait the 2–15 s a real server
makes it wait.

Messages are seeded with imaplib's APPEND, whose INTERNALDATE (the arrival
date) is given explicitly, or for bulk (benchmarks) written straight into the
Maildir, which a running Dovecot picks up.
"""

from __future__ import annotations

import contextlib
import grp
import imaplib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

RUN_AS = "nurtured-test"  # the user scripts/install-test-servers creates
INSTALL_HINT = (
    "Dovecot is not installed: run scripts/install-test-servers (or apt install dovecot-imapd)"
)

CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
mail_location = maildir:~/Maildir
imap_idle_notify_interval = 2 secs
{extra}

service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
service stats {{
  unix_listener stats-reader {{
    user = {user}
    group = {group}
    mode = 0660
  }}
  unix_listener stats-writer {{
    user = {user}
    group = {group}
    mode = 0660
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = home={root}/mail/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    {special_use}
    auto = subscribe
  }}
}}
"""


def dovecot_path() -> str | None:
    return shutil.which("dovecot") or next(
        (p for p in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if os.access(p, os.X_OK)),
        None,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ImapServer:
    """One Dovecot with one account; stop() and start() keep its mail and its port."""

    host = "127.0.0.1"
    username = "alice"
    password = "secret"

    def __init__(self, dovecot: str, root: Path, port: int) -> None:
        self.dovecot = dovecot
        self.root = root
        self.port = port
        # What the next start() offers; a test changes them between stop() and start().
        self.idle = True  # the IDLE capability (a client without it must poll)
        self.sent_flag = True  # Sent marked \Sent (RFC 6154); without it, known by name only
        self.tls = False  # implicit TLS on `tls_port`, and STARTTLS on `port`
        self.tls_port = free_port()
        self._run_as = pwd.getpwnam(RUN_AS) if os.geteuid() == 0 else pwd.getpwuid(os.getuid())

    @property
    def config(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def maildir(self, mailbox: str = "INBOX") -> Path:
        """The Maildir folder of a mailbox (Dovecot's Maildir++ layout)."""
        home = self.root / "mail" / self.username / "Maildir"
        return home if mailbox.upper() == "INBOX" else home / f".{mailbox.replace('/', '.')}"

    # -- running -----------------------------------------------------------------------

    @property
    def certificate(self) -> Path:
        """The server's self-signed certificate (for 127.0.0.1 and localhost), once TLS is on."""
        return self.root / "cert.pem"

    def start(self, timeout: float = 10.0) -> None:
        """Write the config and start Dovecot; returns once it greets on its port."""
        # Without IDLE in the capabilities a client must poll (Dovecot still accepts it).
        extra = "" if self.idle else "imap_capability = IMAP4rev1 LITERAL+ UIDPLUS SPECIAL-USE"
        ssl = "ssl = no"
        if self.tls:
            self._make_certificate()
            ssl = f"ssl = yes\nssl_cert = <{self.certificate}\nssl_key = <{self.root}/key.pem"
        group = self._run_as.pw_gid
        self.config.write_text(
            CONFIG.format(
                root=self.root,
                port=self.port,
                tls_port=self.tls_port if self.tls else 0,
                ssl=ssl,
                special_use="special_use = \\Sent" if self.sent_flag else "",
                user=self._run_as.pw_name,
                group=grp.getgrgid(group).gr_name,
                extra=extra,
            )
        )
        (self.root / "passwd").write_text(f"{self.username}:{{PLAIN}}{self.password}\n")
        self._own(self.root)
        command = [self.dovecot, "-c", str(self.config)]
        if os.geteuid() == 0:
            command = ["runuser", "-u", self._run_as.pw_name, "--", *command]
        # The master daemonizes and keeps the inherited stdout/stderr: no pipes to wait on.
        errors = self.root / "start.err"
        with errors.open("wb") as stderr:
            done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
        if done.returncode != 0:
            raise RuntimeError(f"dovecot did not start: {errors.read_text()}{self.log}")
        deadline = time.monotonic() + timeout
        while not self._greets():
            if time.monotonic() > deadline:
                raise RuntimeError(f"dovecot did not answer on port {self.port}:\n{self.log}")
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop Dovecot by the PID in its master.pid; returns once it and its children are gone.

        An `imap` process serving a connected client outlives its master here
        (the client would keep talking to a stopped server), so the master's
        children, known by PID before it goes, are stopped too, as a real
        server shutdown or crash would drop them.
        """
        pid_file = self.root / "run" / "master.pid"
        if not pid_file.exists():
            return
        master = int(pid_file.read_text().split()[0])
        children = _children(master)
        with contextlib.suppress(ProcessLookupError):
            os.kill(master, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(master):
            if time.monotonic() > deadline:
                raise RuntimeError(f"dovecot (pid {master}) did not stop:\n{self.log}")
            time.sleep(0.02)
        for pid in children:
            if _alive(pid) and _owner(pid) == self._run_as.pw_uid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        while any(_alive(pid) for pid in children):
            if time.monotonic() > deadline:
                raise RuntimeError(f"dovecot's processes {children} did not stop:\n{self.log}")
            time.sleep(0.02)
        pid_file.unlink(missing_ok=True)

    def _make_certificate(self) -> None:
        if self.certificate.exists():
            return
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=IP:127.0.0.1,DNS:localhost",
                "-keyout",
                str(self.root / "key.pem"),
                "-out",
                str(self.certificate),
            ],
            check=True,
            capture_output=True,
        )

    def _greets(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as s:
                return s.recv(64).startswith(b"* OK")
        except OSError:
            return False

    def _own(self, path: Path) -> None:
        """Give the folder to the user Dovecot runs as (only root needs to)."""
        if os.geteuid() == 0:
            for item in (path, *path.rglob("*")):
                os.chown(item, self._run_as.pw_uid, self._run_as.pw_gid)

    # -- mail ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def client(self) -> Iterator[imaplib.IMAP4]:
        """A logged-in imaplib session of alice's."""
        imap = imaplib.IMAP4(self.host, self.port, timeout=10)
        try:
            imap.login(self.username, self.password)
            yield imap
        finally:
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                imap.logout()

    def append(self, mailbox: str, message: bytes | str, arrived: datetime, flags: str = "") -> int:
        """APPEND one message with its arrival date (INTERNALDATE); returns its UID."""
        raw = message.encode() if isinstance(message, str) else message
        raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        with self.client() as imap:
            status, data = imap.append(
                _quoted(mailbox), flags or None, imaplib.Time2Internaldate(arrived), raw
            )
        if status != "OK":
            raise RuntimeError(f"APPEND to {mailbox} failed: {data}")
        # [APPENDUID <uidvalidity> <uid>] (Dovecot has UIDPLUS)
        return int(data[0].split(b"APPENDUID ")[1].split(b"]")[0].split()[1])

    def create(self, mailbox: str) -> None:
        self._command("create", mailbox)

    def delete(self, mailbox: str) -> None:
        self._command("delete", mailbox)

    def uidvalidity(self, mailbox: str) -> int:
        with self.client() as imap:
            status, data = imap.status(_quoted(mailbox), "(UIDVALIDITY)")
        if status != "OK":
            raise RuntimeError(f"STATUS {mailbox} failed: {data}")
        return int(data[0].split(b"UIDVALIDITY ")[1].split(b")")[0])

    def deliver(self, mailbox: str, message: bytes, arrived: datetime) -> None:
        """Write a message file straight into the Maildir (bulk seeding, for benchmarks).

        Into cur/ and marked seen, as a synced mailbox has it; Dovecot takes
        the file's mtime as the arrival date. The folder must exist.
        """
        stamp = arrived.timestamp()
        path = self.maildir(mailbox) / "cur" / f"{int(stamp)}.{uuid.uuid4().hex}.nurtured:2,S"
        path.write_bytes(message)
        os.utime(path, (stamp, stamp))
        if os.geteuid() == 0:
            os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)

    def _command(self, name: str, mailbox: str) -> None:
        with self.client() as imap:
            status, data = getattr(imap, name)(_quoted(mailbox))
        if status != "OK":
            raise RuntimeError(f"{name.upper()} {mailbox} failed: {data}")


def _quoted(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _alive(pid: int) -> bool:
    """Whether a process still runs (a zombie has exited: the daemonized master's
    parent is init, which may reap it late)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found


def _owner(pid: int) -> int | None:
    try:
        return Path(f"/proc/{pid}").stat().st_uid
    except FileNotFoundError:
        return None


class NoServer(RuntimeError):
    """Dovecot, or the user to run it as, is not installed here."""


@contextlib.contextmanager
def dovecot() -> Iterator[ImapServer]:
    """A running Dovecot on a free loopback port, with an empty account; removed after."""
    path = dovecot_path()
    if path is None:
        raise NoServer(INSTALL_HINT)
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(RUN_AS)
        except KeyError:
            raise NoServer(
                f"no user {RUN_AS} to run Dovecot as: run scripts/install-test-servers"
            ) from None
    root = Path(tempfile.mkdtemp(prefix="nurtured-dovecot-"))
    server = ImapServer(path, root, free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def imap_server() -> Iterator[ImapServer]:
    """A running Dovecot for one test; skipped when it is not installed, failed under CI."""
    try:
        with dovecot() as server:
            yield server
    except NoServer as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
