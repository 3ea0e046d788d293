"""Tests for the vCard reader: real exporters' files, vobject as a referee, edge cases."""

from __future__ import annotations

import base64
import random
from pathlib import Path

import pytest
import vobject

from nurtured.model import Card
from nurtured_plugins.vcard.reader import read_cards

DATA = Path(__file__).parent / "data" / "vcards"


def _read(name: str) -> tuple[str, str]:
    """The fixture's text exactly as stored (line endings kept) and its path."""
    path = DATA / name
    return path.read_bytes().decode("utf-8"), str(path)


def _card(lines: list[str], sep: str = "\r\n") -> str:
    return sep.join(["BEGIN:VCARD", "VERSION:3.0", *lines, "END:VCARD"]) + sep


def _one(text: str) -> Card:
    cards, warnings = read_cards(text, "x.vcf")
    assert warnings == []
    assert len(cards) == 1
    return cards[0]


# --------------------------------------------------------------------------- exporters


def test_apple_export() -> None:
    text, origin = _read("apple.vcf")
    assert "\r\n" in text and "PHOTO;ENCODING=b" in text  # the fixture is what it claims
    cards, warnings = read_cards(text, origin)
    assert warnings == []
    assert cards == [
        Card(
            uid="0B6E8C1A-6D9E-4C0B-9B1D-2F4E0E8A1C11",
            name="Ana Maria Silva",
            given_name="Ana",
            nickname="Aninhas",
            emails=("ana.silva@example.pt", "ana@home.example"),
            phones=("+351 912 345 678", "+351 21 000 0000"),
            note=(
                "Met at PyCon Portugal, 2019 – talked for hours about climbing routes in Sintra."
                "\nPrefers calls after 18:00; never on Sundays."
            ),
            org="Acme Lda.",
            birthday="--04-15",  # X-APPLE-OMIT-YEAR=1604: the year is not known
        ),
        Card(
            uid="5D1F3C9E-0000-4A7B-8C2D-9E8F7A6B5C4D",
            name="Padaria Central",
            phones=("+351 21 555 0101",),
            org="Padaria Central",
        ),
        Card(
            uid="A1B2C3D4-1111-2222-3333-444455556666",
            name="Zeynep Öztürk",
            given_name="Zeynep",
            emails=("zeynep@example.com.tr",),  # two spellings, one address
            birthday="1990-12-01",
        ),
    ]


def test_google_export() -> None:
    text, origin = _read("google.vcf")
    assert "\r" not in text
    cards, warnings = read_cards(text, origin)
    assert warnings == []
    assert [c.name for c in cards] == [
        "Bruno Costa",
        "Mãe",
        "Dave O'Brien",
        "newsletter@shop.example",
    ]
    bruno, mae, dave, newsletter = cards
    assert bruno.uid == ""  # Google writes no UID; the caller assigns one
    assert bruno.emails == ("bruno.costa@gmail.com", "bruno.costa@work.example")
    assert bruno.phones == ("+351 913 000 111",)
    assert bruno.tags == ("Friends",)
    assert (bruno.org, bruno.birthday, bruno.note) == ("Work Co", "1985-11-02", "Owes me a coffee.")
    assert mae.given_name == "Mãe"
    assert mae.tags == ("Family",)  # myContacts dropped, duplicate dropped
    assert mae.phones == ("+351 914 222 333", "+351 22 444 5555")
    assert dave.tags == ("Work, former", "Ireland")  # MYCONTACTS dropped too
    assert dave.note == "Ex-colleague; moved to Dublin, then Cork.\nKids: Aoife, Liam."
    assert newsletter.tags == ()
    assert newsletter.emails == ("newsletter@shop.example",)


def test_outlook_export() -> None:
    # vobject cannot referee this file: it raises ParseError on the 2.1 quoted-printable
    # soft line breaks ("=" at the end of a line), so the expectations are written by hand.
    text, origin = _read("outlook.vcf")
    cards, warnings = read_cards(text, origin)
    assert warnings == []
    assert cards == [
        Card(
            uid="",
            name="Jürgen Müller",
            given_name="Jürgen",
            emails=("juergen.mueller@example.de",),
            phones=("+49 30 1234567", "+49 170 1234567"),
            # The soft-broken continuation "Email: privat@..." is part of the note,
            # not an EMAIL property.
            note=(
                "Kennt sich mit Grüntee aus und hat immer eine Empfehlung."
                "\nEmail: privat@example.de bevorzugt, nicht die Firmenadresse."
            ),
            org="Großhandel GmbH",
            birthday="19800415",
        ),
        Card(
            uid="",
            name="François Dupont",  # CHARSET=ISO-8859-1: =E7 is ç
            given_name="François",
            emails=("francois.dupont@example.fr",),
            phones=("+33 1 23 45 67 89",),
        ),
        Card(
            uid="",
            name="John Smith",
            given_name="John",
            emails=("john@smith.example",),
            phones=("+1 555 0100", "+1 555 0101"),
        ),
    ]


