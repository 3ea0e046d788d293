"""Channels: Apprise URLs, the embedded console channel, and keeping secrets out of sight.

One Apprise object per configured URL, so each channel's outcome is known
and a retry goes only to the channels that failed. Apprise is imported here
only, lazily: it costs about a second and tens of MB on first use.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from nurtured.config import Channel, ConfigError

log = logging.getLogger(__name__)

_URL_SECRET = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<rest>[^\s'\"<>]+)", re.I)


def _console(body: str, title: str, notify_type: str, *args: Any, **kwargs: Any) -> bool:
    """The embedded default channel: the nudge on standard output."""
    rule = "─" * 60
    print(f"{rule}\n{title}\n\n{body}\n{rule}", file=sys.stdout, flush=True)
    return True


_registered = False


def _apprise() -> Any:
    global _registered
    import apprise
    from apprise.decorators import notify

    if not _registered:
        notify(on="console", name="Console")(_console)
        _registered = True
    return apprise


def redact_url(url: str) -> str:
    """An Apprise URL with its tokens and passwords masked."""
    apprise = _apprise()
    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    # The query holds Apprise's own defaults (retry, format…): noise in a log line.
    return plugin.url(privacy=True).split("?")[0] if plugin else _mask(url)


def _mask(url: str) -> str:
    match = _URL_SECRET.match(url)
    return f"{match['scheme']}…" if match else "…"


class Redactor(logging.Filter):
    """Replaces every secret and channel URL in log records with a masked form."""

    def __init__(self) -> None:
        super().__init__()
        self.replacements: list[tuple[str, str]] = []

    def update(self, channels: Iterable[Channel], secrets: Iterable[str]) -> None:
        pairs = {}
        for channel in channels:
            masked = redact_url(channel.url)
            if "*" in masked or "..." in masked:  # Apprise hid a password or token
                pairs[channel.url] = masked
        pairs.update((s, "***") for s in secrets if len(s) >= 4)
        self.replacements = sorted(pairs.items(), key=lambda p: -len(p[0]))

    def redact(self, text: str) -> str:
        for secret, mask in self.replacements:
            text = text.replace(secret, mask)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.replacements:
            record.msg = self.redact(record.getMessage())
            record.args = ()
            if record.exc_info and not record.exc_text:  # tracebacks quote URLs too
                record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
        return True


@dataclass
class Target:
    channel: Channel
    shown: str  # the URL as logs and output may show it
    apprise: Any


class Notifier:
    """The channels of one config generation, validated at load."""

    def __init__(self, channels: Sequence[Channel]) -> None:
        apprise = _apprise()
        self.targets: list[Target] = []
        for i, channel in enumerate(channels):
            obj = apprise.Apprise()
            if not obj.add(channel.url):
                raise ConfigError(
                    f"{channel.where}: notify[{i}].url: Apprise cannot use {_mask(channel.url)}"
                    " (see the Apprise documentation for the URL of each service)"
                )
            self.targets.append(Target(channel, redact_url(channel.url), obj))

    def for_tag(self, tag: str | None) -> list[Target]:
        """The channels a nudge goes to: those with its tag, or all when it has none."""
        return [t for t in self.targets if tag is None or tag in t.channel.tags]

    async def send(self, target: Target, title: str, body: str) -> str:
        """Send one message to one channel; returns '' on success, else why it failed."""
        try:
            result = await target.apprise.async_notify(title=title, body=body)
        except Exception as exc:  # a plugin bug is a failed delivery, retried later
            return f"{target.shown}: {type(exc).__name__}: {exc}"
        if result:
            return ""
        problems = [
            entry.message
            for outcome in getattr(result, "results", ())
            for attempt in outcome.attempts
            for entry in attempt.logs
            if entry.level in ("WARNING", "ERROR")
        ]
        detail = problems[-1] if problems else f"status {getattr(result, 'status', result)!s}"
        return f"{target.shown}: {detail}"
