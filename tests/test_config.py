"""Tests for nurtured.config: loading, validation, and errors that say FILE:LINE: PATH."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from datetime import time, timedelta
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from nurtured import config as configuration
from nurtured.config import DEFAULT_CHANNEL, Config, ConfigError
from nurtured.rules import TEMPLATE_FIELDS

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- helpers


def write(folder: Path, text: str, name: str = "config.yaml") -> Path:
    """Write a config; `text` is dedented, so its first line is line 1."""
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(folder: Path, text: str) -> Config:
    return configuration.load(write(folder, text))


def error(folder: Path, text: str) -> tuple[Path, str]:
    """The config's path and the ConfigError message loading it gives."""
    path = write(folder, text)
    with pytest.raises(ConfigError) as info:
        configuration.load(path)
    return path, str(info.value)


def write_plugin(folder: Path, domain: str, manifest: str) -> Path:
    """A plugin in `plugins/<domain>/` beside the config in `folder`."""
    plugin = folder / "plugins" / domain
    plugin.mkdir(parents=True)
    (plugin / "manifest.yaml").write_text(textwrap.dedent(manifest), encoding="utf-8")
    (plugin / "__init__.py").write_text("async def run(options, sink):\n    sink.ready()\n")
    return plugin


def check(path: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`nurtured -c PATH check`, as a real process."""
    env = {k: v for k, v in os.environ.items() if k not in ("NURTURED_CONFIG", "STATE_DIRECTORY")}
    env["HOME"] = str(cwd)
    return subprocess.run(
        [sys.executable, "-m", "nurtured", "-c", str(path), "check"],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


# --------------------------------------------------------------------------- shipped configs


def test_example_config_loads() -> None:
    path = REPO / "config.example.yaml"
    config = configuration.load(path)
    assert config.path == path
    assert config.timezone == ZoneInfo("Europe/Lisbon")
    assert config.state_dir == (REPO / "state").resolve()
    assert [(s.plugin, s.name) for s in config.sources] == [
        ("vcard", f"vcard:{(REPO / 'examples' / 'contacts').resolve()}"),
        ("journal", f"journal:{(REPO / 'examples' / 'journal.yaml').resolve()}"),
    ]
    assert config.sources[0].options == {"path": (REPO / "examples" / "contacts").resolve()}
    assert [(c.url, c.tags) for c in config.channels] == [("console://", ("terminal",))]
    line = next(n for n, t in enumerate(path.read_text().splitlines(), 1) if "url: console://" in t)
    assert config.channels[0].where == f"{path}:{line}"
    assert config.limits.max_per_day == 10
    assert config.limits.quiet_hours is None and config.limits.digest is None
    assert [(r.name, r.match.tags, r.every, r.notify) for r in config.rules] == [
        ("family", ("family",), timedelta(weeks=3), "terminal"),
        ("friends", ("friends",), timedelta(days=45), "terminal"),
        ("network", ("network",), timedelta(days=60), "terminal"),
    ]
    network = config.rules[2]
    assert network.answer_window == timedelta(days=14)
    assert network.pull_back is not None
    assert (network.pull_back.after, network.pull_back.pause) == (2, timedelta(days=60))
    assert config.secrets == frozenset()


def test_starter_config_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TZ", "Europe/Berlin")
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    text = resources.files("nurtured").joinpath("starter.yaml").read_text(encoding="utf-8")
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    config = configuration.load(path)  # ~/.local/share/contacts need not exist yet
    assert not (home / ".local").exists()
    assert config.timezone == ZoneInfo("Europe/Berlin")  # no timezone key: the machine's
    assert config.state_dir == tmp_path / "state"
    assert [s.options["path"] for s in config.sources] == [home / ".local/share/contacts"]
    assert config.sources[0].name == f"vcard:{home / '.local/share/contacts'}"
    assert [(c.url, c.tags) for c in config.channels] == [("console://", ())]
    assert config.limits.quiet_hours == (time(22, 0), time(7, 30))
    assert config.limits.max_per_day == 5
    assert [(r.name, r.match.tags, r.every) for r in config.rules] == [
        ("close", ("family", "friends"), timedelta(days=30)),
        ("network", ("network",), timedelta(days=60)),
    ]


def test_missing_config_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigError) as info:
        configuration.load(path)
    assert str(info.value) == f"{path}: cannot read the config: No such file or directory"


def test_empty_config_gives_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "st"))
    config = load(tmp_path, "# nothing yet\n")
    assert config.sources == () and config.rules == ()
    assert [c.url for c in config.channels] == [DEFAULT_CHANNEL]
    assert (config.limits.quiet_hours, config.limits.max_per_day) == (None, None)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path, message = error(tmp_path, "- timezone: UTC\n")
    assert message == f"{path}:1: config: expected a mapping of keys to values"


# --------------------------------------------------------------------------- malformed YAML


def test_bad_indentation_deeper(tmp_path: Path) -> None:
    path, message = error(
        tmp_path,
        """\
        timezone: UTC
        limits:
          max_per_day: 3
           digest: "0 8 * * *"
        """,
    )
    assert message.startswith(f"{path}:4: ")
    assert "mapping values are not allowed here" in message


def test_bad_indentation_shallower(tmp_path: Path) -> None:
    path, message = error(
        tmp_path,
        """\
        timezone: UTC
        rules:
          - name: family
            every: 3w
           match: {tags: [family]}
        """,
    )
    assert message.startswith(f"{path}:5: ")


def test_tab_indentation(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("timezone: UTC\nlimits:\n\tmax_per_day: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        configuration.load(path)
    assert str(info.value).startswith(f"{path}:3: ")


@pytest.mark.parametrize("quote", ['"', "'"])
def test_unclosed_quote_names_the_line_it_opens_on(tmp_path: Path, quote: str) -> None:
    # BUG: the loader reports the problem mark (the end of the file, here line 6,
    # one past the last line) instead of where the quoted value starts (line 3).
    path, message = error(
        tmp_path,
        f"""\
        timezone: UTC
        rules:
          - name: {quote}family
            every: 3w
            match: {{tags: [family]}}
        """,
    )
    assert message.startswith(f"{path}:3: "), message


def test_unknown_yaml_tag_is_a_config_error(tmp_path: Path) -> None:
    # BUG: a tag other than !secret / !env escapes as a raw yaml ConstructorError.
    path = write(tmp_path, "timezone: UTC\nstate_dir: !secrets dir\n")
    with pytest.raises(ConfigError) as info:
        configuration.load(path)
    assert str(info.value).startswith(f"{path}:2: state_dir: ")


def test_two_documents_are_refused(tmp_path: Path) -> None:
    path, message = error(tmp_path, "timezone: UTC\n---\ntimezone: UTC\n")
    assert message.startswith(f"{path}:2: ")


# --------------------------------------------------------------------------- unknown keys

RULE_KEYS = (
    "anniversary, answer_window, birthday, brief, every, follow_up, grace, match, message,"
    " name, notify, pull_back, renotify"
)


@pytest.mark.parametrize(
    ("text", "line", "where", "known"),
    [
        (
            """\
            timezone: UTC
            rule:
              - name: x
            """,
            2,
            "rule",
            "limits, me, notify, rules, sources, state_dir, timezone",
        ),
        (
            """\
            limits:
              max_per_day: 3
              quiet: "22:00-07:00"
            """,
            3,
            "limits.quiet",
            "digest, max_per_day, quiet_hours",
        ),
        (
            """\
            rules:
              - name: a
                every: 3d
              - name: b
                every: 3d
                evry: 4d
            """,
            6,
            "rules[1].evry",
            RULE_KEYS,
        ),
        (
            """\
            rules:
              - name: a
                every: 3d
                match:
                  tags: [x]
                  tag: [y]
            """,
            6,
            "rules[0].match.tag",
            "email, name, tags",
        ),
        (
            """\
            rules:
              - name: a
                every: 3d
                pull_back: {after: 2, pause: 30d, wait: 3d}
            """,
            4,
            "rules[0].pull_back.wait",
            "after, pause",
        ),
        (
            """\
            sources:
              - plugin: vcard
                path: ./contacts
                recursive: true
            """,
            4,
            "sources[0].recursive",
            "name, path, plugin",
        ),
        (
            """\
            notify:
              - url: console://
                tags: [phone]
            """,
            3,
            "notify[0].tags",
            "tag, url",
        ),
    ],
    ids=["top", "limits", "rule", "match", "pull_back", "source", "notify"],
)
def test_unknown_key(tmp_path: Path, text: str, line: int, where: str, known: str) -> None:
    path, message = error(tmp_path, text)
    assert message == f"{path}:{line}: {where}: unknown key (known: {known})"


@pytest.mark.parametrize(
    ("text", "line", "where"),
    [
        ("timezone: UTC\nstate_dir: ./s\ntimezone: Europe/Lisbon\n", 3, "timezone"),
        ("rules:\n  - name: a\n    every: 3d\n    every: 4d\n", 4, "rules[0].every"),
        ("sources:\n  - plugin: vcard\n    path: a\n    path: b\n", 4, "sources[0].path"),
        ("sources:\n  - plugin: vcard\n    path: a\n    plugin: journal\n", 4, "sources[0].plugin"),
        ("limits:\n  max_per_day: 1\n  max_per_day: 2\n", 3, "limits.max_per_day"),
        ("notify:\n  - url: console://\n    url: console://\n", 3, "notify[0].url"),
    ],
    ids=["top", "rule", "source-option", "source-plugin", "limits", "notify"],
)
def test_key_given_twice(tmp_path: Path, text: str, line: int, where: str) -> None:
    path, message = error(tmp_path, text)
    assert message == f"{path}:{line}: {where}: given twice"


@pytest.mark.parametrize(
    ("text", "line", "where", "key"),
    [
        ("rules:\n  - every: 3d\n", 2, "rules[0]", "name"),
        ("sources:\n  - path: ./contacts\n", 2, "sources[0]", "plugin"),
        ("sources:\n  - plugin: vcard\n    name: book\n", 2, "sources[0]", "path"),
        ("sources:\n  - plugin: journal\n", 2, "sources[0]", "path"),
        ("notify:\n  - tag: phone\n", 2, "notify[0]", "url"),
        (
            "rules:\n  - name: a\n    every: 3d\n    pull_back: {after: 2}\n",
            4,
            "rules[0].pull_back",
            "pause",
        ),
        ("rules:\n  - name: a\n    every: 3d\n    pull_back:\n", 4, "rules[0].pull_back", "after"),
    ],
    ids=[
        "rule-name",
        "source-plugin",
        "vcard-path",
        "journal-path",
        "notify-url",
        "pull_back-pause",
        "pull_back-empty",
    ],
)
def test_missing_required_key(tmp_path: Path, text: str, line: int, where: str, key: str) -> None:
    path, message = error(tmp_path, text)
    assert message == f"{path}:{line}: {where}: missing required key {key!r}"


@pytest.mark.parametrize(
    ("text", "line", "where", "expected"),
    [
        ("rules: {name: a}\n", 1, "rules", "expected a list"),
        ("sources:\n  plugin: vcard\n", 2, "sources", "expected a list"),
        ("sources:\n  - vcard\n", 2, "sources[0]", "expected a mapping with a 'plugin' key"),
        ("limits: [1]\n", 1, "limits", "expected a mapping of keys to values"),
        (
            "rules:\n  - name: [a, b]\n    every: 3d\n",
            2,
            "rules[0].name",
            "expected a single value",
        ),
        ("rules:\n  - name: ''\n    every: 3d\n", 2, "rules[0].name", "expected a non-empty text"),
        ("rules:\n  - name: 12\n    every: 3d\n", 2, "rules[0].name", "expected a non-empty text"),
    ],
)
def test_wrong_shapes(tmp_path: Path, text: str, line: int, where: str, expected: str) -> None:
    path, message = error(tmp_path, text)
    assert message == f"{path}:{line}: {where}: {expected}"


# --------------------------------------------------------------------------- durations


def rule_every(value: str) -> str:
    return f"timezone: UTC\nrules:\n  - name: a\n    every: {value}\n"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("60d", timedelta(days=60)),
        ("8w", timedelta(weeks=8)),
        ("12h", timedelta(hours=12)),
        ("90min", timedelta(minutes=90)),
        ("1w3d", timedelta(days=10)),
        ('"2w"', timedelta(weeks=2)),
    ],
)
def test_duration_accepted(tmp_path: Path, value: str, expected: timedelta) -> None:
    assert load(tmp_path, rule_every(value)).rules[0].every == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("60", "expected a duration like 30min, 12h, 60d or 8w, got '60'"),
        ("1m", "got '1m' (months and years are not accepted: write 4w or 52w)"),
        ("2y", "got '2y' (months and years are not accepted: write 4w or 52w)"),
        ("1.5d", "expected a duration like 30min, 12h, 60d or 8w, got '1.5d'"),
        ("-3d", "expected a duration like 30min, 12h, 60d or 8w, got '-3d'"),
        ("0d", "a duration must be longer than zero"),
        ("0w0d", "a duration must be longer than zero"),
        ("1:30", "got '90'"),  # YAML 1.1 reads 1:30 as the sexagesimal number 90
    ],
)
def test_duration_rejected(tmp_path: Path, value: str, fragment: str) -> None:
    path, message = error(tmp_path, rule_every(value))
    assert message.startswith(f"{path}:4: rules[0].every: ")
    assert fragment in message


@pytest.mark.parametrize("key", ["answer_window", "renotify"])
def test_other_rule_durations_are_checked_too(tmp_path: Path, key: str) -> None:
    text = f"rules:\n  - name: a\n    every: 3d\n    {key}: 1m\n"
    path, message = error(tmp_path, text)
    assert message.startswith(f"{path}:4: rules[0].{key}: expected a duration like")


def test_rule_duration_defaults(tmp_path: Path) -> None:
    rule = load(tmp_path, rule_every("3d")).rules[0]
    assert (rule.answer_window, rule.renotify) == (timedelta(days=14), timedelta(days=7))
    assert (rule.pull_back, rule.notify, rule.message) == (None, None, None)


def test_huge_duration_is_a_config_error(tmp_path: Path) -> None:
    # BUG: parse_duration raises OverflowError, which _Reader.duration does not catch.
    path = write(tmp_path, rule_every("9999999999d"))
    with pytest.raises(ConfigError) as info:
        configuration.load(path)
    assert str(info.value).startswith(f"{path}:4: rules[0].every: ")


# --------------------------------------------------------------------------- timezone, state_dir


def test_timezone(tmp_path: Path) -> None:
    assert load(tmp_path, "timezone: America/Sao_Paulo\n").timezone == ZoneInfo("America/Sao_Paulo")


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "../../etc/passwd", "CEST"])
def test_unknown_timezone(tmp_path: Path, name: str) -> None:
    path, message = error(tmp_path, f"state_dir: ./s\ntimezone: '{name}'\n")
    assert message == f"{path}:2: timezone: unknown time zone {name!r} (like Europe/Lisbon)"


def test_state_dir_is_relative_to_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "conf"
    elsewhere = tmp_path / "elsewhere"
    conf.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working directory must not matter
    assert load(conf, "state_dir: ./state\n").state_dir == conf / "state"
    assert load(conf, "state_dir: state\n").state_dir == conf / "state"
    assert load(conf, "state_dir: ../var\n").state_dir == tmp_path / "var"
    assert load(conf, f"state_dir: {tmp_path / 'abs'}\n").state_dir == tmp_path / "abs"


def test_state_dir_expands_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert load(tmp_path, "state_dir: ~/st\n").state_dir == tmp_path / "home" / "st"


def test_default_state_dir_from_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/nurtured:/var/lib/other")
    assert load(tmp_path, "timezone: UTC\n").state_dir == Path("/var/lib/nurtured")


def test_default_state_dir_from_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert load(tmp_path, "timezone: UTC\n").state_dir == tmp_path / "xdg" / "nurtured"


def test_explicit_state_dir_beats_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/nurtured")
    assert load(tmp_path, "state_dir: ./mine\n").state_dir == tmp_path / "mine"


# --------------------------------------------------------------------------- !secret and !env


def test_secret_from_secrets_yaml(tmp_path: Path) -> None:
    (tmp_path / "secrets.yaml").write_text("ntfy: ntfys://ntfy.sh/topic-s3cr3t\nother: x\n")
    config = load(
        tmp_path,
        """\
        notify:
          - url: !secret ntfy
            tag: phone
        """,
    )
    assert [(c.url, c.tags) for c in config.channels] == [
        ("ntfys://ntfy.sh/topic-s3cr3t", ("phone",))
    ]
    assert config.secrets == frozenset({"ntfys://ntfy.sh/topic-s3cr3t"})
    assert "s3cr3t" not in config.channels[0].key


def test_secret_used_in_a_source_option(tmp_path: Path) -> None:
    (tmp_path / "secrets.yaml").write_text("book: ./private/contacts\n")
    config = load(tmp_path, "sources:\n  - plugin: vcard\n    path: !secret book\n")
    assert config.sources[0].options["path"] == tmp_path / "private" / "contacts"
    assert config.secrets == frozenset({"./private/contacts"})


def test_secret_without_secrets_file(tmp_path: Path) -> None:
    path, message = error(tmp_path, "timezone: UTC\nnotify:\n  - url: !secret ntfy\n")
    assert message == (
        f"{path}:3: notify[0].url: !secret needs {tmp_path / 'secrets.yaml'}, which does not exist"
    )


def test_secret_name_missing(tmp_path: Path) -> None:
    (tmp_path / "secrets.yaml").write_text("ntfy: ntfys://ntfy.sh/t\n")
    path, message = error(tmp_path, "timezone: UTC\nnotify:\n  - url: !secret pushover\n")
    assert message == (
        f"{path}:3: notify[0].url: no secret named 'pushover' in {tmp_path / 'secrets.yaml'}"
    )


def test_broken_secrets_file_names_it(tmp_path: Path) -> None:
    (tmp_path / "secrets.yaml").write_text("ntfy: 'unclosed\n")
    _, message = error(tmp_path, "notify:\n  - url: !secret ntfy\n")
    assert message.startswith(f"{tmp_path / 'secrets.yaml'}: ")


def test_env_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NURTURED_TEST_URL", "ntfys://ntfy.sh/from-env")
    config = load(tmp_path, "notify:\n  - url: !env NURTURED_TEST_URL\n")
    assert config.channels[0].url == "ntfys://ntfy.sh/from-env"
    assert "ntfys://ntfy.sh/from-env" in config.secrets


def test_env_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NURTURED_TEST_URL", raising=False)
    path, message = error(tmp_path, "timezone: UTC\nnotify:\n  - url: !env NURTURED_TEST_URL\n")
    assert message == f"{path}:3: notify[0].url: environment variable NURTURED_TEST_URL is not set"


# --------------------------------------------------------------------------- notify


def test_no_notify_section_means_the_console(tmp_path: Path) -> None:
    path = write(tmp_path, "timezone: UTC\n")
    config = configuration.load(path)
    assert [(c.url, c.tags, c.where) for c in config.channels] == [("console://", (), f"{path}:1")]


def test_empty_notify_list_means_the_console(tmp_path: Path) -> None:
    assert [c.url for c in load(tmp_path, "notify: []\n").channels] == ["console://"]


def test_notify_tags_as_string_and_list(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        notify:
          - url: console://
            tag: terminal
          - url: ntfys://ntfy.sh/topic
            tag: [phone, urgent]
          - url: mailto://me:pw@example.org
        """,
    )
    config = configuration.load(path)
    assert [(c.url, c.tags, c.where) for c in config.channels] == [
        ("console://", ("terminal",), f"{path}:2"),
        ("ntfys://ntfy.sh/topic", ("phone", "urgent"), f"{path}:4"),
        ("mailto://me:pw@example.org", (), f"{path}:6"),
    ]
    assert len({c.key for c in config.channels}) == 3