def test_v4_export() -> None:
    text, origin = _read("v4.vcf")
    cards, warnings = read_cards(text, origin)
    assert warnings == []
    assert cards == [
        Card(
            uid="urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1",
            name="Carla Dias",
            given_name="Carla",
            nickname="Carlinha",
            emails=("carla.dias@example.com",),
            phones=("+351-912-345-678", "+351-21-123-4567;ext=102"),
            tags=("Family", "Book club"),
            note="Reads everything by Saramago.",
            birthday="--0415",
            anniversary="20090808T1430-0500",
        ),
        Card(
            uid="urn:uuid:b2a1f0e3-5c4d-4e7f-8a9b-0c1d2e3f4a5b",
            name="Daniel Weiß",
            given_name="Daniel",
            nickname="Dan",
            emails=("dan@example.org",),  # the quoted parameter holds a colon
            phones=("+49-89-555-0199",),
            birthday="19750230",  # kept as written, even when it is not a real date
            anniversary="--1224",
        ),
    ]


def test_broken_file_keeps_every_good_card_and_names_each_broken_one() -> None:
    text, origin = _read("broken.vcf")
    cards, warnings = read_cards(text, origin)
    assert [c.name for c in cards] == ["Good One", "Second Good", "Only Org Ltd", "Bad \ufffd(QP"]
    good, second, org_only, bad_qp = cards
    assert good.emails == ("good1@example.com",)
    assert second.emails == ()  # "EMAIL;TYPE=work" has no colon: ignored
    assert second.phones == ("+1 555 0100",)
    assert (org_only.name, org_only.org) == ("Only Org Ltd", "Only Org Ltd")
    assert bad_qp.given_name == "Q=ZZP"  # an invalid escape is kept as written
    assert warnings == [
        f"{origin}:8: card skipped: no FN, N or ORG",
        f"{origin}:13: card skipped: no END:VCARD before BEGIN",
        f"{origin}:32: N: invalid quoted-printable, read as best effort",
        f"{origin}:33: FN: invalid quoted-printable, read as best effort",
        f"{origin}:35: card skipped: no END:VCARD before end of file",
    ]


# --------------------------------------------------------------------------- vobject as referee


def _summary_from_vobject(text: str) -> list[tuple[str, frozenset[str], tuple[str, ...], str]]:
    """Name, emails, tags and note of each card as vobject reads them, with the same rules."""
    out = []
    for component in vobject.readComponents(text):
        props = component.contents
        fn = props["fn"][0].value.strip() if "fn" in props else ""
        given = family = ""
        if "n" in props:
            given = props["n"][0].value.given.strip()
            family = props["n"][0].value.family.strip()
        org = props["org"][0].value[0].strip() if "org" in props else ""
        name = fn or " ".join(p for p in (given, family) if p) or org
        emails = frozenset(
            e.value.strip().lower().removeprefix("mailto:") for e in props.get("email", [])
        )
        tags: list[str] = []
        for line in props.get("categories", []):
            for tag in line.value:
                tag = tag.strip()
                if tag and tag not in tags and tag.casefold() != "mycontacts":
                    tags.append(tag)
        note = props["note"][0].value.strip() if "note" in props else ""
        out.append((name, emails, tuple(tags), note))
    return out


def _summary(cards: list[Card]) -> list[tuple[str, frozenset[str], tuple[str, ...], str]]:
    return [(c.name, frozenset(c.emails), c.tags, c.note) for c in cards]


@pytest.mark.parametrize("name", ["apple.vcf", "google.vcf", "v4.vcf"])
def test_fixture_agrees_with_vobject(name: str) -> None:
    text, origin = _read(name)
    cards, warnings = read_cards(text, origin)
    assert warnings == []
    expected = _summary_from_vobject(text)
    assert len(expected) >= 2
    assert _summary(cards) == expected


