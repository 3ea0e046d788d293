"""The daemon: one task group owning the sources, the scheduler and the watchers.

Start-up order: config, database, sources (each reads what it has), then
READY. The scheduler sleeps until the next due time, a poke (a source or
the CLI changed something) or a config reload; it never polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import signal
import socket
import struct
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from nurtured import config as configuration
from nurtured import plugins, reminders, systemd
from nurtured.clock import Clock
from nurtured.config import Config, ConfigError, Source
from nurtured.notify import Notifier, Redactor
from nurtured.planner import in_quiet_hours, next_day
from nurtured.store import Store

log = logging.getLogger(__name__)

READY_TIMEOUT = 15.0  # seconds to wait for sources' first read before saying READY
HOLD_TIMEOUT = 300.0  # …and before nudging anyway, if a source never finishes its first read
MAX_SLEEP = timedelta(minutes=15)  # re-check the wall clock now and then (suspend, clock jumps)


def control_address(state_dir: Path) -> str:
    """The daemon's abstract socket for this state dir: the CLI says "replan" there."""
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:16]
    return f"\0nurtured-{digest}"


def poke(state_dir: Path, people: list[int] | None) -> bool:
    """Tell a running daemon that these people (None: everyone) changed. Best effort."""
    message = json.dumps({"replan": people}).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(message, control_address(state_dir))
        except OSError:
            return False  # no daemon running: the CLI already replanned itself
    return True


@dataclass
class SourceRun:
    source: Source
    task: asyncio.Task[None] | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)


