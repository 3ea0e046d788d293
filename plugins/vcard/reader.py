"""Read the few properties nurtured needs out of vCard text, fast and forgivingly.

Why not vobject: an address book of 20 000 cards has to be read in a fraction
of a second, one broken card must never cost the rest of the file, and real
exports (Outlook's 2.1 quoted-printable, Apple's item groups and megabyte
photos, Google's system groups) trip stricter parsers. So the reader looks at
eleven properties, skips everything else without decoding it, and turns every
problem into a warning that names the file and the line.

Handled: vCard 2.1, 3.0 and 4.0; CRLF, LF or CR line endings; a byte-order
mark; folded lines; 2.1 quoted-printable with soft line breaks and CHARSET;
group prefixes (`item1.EMAIL`); bare 2.1 parameters (`TEL;CELL;PREF:`);
quoted parameter values (`TYPE="voice,cell"`, even holding a colon).
Not handled: a property *name* split by folding (writers fold at 75 octets,
long after the name), and vCard 2.1 base64 text values.
"""

from __future__ import annotations

import binascii
import re

from nurtured.model import Card

_WANTED = frozenset("UID FN N NICKNAME EMAIL TEL BDAY ANNIVERSARY CATEGORIES NOTE ORG".split())

# One property: its name (with any group prefix), its parameters (possibly
# folded), a colon, and its value with the folded continuation lines after it
# (RFC 6350 §3.2). Matching this in C is what makes the reader fast: Python
# sees one match per property, and a megabyte photo is a single match that is
# never copied. A line without a colon, or starting with a colon, never
# matches, which is how garbage and stray 2.1 base64 lines are skipped. The
# possessive quantifiers keep the matching linear on long colon-less lines.
_PROPERTY = re.compile(
    r"^([^\s:;][^\n:;]*+)"  # name, "item1.EMAIL"
    r"((?:;[^\n:]*+(?:\n[ \t][^\n:]*+)*+)?+)"  # ";TYPE=home;PREF=1", may be folded
    r":([^\n]*+(?:\n[ \t][^\n]*+)*+)",  # the value and its continuation lines
    re.MULTILINE,
)

# The escapes RFC 6350 §3.4 defines. Anything else after a backslash is kept
# as written, as vobject does: 2.1 writers leave Windows paths unescaped.
_ESCAPE = re.compile(r"\\([\\,;nN])")

# "=" not followed by two hex digits: the writer did not really encode the value.
_BAD_QP = re.compile(rb"=(?![0-9A-Fa-f]{2})")

# Google files every contact under this system group; it says nothing about the person.
_NOT_A_TAG = "mycontacts"

# A card's wanted properties: name -> [(parameters, value), ...] in file order.
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
    props: _Props | None = None  # the open card's properties; None outside a card
    begin_at = 0  # line number of the open card's BEGIN:VCARD
    # Line numbers are only needed for warnings and BEGIN lines, so newlines are
    # counted lazily, from `counted_to` on, instead of once per line.
    counted_to = 0
    line_no = 1
    resume = 0  # end of a quoted-printable value read ahead: matches before it are inside it
    # Raw name -> canonical name. A file repeats a few dozen spellings
    # ("item3.EMAIL", "tel"), so this saves most of the per-property string work.
    names: dict[str, str] = {}

    for match in _PROPERTY.finditer(text):
        if resume:
            if match.start() < resume:
                continue
            resume = 0
        raw, params, value = match.groups()
        name = names.get(raw)
        if name is None:
            # `item1.EMAIL` is EMAIL: Apple groups a value with its X-ABLabel.
            name = names[raw] = raw.rpartition(".")[2].strip().upper()
        if value.endswith("=") and params and "QUOTED-PRINTABLE" in params.upper():
            value, resume = _soft_breaks(text, match.end(), value)

        if name in _WANTED:
            if props is None:
                continue
            if params:
                if '"' in params:  # a quoted parameter value may hold a colon
                    params, value = _split_quoted(params + ":" + value)
                if "\n" in params:
                    params = _unfold(params)
            # Without an "=", quoted-printable decoding would change nothing.
            if "=" in value and params and "QUOTED-PRINTABLE" in params.upper():
                line_no += text.count("\n", counted_to, match.start())
                counted_to = match.start()
                value = _decode_quoted_printable(name, params, value, line_no, origin, warnings)
            elif "\n" in value:
                value = _unfold(value)
            entries = props.get(name)
            if entries is None:
                props[name] = [(params, value)]
            else:
                entries.append((params, value))
        elif name == "BEGIN":
            if value.strip().upper() == "VCARD":
                line_no += text.count("\n", counted_to, match.start())
                counted_to = match.start()
                if props is not None:
                    warnings.append(f"{origin}:{begin_at}: card skipped: no END:VCARD before BEGIN")
                props = {}
                begin_at = line_no
        elif name == "END":
            if props is not None and value.strip().upper() == "VCARD":
                card = _build(props)
                if card is None:
                    warnings.append(f"{origin}:{begin_at}: card skipped: no FN, N or ORG")
                else:
                    cards.append(card)
                props = None

    if props is not None:
        warnings.append(f"{origin}:{begin_at}: card skipped: no END:VCARD before end of file")
    return cards, warnings


