"""Source plugins: finding them, the narrow sink they write to, and keeping them alive.

A plugin is a package with a `manifest.yaml` (read before any of its code is
imported) and a module exposing `async def run(options, sink)`. Plugins are
found in this order: built in (`nurtured_plugins.<domain>`), then the
`nurtured.plugins` entry-point group, then `plugins/<domain>/` beside the
config file (for your own).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.metadata
import importlib.resources
import importlib.util
import itertools
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from nurtured.model import Card, Interaction, KeyDate

if TYPE_CHECKING:
    from nurtured.store import Store

log = logging.getLogger(__name__)

T = TypeVar("T")

ENTRY_POINT_GROUP = "nurtured.plugins"
OPTION_TYPES = {"string", "strings", "integer", "boolean", "duration", "path"}
MAX_BACKOFF = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Option:
    type: str
    required: bool = False
    default: Any = None
    help: str = ""


@dataclass(frozen=True, slots=True)
class Manifest:
    domain: str
    name: str
    version: str
    provides: tuple[str, ...]
    options: dict[str, Option]
    module: str  # the import name of the plugin's code
    origin: str  # "built-in", "entry point <dist>", or the folder it came from
    requirements: tuple[str, ...] = ()
    folder: Path | None = None  # for plugins beside the config, not importable by name

    def missing_requirements(self) -> list[str]:
        """Requirements not installed, by distribution name."""
        missing = []
        for requirement in self.requirements:
            name = requirement.split(";")[0].split("[")[0]
            for sep in "<>=!~ ":
                name = name.split(sep)[0]
            try:
                importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                missing.append(requirement)
        return missing


def _parse_manifest(text: str, module: str, origin: str, folder: Path | None = None) -> Manifest:
    """Read a manifest; any problem is a ValueError naming the plugin's origin."""
    try:
        return _manifest(yaml.safe_load(text) or {}, module, origin, folder)
    except (yaml.YAMLError, KeyError, TypeError, AttributeError, ValueError) as exc:
        problem = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ValueError(f"the manifest of the plugin from {origin} is broken: {problem}") from None


def _manifest(data: dict[str, Any], module: str, origin: str, folder: Path | None) -> Manifest:
    options = {}
    for key, spec in (data.get("options") or {}).items():
        if spec.get("type") not in OPTION_TYPES:
            raise ValueError(f"option {key!r}: type must be one of {sorted(OPTION_TYPES)}")
        options[key] = Option(
            spec["type"], bool(spec.get("required")), spec.get("default"), spec.get("help", "")
        )
    return Manifest(
        domain=data["domain"],
        name=data.get("name", data["domain"]),
        version=str(data.get("version", "0")),
        provides=tuple(data.get("provides", ())),
        options=options,
        module=module,
        origin=origin,
        requirements=tuple(data.get("requirements", ())),
        folder=folder,
    )


def _builtin(domain: str) -> Manifest | None:
    try:
        text = (
            importlib.resources.files("nurtured_plugins") / domain / "manifest.yaml"
        ).read_text()
    except (FileNotFoundError, NotADirectoryError, ModuleNotFoundError):
        return None
    return _parse_manifest(text, f"nurtured_plugins.{domain}", "built-in")


def _entry_point(domain: str) -> Manifest | None:
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=domain):
        spec = importlib.util.find_spec(ep.value.split(":")[0])
        if spec is None or not spec.submodule_search_locations:
            continue
        manifest = Path(next(iter(spec.submodule_search_locations))) / "manifest.yaml"
        dist = ep.dist.name if ep.dist else "?"
        return _parse_manifest(manifest.read_text(), ep.value, f"entry point ({dist})")
    return None


def _beside_config(domain: str, config_dir: Path) -> Manifest | None:
    folder = config_dir / "plugins" / domain
    manifest = folder / "manifest.yaml"
    if not manifest.is_file():
        return None
    return _parse_manifest(
        manifest.read_text(), f"nurtured_user_plugins.{domain}", str(folder), folder
    )


def find(domain: str, config_dir: Path) -> Manifest | None:
    """The manifest of a plugin, by resolution order, without importing its code."""
    for finder in (_builtin, _entry_point):
        if manifest := finder(domain):
            return manifest
    return _beside_config(domain, config_dir)


def available(config_dir: Path) -> dict[str, Manifest]:
    """Every plugin that could be configured, built-in ones first."""
    domains: list[str] = []
    root = importlib.resources.files("nurtured_plugins")
    domains += sorted(p.name for p in root.iterdir() if (p / "manifest.yaml").is_file())
    domains += [ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)]
    user = config_dir / "plugins"
    if user.is_dir():
        domains += sorted(p.name for p in user.iterdir() if (p / "manifest.yaml").is_file())
    found = {}
    for domain in domains:
        if domain in found:
            continue
        try:
            manifest = find(domain, config_dir)
        except ValueError as exc:  # one broken plugin must not hide the others
            log.warning("%s", exc)
            continue
        if manifest:
            found[domain] = manifest
    return found


