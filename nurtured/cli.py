"""The command line: the daemon (`run`) and the user's hands on it."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from nurtured import config as configuration
from nurtured import plugins, reminders, systemd
from nurtured.clock import Clock, humanize, parse_duration, parse_when
from nurtured.config import Config, ConfigError
from nurtured.model import CHANNELS, Interaction
from nurtured.reciprocity import Side, Trace, reciprocity
from nurtured.rules import DEFAULT_ANSWER_WINDOW, first_match
from nurtured.store import CLI_SOURCE, PERSON_REF, PersonRow, Store


class UserError(Exception):
    """A mistake on the command line, said plainly; exit status 1."""


# -- helpers ---------------------------------------------------------------------------


def _iso(moment: datetime | None, config: Config) -> str | None:
    return moment.astimezone(config.timezone).isoformat(timespec="seconds") if moment else None


def _day(moment: datetime | None, config: Config) -> str:
    return moment.astimezone(config.timezone).strftime("%Y-%m-%d %H:%M") if moment else "-"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=True)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(str(v).ljust(w) for v, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _print_json(data: Any) -> None:
    # One write: json.dump makes one per token (a million for 20 000 people).
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


async def _find(store: Store, text: str) -> PersonRow:
    found = await store.find_people(text)
    if not found:
        raise UserError(f"no one matches {text!r} (give a part of a name, or an email)")
    if len(found) > 1:
        names = ", ".join(p.name for p in found[:8])
        raise UserError(f"{text!r} matches {len(found)} people ({names}): be more specific")
    return found[0]


def _person_json(p: PersonRow, config: Config) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "tags": p.tags,
        "last_contact": _iso(p.last_contact, config),
        "next_due": _iso(p.next_due, config),
        "kind": p.kind,
        "unanswered": p.unanswered,
        "paused": p.paused,
        "paused_until": _iso(p.paused_until, config),
        "stage": p.stage,
        "health": p.health["score"] if p.health else None,
        "rule": p.rule,
        "reason": p.reason,
    }


def _people_table(people: Sequence[PersonRow], config: Config) -> str:
    rows = [
        (
            p.name,
            ",".join(p.tags) or "-",
            _day(p.last_contact, config),
            _day(p.next_due, config),
            p.kind or "-",
            str(p.unanswered),
            ("until " + _day(p.paused_until, config))
            if p.paused_until
            else ("yes" if p.paused else "-"),
            p.stage or "-",
            str(p.health["score"]) if p.health else "-",
        )
        for p in people
    ]
    headers = (
        "NAME", "TAGS", "LAST CONTACT", "NEXT DUE", "KIND", "UNANSWERED", "PAUSED", "STAGE",
        "HEALTH",
    )  # fmt: skip
    return _table(headers, rows)


def _contact(
    person: PersonRow, at: datetime, direction: str, channel: str, note: str | None
) -> Interaction:
    """A contact the user tells nurtured about, for the person they chose."""
    who = f"{PERSON_REF}{person.id}"
    return Interaction(f"cli-{uuid.uuid4()}", who, at, direction, channel, note or "")


async def _changed(store: Store, config: Config, people: list[int]) -> None:
    """After a change: replan now (status is right at once) and tell a running daemon."""
    from nurtured.daemon import poke

    await reminders.replan(store, config, Clock().now(), people)
    poke(config.state_dir, people)


# -- commands ------------------------------------------------------------------------------


async def cmd_status(args: argparse.Namespace, config: Config, store: Store) -> int:
    people = await store.people()
    failing = await store.failing()
    config_error = getattr(args, "config_error", None) or await store.meta("config_error")
    sources = await store.source_health()
    if args.json:
        _print_json(
            {
                "people": [_person_json(p, config) for p in people],
                "failing_deliveries": [
                    {"person_id": r.person_id, "title": r.title, "attempts": r.attempts,
                     "error": r.last_error, "retry_at": _iso(r.retry_at, config)}
                    for r in failing
                ],
                "config_error": config_error,
                "sources": sources,
            }
        )  # fmt: skip
        return 0
    print(_people_table(people, config) if people else "no people yet: add a source to your config")
    for r in failing:
        print(f"\ndelivery failing ({r.attempts} attempts), retry {_day(r.retry_at, config)}: "
              f"{r.title}: {r.last_error}")  # fmt: skip
    for s in sources:
        if s["state"] == "failed":
            print(f"\nsource {s['name']} failed: {s['error']} (retry {s['retry_at']})")
        elif s["progress"]:
            print(f"\nsource {s['name']} is reading: {s['progress']}")
    if config_error:
        print(f"\nconfig error, the daemon keeps the previous rules: {config_error}")
    return 0


async def cmd_due(args: argparse.Namespace, config: Config, store: Store) -> int:
    horizon = Clock().now() + parse_duration(args.within)
    people = await store.people(due_before=horizon)
    if args.json:
        _print_json({"people": [_person_json(p, config) for p in people]})
    elif people:
        print(_people_table(people, config))
    else:
        print(f"no one is due within {args.within}")
    return 0


async def cmd_show(args: argparse.Namespace, config: Config, store: Store) -> int:
    p = await _find(store, args.person)
    cards = await store.cards_of(p.id)
    identifiers = await store.identifiers_of(p.id)
    dates = await store.key_dates_of(p.id)
    timeline = await store.timeline(p.id)
    nudges = await store.reminders_of(p.id)
    rule = first_match(config.rules, p.name, p.tags, p.emails)
    window = rule.answer_window if rule else DEFAULT_ANSWER_WINDOW
    traces = [
        Trace(
            datetime.fromisoformat(t["at"]), t["direction"], t["message_id"], tuple(t["replies_to"])
        )
        for t in reversed(timeline)
    ]
    balance = reciprocity(traces, window, Clock().now())
    for item in timeline:
        item["at"] = _iso(datetime.fromisoformat(item["at"]), config)
    if args.json:
        data = _person_json(p, config)
        data.update(
            preferred=p.preferred,
            emails=p.emails,
            notes=p.notes,
            first_seen=_iso(p.first_seen, config),
            cards=[{"source": s, "uid": u, **d} for s, u, d in cards],
            identifiers=[{"kind": k, "value": v} for k, v in identifiers],
            dates=dates,
            health_parts=p.health,
            timeline=timeline,
            reciprocity={
                "they_answer": _side_json(balance.they_answer),
                "you_answer": _side_json(balance.you_answer),
            },
            reminders=[
                {"kind": r.kind, "due_at": _iso(r.due_at, config), "state": r.state,
                 "sent_at": _iso(r.sent_at, config), "error": r.last_error}
                for r in nudges
            ],
        )  # fmt: skip
        _print_json(data)
        return 0
    print(f"{p.name}" + (f" ({p.preferred})" if p.preferred else ""))
    print(f"  tags: {', '.join(p.tags) or '-'}    first seen: {_day(p.first_seen, config)}")
    if p.notes:
        print(f"  notes: {p.notes}")
    print(f"  next: {p.kind or 'nothing planned'} {_day(p.next_due, config) if p.next_due else ''}")
    print(f"  why: {p.reason}")
    print(f"  unanswered outreaches: {p.unanswered}")
    if h := p.health:
        print(f"  stage: {h['stage']} ({h['why']})")
        print(f"  health: {h['score']}/100: time {h['time']}, intensity {h['intensity']},"
              f" reciprocity {h['reciprocity']}, trust {h['trust']}")  # fmt: skip
    for d in dates:
        print(f"  {d['kind']}: {d['day']}  (from {d['source']})")
    they, you = _side_text(balance.they_answer), _side_text(balance.you_answer)
    print(f"  they answer {they} of your messages; you answer {you} of theirs")
    print("\ncards:")
    for source, uid, _ in cards:
        print(f"  {source}  {uid}")
    print("identifiers:")
    for kind, value in identifiers:
        print(f"  {kind}: {value}")
    print("timeline:")
    for item in timeline or [{"at": "-", "direction": "", "channel": "", "note": "no contact yet"}]:
        print(f"  {item['at']}  {item['direction']:<6} {item['channel']:<8} {item['note']}")
    if nudges:
        print("nudges:")
        for r in nudges:
            print(f"  {_day(r.due_at, config)}  {r.kind:<11} {r.state}"
                  + (f"  ({r.last_error})" if r.last_error else ""))  # fmt: skip
    return 0


def _side_json(side: Side) -> dict[str, Any]:
    latency = side.median_latency
    return {
        "asked": side.asked,
        "answered": side.answered,
        "rate": side.rate,
        "median_latency_hours": round(latency.total_seconds() / 3600, 1) if latency else None,
    }


def _side_text(side: Side) -> str:
    if not side.asked:
        return "-"
    text = f"{side.answered}/{side.asked}"
    return text + (f" in {humanize(side.median_latency)}" if side.median_latency else "")


async def cmd_suggest(args: argparse.Namespace, config: Config, store: Store) -> int:
    found = await store.unknown_correspondents(args.limit)
    for item in found:
        item["last"] = _iso(datetime.fromisoformat(item["last"]), config)
    if args.json:
        _print_json({"suggestions": found})
    elif found:
        print("People you write to or hear from who are in no address book:")
        print(_table(
            ("ADDRESS", "WRITTEN TO", "HEARD FROM", "LAST"),
            [(f["address"], f["written_to"], f["heard_from"], f["last"]) for f in found],
        ))  # fmt: skip
    else:
        print("no unknown correspondents")
    return 0


async def cmd_log(args: argparse.Namespace, config: Config, store: Store) -> int:
    p = await _find(store, args.person)
    now = Clock().now()
    at = parse_when(args.at, config.timezone, now) if args.at else now
    if at > now + timedelta(minutes=5):
        raise UserError("--at is in the future: log what happened, not what is planned")
    contact = _contact(p, at, args.direction, args.channel, args.note)
    await store.record(CLI_SOURCE, [contact])
    await _changed(store, config, [p.id])
    after = await store.person(p.id)
    print(f"logged {args.direction} {args.channel} with {p.name} on {_day(at, config)};"
          f" next: {after.kind or 'nothing'} {_day(after.next_due, config)}")  # fmt: skip
    return 0


async def cmd_action(args: argparse.Namespace, config: Config, store: Store) -> int:
    p = await _find(store, args.person)
    now = Clock().now()
    changes: dict[str, Any] = {}
    if args.command == "snooze":
        changes["snoozed_until"] = now + parse_duration(args.duration)
    elif args.command == "skip":
        changes["skipped_at"] = now
    elif args.command == "pause":
        changes["paused"] = 1
        changes["paused_until"] = parse_when(args.until, config.timezone) if args.until else None
    elif args.command == "resume":
        changes.update(paused=0, paused_until=None, snoozed_until=None)
    contact = None
    if args.command == "done":  # you reached out: that is an outreach
        contact = _contact(p, now, "out", args.channel, args.note)
    await store.act(p.id, args.command, now, contact, **changes)
    await _changed(store, config, [p.id])
    after = await store.person(p.id)
    print(f"{args.command}: {p.name}; next: {after.kind or 'nothing'}"
          f" {_day(after.next_due, config)} ({after.reason})")  # fmt: skip
    return 0


async def cmd_plugins(args: argparse.Namespace, config: Config, store: Store) -> int:
    found = plugins.available(config.path.parent)
    health = {h["name"]: h for h in await store.source_health()}
    configured = [
        {"name": s.name, "plugin": s.plugin, **{k: v for k, v in health.get(s.name, {}).items()
                                                 if k not in ("name", "plugin")}}
        for s in config.sources
    ]  # fmt: skip
    available = [
        {"domain": m.domain, "name": m.name, "version": m.version, "provides": list(m.provides),
         "origin": m.origin, "missing_requirements": m.missing_requirements()}
        for m in found.values()
    ]  # fmt: skip
    if args.json:
        _print_json({"plugins": available, "sources": configured})
        return 0
    print(_table(
        ("PLUGIN", "NAME", "VERSION", "PROVIDES", "FROM", "MISSING"),
        [(a["domain"], a["name"], a["version"], ",".join(a["provides"]), a["origin"],
          ",".join(a["missing_requirements"]) or "-") for a in available],
    ))  # fmt: skip
    print()
    print(_table(
        ("SOURCE", "PLUGIN", "STATE", "SINCE", "PROGRESS", "ERROR"),
        [(c["name"], c["plugin"], c.get("state", "not started"), c.get("since", "-"),
          c.get("progress") or "-", c.get("error") or "-") for c in configured],
    ))  # fmt: skip
    return 0


async def cmd_notify_test(args: argparse.Namespace, config: Config, store: Store) -> int:
    from nurtured.notify import Notifier

    notifier = Notifier(config.channels)
    targets = notifier.for_tag(args.tag)
    if not targets:
        raise UserError(f"no channel tagged {args.tag!r}")
    failed = 0
    for target in targets:
        error = await notifier.send(
            target, "nurtured test", "If you can read this, nurtured can reach you here."
        )
        print(f"{'FAILED' if error else 'ok':<6} {target.shown}" + (f": {error}" if error else ""))
        failed += bool(error)
    return 1 if failed else 0


async def cmd_export(args: argparse.Namespace, config: Config, store: Store) -> int:
    _print_json({"version": 1, "exported_at": Clock().now().isoformat(), **await store.dump()})
    return 0


# -- commands that need no database -------------------------------------------------------------


def cmd_check(path: Path) -> int:
    from nurtured.notify import Notifier

    try:
        config = configuration.load(path)
        Notifier(config.channels)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    for source in config.sources:
        if missing := source.manifest.missing_requirements():
            print(f"warning: source {source.name} needs {', '.join(missing)}", file=sys.stderr)
    print(f"{path}: ok: {len(config.sources)} source(s), {len(config.rules)} rule(s),"
          f" {len(config.channels)} channel(s), state in {config.state_dir}")  # fmt: skip
    return 0


def cmd_init(path: Path) -> int:
    if path.exists():
        print(f"{path} exists already; not overwriting it", file=sys.stderr)
        return 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(resources.files("nurtured").joinpath("starter.yaml").read_text())
    print(f"wrote {path}: point `sources` at your address book, then `nurtured check`")
    return 0


def cmd_run(path: Path) -> int:
    from nurtured.daemon import serve
    from nurtured.notify import Redactor

    handler = systemd.setup_logging()
    redactor = Redactor()
    handler.addFilter(redactor)
    return asyncio.run(serve(path, Clock(), redactor))


# -- parsing ------------------------------------------------------------------------------------

Command = Callable[[argparse.Namespace, Config, Store], Awaitable[int]]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nurtured", description="Stay in touch with the people who matter."
    )
    p.add_argument(
        "-c",
        "--config",
        type=Path,
        help="config file (default: $NURTURED_CONFIG or ~/.config/nurtured/config.yaml)",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("run", help="run the daemon")
    sub.add_parser("check", help="validate the config")
    sub.add_parser("init", help="write a starter config")
    s = sub.add_parser("status", help="one row per person")
    s.add_argument("--json", action="store_true")
    s = sub.add_parser("due", help="who is due soon")
    s.add_argument("--within", default="7d", help="a duration (default 7d)")
    s.add_argument("--json", action="store_true")
    s = sub.add_parser("show", help="everything about one person")
    s.add_argument("person")
    s.add_argument("--json", action="store_true")
    s = sub.add_parser("log", help="record a contact")
    s.add_argument("person")
    way = s.add_mutually_exclusive_group(required=True)
    way.add_argument(
        "--out", dest="direction", action="store_const", const="out", help="you reached out"
    )
    way.add_argument(
        "--in", dest="direction", action="store_const", const="in", help="they reached out"
    )
    way.add_argument(
        "--met", dest="direction", action="store_const", const="mutual", help="you talked or met"
    )
    s.add_argument("--channel", choices=CHANNELS, default="note")
    s.add_argument("--at", help="when: 2026-03-14 or 2026-03-14T09:30 (default: now)")
    s.add_argument("--note", help="something to pick up next time")
    for name, text in (
        ("done", "you reached out: the nudge is done"),
        ("skip", "skip this nudge: the cycle restarts now"),
    ):
        s = sub.add_parser(name, help=text)
        s.add_argument("person")
        if name == "done":
            s.add_argument("--channel", choices=CHANNELS, default="message")
            s.add_argument("--note")
    s = sub.add_parser("snooze", help="nudge again later")
    s.add_argument("person")
    s.add_argument("duration", help="like 3d or 2w")
    s = sub.add_parser("pause", help="no nudges for this person for a while")
    s.add_argument("person")
    s.add_argument("--until", help="a date (default: until you resume)")
    s = sub.add_parser("resume", help="undo pause and snooze")
    s.add_argument("person")
    s = sub.add_parser("suggest", help="who you mail with who is in no address book")
    s.add_argument("--limit", type=int, default=20)
    s.add_argument("--json", action="store_true")
    s = sub.add_parser("plugins", help="plugins, sources and their health")
    s.add_argument("--json", action="store_true")
    s = sub.add_parser("notify-test", help="send a test message to your channels")
    s.add_argument("--tag", help="only the channels with this tag")
    s = sub.add_parser("export", help="everything, as JSON, for backup and migration")
    s.add_argument("--json", action="store_true", required=True)
    return p


COMMANDS: dict[str, Command] = {
    "status": cmd_status,
    "due": cmd_due,
    "show": cmd_show,
    "log": cmd_log,
    "done": cmd_action,
    "snooze": cmd_action,
    "skip": cmd_action,
    "pause": cmd_action,
    "resume": cmd_action,
    "plugins": cmd_plugins,
    "suggest": cmd_suggest,
    "notify-test": cmd_notify_test,
    "export": cmd_export,
}


READ_ONLY = {"status", "due", "show", "plugins", "export", "suggest"}


async def _with_store(command: Command, args: argparse.Namespace, path: Path) -> int:
    try:
        config = configuration.load(path)
    except ConfigError as exc:
        if args.command not in READ_ONLY:
            raise
        print(f"config error: {exc}", file=sys.stderr)
        args.config_error = str(exc)
        config = configuration.locate(path)
    store = await Store.open(config.state_dir)
    try:
        return await command(args, config, store)
    finally:
        await store.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    path = args.config or configuration.default_path()
    if args.command == "run":
        return cmd_run(path)
    if args.command == "check":
        return cmd_check(path)
    if args.command == "init":
        return cmd_init(path)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(_with_store(COMMANDS[args.command], args, path))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except (UserError, ValueError) as exc:
        print(f"nurtured {args.command}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `nurtured status | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