_GIVEN = ["Ana", "Bruno", "Zoë", "François", "Jürgen", "李", "Øyvind", "Siobhán", "Mary-Kate"]
_FAMILY = ["Silva", "Müller", "Dupont", "Öztürk", "王", "D'Arcy", "van der Berg", "Smith, Jr."]
_TAGS = ["Friends", "Family", "Work, old", "Book club; Lisbon", "myContacts", "MyContacts", "ü"]
_NOTES = [
    "Met at a conference",
    "likes tea, not coffee",
    "kids: A; B",
    r"path C:\temp\new",
    "line one\nline two",
    "  padded  ",
    "emoji 🎉 and ñ",
    "50% off; 3,5 € — really",
]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;").replace("\n", "\\n")


def _fold(line: str, rnd: random.Random) -> list[str]:
    """Fold at a random width with a space or a tab, anywhere (even inside an escape)."""
    width = rnd.randint(20, 75)
    out = [line[:width]]
    rest = line[width:]
    while rest:
        out.append(rnd.choice(" \t") + rest[: width - 1])
        rest = rest[width - 1 :]
    return out


def _random_card(rnd: random.Random, index: int) -> list[str]:
    given, family = rnd.choice(_GIVEN), rnd.choice(_FAMILY)
    props: list[str] = [f"VERSION:{rnd.choice(['3.0', '4.0'])}"]
    if rnd.random() < 0.8:
        props.append(f"FN:{_escape(f'{given} {family}')}")
    props.append(f"N:{_escape(family)};{_escape(given)};;;")
    for k in range(rnd.randint(0, 3)):
        address = f"{given[:3]}.{index}.{k}@Example.COM".replace("'", "")
        if rnd.random() < 0.5:
            props += [f"item{k + 1}.EMAIL;type=INTERNET:{address}", f"item{k + 1}.X-ABLabel:x"]
        else:
            props.append(f"EMAIL;TYPE=home:{address}")
    for _ in range(rnd.randint(0, 2)):
        props.append(f"TEL;TYPE=cell:+351 9{rnd.randint(10000000, 99999999)}")
    for _ in range(rnd.randint(0, 2)):
        tags = rnd.sample(_TAGS, rnd.randint(1, 3))
        props.append("CATEGORIES:" + ",".join(_escape(t) for t in tags))
    if rnd.random() < 0.6:
        props.append("NOTE:" + _escape(" ".join(rnd.sample(_NOTES, rnd.randint(1, 3)))))
    if rnd.random() < 0.3:
        props.append(f"ORG:{_escape(family)} & Co;Sales")
    if rnd.random() < 0.1:
        photo = base64.b64encode(rnd.randbytes(rnd.randint(500, 4000))).decode()
        props.append(f"PHOTO;ENCODING=b;TYPE=JPEG:{photo}")
    props.append(f"UID:card-{index}")
    case = rnd.choice([str, str.lower, str.title])
    lines = ["BEGIN:VCARD"]
    for prop in props:
        name, colon, value = prop.partition(":")
        lines += _fold(case(name) + colon + value, rnd)
    lines.append("END:VCARD")
    return lines


@pytest.mark.parametrize(("seed", "newline"), [(1, "\r\n"), (2, "\n"), (3, "\r\n")])
def test_generated_corpus_agrees_with_vobject(seed: int, newline: str) -> None:
    rnd = random.Random(seed)
    lines: list[str] = []
    for index in range(300):
        lines += _random_card(rnd, index)
        if rnd.random() < 0.2:
            lines.append("")
    text = newline.join(lines) + newline
    cards, warnings = read_cards(text, "corpus.vcf")
    assert warnings == []
    assert len(cards) == 300
    assert [c.uid for c in cards] == [f"card-{i}" for i in range(300)]
    assert _summary(cards) == _summary_from_vobject(text)


# --------------------------------------------------------------------------- edge cases


def test_empty_and_blank_files_give_nothing() -> None:
    assert read_cards("", "x.vcf") == ([], [])
    assert read_cards("\ufeff\r\n\n  \n", "x.vcf") == ([], [])