def test_rule_notify_names_a_tag(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """\
        notify:
          - url: console://
            tag: [terminal, phone]
        rules:
          - name: family
            every: 3w
            notify: phone
        """,
    )
    assert config.rules[0].notify == "phone"


def test_rule_notify_without_a_channel_so_tagged(tmp_path: Path) -> None:
    path, message = error(
        tmp_path,
        """\
        notify:
          - url: console://
            tag: terminal
        rules:
          - name: family
            every: 3w
          - name: friends
            every: 45d
            notify: phone
        """,
    )
    assert message == f"{path}:9: rules[1].notify: no channel tagged 'phone' (tags: terminal)"


def test_rule_notify_when_no_channel_has_tags(tmp_path: Path) -> None:
    path, message = error(tmp_path, "rules:\n  - name: family\n    every: 3w\n    notify: phone\n")
    assert message == (
        f"{path}:4: rules[0].notify: no channel tagged 'phone'"
        " (tags: none: give notify entries a tag)"
    )


# --------------------------------------------------------------------------- limits


def test_limits(tmp_path: Path) -> None:
    limits = load(
        tmp_path,
        """\
        limits:
          quiet_hours: "22:00-07:30"
          max_per_day: 4
          digest: "0 8 * * *"
        """,
    ).limits
    assert limits.quiet_hours == (time(22, 0), time(7, 30))
    assert limits.max_per_day == 4
    assert limits.digest == "0 8 * * *"


