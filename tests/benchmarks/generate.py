"""A synthetic address book and contact history for benchmarks (and for trying nurtured out).

Writes, under an output folder:

    contacts/<uid>.vcf   one card per file, as vdirsyncer keeps a vdir
    journal.yaml         about two interactions per person, by email, over the last two years
    config.yaml          (optional) a config pointing at both, with the example's rules

The cards look like real exports: FN and N, a NICKNAME for some, one or two
EMAIL, a TEL, CATEGORIES from a small set (friends, network, family, clients),
a NOTE, ORG, BDAY or ADR for some, a few with a base64 PHOTO of a few KB; vCard
3.0 and 4.0 mixed, some files with CRLF line endings, long lines folded at 75
octets. Everything is derived from a seed, so two runs write the same book.

    python tests/benchmarks/generate.py OUT --people 2000 [--seed 1] [--config]

or, from Python:

    from generate import generate
    book = generate(Path("out"), 2000)
"""

from __future__ import annotations

import argparse
import base64
import random
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

GIVEN = (
    "Ana Bruno Carla Diogo Elena Filipe Greta Hugo Inês João Karin Lars Marta Nuno Olga Pedro"
    " Quentin Rita Sofia Tiago Ursula Vasco Wen Xavier Yara Zoë Amélie Björn Chloé Dmitri"
    " Émile Fatima Giulia Hiroshi Ingrid Jürgen Kwame Léa Mateo Nadia Oskar Priya Rafael Saoirse"
    " Tomás Uma Viktor Wiktoria Yusuf Zainab Aiko Bernd Camille Dagny Eitan Farida Gonçalo"
    " Helga Ivo Jana Kofi Liesel Malik Noor Orla Paulo Rosa Stellan Tove Ulrich Vera"
).split()
FAMILY = (
    "Lima Silva Santos Oliveira Costa Müller Schmidt Schneider Fischer Weber Meyer Wagner Young"
    " Smith Jones Brown Taylor Wilson Chen Wang Li Zhang Liu Nakamura Sato Suzuki Rossi Russo"
    " Ferrari Esposito Bianchi García Fernández González Rodríguez López Martínez Dubois Moreau"
    " Laurent Lefèvre Novák Kowalski Nowak Hansen Johansson Nielsen O'Brien Murphy Kelly Ivanova"
    " Petrov Haddad Okafor Mensah Nguyen Tran Pham Kim Park Lee Singh Patel Kumar Shah Cohen Levi"
).split()
DOMAINS = (
    "example.org example.com example.net mail.example.org post.example.com work.example.net"
).split()
TAGS = ("friends", "network", "family", "clients")
TAG_WEIGHTS = (40, 35, 10, 15)
NOTES = (
    "Met at the climbing gym.",
    "Architect; moved to Porto last year.",
    "Kids: Tom and Ivy. Ask about the allotment.",
    "Former colleague from the Lisbon office.",
    "Introduced by Marta; works on heat pumps.",
    "Owes me a book, I owe them a dinner.",
    "Plays cello in an amateur orchestra\\, Thursdays.",
    "Allergic to nuts. Loves bad puns.",
)
ORGS = ("Acme Lda", "Globex", "Initech", "Umbrella GmbH", "Hooli", "Vandelay Industries")
CITIES = ("Lisboa", "Porto", "Berlin", "Tromsø", "Kraków", "Nairobi", "Osaka", "Toronto")
DIRECTIONS = ("in", "out", "met")
CHANNELS = ("call", "email", "meeting", "message", "note")
JOURNAL_NOTES = (
    "her new job",
    "the conference slides",
    "coffee near the office",
    "birthday wishes",
    "asked about the move",
    "sent the draft for comments",
)


@dataclass
class Person:
    uid: str
    file: str  # the file name in contacts/
    name: str
    given: str
    family: str
    emails: list[str]
    tags: list[str]
    version: str
    crlf: bool