def test_escaped_commas_and_semicolons_in_note_and_categories() -> None:
    card = _one(
        _card(
            [
                "FN:Eve",
                r"NOTE:a\, b\; c\\d\ne\Nf \: kept",
                r"CATEGORIES:Work\, old, Book club\; Lisbon ,,Friends,Friends, myContacts",
            ]
        )
    )
    assert card.note == "a, b; c\\d\ne\nf \\: kept"  # unknown escapes stay as written
    assert card.tags == ("Work, old", "Book club; Lisbon", "Friends")


def test_escaped_separators_in_structured_values() -> None:
    card = _one(
        _card([r"N:Smith\, Jr.;Anne\;Marie;;;", r"ORG:Foo\; Bar\\;Dept", "NICKNAME:,Annie,An"])
    )
    assert card.name == "Anne;Marie Smith, Jr."
    assert card.given_name == "Anne;Marie"
    assert card.org == "Foo; Bar\\"
    assert card.nickname == "Annie"


def test_lowercase_property_names_and_groups() -> None:
    text = "begin:vcard\nversion:3.0\nfn:Lower Case\nitem1.email;type=internet:Low@Case.ORG\n"
    text += "Item2.Tel:+1 555\ncategories:a,b\nnote:hi\nend:vcard\n"
    card = _one(text)
    assert (card.name, card.emails, card.phones) == ("Lower Case", ("low@case.org",), ("+1 555",))
    assert (card.tags, card.note) == (("a", "b"), "hi")


def test_bom_lf_cr_and_crlf_read_the_same() -> None:
    lines = ["FN:Same", "EMAIL:same@example.com", "NOTE:folded", " over two lines"]
    crlf = _card(lines)
    variants = ["\ufeff" + crlf, crlf.replace("\r\n", "\n"), crlf.replace("\r\n", "\r")]
    expected = _one(crlf)
    assert expected.note == "foldedover two lines"
    for text in variants:
        assert _one(text) == expected


def test_bom_between_concatenated_files() -> None:
    text = "\ufeff" + _card(["FN:One"]) + "\ufeff" + _card(["FN:Two"])
    cards, warnings = read_cards(text, "x.vcf")
    assert ([c.name for c in cards], warnings) == (["One", "Two"], [])


def test_name_from_n_or_org_and_card_without_any_name() -> None:
    text = _card(["N:Costa;Bruno;José;Dr.;"]) + _card(["ORG:Acme;Sales"]) + _card(["N:;;;;"])
    cards, warnings = read_cards(text, "dir/x.vcf")
    assert [(c.name, c.given_name, c.org) for c in cards] == [
        ("Bruno Costa", "Bruno", ""),
        ("Acme", "", "Acme"),
    ]
    assert warnings == ["dir/x.vcf:9: card skipped: no FN, N or ORG"]


def test_emails_and_phones_are_cleaned_and_deduplicated() -> None:
    card = _one(
        _card(
            [
                "FN:X",
                "EMAIL: MAILTO:Who@Example.com ",
                "EMAIL;PREF=1:mailto:who@example.com",
                "EMAIL:",
                "TEL;VALUE=uri:TEL:+351 1",
                "TEL: +351 1 ",
                "TEL;TYPE=cell:(555) 010-0199",
            ]
        )
    )
    assert card.emails == ("who@example.com",)
    assert card.phones == ("+351 1", "(555) 010-0199")


def test_only_the_first_single_valued_property_counts() -> None:
    card = _one(_card(["FN:First", "FN:Second", "NOTE:one", "NOTE:two", "BDAY:2000-01-01"]))
    assert (card.name, card.note, card.birthday) == ("First", "one", "2000-01-01")


@pytest.mark.parametrize(
    ("line", "birthday"),
    [
        ("BDAY;X-APPLE-OMIT-YEAR=1604:1604-04-15", "--04-15"),
        ("BDAY;X-APPLE-OMIT-YEAR=1604;VALUE=date:16040415", "--0415"),
        ("BDAY;X-APPLE-OMIT-YEAR=1604:1980-04-15", "1980-04-15"),  # year really given
        ("BDAY;VALUE=text:circa 1800", "circa 1800"),
        ("BDAY:--0415", "--0415"),
    ],
)
def test_birthday_kept_as_written_except_omitted_year(line: str, birthday: str) -> None:
    assert _one(_card(["FN:X", line])).birthday == birthday


def test_quoted_parameter_with_colon() -> None:
    card = _one(_card(["FN:X", 'EMAIL;X-SRC="a:b;c":me@example.com']))
    assert card.emails == ("me@example.com",)