def test_quiet_hours_with_spaces_and_within_a_day(tmp_path: Path) -> None:
    text = 'limits:\n  quiet_hours: " 13:00 - 14:15 "\n'
    assert load(tmp_path, text).limits.quiet_hours == (time(13, 0), time(14, 15))


@pytest.mark.parametrize("value", ["22-7", "25:00-07:00", "22:00", "22:00-07:30-08:00", "night"])
def test_quiet_hours_rejected(tmp_path: Path, value: str) -> None:
    path, message = error(tmp_path, f'timezone: UTC\nlimits:\n  quiet_hours: "{value}"\n')
    assert message == (
        f"{path}:3: limits.quiet_hours: expected a range like 22:00-07:30, got {value!r}"
    )


def test_quiet_hours_same_start_and_end(tmp_path: Path) -> None:
    path, message = error(tmp_path, 'limits:\n  quiet_hours: "07:00-07:00"\n')
    assert message == f"{path}:2: limits.quiet_hours: start and end are the same time"


@pytest.mark.parametrize("value", ["0", "-1", "two", "true", "2.5"])
def test_max_per_day_rejected(tmp_path: Path, value: str) -> None:
    path, message = error(tmp_path, f"limits:\n  max_per_day: {value}\n")
    assert message == f"{path}:2: limits.max_per_day: expected a whole number of at least 1"


