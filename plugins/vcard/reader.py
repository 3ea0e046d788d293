"""Read the few properties nurtured needs out of vCard text, fast and forgivingly.

Why not vobject: an address book of 20 000 cards has to be read in well under a
second, one broken card must never cost the rest of the file, and real exports
(Outlook's 2.1 quoted-printable, Apple's item groups and megabyte photos,
Google's system groups) break stricter parsers. The reader therefore looks at
eleven properties, skips everything else without decoding it, and turns every
problem into a warning that names the file and the line.

Supported: vCard 2.1, 3.0 and 4.0; CRLF, LF or CR line endings; folded lines;
2.1 quoted-printable with soft line breaks and CHARSET; group prefixes
(`item1.EMAIL`); bare 2.1 parameters (`TEL;CELL;PREF:`); quoted parameter
values (`TYPE="voice,cell"`).
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterator

from nurtured.model import Card

_WANTED = frozenset("UID FN N NICKNAME EMAIL TEL BDAY ANNIVERSARY CATEGORIES NOTE ORG".split())

# A logical line ends at a newline that is not followed by a space or a tab
# (RFC 6350 §3.2): splitting there keeps folded lines, however long, in one
# piece without looking at each physical line in Python.
_LOGICAL_LINE = re.compile(r"\n(?![ \t])")

# The escapes RFC 6350 §3.4 defines. Anything else after a backslash is kept
# as written, as vobject does: 2.1 writers leave Windows paths unescaped.
_ESCAPE = re.compile(r"\\([\\,;nN])")

# "=" not followed by two hex digits: the writer did not really encode the value.
_BAD_QP = re.compile(rb"=(?![0-9A-Fa-f]{2})")

# Google files every contact under this system group; it says nothing about the person.
_NOT_A_TAG = "mycontacts"

_Props = dict[str, list[tuple[str, str]]]


def read_cards(text: str, origin: str) -> tuple[list[Card], list[str]]:
    """Parse every BEGIN:VCARD..END:VCARD block in `text`. Returns the cards and a list of
    warnings, each naming `origin` (a file path) and the line number where the broken card starts,
    e.g. "contacts/x.vcf:12: card skipped: no FN or N". A broken card is skipped; every other
    card is read."""
    # A byte-order mark is not content; `cat a.vcf b.vcf` can put one mid-file too.
    if "\ufeff" in text:
        text = text.replace("\ufeff", "")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")

    cards: list[Card] = []
    warnings: list[str] = []
    props: _Props | None = None  # the open card's wanted properties; None outside a card
    begin_at = 0

    for at, line in _logical_lines(text):
        colon = line.find(":")
        if colon < 0:
            continue  # blank line, base64 left-overs or garbage: nothing to read
        head = line[:colon]
        if "\n" in head:  # folded inside the name or parameters: rare, unfold and look again
            line = _unfold(line)
            colon = line.find(":")
            head = line[:colon]
        semi = head.find(";")
        # `item1.EMAIL` is EMAIL: Apple groups a value with its X-ABLabel.
        name = (head if semi < 0 else head[:semi]).rpartition(".")[2].strip().upper()

        if name in _WANTED:
            if props is None:
                continue
            if '"' in head:  # a quoted parameter value may hold a colon
                colon = _value_start(line, colon)
                head = line[:colon]
            value = _decode(name, head, line[colon + 1 :], at, origin, warnings)
            props.setdefault(name, []).append((head, value))
        elif name == "BEGIN":
            if line[colon + 1 :].strip().upper() == "VCARD":
                if props is not None:
                    warnings.append(f"{origin}:{begin_at}: card skipped: no END:VCARD before BEGIN")
                props = {}
                begin_at = at
        elif name == "END":
            if props is not None and line[colon + 1 :].strip().upper() == "VCARD":
                card = _build(props)
                if card is None:
                    warnings.append(f"{origin}:{begin_at}: card skipped: no FN, N or ORG")
                else:
                    cards.append(card)
                props = None

    if props is not None:
        warnings.append(f"{origin}:{begin_at}: card skipped: no END:VCARD before end of file")
    return cards, warnings


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Yield (first physical line number, logical line), folds still in.

    Unfolding is left to the caller so that skipped properties (photos) are
    never copied. A vCard 2.1 quoted-printable value whose line ends in "="
    continues on the next line even though that line is not indented: it is
    joined here, unless the next line opens or closes a card, so that a
    broken value cannot swallow END:VCARD.
    """
    lineno = 1
    held = ""  # a quoted-printable line waiting for the rest after its soft break
    held_at = 0
    for chunk in _LOGICAL_LINE.split(text):
        at = lineno
        lineno += chunk.count("\n") + 1
        if held:
            if _is_boundary(chunk):
                yield held_at, held
            else:
                chunk = held + "\n" + chunk
                at = held_at
            held = ""
        if chunk.endswith("=") and _is_quoted_printable(chunk):
            held, held_at = chunk, at
            continue
        yield at, chunk
    if held:
        yield held_at, held


def _is_quoted_printable(line: str) -> bool:
    """Whether the line's parameters say ENCODING=QUOTED-PRINTABLE (or the bare 2.1 form)."""
    colon = line.find(":")
    head = line if colon < 0 else line[:colon]
    return "QUOTED-PRINTABLE" in head.upper()


def _is_boundary(line: str) -> bool:
    """Whether the line is BEGIN:VCARD or END:VCARD, which nothing may swallow."""
    return line.strip().upper() in ("BEGIN:VCARD", "END:VCARD")


def _unfold(value: str) -> str:
    """Remove each newline and the one space or tab after it (RFC 6350 §3.2)."""
    return value.replace("\n ", "").replace("\n\t", "")