def test_folded_parameters_and_tab_continuation() -> None:
    lines = ["FN:Fol", " ded", "EMAIL;TYPE=ho", " me:e@x.org", "NOTE:a", "\tb", "  c"]
    lines += ["BDAY;X-APPLE-OMIT-", " YEAR=1604:1604-", " 04-15"]
    card = _one(_card(lines))
    assert (card.name, card.emails, card.note) == ("Folded", ("e@x.org",), "ab c")
    assert card.birthday == "--04-15"


def test_warning_line_numbers_count_folded_and_photo_lines() -> None:
    photo = ["PHOTO;ENCODING=b:" + "A" * 70] + [" " + "B" * 74] * 50
    text = _card(["FN:X", *photo]) + "\r\n" + _card(["NICKNAME:no name"])
    cards, warnings = read_cards(text, "x.vcf")
    assert [c.name for c in cards] == ["X"]
    # card 1: 2 + 1 + 51 + 1 = 55 lines, one blank line, so card 2 starts on line 57
    assert warnings == ["x.vcf:57: card skipped: no FN, N or ORG"]


def test_huge_photo_is_skipped() -> None:
    photo = base64.b64encode(random.Random(0).randbytes(3_000_000)).decode()
    folded = [photo[i : i + 74] for i in range(0, len(photo), 74)]
    card = _one(_card(["FN:Big", "PHOTO;ENCODING=b;TYPE=JPEG:", *(" " + f for f in folded)]))
    assert card.name == "Big"


def test_v21_base64_photo_ends_with_blank_line() -> None:
    text = _card(
        ["N:Doe;Jane", "PHOTO;ENCODING=BASE64;TYPE=JPEG:", "  /9j/4AAQ", "  SkZJRg==", "", "TEL:1"]
    )
    card = _one(text.replace("VERSION:3.0", "VERSION:2.1"))
    assert (card.name, card.phones) == ("Jane Doe", ("1",))


def test_unindented_base64_lines_are_skipped() -> None:
    photo = base64.b64encode(random.Random(1).randbytes(200_000)).decode()
    lines = [photo[i : i + 76] for i in range(0, len(photo), 76)]
    text = _card(["FN:Jane", "PHOTO;ENCODING=BASE64:", *lines, "", "EMAIL:j@x.org", photo])
    assert _one(text).emails == ("j@x.org",)


def test_soft_break_continuation_of_a_skipped_property_is_not_a_property() -> None:
    text = _card(
        [
            "FN:A",
            "LABEL;ENCODING=QUOTED-PRINTABLE:Office=0D=0A=",
            "Tel: 555 0199 (reception)=0D=0A=",
            "Email: desk@example.com",
            "TEL:555 0100",
        ]
    )
    card = _one(text.replace("VERSION:3.0", "VERSION:2.1"))
    assert (card.phones, card.emails) == (("555 0100",), ())


def test_soft_break_never_swallows_end_of_card() -> None:
    text = _card(["FN:A", "NOTE;ENCODING=QUOTED-PRINTABLE:dangling="]) + _card(["FN:B"])
    cards, warnings = read_cards(text, "x.vcf")
    assert [(c.name, c.note) for c in cards] == [("A", "dangling"), ("B", "")]
    assert warnings == []


def test_quoted_printable_variants() -> None:
    text = _card(
        [
            "FN;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:J=c3=bcrgen",  # lowercase hex
            "NOTE;QUOTED-PRINTABLE:bare =3D param",  # 2.1 bare parameter
            "ORG;CHARSET=NO-SUCH;ENCODING=QUOTED-PRINTABLE:Caf=C3=A9",
        ]
    )
    cards, warnings = read_cards(text, "x.vcf")
    # An unknown CHARSET falls back to UTF-8, which decodes this value cleanly.
    assert [(c.name, c.note, c.org) for c in cards] == [("Jürgen", "bare = param", "Café")]
    assert warnings == []


def test_lines_outside_cards_and_stray_end_are_ignored() -> None:
    text = "FN:Outside\nEND:VCARD\n" + _card(["FN:Inside"], "\n") + "TEL:123\n"
    cards, warnings = read_cards(text, "x.vcf")
    assert ([c.name for c in cards], cards[0].phones, warnings) == (["Inside"], (), [])