@pytest.mark.parametrize("value", ["every morning", "0 8 * *", "61 8 * * *", "0 25 * * *"])
def test_digest_rejected(tmp_path: Path, value: str) -> None:
    path, message = error(tmp_path, f'limits:\n  max_per_day: 2\n  digest: "{value}"\n')
    assert message == f"{path}:3: limits.digest: not a cron expression: {value!r}"


def test_empty_limits(tmp_path: Path) -> None:
    limits = load(tmp_path, "limits:\n").limits
    assert (limits.quiet_hours, limits.max_per_day, limits.digest) == (None, None, None)


# --------------------------------------------------------------------------- rules


def test_match_is_case_folded(tmp_path: Path) -> None:
    rule = load(
        tmp_path,
        """\
        rules:
          - name: close
            every: 30d
            match:
              tags: [Family, FRIENDS, Straße]
              name: "*MÜLLER"
              email: [ "*@Example.ORG" ]
        """,
    ).rules[0]
    assert rule.match.tags == ("family", "friends", "strasse")
    assert rule.match.names == ("*müller",)
    assert rule.match.emails == ("*@example.org",)
    assert rule.match.matches("Anna Müller", ["family"], ["anna@example.org"])
    assert rule.match.matches("ANNA MÜLLER", ["FAMILY"], ["ANNA@EXAMPLE.ORG"])
    assert not rule.match.matches("Anna Müller", ["network"], ["anna@example.org"])


