"""Local mail in mbox files: one file, or a folder of them.

A folder is read as Thunderbird keeps `Mail/Local Folders`: a file per mail
folder (`Inbox`, `Sent`), subfolders in `<name>.sbd/`, and `.msf` index files
beside them, which are skipped, as are Drafts, Templates, Junk and Spam.

Files are streamed: From_ lines are found chunk by chunk and only each
message's header block is parsed, so a mailbox of many gigabytes costs a few
megabytes of memory. The cursor keeps, per file, its inode, the offset read up
to (the start of a message, or the end of the file) and a fingerprint of the
bytes just before it. Mail appended since is read from that offset; a file
that was replaced, compacted or shrunk is read again from the start, which
records nothing twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from nurtured import mail
from nurtured.model import Interaction
from nurtured.plugins import FileSet, Sink, in_thread, merge_cursor, watch

BATCH = 2000  # messages per transaction on a cold read
CHUNK = 1 << 20  # bytes read at a time while looking for the next From_ line
HEAD_LIMIT = 256 * 1024  # a header block longer than this is not mail: read no further
TAIL = 64  # bytes before the offset read up to whose hash shows the file was not rewritten
# "From sender@example.org Tue Mar 10 10:00:00 2026", "From - Tue Mar 10 ...": a time
# on the line tells a message's first line from a body line that starts with "From ".
_FROM_LINE = re.compile(rb"From .*\d\d?:\d\d")
_HEADER_END = re.compile(rb"\r?\n\r?\n")


def _wanted(name: str) -> bool:
    """mbox files, not Thunderbird's .msf indexes, and not Drafts, Junk or Spam."""
    return not name.lower().endswith(".msf") and mail.is_contact_folder(name.removesuffix(".mbox"))


@dataclass
class Batch:
    """Interactions for one transaction, with the cursor entries they complete."""

    interactions: list[Interaction] = field(default_factory=list)
    cursor: dict[str, Any] = field(default_factory=dict)
    read: int = 0  # messages whose headers were read


async def run(options: dict[str, Any], sink: Sink) -> None:
    path: Path = options["path"]
    settings = mail.Settings.of(options)
    box = FileSet(path, await asyncio.to_thread(path.is_dir), _wanted)
    cursor = await sink.cursor()
    keys = await asyncio.to_thread(box.stamps)
    await _sync(box, sorted(set(keys) | set(cursor)), cursor, sink, settings)
    sink.ready()
    async for paths in watch(box.folder, recursive=box.is_folder):
        changed = sorted({key for p in paths if (key := box.key(p))})
        if changed:
            await _sync(box, changed, cursor, sink, settings)


async def _sync(
    box: FileSet, keys: list[str], cursor: dict[str, Any], sink: Sink, settings: mail.Settings
) -> None:
    """Read what was added to the files `keys`; `cursor` is updated in place.

    Reading and parsing run in a thread, the next batch while this one is stored.
    """
    batches = _batches(box, keys, dict(cursor), sink, settings)
    read = 0
    async for batch in in_thread(batches):
        await sink.record(batch.interactions, cursor=batch.cursor)
        merge_cursor(cursor, batch.cursor)
        read += batch.read
    if read:
        sink.log.info("read %d new message(s) from %s", read, box.path)