def _soft_breaks(text: str, end: int, value: str) -> tuple[str, int]:
    """Extend a vCard 2.1 quoted-printable value over its soft line breaks.

    A value line ending in "=" goes on at the start of the next line, which is
    not indented, so the property pattern cannot see it. Returns the value with
    its "=\n" breaks (decoding removes them) and the position where it ends.
    Stops before BEGIN:VCARD and END:VCARD so that a broken value cannot
    swallow the end of its card.
    """
    size = len(text)
    while value.endswith("=") and end < size:
        stop = text.find("\n", end + 1)
        if stop < 0:
            stop = size
        line = text[end + 1 : stop]
        if line.strip().upper() in ("BEGIN:VCARD", "END:VCARD"):
            break
        value += "\n" + line
        end = stop
    return value, end


def _unfold(value: str) -> str:
    """Remove each newline and the one space or tab after it (RFC 6350 §3.2)."""
    return value.replace("\n ", "").replace("\n\t", "")


def _split_quoted(line: str) -> tuple[str, str]:
    """Parameters and value, split at the first colon outside double quotes.

    Falls back to the first colon when the quotes never close.
    """
    quoted = False
    for i, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == ":" and not quoted:
            return line[:i], line[i + 1 :]
    params, _, value = line.partition(":")
    return params, value


def _decode_quoted_printable(
    name: str, params: str, value: str, at: int, origin: str, warnings: list[str]
) -> str:
    """Decode a vCard 2.1 quoted-printable value in its CHARSET (UTF-8 if none).

    Never raises: an invalid sequence is kept as written, undecodable bytes
    become U+FFFD, and either earns a warning.
    """
    value = _unfold(value.replace("=\n", ""))
    if value.endswith("="):  # a soft break with nothing after it
        value = value[:-1]
    charset = _param(params, "CHARSET") or "utf-8"
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


def _param(params: str, key: str) -> str:
    """The value of parameter `key` (upper case) in `;K=V;...`, or ""."""
    for part in params.split(";")[1:]:
        k, eq, v = part.partition("=")
        if eq and k.strip().upper() == key:
            return v.strip().strip('"')
    return ""


def _unescape(value: str) -> str:
    """Undo vCard text escaping: \\n and \\N are newlines, \\, \\; \\\\ the character."""
    if "\\" not in value:
        return value
    if "\\\\" not in value:
        # Without an escaped backslash no two escapes can overlap, so plain
        # replacements are exact, and several times faster than the regex.
        return (
            value.replace("\\n", "\n").replace("\\N", "\n").replace("\\,", ",").replace("\\;", ";")
        )
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
    get = props.get
    name = _unescape(_first(props, "FN")).strip()
    given = family = org = nickname = ""
    if "N" in props:  # family;given;additional;prefix;suffix
        n = _split(_first(props, "N"), ";")
        family = _unescape(n[0]).strip()
        given = _unescape(n[1]).strip() if len(n) > 1 else ""
    if "ORG" in props:  # organisation;unit;...
        org = _unescape(_split(_first(props, "ORG"), ";")[0]).strip()
    name = name or f"{given} {family}".strip() or org
    if not name:
        return None

    if "NICKNAME" in props:
        for part in _split(_first(props, "NICKNAME"), ","):
            nickname = _unescape(part).strip()
            if nickname:
                break

    emails: list[str] = []
    for _, value in get("EMAIL", ()):
        email = _unescape(value).strip().lower()
        if email.startswith("mailto:"):
            email = email[7:].strip()
        if email and email not in emails:
            emails.append(email)

    phones: list[str] = []
    for _, value in get("TEL", ()):
        phone = value.strip()
        if phone[:4].lower() == "tel:":  # vCard 4.0 VALUE=uri
            phone = phone[4:].strip()
        if phone and phone not in phones:
            phones.append(phone)

    tags: list[str] = []
    for _, value in get("CATEGORIES", ()):
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
    params, value = values[0]
    value = value.strip()
    if params and "OMIT-YEAR" in params.upper():
        year = _param(params, "X-APPLE-OMIT-YEAR")
        if year and value.startswith(year):
            value = "--" + value[len(year) :].lstrip("-")
    return value