def test_match_tags_as_a_single_string(tmp_path: Path) -> None:
    rule = load(tmp_path, "rules:\n  - name: a\n    every: 3d\n    match: {tags: Work}\n").rules[0]
    assert rule.match.tags == ("work",)


def test_message_template_known_fields(tmp_path: Path) -> None:
    template = " ".join("{" + f + "}" for f in TEMPLATE_FIELDS) + " {since:>10} {{literal}}"
    rule = load(tmp_path, f"rules:\n  - name: a\n    every: 3d\n    message: '{template}'\n").rules[
        0
    ]
    assert rule.message == template
    rule.message.format(**{f: "x" for f in TEMPLATE_FIELDS})  # renders


def test_message_template_unknown_field(tmp_path: Path) -> None:
    path, message = error(
        tmp_path,
        """\
        rules:
          - name: a
            every: 3d
            message: "Call {preferred}, aka {nickname}"
        """,
    )
    known = ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
    assert message == f"{path}:4: rules[0].message: unknown field {{nickname}} (known: {known})"


@pytest.mark.parametrize("template", ["Hi {name", "Hi name}", "{0}", "{}", "{name.upper}"])
def test_message_template_malformed(tmp_path: Path, template: str) -> None:
    path, message = error(
        tmp_path, f"rules:\n  - name: a\n    every: 3d\n    message: '{template}'\n"
    )
    assert message.startswith(f"{path}:4: rules[0].message: ")


