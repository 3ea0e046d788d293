"""What the benchmarks share: a source plugin started in-process on a store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from nurtured import plugins
from nurtured.store import Store


def start_source(
    store: Store, domain: str, options: dict[str, Any], me: tuple[str, ...] = ()
) -> tuple[asyncio.Task[None], asyncio.Event]:
    """The plugin's run() as the daemon runs it (what it touches is not replanned), and
    the event it sets once its first read is done."""
    ready = asyncio.Event()

    async def changed(people: set[int]) -> None:
        pass

    sink = plugins.Sink(f"{domain}:bench", store, ZoneInfo("UTC"), changed, ready.set, me)
    manifest = plugins.find(domain, Path("."))
    assert manifest is not None
    return asyncio.create_task(plugins.load(manifest).run(options, sink)), ready