def load(manifest: Manifest) -> ModuleType:
    """Import a plugin's code (only now, once it is configured and needed)."""
    if manifest.folder is None:
        return importlib.import_module(manifest.module.split(":")[0])
    if manifest.module in sys.modules:
        return sys.modules[manifest.module]
    spec = importlib.util.spec_from_file_location(
        manifest.module, manifest.folder / "__init__.py", submodule_search_locations=[]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"no __init__.py in {manifest.folder}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[manifest.module] = module
    spec.loader.exec_module(module)
    return module


class Sink:
    """All a plugin may do to the core: report cards, interactions and key dates, keep a cursor.

    Every call is one transaction; a `cursor` passed along is saved in the
    same transaction, so a crash never records progress without the data.
    """

    def __init__(
        self,
        source: str,
        store: Store,
        timezone: tzinfo,
        on_change: Callable[[set[int]], Awaitable[None]],
        on_ready: Callable[[], None],
        me: tuple[str, ...] = (),
    ) -> None:
        self.source = source
        self.timezone = timezone
        self.me = me  # the user's own addresses and patterns (config `me:`)
        self.log = logging.getLogger(f"nurtured.plugins.{source.split(':')[0]}")
        self._store = store
        self._on_change = on_change
        self._on_ready = on_ready

    async def upsert_cards(
        self, cards: Iterable[Card], cursor: dict[str, Any] | None = None
    ) -> None:
        touched = await self._store.upsert_cards(self.source, list(cards), cursor or {})
        await self._changed(touched)

    async def remove_cards(self, uids: Iterable[str], cursor: dict[str, Any] | None = None) -> None:
        touched = await self._store.remove_cards(self.source, list(uids), cursor or {})
        await self._changed(touched)

    async def record(
        self,
        interactions: Iterable[Interaction] = (),
        *,
        dates: Iterable[KeyDate] = (),
        gone: Iterable[str] = (),
        cursor: dict[str, Any] | None = None,
    ) -> None:
        """Record interactions and key dates; forget those recorded under the ids in
        `gone` (an event deleted, a file removed); all in one transaction."""
        touched = await self._store.record(
            self.source, list(interactions), list(dates), list(gone), cursor or {}
        )
        await self._changed(touched)

    async def cursor(self) -> dict[str, Any]:
        """Everything this source saved, by key (None values are deleted keys)."""
        return await self._store.cursor(self.source)

    async def progress(self, text: str) -> None:
        """How a long read is going ("INBOX: 40% …"), for `plugins` and `status`; "" ends it."""
        await self._store.set_source_progress(self.source, text)

    def ready(self) -> None:
        """Say the first full read is done; the daemon reports READY after all sources have."""
        self._on_ready()

    async def _changed(self, touched: set[int]) -> None:
        if touched:
            await self._on_change(touched)


PASSWORD_COMMAND_TIMEOUT = 60  # seconds: time to unlock a password manager


def password(value: str | None, command: str | None) -> str:
    """A source's password: given (often through !secret), or the first line a command
    prints (`pass show mail`, `secret-tool lookup …`). Run anew each time, so a rotated
    app password is picked up at the next connection. Blocking: call it in a thread.
    """
    if value:
        return value
    if not command:
        raise ValueError("give either password (or !secret NAME) or password_command")
    done = subprocess.run(
        command,
        shell=True,
        capture_output=True,
        text=True,
        timeout=PASSWORD_COMMAND_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        said = done.stderr.strip().splitlines()[-1:] or ["no message"]
        raise RuntimeError(f"password_command failed (exit {done.returncode}): {said[0]}")
    first = done.stdout.splitlines()[0] if done.stdout else ""
    if not first.strip():
        raise RuntimeError("password_command printed nothing")
    return first


def file_stamp(path: Path) -> list[int] | None:
    """A file's (mtime in ns, size), or None when it is gone: enough to see it changed."""
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_size]


@dataclass(frozen=True, slots=True)
class FileSet:
    """The files a source reads: a folder tree (a vdir, a mail folder) or one file.

    Files are known by their path relative to the folder; `wanted` says which
    names count. Blocking: call `stamps` in a thread.
    """

    path: Path
    is_folder: bool
    wanted: Callable[[str], bool]

    @property
    def folder(self) -> Path:
        return self.path if self.is_folder else self.path.parent

    def key(self, path: Path) -> str | None:
        if path.name.startswith(".") or not self.wanted(path.name):
            return None
        if not self.is_folder:
            return path.name if path == self.path else None
        try:
            return path.relative_to(self.path).as_posix()
        except ValueError:
            return None

    def stamps(self) -> dict[str, list[int]]:
        """Every wanted file with its (mtime, size): one stat per file."""
        if not self.is_folder:
            stamp = file_stamp(self.path)
            return {self.path.name: stamp} if stamp else {}
        found: dict[str, list[int]] = {}
        folders = [self.path]
        while folders:
            try:
                with os.scandir(folders.pop()) as entries:
                    for entry in entries:
                        if entry.is_dir(follow_symlinks=False):
                            folders.append(Path(entry.path))
                        elif (key := self.key(Path(entry.path))) and entry.is_file():
                            st = entry.stat()
                            found[key] = [st.st_mtime_ns, st.st_size]
            except FileNotFoundError:
                continue  # removed while we looked
        return found


async def ahead(jobs: Iterator[Awaitable[T]]) -> AsyncIterator[T]:
    """Await jobs in order, the next one already running while the caller handles this
    one's result (fetch and parse the next batch while this one is stored)."""

    def start() -> asyncio.Future[T] | None:
        job = next(jobs, None)
        return None if job is None else asyncio.ensure_future(job)

    upcoming = start()
    try:
        while upcoming is not None:
            result = await upcoming
            upcoming = start()
            yield result
    finally:
        if upcoming is not None:
            upcoming.cancel()


async def in_thread(batches: Iterator[T]) -> AsyncIterator[T]:
    """Make each batch in a thread (reading, parsing) while the caller stores the last one."""
    jobs = (asyncio.to_thread(next, batches, None) for _ in itertools.count())
    async with contextlib.aclosing(ahead(jobs)) as made:
        async for batch in made:
            if batch is None:
                return
            yield batch


def merge_cursor(cursor: dict[str, Any], entries: dict[str, Any]) -> None:
    """Apply saved cursor entries to a source's copy (None deletes a key)."""
    for key, entry in entries.items():
        if entry is None:
            cursor.pop(key, None)
        else:
            cursor[key] = entry


def _is_temporary(name: str, hidden: bool = False) -> bool:
    """Editors and sync tools write here first, then rename over the real file."""
    if name.startswith("#") or name.endswith(("~", ".tmp", ".swp", ".swx", ".part")):
        return True
    return name.startswith(".") and not hidden


async def watch(
    folder: Path, *, recursive: bool = True, hidden: bool = False
) -> AsyncIterator[set[Path]]:
    """Yield the paths under `folder` that were added, changed or removed.

    Watches the folder, not single files, because editors save by renaming a
    temporary file over the old one; temporary names are left out. `hidden`
    keeps dot-names (Maildir++ folders are `.Sent`, `.Archive`).
    """
    from watchfiles import awatch

    # A 200 ms step: changes are seen within a quarter second, and an idle watcher
    # costs milliseconds of CPU a minute (a 50 ms step cost several times more).
    async for changes in awatch(folder, debounce=200, step=200, recursive=recursive):
        paths = {Path(p) for _, p in changes if not _is_temporary(Path(p).name, hidden)}
        if paths:
            yield paths


@dataclass
class Health:
    """How a source is doing, as `nurtured plugins` and `status` show it."""

    state: str = "starting"  # starting | running | failed | stopped
    error: str = ""
    since: datetime = field(default_factory=lambda: datetime.now(UTC))
    retry_at: datetime | None = None
    restarts: int = 0


async def supervise(
    run: Callable[[], Awaitable[None]],
    name: str,
    report: Callable[[Health], Awaitable[None]],
    first_backoff: float = 1.0,
) -> None:
    """Run a plugin forever; on failure log it, report it and restart with back-off.

    A plugin that returns has finished its work (a one-shot source) and is
    reported as stopped. Cancellation (shutdown, reload) passes through.
    """
    health = Health()
    delay = first_backoff
    while True:
        started = datetime.now(UTC)
        try:
            await run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # isolation: one plugin's bug must not stop the daemon
            log.error("source %s failed: %s", name, exc, exc_info=exc)
            if datetime.now(UTC) - started > 2 * MAX_BACKOFF:
                delay = first_backoff  # it ran well for a while: start the back-off over
            health.state, health.error = "failed", f"{type(exc).__name__}: {exc}"
            health.since = datetime.now(UTC)
            health.retry_at = health.since + timedelta(seconds=delay)
            health.restarts += 1
            await report(health)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF.total_seconds())
            health.state, health.retry_at = "starting", None
            await report(health)
        else:
            health.state, health.error, health.since = "stopped", "", datetime.now(UTC)
            await report(health)
            return