@pytest.mark.parametrize("template", ["{since:>{nickname}}", "{name!x}"])
def test_message_template_that_cannot_render_is_rejected(tmp_path: Path, template: str) -> None:
    # BUG: _Reader.template checks only top-level field names. A field nested in a
    # format spec, or a bad conversion, passes `check` and fails at str.format
    # (KeyError / ValueError) when the first nudge is rendered.
    path = write(tmp_path, f"rules:\n  - name: a\n    every: 3d\n    message: '{template}'\n")
    with pytest.raises(ConfigError) as info:
        configuration.load(path)
    assert str(info.value).startswith(f"{path}:4: rules[0].message: ")


def test_two_rules_with_the_same_name(tmp_path: Path) -> None:
    path, message = error(
        tmp_path,
        """\
        rules:
          - name: family
            every: 3w
          - name: friends
            every: 45d
          - name: family
            every: 2w
        """,
    )
    assert message == f"{path}:6: rules[2].name: a rule named 'family' exists"


def test_pull_back(tmp_path: Path) -> None:
    text = "rules:\n  - name: a\n    every: 60d\n    pull_back: {after: 3, pause: 8w}\n"
    pull_back = load(tmp_path, text).rules[0].pull_back
    assert pull_back is not None
    assert (pull_back.after, pull_back.pause) == (3, timedelta(weeks=8))


@pytest.mark.parametrize(
    ("value", "where", "fragment"),
    [
        ("{after: 0, pause: 30d}", "after", "expected a whole number of at least 1"),
        ("{after: -1, pause: 30d}", "after", "expected a whole number of at least 1"),
        ("{after: 2, pause: 0d}", "pause", "a duration must be longer than zero"),
        ("{after: 2, pause: 1m}", "pause", "months and years are not accepted"),
    ],
)
def test_pull_back_rejected(tmp_path: Path, value: str, where: str, fragment: str) -> None:
    path, message = error(
        tmp_path, f"rules:\n  - name: a\n    every: 60d\n    pull_back: {value}\n"
    )
    assert message.startswith(f"{path}:4: rules[0].pull_back.{where}: ")
    assert fragment in message


# --------------------------------------------------------------------------- sources


def test_unknown_plugin_lists_the_known_ones(tmp_path: Path) -> None:
    path, message = error(
        tmp_path,
        """\
        sources:
          - plugin: vcard
            path: ./contacts
          - plugin: vcards
            path: ./more
        """,
    )
    known = "caldav, ics, imap, journal, maildir, mbox, vcard"
    assert message == f"{path}:4: sources[1].plugin: no plugin 'vcards' (known: {known})"


def test_default_source_name_is_plugin_colon_path(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """\
        sources:
          - plugin: vcard
            path: ./contacts
          - plugin: journal
            path: journal.yaml
            name: my journal
        """,
    )
    contacts = (tmp_path / "contacts").resolve()
    assert [(s.name, s.plugin) for s in config.sources] == [
        (f"vcard:{contacts}", "vcard"),
        ("my journal", "journal"),
    ]
    assert config.sources[0].options == {"path": contacts}
    assert config.sources[0].manifest.domain == "vcard"
    assert config.sources[0].manifest.origin == "built-in"


def test_two_sources_with_the_same_name(tmp_path: Path) -> None:
    path, message = error(
        tmp_path,
        """\
        sources:
          - plugin: vcard
            path: ./contacts
          - plugin: vcard
            path: contacts/
        """,
    )
    contacts = (tmp_path / "contacts").resolve()
    assert message == f"{path}:4: sources[1]: a source named 'vcard:{contacts}' is given twice"


MANIFEST = """\
domain: crm
name: My CRM
version: 0.3
provides: [contacts, interactions]
options:
  url: {type: string, required: true}
  pages: {type: integer, default: 3}
  every: {type: duration}
  verify: {type: boolean}
  cache: {type: path}
  labels: {type: strings}
"""


