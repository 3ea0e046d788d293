"""Local mail in Maildir folders, as mbsync, offlineimap, notmuch and Dovecot keep it.

`path` is one Maildir (cur/, new/, tmp/) or a tree of them (`Mail/INBOX`,
`Mail/Archive`, Maildir++'s `.Sent`); every Maildir under it is read except
Drafts, Templates, Junk and Spam, and messages flagged as drafts. Only the
header block of each file is read, never the body.

The cursor keeps, per Maildir, the newest change time (ctime) read and the
keys of the messages changed at exactly that time, so a restart reads only the
files that appeared since. Change time, not modification time: sync tools set
mtime to the server's arrival date (mbsync's CopyArrivalDate, offlineimap's
utime_from_header), so a message moved in from the server can look older than
what was already read, while ctime is set by this machine whenever a file
appears. A flag change renames the file (`x` → `x:2,S`), which reads that one
message's headers again: harmless, an interaction is recorded once. A message's
key is its name without the flags (`x`).
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from nurtured import mail
from nurtured.model import Interaction
from nurtured.plugins import Sink, in_thread, merge_cursor, watch

BATCH = 2000  # messages per transaction on a cold read
HEAD_LIMIT = 256 * 1024  # a header block longer than this is not mail: read no further
MESSAGES = ("cur", "new")  # tmp/ holds deliveries still being written
NOT_MAILDIRS = frozenset({*MESSAGES, "tmp", ".notmuch"})  # never a Maildir below these
_INFO = re.compile(r"[:;!]2,")  # `name:2,FLAGS`; `;` or `!` where `:` cannot be in a name
_HEADER_END = re.compile(rb"\r?\n\r?\n")


@dataclass
class Mark:
    """How far one Maildir has been read: the newest ctime, and the keys read at exactly it."""

    changed: int = 0
    keys: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, saved: dict[str, Any] | None) -> Mark:
        if not saved:
            return cls()
        return cls(int(saved["changed"]), set(saved["keys"]))

    def is_new(self, changed: int, key: str) -> bool:
        return changed > self.changed or (changed == self.changed and key not in self.keys)

    def advance(self, changed: int, key: str) -> None:
        """Files are read in ctime order, so this only ever moves forward."""
        if changed > self.changed:
            self.changed, self.keys = changed, {key}
        else:
            self.keys.add(key)

    def saved(self) -> dict[str, Any]:
        return {"changed": self.changed, "keys": sorted(self.keys)}


@dataclass
class Batch:
    """Interactions for one transaction, with the cursor entries they complete."""

    interactions: list[Interaction] = field(default_factory=list)
    cursor: dict[str, Any] = field(default_factory=dict)
    read: int = 0  # files whose headers were read
    files: int = 0  # files looked at (drafts and mail older than the backfill are not read)


async def run(options: dict[str, Any], sink: Sink) -> None:
    root: Path = options["path"]
    settings = mail.Settings.of(options)
    if not await asyncio.to_thread(root.is_dir):
        raise FileNotFoundError(f"{root}: no such folder")
    cursor = await sink.cursor()
    known = await asyncio.to_thread(maildirs, root)
    if not known:
        sink.log.warning("no Maildir (a folder with cur/ and new/) under %s yet", root)
    await _sync(root, known, cursor, sink, settings, complete=True)
    sink.ready()
    async for changes in watch(root, hidden=True):
        paths = {p for p in changes if ".notmuch" not in p.parts}  # notmuch's own database
        touched = {p.parent.parent for p in paths if p.parent.name in MESSAGES} & set(known)
        if any(p.parent.name not in NOT_MAILDIRS or p.parent.parent not in known for p in paths):
            # Something besides messages of the known Maildirs: perhaps a new folder.
            found = await asyncio.to_thread(maildirs, root)
            touched |= set(found) - set(known)
            known = found
        if touched:
            await _sync(root, sorted(touched), cursor, sink, settings)


def maildirs(root: Path) -> list[Path]:
    """Every Maildir at or under `root` that holds contact, found without listing messages."""
    found, folders = [], [root]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as entries:
                subfolders = [e for e in entries if e.is_dir(follow_symlinks=False)]
        except OSError:
            continue
        names = {e.name for e in subfolders}
        if names.issuperset(MESSAGES) and mail.is_contact_folder(folder.name):
            found.append(folder)
        folders += [Path(e.path) for e in subfolders if e.name not in NOT_MAILDIRS]
    return sorted(found)


async def _sync(
    root: Path,
    folders: list[Path],
    cursor: dict[str, Any],
    sink: Sink,
    settings: mail.Settings,
    complete: bool = False,
) -> None:
    """Read what is new in `folders`; `cursor` is updated in place.

    Listing and parsing run in a thread, the next batch while this one is
    stored. `complete`: `folders` are all there are, so the cursor forgets the others.
    """
    batches = _batches(root, folders, dict(cursor), sink, settings, complete)
    read = files = 0
    async for batch in in_thread(batches):
        await sink.record(batch.interactions, cursor=batch.cursor)
        merge_cursor(cursor, batch.cursor)
        read, files = read + batch.read, files + batch.files
    if files:
        sink.log.info(
            "read %d new message(s) of %d file(s) in %d Maildir(s) under %s",
            read,
            files,
            len(folders),
            root,
        )


def _batches(
    root: Path,
    folders: list[Path],
    cursor: dict[str, Any],
    sink: Sink,
    settings: mail.Settings,
    complete: bool,
) -> Iterator[Batch]:
    now = datetime.now(UTC)
    oldest = int((now - settings.backfill).timestamp()) * 10**9
    batch = Batch()
    if complete:
        names = {_name(root, folder) for folder in folders}
        batch.cursor = {name: None for name in cursor if name not in names}
    for folder in folders:
        name = _name(root, folder)
        mark = Mark.of(cursor.get(name))
        unsaved = False
        for changed, key, path, modified, flags in _pending(folder, mark):
            # mtime is at or after the arrival (or set to it): older is beyond the backfill.
            if modified >= oldest and "D" not in flags:
                batch.interactions += _interactions(path, sink, settings, now)
                batch.read += 1
            mark.advance(changed, key)
            batch.files += 1
            unsaved = True
            if batch.files == BATCH:
                batch.cursor[name] = mark.saved()
                yield batch
                batch, unsaved = Batch(), False
        if unsaved:
            batch.cursor[name] = mark.saved()
    if batch.cursor or batch.files:
        yield batch


def _name(root: Path, folder: Path) -> str:
    return folder.relative_to(root).as_posix()


def _pending(folder: Path, mark: Mark) -> list[tuple[int, str, str, int, str]]:
    """Files not read yet, oldest change first: (ctime, key, path, mtime, flags)."""
    found = []
    for sub in MESSAGES:
        try:
            with os.scandir(folder / sub) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    try:
                        st = entry.stat()
                    except OSError:  # gone meanwhile: moved, so seen under its new name
                        continue
                    if not stat.S_ISREG(st.st_mode):
                        continue
                    key, flags = _split(entry.name)
                    if mark.is_new(st.st_ctime_ns, key):
                        found.append((st.st_ctime_ns, key, entry.path, st.st_mtime_ns, flags))
        except FileNotFoundError:
            continue
    found.sort()
    return found


def _split(name: str) -> tuple[str, str]:
    """A file name as (key, flags): `1700000000.M1P2.host:2,S` is (`1700000000.M1P2.host`, `S`)."""
    parts = _INFO.split(name, maxsplit=1)
    return parts[0], parts[1] if len(parts) > 1 else ""


def _interactions(
    path: str, sink: Sink, settings: mail.Settings, now: datetime
) -> list[Interaction]:
    """One message's interactions; a file that is not mail is skipped with a warning."""
    try:
        with open(path, "rb") as file:
            head = _head(file)
    except FileNotFoundError:  # moved meanwhile (a flag change): read under its new name
        return []
    except OSError as exc:
        sink.log.warning("%s: cannot read: %s", path, exc.strerror)
        return []
    headers = mail.parse(head)
    if headers is None:
        sink.log.warning("%s: skipped: not a mail message (no From address)", path)
        return []
    return settings.interactions(headers, sink.me, arrived=headers.received, now=now)


def _head(file: BinaryIO) -> bytes:
    """The header block, read in small steps up to the blank line that ends it.

    A message with a 20 MB attachment costs a few kilobytes.
    """
    head = file.read(8192)
    while not _HEADER_END.search(head) and len(head) < HEAD_LIMIT:
        more = file.read(65536)
        if not more:
            break
        head += more
    return head