class Daemon:
    def __init__(self, config: Config, store: Store, clock: Clock, redactor: Redactor) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.redactor = redactor
        self.notifier = Notifier(config.channels)
        self.sources: dict[str, SourceRun] = {}
        self.wake = asyncio.Event()
        self.stop = asyncio.Event()
        self._reloading = asyncio.Lock()  # a save and a SIGHUP may come together
        self._tasks: asyncio.TaskGroup | None = None
        # People touched while the sources do their first read: replanned once, at READY.
        self._deferred: set[int] | None = set()

    # -- lifecycle ------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop.set)
        loop.add_signal_handler(signal.SIGINT, self.stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload()))
        close_control = self._listen()
        recovered = await self.store.recover_sending()
        if recovered:
            log.warning(
                "%d nudge(s) were being delivered when nurtured stopped: sending again", recovered
            )
        await self.store.set_meta("config_error", None)
        dropped = await self.store.drop_sources(s.name for s in self.config.sources)
        if dropped:
            log.info("forgot %d people's cards and history from sources no longer configured",
                     len(dropped))  # fmt: skip
        await reminders.replan(self.store, self.config, self.clock.now())
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                self._start_sources(self.config.sources)
                sources_read = asyncio.ensure_future(self._sources_read())
                await self._wait(sources_read, READY_TIMEOUT, "saying READY")
                deferred, self._deferred = self._deferred, None
                await self.changed(deferred)
                systemd.notify("READY=1", f"STATUS={self._status_line()}")
                log.info("nurtured is running: %s", self._status_line())
                tasks.create_task(self._schedule(sources_read))
                tasks.create_task(self._daily())
                tasks.create_task(self._watch_config())
                if interval := systemd.watchdog_interval():
                    tasks.create_task(self._watchdog(interval))
                await self.stop.wait()
                systemd.notify("STOPPING=1")
                log.info("stopping")
                raise _Stop
        except* _Stop:
            pass
        finally:
            close_control()
            for run in self.sources.values():
                await self.store.set_source_health(
                    run.source.name, run.source.plugin, "stopped", "", datetime.now(UTC), None, 0
                )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a piece of work beside the others; its failure is logged, never fatal."""
        if self._tasks is None:
            coro.close()
            return

        async def guarded() -> None:
            try:
                await coro
            except Exception:
                log.exception("background work failed")

        self._tasks.create_task(guarded())

    def _status_line(self) -> str:
        return f"{len(self.sources)} source(s), {len(self.config.rules)} rule(s)"

    async def _watchdog(self, interval: float) -> None:
        while True:
            systemd.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    # -- the control socket ------------------------------------------------------------

    def _listen(self) -> Callable[[], None]:
        """Listen on the control socket; returns the function that stops listening."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        # The kernel tells who sent each datagram: only our own user may poke us.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        try:
            sock.bind(control_address(self.config.state_dir))
        except OSError as exc:
            sock.close()
            raise SystemExit(
                f"another nurtured seems to run on {self.config.state_dir} ({exc.strerror})"
            ) from None
        sock.setblocking(False)
        loop = asyncio.get_running_loop()

        credentials = struct.Struct("3i")  # struct ucred: pid, uid, gid

        def on_message() -> None:
            try:
                data, ancillary, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE(credentials.size))
                people = _replan_request(data)
            except (OSError, ValueError) as exc:
                log.warning("ignored a control message: %s", exc)
                return
            senders = [
                credentials.unpack(cdata[: credentials.size])[1]
                for level, kind, cdata in ancillary
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS
            ]
            if senders != [os.getuid()]:
                log.warning("ignored a control message from another user (uid %s)", senders)
                return
            self._spawn(self.changed(people))

        loop.add_reader(sock.fileno(), on_message)

        def close() -> None:
            loop.remove_reader(sock.fileno())
            sock.close()

        return close

    # -- sources -------------------------------------------------------------------------

    def _start_sources(self, sources: tuple[Source, ...]) -> None:
        assert self._tasks is not None
        for source in sources:
            run = SourceRun(source)
            run.task = self._tasks.create_task(self._run_source(run), name=source.name)
            self.sources[source.name] = run

    async def _run_source(self, run: SourceRun) -> None:
        source = run.source
        health = {"state": "starting", "restarts": 0}

        async def report(h: plugins.Health) -> None:
            health.update(state=h.state, restarts=h.restarts)
            if h.state in ("failed", "stopped"):
                run.ready.set()  # don't hold READY for a source that cannot start
            await self.store.set_source_health(
                source.name,
                source.plugin,
                h.state,
                self.redactor.redact(h.error),  # a server's error may quote a password
                h.since,
                h.retry_at,
                h.restarts,
            )

        def ready() -> None:
            run.ready.set()
            self._spawn(
                self.store.set_source_health(
                    source.name,
                    source.plugin,
                    "running",
                    "",
                    datetime.now(UTC),
                    None,
                    health["restarts"],
                )
            )

        sink = plugins.Sink(
            source.name, self.store, self.config.timezone, self.changed, ready, self.config.me
        )

        async def start() -> None:
            missing = source.manifest.missing_requirements()
            if missing:
                raise RuntimeError(f"missing requirements: {', '.join(missing)} (pip install them)")
            module = plugins.load(source.manifest)
            await module.run(source.options, sink)

        await report(plugins.Health())
        await plugins.supervise(start, source.name, report)

    async def _sources_read(self) -> None:
        """Every source has done its first read (or failed)."""
        await asyncio.gather(*(r.ready.wait() for r in self.sources.values()))

    async def _wait(self, sources_read: asyncio.Future[None], timeout: float, what: str) -> None:
        await asyncio.wait({sources_read}, timeout=timeout)
        if not sources_read.done():
            slow = [n for n, r in self.sources.items() if not r.ready.is_set()]
            log.warning("still reading %s; %s anyway", ", ".join(slow), what)

    async def _stop_source(self, name: str) -> None:
        task = self.sources.pop(name).task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- planning and delivery ------------------------------------------------------------

    async def changed(self, people: set[int] | None) -> None:
        """Something about these people changed: replan them and let the scheduler look.

        During the first read of the sources (a cold import hands over thousands of
        people batch after batch) they are only noted, and replanned once at READY.
        """
        if self._deferred is not None:
            if people is None:
                self._deferred.clear()  # first: people noted while this runs are kept
                await reminders.replan(self.store, self.config, self.clock.now())
            else:
                self._deferred |= people
            return
        await reminders.replan(self.store, self.config, self.clock.now(), people)
        self.wake.set()

    async def _daily(self) -> None:
        """Everyone is judged anew after each local midnight: health and stage move with
        time even when nothing happens."""
        midnight = next_day(self.clock.now(), self.config.timezone)
        while True:
            left = min(midnight - self.clock.now(), MAX_SLEEP)  # short steps: suspend, jumps
            await asyncio.sleep(max(left.total_seconds(), 0))
            if self.clock.now() >= midnight:
                try:
                    await self.changed(None)
                except Exception:  # a locked database must not stop the daemon
                    log.exception("the daily replan failed; trying again tomorrow")
                midnight = next_day(self.clock.now(), self.config.timezone)

    async def _schedule(self, sources_read: asyncio.Future[None]) -> None:
        # Nudge only once the sources have read what they have: the most overdue
        # people first, not whoever's card happened to be read first.
        await self._wait(sources_read, HOLD_TIMEOUT, "nudging")
        failures = 0
        while True:
            self.wake.clear()
            now = self.clock.now()
            try:
                await reminders.queue_due(self.store, self.config, now)
                held = await reminders.deliver(self.store, self.config, self.notifier, now)
                upcoming = await self.store.next_due(now)
                failures = 0
            except Exception:  # a bad row or a full disk must not stop every nudge for good
                failures += 1
                log.exception("planning or delivery failed; trying again")
                held, upcoming = now + reminders.retry_delay(failures), None
            until = min((t for t in (held, upcoming) if t is not None), default=now + MAX_SLEEP)
            delay = min(until - self.clock.now(), MAX_SLEEP).total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), max(delay, 0.05))

    # -- config reload ---------------------------------------------------------------------

    async def _watch_config(self) -> None:
        names = {self.config.path.name, "secrets.yaml"}
        async for paths in plugins.watch(self.config.path.parent, recursive=False):
            if any(p.name in names for p in paths) and self.config.path.exists():
                await self.reload()

    async def reload(self) -> None:
        """Parse, validate, swap atomically, replan: one path for file edits and SIGHUP."""
        async with self._reloading:
            await self._reload()

    async def _reload(self) -> None:
        systemd.reloading()
        try:
            new = configuration.load(self.config.path)
            notifier = Notifier(new.channels)
        except Exception as exc:  # a ConfigError, or a bug: either way keep the rules running
            text = self.redactor.redact(str(exc))
            log.error("%s — the previous rules keep running", text,
                      exc_info=None if isinstance(exc, ConfigError) else exc)  # fmt: skip
            told = await self.store.meta("config_error")
            await self.store.set_meta("config_error", text)
            systemd.notify("READY=1", f"STATUS=config error, previous rules kept: {text}")
            now, limits = self.clock.now(), self.config.limits
            # Tell the user once per error, and not in the middle of the night.
            if text != told and not in_quiet_hours(now, limits.quiet_hours, self.config.timezone):
                for target in self.notifier.targets:
                    await self.notifier.send(
                        target,
                        "nurtured: your config has an error",
                        f"{text}\nThe previous rules keep running.",
                    )
            return
        old = self.config
        self.config, self.notifier = new, notifier
        self.redactor.update(new.channels, new.secrets)
        await self.store.set_meta("config_error", None)
        await self.store.retry_now()  # a channel may have just been fixed
        before = {s.name: s for s in old.sources}
        after = {s.name: s for s in new.sources}
        for name in before:
            if name not in after or after[name] != before[name] or old.me != new.me:
                await self._stop_source(name)
        await self.store.drop_sources(after)
        self._start_sources(tuple(s for n, s in after.items() if n not in self.sources))
        await self.changed(None)
        systemd.notify("READY=1", f"STATUS={self._status_line()}")
        log.info("config reloaded: %s", self._status_line())


def _replan_request(data: bytes) -> set[int] | None:
    """`{"replan": [ids]}` or `{"replan": null}` (everyone); anything else is refused."""
    message = json.loads(data)
    people = message.get("replan", ...) if isinstance(message, dict) else ...
    if people is None:
        return None
    if not isinstance(people, list) or not all(
        isinstance(p, int) and not isinstance(p, bool) for p in people
    ):
        raise ValueError(f"not a replan request: {data[:200]!r}")
    return set(people)


class _Stop(Exception):
    """Raised inside the task group to cancel every task on shutdown."""


async def serve(path: Path, clock: Clock, redactor: Redactor) -> int:
    """Run the daemon on the config at `path` until SIGTERM/SIGINT."""
    try:
        config = configuration.load(path)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    redactor.update(config.channels, config.secrets)
    store = await Store.open(config.state_dir)
    try:
        try:
            daemon = Daemon(config, store, clock, redactor)
        except ConfigError as exc:
            log.error("%s", exc)
            return 2
        await daemon.run()
    finally:
        await store.close()
    return 0