def test_plugin_beside_the_config(tmp_path: Path) -> None:
    folder = write_plugin(tmp_path, "crm", MANIFEST)
    config = load(
        tmp_path,
        """\
        sources:
          - plugin: crm
            url: https://crm.example.org
            pages: 7
            every: 2h
            verify: false
            cache: ./cache
            labels: [a, b]
        """,
    )
    (source,) = config.sources
    # Named by its host, never by the whole URL (a calendar's secret address), hashed apart.
    assert re.fullmatch(r"crm:https://crm\.example\.org/…[0-9a-f]{8}", source.name)
    assert source.plugin == "crm"
    assert source.options == {
        "url": "https://crm.example.org",
        "pages": 7,
        "every": timedelta(hours=2),
        "verify": False,
        "cache": tmp_path / "cache",
        "labels": ("a", "b"),
    }
    assert source.manifest.folder == folder
    assert (source.manifest.name, source.manifest.version) == ("My CRM", "0.3")
    assert source.manifest.provides == ("contacts", "interactions")


def test_plugin_beside_the_config_is_listed_when_a_name_is_wrong(tmp_path: Path) -> None:
    write_plugin(tmp_path, "crm", MANIFEST)
    path, message = error(tmp_path, "sources:\n  - plugin: crn\n    url: x\n")
    known = "caldav, crm, ics, imap, journal, maildir, mbox, vcard"
    assert message == f"{path}:2: sources[0].plugin: no plugin 'crn' (known: {known})"


def test_plugin_option_defaults(tmp_path: Path) -> None:
    write_plugin(tmp_path, "crm", MANIFEST)
    options = load(tmp_path, "sources:\n  - plugin: crm\n    url: x\n").sources[0].options
    assert options == {
        "url": "x",
        "pages": 3,
        "every": None,
        "verify": None,
        "cache": None,
        "labels": None,
    }


@pytest.mark.parametrize(
    ("line_text", "where", "expected"),
    [
        ("pages: many", "pages", "expected a whole number of at least 0"),
        ("pages: -2", "pages", "expected a whole number of at least 0"),
        ("every: 1m", "every", "expected a duration like 30min, 12h, 60d or 8w, got '1m'"),
        ("verify: maybe", "verify", "expected true or false"),
        ("cache: ''", "cache", "expected a non-empty text"),
        ("labels: [a, [b]]", "labels[1]", "expected a single value"),
        ("url: {a: 1}", "url", "expected a single value"),
    ],
)
def test_plugin_options_validated_by_type(
    tmp_path: Path, line_text: str, where: str, expected: str
) -> None:
    write_plugin(tmp_path, "crm", MANIFEST)
    text = "sources:\n  - plugin: crm\n    name: c\n" + (
        f"    {line_text}\n" if line_text.startswith("url") else f"    url: x\n    {line_text}\n"
    )
    line = 4 if line_text.startswith("url") else 5
    path, message = error(tmp_path, text)
    assert message.startswith(f"{path}:{line}: sources[0].{where}: ")
    assert expected in message


def test_plugin_required_option_missing(tmp_path: Path) -> None:
    write_plugin(tmp_path, "crm", MANIFEST)
    path, message = error(tmp_path, "timezone: UTC\nsources:\n  - plugin: crm\n    pages: 2\n")
    assert message == f"{path}:3: sources[0]: missing required key 'url'"


def test_plugin_unknown_option(tmp_path: Path) -> None:
    write_plugin(tmp_path, "crm", MANIFEST)
    path, message = error(tmp_path, "sources:\n  - plugin: crm\n    url: x\n    page: 2\n")
    assert message == (
        f"{path}:4: sources[0].page: unknown key"
        " (known: cache, every, labels, name, pages, plugin, url, verify)"
    )


def test_plugin_option_default_is_converted_like_a_given_value(tmp_path: Path) -> None:
    # BUG: _Reader.sources copies manifest defaults as raw YAML values, so a plugin
    # gets timedelta(hours=2) for `every: 2h` but the string "1h" for the default.
    write_plugin(
        tmp_path,
        "poll",
        """\
        domain: poll
        options:
          every: {type: duration, default: 1h}
          cache: {type: path, default: ./cache}
        """,
    )
    options = load(tmp_path, "sources:\n  - plugin: poll\n").sources[0].options
    assert options == {"every": timedelta(hours=1), "cache": tmp_path / "cache"}


@pytest.mark.parametrize(
    "manifest",
    [
        "name: no domain\n",
        "domain: broken\noptions:\n  x: {type: float}\n",
        "domain: broken\noptions: [\n",
    ],
    ids=["no-domain", "bad-type", "bad-yaml"],
)
def test_broken_plugin_manifest_is_a_config_error(tmp_path: Path, manifest: str) -> None:
    # BUG: plugins._parse_manifest raises KeyError / ValueError / yaml.YAMLError, which
    # config.load lets through, so `nurtured check` dies with a traceback.
    write_plugin(tmp_path, "broken", manifest)
    path = write(tmp_path, "timezone: UTC\nsources:\n  - plugin: broken\n")
    with pytest.raises(ConfigError) as info:
        configuration.load(path)
    assert str(info.value).startswith(f"{path}:3: sources[0].plugin: ")