def _batches(
    box: FileSet, keys: list[str], cursor: dict[str, Any], sink: Sink, settings: mail.Settings
) -> Iterator[Batch]:
    now = datetime.now(UTC)
    batch = Batch()
    for key in keys:
        path = box.folder / key
        try:
            file = open(path, "rb")
        except FileNotFoundError:
            if key in cursor:
                batch.cursor[key] = None  # gone: forget it (what it held stays recorded)
            continue
        except IsADirectoryError:  # a new subfolder (`Inbox.sbd`): its files are seen apart
            continue
        except OSError as exc:
            sink.log.warning("%s: cannot read: %s", path, exc.strerror)
            continue
        with file:
            fd = file.fileno()
            inode = os.fstat(fd).st_ino
            start = _resume(fd, inode, cursor.get(key))
            if start == 0 and os.pread(fd, 5, 0) != b"From ":
                continue  # empty, or not an mbox (Thunderbird keeps other files here too)
            offset = start
            for begin, head, end in _messages(file, start):
                headers = mail.parse(head)
                if headers is None:
                    sink.log.warning(
                        "%s: message at byte %d skipped: not a mail message (no From address)",
                        path,
                        begin,
                    )
                else:
                    batch.interactions += settings.interactions(
                        headers, sink.me, arrived=headers.received, now=now
                    )
                batch.read += 1
                offset = end
                if batch.read == BATCH:
                    batch.cursor[key] = _mark(fd, inode, offset)
                    yield batch
                    batch = Batch()
            if (mark := _mark(fd, inode, offset)) != cursor.get(key):
                batch.cursor[key] = mark
    if batch.cursor or batch.read:
        yield batch


def _mark(fd: int, inode: int, offset: int) -> dict[str, Any]:
    return {"inode": inode, "offset": offset, "tail": _tail(fd, offset)}


def _tail(fd: int, offset: int) -> str:
    length = min(TAIL, offset)
    return hashlib.sha256(os.pread(fd, length, offset - length)).hexdigest()[:16]


def _resume(fd: int, inode: int, saved: dict[str, Any] | None) -> int:
    """Where to read on: the saved offset, or 0 when the file is not the one read before."""
    if not saved or saved.get("inode") != inode:
        return 0
    offset = int(saved.get("offset", 0))
    if offset > os.fstat(fd).st_size or _tail(fd, offset) != saved.get("tail"):
        return 0
    return offset


def _messages(file: BinaryIO, start: int) -> Iterator[tuple[int, bytes, int]]:
    """(start, header block, end) of each complete message from `start` on.

    A last message whose headers are still being written is left for later.
    """
    fd = file.fileno()
    boundaries = _from_lines(file, start)
    begin, end = next(boundaries), next(boundaries, None)
    while end is not None:
        following = next(boundaries, None)
        head = _head(fd, begin, end, last=following is None)
        if head is None:
            return
        yield begin, head, end
        begin, end = end, following


def _from_lines(file: BinaryIO, start: int) -> Iterator[int]:
    """The offsets of the From_ lines at or after `start` (a line start), then the end.

    The end is that of the last whole line: a line still being written (perhaps
    the next From_ line) is read again, from its start, next time. Messages in
    between are only scanned (in C, by `bytes.find`), never parsed.
    """
    file.seek(start)
    buf, base = b"\n", start - 1  # buf[0] stands for the line end just before `start`
    line_start = start
    while True:
        chunk = file.read(CHUNK)
        if (last_line_end := chunk.rfind(b"\n")) != -1:
            line_start = base + len(buf) + last_line_end + 1
        buf += chunk
        keep = max(len(buf) - 5, 0)  # a "\nFrom " cut by the chunk's end is found next time
        i = buf.find(b"\nFrom ")
        while i != -1:
            eol = buf.find(b"\n", i + 1)
            if eol == -1 and chunk:  # the line goes on in the next chunk
                keep = i
                break
            if _FROM_LINE.match(buf, i + 1, eol if eol != -1 else len(buf)):
                yield base + i + 1
            i = buf.find(b"\nFrom ", i + 1)
        if not chunk:
            yield line_start
            return
        buf, base = buf[keep:], base + keep


def _head(fd: int, begin: int, end: int, last: bool) -> bytes | None:
    """The header block of the message in bytes [begin, end), without its From_ line.

    None when the `last` message ends before its headers do: a file still
    being written. (Another message that does is all headers.)
    """
    size = end - begin
    data = os.pread(fd, min(size, 8192), begin)
    while not (found := _HEADER_END.search(data)):
        if len(data) >= HEAD_LIMIT:
            break
        more = os.pread(fd, min(size - len(data), 65536), begin + len(data))
        if not more:
            if last:
                return None
            break
        data += more
    first_line_end = data.find(b"\n") + 1
    return data[first_line_end : found.start() if found else len(data)]