def _value_start(line: str, first_colon: int) -> int:
    """Index of the colon ending name and parameters, skipping colons inside quotes.

    Falls back to the first colon when the quotes never close.
    """
    quoted = False
    for i, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == ":" and not quoted:
            return i
    return first_colon


def _decode(name: str, head: str, value: str, at: int, origin: str, warnings: list[str]) -> str:
    """The value unfolded and, if quoted-printable, decoded; backslash escapes are kept.

    Escapes stay because N, ORG, NICKNAME and CATEGORIES must be split at
    unescaped separators before unescaping.
    """
    if ";" in head and "QUOTED-PRINTABLE" in head.upper():
        return _decode_quoted_printable(name, head, value, at, origin, warnings)
    if "\n" in value:
        value = _unfold(value)
    return value


def _decode_quoted_printable(
    name: str, head: str, value: str, at: int, origin: str, warnings: list[str]
) -> str:
    """Decode a vCard 2.1 quoted-printable value in its CHARSET (UTF-8 if none).

    Never raises: an invalid sequence is kept as written, undecodable bytes
    become U+FFFD, and either earns a warning.
    """
    value = _unfold(value.replace("=\n", ""))
    if value.endswith("="):  # a soft break with nothing after it
        value = value[:-1]
    charset = _param(head, "CHARSET") or "utf-8"
    try:
        raw = value.encode(charset)
    except (LookupError, UnicodeError):
        charset = "utf-8"
        raw = value.encode(charset, "replace")
    ok = _BAD_QP.search(raw) is None
    decoded = binascii.a2b_qp(raw)
    try:
        text = decoded.decode(charset)
    except UnicodeDecodeError:
        text = decoded.decode(charset, "replace")
        ok = False
    if not ok:
        warnings.append(f"{origin}:{at}: {name}: invalid quoted-printable, read as best effort")
    return text.replace("\r\n", "\n")


def _param(head: str, key: str) -> str:
    """The value of parameter `key` (upper case) in `NAME;K=V;...`, or ""."""
    for part in head.split(";")[1:]:
        k, eq, v = part.partition("=")
        if eq and k.strip().upper() == key:
            return v.strip().strip('"')
    return ""


def _unescape(value: str) -> str:
    """Undo vCard text escaping: \\n and \\N are newlines, \\, \\; \\\\ the character."""
    if "\\" not in value:
        return value
    return _ESCAPE.sub(_unescape_one, value)


def _unescape_one(match: re.Match[str]) -> str:
    char = match.group(1)
    return "\n" if char in "nN" else char


def _split(value: str, sep: str) -> list[str]:
    """Split at each `sep` not escaped by a backslash; the parts keep their escapes."""
    if "\\" not in value:
        return value.split(sep)
    parts: list[str] = []
    start = 0
    i = 0
    end = len(value)
    while i < end:
        char = value[i]
        if char == "\\":
            i += 2
            continue
        if char == sep:
            parts.append(value[start:i])
            start = i + 1
        i += 1
    parts.append(value[start:])
    return parts


def _first(props: _Props, name: str) -> str:
    """The first value of a property, or "" (later duplicates are ignored)."""
    values = props.get(name)
    return values[0][1] if values else ""


def _build(props: _Props) -> Card | None:
    """Turn one card's raw properties into a Card; None when it names no one."""
    fn = _unescape(_first(props, "FN")).strip()
    n = _split(_first(props, "N"), ";")
    family = _unescape(n[0]).strip()
    given = _unescape(n[1]).strip() if len(n) > 1 else ""
    org = _unescape(_split(_first(props, "ORG"), ";")[0]).strip()
    name = fn or " ".join(part for part in (given, family) if part) or org
    if not name:
        return None

    nickname = ""
    for part in _split(_first(props, "NICKNAME"), ","):
        nickname = _unescape(part).strip()
        if nickname:
            break

    emails: list[str] = []
    for _, value in props.get("EMAIL", ()):
        email = _unescape(value).strip().lower()
        if email.startswith("mailto:"):
            email = email[7:].strip()
        if email and email not in emails:
            emails.append(email)

    phones: list[str] = []
    for _, value in props.get("TEL", ()):
        phone = value.strip()
        if phone[:4].lower() == "tel:":  # vCard 4.0 VALUE=uri
            phone = phone[4:].strip()
        if phone and phone not in phones:
            phones.append(phone)

    tags: list[str] = []
    for _, value in props.get("CATEGORIES", ()):
        for part in _split(value, ","):
            tag = _unescape(part).strip()
            if tag and tag not in tags and tag.casefold() != _NOT_A_TAG:
                tags.append(tag)

    return Card(
        uid=_unescape(_first(props, "UID")).strip(),
        name=name,
        given_name=given,
        nickname=nickname,
        emails=tuple(emails),
        phones=tuple(phones),
        tags=tuple(tags),
        note=_unescape(_first(props, "NOTE")).strip(),
        org=org,
        birthday=_date(props, "BDAY"),
        anniversary=_date(props, "ANNIVERSARY"),
    )


def _date(props: _Props, name: str) -> str:
    """A date as the source wrote it, except for a year Apple says to omit.

    Apple Contacts stores a birthday without a year as
    `BDAY;X-APPLE-OMIT-YEAR=1604:1604-04-15`; that is "--04-15" in vCard 4.0
    terms, and reporting 1604 as the year would be wrong.
    """
    values = props.get(name)
    if not values:
        return ""
    head, value = values[0]
    value = value.strip()
    if ";" in head:
        year = _param(head, "X-APPLE-OMIT-YEAR")
        if year and value.startswith(year):
            value = "--" + value[len(year) :].lstrip("-")
    return value