@dataclass
class Book:
    root: Path
    contacts: Path
    journal: Path
    people: list[Person] = field(default_factory=list)
    interactions: int = 0
    config: Path | None = None


def fold(line: str, width: int = 75) -> str:
    """Fold a content line at `width` octets (RFC 6350 §3.2), never inside a UTF-8 sequence."""
    data = line.encode()
    if len(data) <= width:
        return line
    parts, start, limit = [], 0, width
    while start < len(data):
        end = min(start + limit, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:  # a continuation byte
            end -= 1
        parts.append(data[start:end].decode())
        start, limit = end, width - 1  # continuation lines start with a space
    return "\n ".join(parts)


def vcard(p: Person) -> str:
    """The text of one card, in p.version, with p.crlf line endings.

    Everything but FN, N, UID and EMAIL comes from a generator seeded with the
    UID, so rewriting a card with a new FN changes nothing else.
    """
    rng = random.Random(p.uid)
    given, family = p.given, p.family
    v4 = p.version == "4.0"
    lines = ["BEGIN:VCARD", f"VERSION:{p.version}"]
    lines.append("PRODID:-//nurtured//benchmark generator//EN")
    lines.append(f"UID:urn:uuid:{p.uid}" if v4 else f"UID:{p.uid}")
    lines.append(f"FN:{p.name}")
    lines.append(f"N:{family};{given};;;")
    if rng.random() < 0.2:
        lines.append(f"NICKNAME:{given[:3]}{rng.choice('aioy')}")
    for i, email in enumerate(p.emails):
        kind = "home" if i == 0 else "work"
        if v4:
            lines.append(f"EMAIL;TYPE={kind}{';PREF=1' if i == 0 else ''}:{email}")
        else:
            lines.append(f"EMAIL;TYPE=INTERNET,{kind.upper()}:{email}")
    number = f"+{rng.randint(1, 99)} " + " ".join(str(rng.randint(100, 999)) for _ in range(3))
    if v4:
        lines.append(f"TEL;VALUE=uri;TYPE=cell:tel:{number.replace(' ', '-')}")
    else:
        lines.append(f"TEL;TYPE=CELL:{number}")
    if p.tags:
        lines.append("CATEGORIES:" + ",".join(p.tags))
    if rng.random() < 0.3:
        lines.append("NOTE:" + rng.choice(NOTES))
    if rng.random() < 0.3:
        lines.append("ORG:" + rng.choice(ORGS))
    if rng.random() < 0.3:
        year, month, day = rng.randint(1950, 2005), rng.randint(1, 12), rng.randint(1, 28)
        lines.append(f"BDAY:{year}-{month:02d}-{day:02d}")
    if rng.random() < 0.25:
        city = rng.choice(CITIES)
        street, code = rng.randint(1, 300), rng.randint(1000, 9999)
        lines.append(f"ADR;TYPE=home:;;Rua {street};{city};;{code};")
    if rng.random() < 0.02:  # a few with a photo of a few KB
        photo = base64.b64encode(rng.randbytes(rng.randint(2_000, 8_000))).decode()
        if v4:
            lines.append(f"PHOTO:data:image/jpeg;base64,{photo}")
        else:
            lines.append(f"PHOTO;ENCODING=b;TYPE=JPEG:{photo}")
    rev = f"{2020 + rng.randint(0, 5)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"
    lines.append(f"REV:{rev}T10:00:00Z")
    lines.append("END:VCARD")
    eol = "\r\n" if p.crlf else "\n"
    return eol.join(fold(line).replace("\n", eol) for line in lines) + eol


def write_card(book: Book, p: Person, name: str | None = None) -> None:
    """Rewrite one person's card with a new FN (name) atomically, as a sync tool does."""
    if name is not None:
        p.name = name
    text = vcard(p)
    path = book.contacts / p.file
    tmp = book.contacts / f".{p.file}.tmp"  # a hidden temporary name the watcher leaves out
    tmp.write_bytes(text.encode())
    tmp.replace(path)


def generate(
    out: Path,
    people: int,
    seed: int = 1,
    per_person: float = 2.0,
    now: datetime | None = None,
    config: bool = False,
) -> Book:
    """Write `people` cards and about `per_person` interactions each under `out`."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    book = Book(out, out / "contacts", out / "journal.yaml")
    book.contacts.mkdir(parents=True, exist_ok=True)
    for i in range(people):
        given, family = rng.choice(GIVEN), rng.choice(FAMILY)
        uid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        local = f"{given}.{family}".lower().replace("'", "")
        emails = [f"{local}.{i}@{rng.choice(DOMAINS)}"]
        if rng.random() < 0.3:
            emails.append(f"{given[0].lower()}{i}@work.example.com")
        tags = [rng.choices(TAGS, TAG_WEIGHTS)[0]]
        if rng.random() < 0.1:
            tags.append(rng.choice(TAGS))
        tags = list(dict.fromkeys(tags))
        p = Person(
            uid=uid,
            file=f"{uid}.vcf",
            name=f"{given} {family}",
            given=given,
            family=family,
            emails=emails,
            tags=tags,
            version=rng.choice(("3.0", "4.0")),
            crlf=rng.random() < 0.4,
        )
        book.people.append(p)
        (book.contacts / p.file).write_bytes(vcard(p).encode())

    # The journal: written by hand, not with yaml.dump, which is slow for 40 000 entries.
    lines = ["# Synthetic history written by tests/benchmarks/generate.py"]
    span = timedelta(days=730).total_seconds()
    count = 0
    for p in book.people:
        n = max(0, round(rng.gauss(per_person, 0.8)))
        for _ in range(n):
            at = now - timedelta(seconds=rng.uniform(3600, span))
            if rng.random() < 0.5:
                date = at.strftime("%Y-%m-%d")
            else:
                date = at.strftime("%Y-%m-%dT%H:%M")
            lines.append(f"- date: {date}")
            lines.append(f"  person: {rng.choice(p.emails)}")
            lines.append(f"  direction: {rng.choice(DIRECTIONS)}")
            lines.append(f"  channel: {rng.choice(CHANNELS)}")
            if rng.random() < 0.3:
                lines.append(f"  note: {rng.choice(JOURNAL_NOTES)}")
            count += 1
    book.journal.write_text("\n".join(lines) + "\n", encoding="utf-8")
    book.interactions = count
    if config:
        book.config = write_config(out, out / "state", "console://")
    return book


def write_config(out: Path, state_dir: Path, notify_url: str, max_per_day: int | None = 10) -> Path:
    """A config for the book in `out`: the example's rules plus one for clients."""
    limits = f"limits:\n  max_per_day: {max_per_day}\n" if max_per_day else ""
    text = f"""# Written by tests/benchmarks/generate.py
timezone: Europe/Lisbon
state_dir: {state_dir}
sources:
  - plugin: vcard
    path: ./contacts
  - plugin: journal
    path: ./journal.yaml
notify:
  - url: "{notify_url}"
    tag: bench
{limits}rules:
  - name: family
    match: {{tags: [family]}}
    every: 3w
    notify: bench
  - name: friends
    match: {{tags: [friends]}}
    every: 45d
    notify: bench
  - name: network
    match: {{tags: [network]}}
    every: 60d
    answer_window: 14d
    pull_back: {{after: 2, pause: 60d}}
    notify: bench
  - name: clients
    match: {{tags: [clients]}}
    every: 90d
    notify: bench
"""
    path = out / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="output folder (created)")
    p.add_argument("--people", type=int, default=2000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--per-person", type=float, default=2.0, help="interactions per person")
    p.add_argument("--config", action="store_true", help="also write config.yaml (console://)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    book = generate(args.out.resolve(), args.people, args.seed, args.per_person, config=args.config)
    extra = f"; config {book.config}" if book.config else ""
    print(
        f"wrote {len(book.people)} cards to {book.contacts}"
        f" and {book.interactions} interactions to {book.journal}{extra}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
