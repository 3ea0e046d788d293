"""The YAML config: load, validate, and say exactly where it is wrong.

The loader composes YAML into nodes first so every value keeps its line;
each error reads `config.yaml:23: rules[1].every: expected a duration...`.
Unknown keys are errors. `!secret NAME` reads `secrets.yaml` beside the
config, `!env VAR` the environment.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from nurtured import plugins
from nurtured.clock import parse_duration
from nurtured.planner import Limits
from nurtured.rules import (
    DEFAULT_ANSWER_WINDOW,
    DEFAULT_GRACE,
    DEFAULT_RENOTIFY,
    OCCASIONS,
    TEMPLATE_FIELDS,
    Match,
    PullBack,
    Rule,
)

DEFAULT_CHANNEL = "console://"
NAMED_BY = ("path", "url", "host")  # the option a source is named by when it has no name


class ConfigError(Exception):
    """A config problem, already phrased as `file:line: path: message`."""


@dataclass(frozen=True, slots=True)
class Source:
    """One configured source: which plugin, under which name, with which options."""

    name: str
    plugin: str
    options: dict[str, Any]
    manifest: plugins.Manifest


@dataclass(frozen=True, slots=True)
class Channel:
    """One Apprise URL. `key` identifies it across reloads without revealing it."""

    url: str
    tags: tuple[str, ...]
    where: str  # "config.yaml:12", for errors found later (Apprise rejects the URL)

    @property
    def key(self) -> str:
        return hashlib.sha256(self.url.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    timezone: ZoneInfo
    state_dir: Path
    sources: tuple[Source, ...] = ()
    channels: tuple[Channel, ...] = ()
    limits: Limits = field(default_factory=Limits)
    rules: tuple[Rule, ...] = ()
    me: tuple[str, ...] = ()  # the user's own addresses, or patterns like *@mycompany.example
    secrets: frozenset[str] = frozenset()  # values to keep out of logs and output


def default_path() -> Path:
    """Where the config lives when `-c` is not given."""
    if env := os.environ.get("NURTURED_CONFIG"):
        return Path(env)
    if conf_dir := os.environ.get("CONFIGURATION_DIRECTORY"):
        return Path(conf_dir.split(":")[0]) / "config.yaml"
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "nurtured" / "config.yaml"


def default_state_dir() -> Path:
    if state := os.environ.get("STATE_DIRECTORY"):
        return Path(state.split(":")[0])
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "nurtured"


def local_timezone() -> ZoneInfo:
    """The machine's zone by IANA name (a fixed offset would get DST wrong)."""
    if name := os.environ.get("TZ", "").lstrip(":"):
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        link = os.readlink("/etc/localtime")
        return ZoneInfo(link.split("zoneinfo/", 1)[1])
    except (OSError, IndexError, ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def load(path: Path) -> Config:
    """Read and validate the config at `path`, or raise ConfigError."""
    path = Path(path)
    return _Reader(path).config(_compose(_read_text(path), path))


def _read_text(path: Path) -> str:
    """A config file's text, or a ConfigError saying why it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (save the file as UTF-8)") from None


def locate(path: Path) -> Config:
    """Where a config keeps its state, even when it does not load.

    Read-only commands (`status`, `show`…) use this while the config has an
    error, so the user can still see their state, and the error, mid-edit.
    """
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    state_dir, tz = default_state_dir(), local_timezone()
    if match := re.search(r"^state_dir:[ \t]*['\"]?([^'\"#\n]+?)['\"]?[ \t]*(#.*)?$", text, re.M):
        state_dir = (Path(path).parent / Path(match[1]).expanduser()).resolve()
    if match := re.search(r"^timezone:[ \t]*['\"]?([\w/+-]+)", text, re.M):
        with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
            tz = ZoneInfo(match[1])
    return Config(path=Path(path), timezone=tz, state_dir=state_dir)


def _shown(value: object) -> str:
    """How a source is named after its path, URL or host: a URL (a calendar's
    "secret address") keeps only its host, with a hash to tell two apart."""
    text = str(value)
    parts = urlsplit(text)
    if not parts.scheme or not parts.hostname:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{parts.scheme}://{parts.hostname}/…{digest}"


def _compose(text: str, path: Path) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        # An unclosed quote or bracket is found at the end of the file; where it
        # opened is the line to fix.
        at_end = "end of stream" in (exc.problem or "")
        mark = (exc.context_mark if at_end else None) or exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ConfigError(f"{path}:{line}: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: {exc}") from None


class _Reader:
    """Walks the node tree, converting and checking as it goes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.base = path.parent
        self.secrets: set[str] = set()
        self._secret_file: dict[str, Any] | None = None
        self._constructor = yaml.SafeLoader("")

    # -- errors and scalars --------------------------------------------------

    def error(self, node: yaml.Node, where: str, message: str) -> ConfigError:
        return ConfigError(f"{self.path}:{node.start_mark.line + 1}: {where}: {message}")

    def where(self, node: yaml.Node) -> str:
        return f"{self.path}:{node.start_mark.line + 1}"

    def scalar(self, node: yaml.Node, where: str) -> Any:
        if node.tag == "!secret":
            return self._secret(node, where)
        if node.tag == "!env":
            name = str(node.value)
            if name not in os.environ:
                raise self.error(node, where, f"environment variable {name} is not set")
            self.secrets.add(os.environ[name])
            return os.environ[name]
        if node.tag.startswith("!"):
            raise self.error(node, where, f"unknown tag {node.tag} (known: !secret, !env)")
        if not isinstance(node, yaml.ScalarNode):
            raise self.error(node, where, "expected a single value")
        try:
            return self._constructor.construct_object(node)
        except yaml.YAMLError as exc:
            raise self.error(node, where, str(getattr(exc, "problem", exc))) from None

    def _secret(self, node: yaml.Node, where: str) -> str:
        file = self.base / "secrets.yaml"
        if self._secret_file is None:
            if not file.exists():
                raise self.error(node, where, f"!secret needs {file}, which does not exist")
            try:
                loaded = yaml.safe_load(_read_text(file))
            except yaml.YAMLError as exc:
                raise ConfigError(f"{file}: {exc}") from None
            self._secret_file = loaded if isinstance(loaded, dict) else {}
        name = str(node.value)
        if name not in self._secret_file:
            raise self.error(node, where, f"no secret named {name!r} in {file}")
        value = str(self._secret_file[name])
        self.secrets.add(value)
        return value

    def string(self, node: yaml.Node, where: str) -> str:
        value = self.scalar(node, where)
        if not isinstance(value, str) or not value.strip():
            raise self.error(node, where, "expected a non-empty text")
        return value

    def strings(self, node: yaml.Node, where: str) -> tuple[str, ...]:
        if isinstance(node, yaml.SequenceNode):
            return tuple(self.string(n, f"{where}[{i}]") for i, n in enumerate(node.value))
        return (self.string(node, where),)

    def integer(self, node: yaml.Node, where: str, minimum: int = 0) -> int:
        value = self.scalar(node, where)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(node, where, f"expected a whole number of at least {minimum}")
        return value

    def boolean(self, node: yaml.Node, where: str) -> bool:
        value = self.scalar(node, where)
        if not isinstance(value, bool):
            raise self.error(node, where, "expected true or false")
        return value

    def duration(self, node: yaml.Node, where: str) -> timedelta:
        value = self.scalar(node, where)
        try:
            delta = parse_duration(str(value))
        except ValueError as exc:
            raise self.error(node, where, str(exc)) from None
        if not delta:
            raise self.error(node, where, "a duration must be longer than zero")
        return delta

    def path_value(self, node: yaml.Node, where: str) -> Path:
        return (self.base / Path(self.string(node, where)).expanduser()).resolve()

    def mapping(
        self,
        node: yaml.Node | None,
        where: str,
        allowed: set[str],
        required: set[str] = frozenset(),
    ) -> dict[str, yaml.Node]:
        if node is None or (isinstance(node, yaml.ScalarNode) and node.value == ""):
            items: dict[str, yaml.Node] = {}
        elif not isinstance(node, yaml.MappingNode):
            raise self.error(node, where or "config", "expected a mapping of keys to values")
        else:
            items = {}
            for key_node, value_node in node.value:
                key = str(key_node.value)
                at = f"{where}.{key}" if where else key
                if key not in allowed:
                    known = ", ".join(sorted(allowed))
                    raise self.error(key_node, at, f"unknown key (known: {known})")
                if key in items:
                    raise self.error(key_node, at, "given twice")
                items[key] = value_node
        for key in sorted(required - items.keys()):
            anchor = node if node is not None else yaml.ScalarNode("", "", _START, _START)
            raise self.error(anchor, where or "config", f"missing required key {key!r}")
        return items

    def sequence(self, node: yaml.Node | None, where: str) -> list[yaml.Node]:
        if node is None or (isinstance(node, yaml.ScalarNode) and node.value in ("", None)):
            return []
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, where, "expected a list")
        return node.value

    # -- sections -------------------------------------------------------------

    def config(self, root: yaml.Node | None) -> Config:
        top = self.mapping(
            root, "", {"timezone", "state_dir", "sources", "notify", "limits", "rules", "me"}
        )
        tz = local_timezone()
        if "timezone" in top:
            name = self.string(top["timezone"], "timezone")
            try:
                tz = ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                raise self.error(
                    top["timezone"], "timezone", f"unknown time zone {name!r} (like Europe/Lisbon)"
                ) from None
        state_dir = (
            self.path_value(top["state_dir"], "state_dir")
            if "state_dir" in top
            else default_state_dir()
        )
        channels = self.channels(top.get("notify"))
        return Config(
            path=self.path,
            timezone=tz,
            state_dir=state_dir,
            sources=self.sources(top.get("sources")),
            channels=channels,
            limits=self.limits(top.get("limits")),
            rules=self.rules(top.get("rules"), channels),
            me=tuple(a.strip().lower() for a in self.strings(top["me"], "me"))
            if "me" in top
            else (),
            secrets=frozenset(self.secrets),
        )

    def sources(self, node: yaml.Node | None) -> tuple[Source, ...]:
        result: list[Source] = []
        for i, item in enumerate(self.sequence(node, "sources")):
            where = f"sources[{i}]"
            if not isinstance(item, yaml.MappingNode):
                raise self.error(item, where, "expected a mapping with a 'plugin' key")
            keys = {str(k.value): v for k, v in item.value}
            if "plugin" not in keys:
                raise self.error(item, where, "missing required key 'plugin'")
            domain = self.string(keys["plugin"], f"{where}.plugin")
            try:
                manifest = plugins.find(domain, self.base)
            except ValueError as exc:
                raise self.error(keys["plugin"], f"{where}.plugin", str(exc)) from None
            if manifest is None:
                known = ", ".join(sorted(plugins.available(self.base)))
                raise self.error(
                    keys["plugin"], f"{where}.plugin", f"no plugin {domain!r} (known: {known})"
                )
            items = self.mapping(
                item,
                where,
                set(manifest.options) | {"plugin", "name"},
                {k for k, o in manifest.options.items() if o.required},
            )
            options = {
                key: self.option(manifest.options[key], items[key], f"{where}.{key}")
                for key in manifest.options
                if key in items
            }
            for key, option in manifest.options.items():
                if key not in options and option.default is not None:
                    # Defaults are converted like given values: a path default is
                    # relative to the config, a duration default is a timedelta.
                    default = yaml.compose(yaml.safe_dump(option.default))
                    default.start_mark = item.start_mark
                    options[key] = self.option(option, default, f"{where}.{key} (default)")
                options.setdefault(key, None)
            name = (
                self.string(items["name"], f"{where}.name")
                if "name" in items
                else f"{domain}:{_shown(next((options[k] for k in NAMED_BY if options.get(k)), i))}"
            )
            if any(s.name == name for s in result):
                raise self.error(item, where, f"a source named {name!r} is given twice")
            result.append(Source(name, domain, options, manifest))
        return tuple(result)

    def option(self, option: plugins.Option, node: yaml.Node, where: str) -> Any:
        convert: dict[str, Callable[[yaml.Node, str], Any]] = {
            "string": self.string,
            "strings": self.strings,
            "integer": self.integer,
            "boolean": self.boolean,
            "duration": self.duration,
            "path": self.path_value,
        }
        return convert[option.type](node, where)

    def channels(self, node: yaml.Node | None) -> tuple[Channel, ...]:
        result = []
        for i, item in enumerate(self.sequence(node, "notify")):
            where = f"notify[{i}]"
            items = self.mapping(item, where, {"url", "tag"}, {"url"})
            tags = self.strings(items["tag"], f"{where}.tag") if "tag" in items else ()
            url = self.string(items["url"], f"{where}.url")
            result.append(Channel(url, tags, self.where(items["url"])))
        return tuple(result) or (Channel(DEFAULT_CHANNEL, (), f"{self.path}:1"),)

    def limits(self, node: yaml.Node | None) -> Limits:
        items = self.mapping(node, "limits", {"quiet_hours", "max_per_day", "digest"})
        quiet = None
        if "quiet_hours" in items:
            quiet = self.quiet_hours(items["quiet_hours"])
        cap = (
            self.integer(items["max_per_day"], "limits.max_per_day", 1)
            if "max_per_day" in items
            else None
        )
        digest = None
        if "digest" in items:
            from croniter import croniter

            digest = self.string(items["digest"], "limits.digest")
            if not croniter.is_valid(digest):
                raise self.error(
                    items["digest"], "limits.digest", f"not a cron expression: {digest!r}"
                )
        return Limits(quiet, cap, digest)

    def quiet_hours(self, node: yaml.Node) -> tuple[time, time]:
        text = self.string(node, "limits.quiet_hours")
        try:
            start, end = (time.fromisoformat(p.strip()) for p in text.split("-"))
        except ValueError:
            raise self.error(
                node, "limits.quiet_hours", f"expected a range like 22:00-07:30, got {text!r}"
            ) from None
        if start == end:
            raise self.error(node, "limits.quiet_hours", "start and end are the same time")
        return start, end

    def rules(self, node: yaml.Node | None, channels: tuple[Channel, ...]) -> tuple[Rule, ...]:
        tags = {t for c in channels for t in c.tags}
        result: list[Rule] = []
        for i, item in enumerate(self.sequence(node, "rules")):
            where = f"rules[{i}]"
            items = self.mapping(
                item,
                where,
                {
                    "name",
                    "match",
                    "every",
                    "grace",
                    "answer_window",
                    "pull_back",
                    "renotify",
                    "notify",
                    "message",
                    *OCCASIONS,
                },
                {"name"},
            )
            if "every" not in items and not OCCASIONS.keys() & items.keys():
                kinds = ", ".join(("every", *OCCASIONS))
                raise self.error(item, where, f"a rule needs at least one of: {kinds}")
            name = self.string(items["name"], f"{where}.name")
            if any(r.name == name for r in result):
                raise self.error(items["name"], f"{where}.name", f"a rule named {name!r} exists")
            notify = None
            if "notify" in items:
                notify = self.string(items["notify"], f"{where}.notify")
                if notify not in tags:
                    known = ", ".join(sorted(tags)) or "none: give notify entries a tag"
                    raise self.error(
                        items["notify"],
                        f"{where}.notify",
                        f"no channel tagged {notify!r} (tags: {known})",
                    )
            result.append(
                Rule(
                    name=name,
                    match=self.match(items.get("match"), f"{where}.match"),
                    every=self.duration(items["every"], f"{where}.every")
                    if "every" in items
                    else None,
                    grace=(
                        self.duration(items["grace"], f"{where}.grace")
                        if "grace" in items
                        else DEFAULT_GRACE
                    ),
                    occasions={
                        kind: self.occasion(items[kind], f"{where}.{kind}", key)
                        for kind, key in OCCASIONS.items()
                        if kind in items
                    },
                    answer_window=(
                        self.duration(items["answer_window"], f"{where}.answer_window")
                        if "answer_window" in items
                        else DEFAULT_ANSWER_WINDOW
                    ),
                    pull_back=self.pull_back(items.get("pull_back"), f"{where}.pull_back"),
                    renotify=(
                        self.duration(items["renotify"], f"{where}.renotify")
                        if "renotify" in items
                        else DEFAULT_RENOTIFY
                    ),
                    notify=notify,
                    message=self.template(items.get("message"), f"{where}.message"),
                )
            )
        return tuple(result)

    def match(self, node: yaml.Node | None, where: str) -> Match:
        items = self.mapping(node, where, {"tags", "name", "email"})

        def folded(key: str) -> tuple[str, ...]:
            if key not in items:
                return ()
            return tuple(v.casefold() for v in self.strings(items[key], f"{where}.{key}"))

        return Match(tags=folded("tags"), names=folded("name"), emails=folded("email"))

    def occasion(self, node: yaml.Node, where: str, key: str) -> timedelta:
        """`birthday: {before: 3d}` or `follow_up: {after: 1d}`: the lead or lag time."""
        items = self.mapping(node, where, {key}, {key})
        return self.duration(items[key], f"{where}.{key}")

    def pull_back(self, node: yaml.Node | None, where: str) -> PullBack | None:
        if node is None:
            return None
        items = self.mapping(node, where, {"after", "pause"}, {"after", "pause"})
        return PullBack(
            after=self.integer(items["after"], f"{where}.after", 1),
            pause=self.duration(items["pause"], f"{where}.pause"),
        )

    def template(self, node: yaml.Node | None, where: str) -> str | None:
        if node is None:
            return None
        text = self.string(node, where)
        try:  # render it once now, so a nudge never fails to render later
            for _, field_name, _, _ in string.Formatter().parse(text):
                if field_name and not field_name.isidentifier():
                    raise ValueError(f"{{{field_name}}}: only plain field names are allowed")
            text.format(**dict.fromkeys(TEMPLATE_FIELDS, ""))
        except KeyError as exc:
            known = ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
            raise self.error(
                node, where, f"unknown field {{{exc.args[0]}}} (known: {known})"
            ) from None
        except (ValueError, IndexError) as exc:
            raise self.error(
                node, where, f"bad template: {exc or 'a field needs a name'}"
            ) from None
        return text


_START = yaml.Mark("", 0, 0, 0, None, None)