def test_broken_plugin_manifest_does_not_hide_a_typo(tmp_path: Path) -> None:
    # BUG: listing the known plugins for an unrelated typo parses every manifest
    # beside the config; one broken folder turns the error into a KeyError.
    write_plugin(tmp_path, "broken", "name: no domain\n")
    path = write(tmp_path, "sources:\n  - plugin: vcrad\n    path: x\n")
    with pytest.raises(ConfigError) as info:
        configuration.load(path)
    assert str(info.value).startswith(f"{path}:2: sources[0].plugin: no plugin 'vcrad'")


# --------------------------------------------------------------------------- nurtured check

GOOD = """\
timezone: Europe/Lisbon
state_dir: ./state
sources:
  - plugin: vcard
    path: ./contacts
notify:
  - url: console://
    tag: terminal
  - url: ntfys://ntfy.sh/a-long-random-topic
    tag: phone
limits:
  quiet_hours: "22:00-07:30"
  digest: "0 8 * * *"
rules:
  - name: family
    match: {tags: [family]}
    every: 3w
    notify: phone
"""


def test_check_good_config(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    result = check(path, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"{path}: ok: 1 source(s), 1 rule(s), 2 channel(s), state in {tmp_path / 'state'}\n"
    )
    assert result.stderr == ""
    assert not (tmp_path / "state").exists()  # checking creates nothing


def test_check_broken_config(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("every: 3w", "every: 1m"))
    result = check(path, tmp_path)
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.startswith(f"{path}:17: rules[0].every: expected a duration like")
    assert "Traceback" not in result.stderr


def test_check_malformed_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("    tag: phone", "   tag: phone"))
    result = check(path, tmp_path)
    assert result.returncode != 0
    assert result.stderr.startswith(f"{path}:10: ")
    assert "Traceback" not in result.stderr


def test_check_missing_file(tmp_path: Path) -> None:
    result = check(tmp_path / "absent.yaml", tmp_path)
    assert result.returncode != 0
    assert result.stderr.startswith(f"{tmp_path / 'absent.yaml'}: cannot read the config")


def test_loader_leaves_apprise_urls_to_check(tmp_path: Path) -> None:
    # The loader does not know Apprise; the URL is only refused when channels are built.
    config = load(tmp_path, "notify:\n  - url: notarealscheme://x\n")
    assert config.channels[0].url == "notarealscheme://x"


def test_check_rejects_a_url_apprise_cannot_use(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        GOOD.replace("ntfys://ntfy.sh/a-long-random-topic", "notarealscheme://x"),
    )
    result = check(path, tmp_path)
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.startswith(
        f"{path}:9: notify[1].url: Apprise cannot use notarealscheme://…"
    )


def test_check_does_not_print_a_secret_url(tmp_path: Path) -> None:
    (tmp_path / "secrets.yaml").write_text("bad: notarealscheme://hunter2-token\n")
    path = write(tmp_path, "timezone: UTC\nnotify:\n  - url: !secret bad\n")
    result = check(path, tmp_path)
    assert result.returncode != 0
    assert result.stderr.startswith(f"{path}:3: notify[0].url: Apprise cannot use")
    assert "hunter2" not in result.stderr + result.stdout


def test_check_the_example_config(tmp_path: Path) -> None:
    example = tmp_path / "config.example.yaml"
    shutil.copy(REPO / "config.example.yaml", example)
    result = check(example, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"{example}: ok: 2 source(s), 3 rule(s), 1 channel(s), state in {tmp_path / 'state'}\n"
    )


def test_me_lists_the_users_own_addresses_and_patterns(tmp_path: Path) -> None:
    config = load(tmp_path, "me: [Me@Example.org, '*@mycompany.example']\n")
    assert config.me == ("me@example.org", "*@mycompany.example")
    assert load(tmp_path, "rules: []\n").me == ()


def test_a_rule_needs_a_cadence_or_an_occasion(tmp_path: Path) -> None:
    text = "rules:\n  - name: a\n    every: 3d\n  - name: b\n    match: {tags: [x]}\n"
    path, message = error(tmp_path, text)
    assert message == (
        f"{path}:4: rules[1]: a rule needs at least one of:"
        " every, birthday, anniversary, follow_up, brief"
    )


def test_occasions_and_grace(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """\
        rules:
          - name: birthdays
            match: {tags: [friends]}
            birthday: {before: 3d}
            anniversary: {before: 1w}
          - name: clients
            every: 30d
            grace: 10d
            follow_up: {after: 1d}
            brief: {before: 2h}
        """,
    )
    birthdays, clients = config.rules
    assert birthdays.every is None
    assert birthdays.occasions == {"birthday": timedelta(days=3), "anniversary": timedelta(weeks=1)}
    assert clients.grace == timedelta(days=10)
    assert clients.occasions == {"follow_up": timedelta(days=1), "brief": timedelta(hours=2)}
    _, message = error(tmp_path, "rules:\n  - name: a\n    follow_up: {before: 1d}\n")
    assert "rules[0].follow_up.before: unknown key (known: after)" in message
