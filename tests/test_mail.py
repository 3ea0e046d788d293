"""Classifying mail by its headers: what is an outreach, a reply, or no contact at all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from nurtured import mail

DATA = Path(__file__).parent / "data" / "mail"
ME = ("me@home.example", "*@MyCompany.example")
NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)


def message(
    *,
    sender: str = "Ana Lima <ana@friends.example>",
    to: str = "me@home.example",
    subject: str = "Lunch next week?",
    date: datetime | str | None = NOW - timedelta(days=2),
    message_id: str | None = "<m1@friends.example>",
    extra: tuple[str, ...] = (),
    body: str = "Hi!\n",
) -> bytes:
    lines = [f"From: {sender}", f"To: {to}", f"Subject: {subject}"]
    if date is not None:
        lines.append(f"Date: {format_datetime(date) if isinstance(date, datetime) else date}")
    if message_id is not None:
        lines.append(f"Message-ID: {message_id}")
    lines += extra
    return ("\n".join(lines) + "\n\n" + body).encode()


def classify(raw: bytes, arrived: datetime | None = None, **options) -> list:
    headers = mail.parse(raw)
    assert headers is not None
    return mail.interactions(headers, ME, arrived=arrived, now=NOW, **options)


# -- threads ----------------------------------------------------------------------------------


def test_an_outreach_and_the_reply_that_answers_it():
    outreach = message(
        sender="Me <me@home.example>",
        to="Ana Lima <Ana@Friends.example>",
        date=NOW - timedelta(days=3),
        message_id="<out-1@home.example>",
    )
    [out] = classify(outreach)
    assert (out.direction, out.who, out.channel) == ("out", "ana@friends.example", "email")
    assert out.at == NOW - timedelta(days=3)
    assert out.message_id == "<out-1@home.example>"
    assert out.external_id == "<out-1@home.example>|ana@friends.example"
    assert out.note == "Lunch next week?"
    assert out.replies_to == ()

    reply = message(
        subject="Re: Lunch next week?",
        message_id="<reply-1@friends.example>",
        extra=(
            "In-Reply-To: <out-1@home.example>",
            "References: <earlier@home.example>\n <out-1@home.example>",
        ),
    )
    [back] = classify(reply)
    assert (back.direction, back.who) == ("in", "ana@friends.example")
    assert back.replies_to == ("<out-1@home.example>", "<earlier@home.example>")
    assert back.note == "Lunch next week?"


def test_two_unanswered_outreaches_are_two_outs():
    first = message(sender="me@home.example", to="bo@x.example", message_id="<a@home.example>")
    second = message(
        sender="me@home.example",
        to="bo@x.example",
        subject="Still up for lunch?",
        date=NOW - timedelta(days=1),
        message_id="<b@home.example>",
    )
    found = classify(first) + classify(second)
    assert [(i.direction, i.who) for i in found] == [("out", "bo@x.example")] * 2
    assert len({i.external_id for i in found}) == 2


def test_one_outreach_per_person_addressed_in_to_and_cc():
    raw = message(
        sender="me@home.example",
        to="ana@friends.example, Me Too <me@home.example>",
        extra=("Cc: bo@x.example, ana@friends.example",),
    )
    found = classify(raw)
    assert [i.who for i in found] == ["ana@friends.example", "bo@x.example"]
    assert len({i.external_id for i in found}) == 2
    assert {i.message_id for i in found} == {"<m1@friends.example>"}


def test_a_real_outlook_reply():
    headers = mail.parse((DATA / "outlook-reply.eml").read_bytes())
    assert headers is not None
    assert headers.sender == "james.young@contoso.example"
    assert headers.sender_name == "Young, James"
    assert headers.recipients == ("me@home.example", "jane.doe@contoso.example")
    assert headers.subject == "AW: Re: Tromsø talk slides"
    assert headers.message_id.startswith("<AM0PR01MB5678C0FFEE")
    assert headers.in_reply_to == (
        "<5e6f7a8b-aaaa-bbbb-cccc-ddddeeeeffff@home.example>",
        "<0a1b2c3d-1111-2222-3333-444455556666@home.example>",
    )
    assert headers.date == datetime(2026, 3, 9, 14, 2, 8, tzinfo=UTC)
    assert headers.received == datetime(2026, 3, 9, 14, 2, 11, tzinfo=UTC)
    [reply] = mail.interactions(headers, ME, arrived=headers.received, now=NOW)
    assert (reply.direction, reply.who, reply.note) == (
        "in",
        "james.young@contoso.example",
        "Tromsø talk slides",
    )


# -- not contact ------------------------------------------------------------------------------


@pytest.mark.parametrize("sample", ["mailman.eml", "gmail-vacation.eml", "bounce.eml"])
def test_lists_auto_replies_and_bounces_from_real_samples_are_not_contact(sample):
    headers = mail.parse((DATA / sample).read_bytes())
    assert headers is not None  # they are mail: they just are not contact
    assert mail.interactions(headers, ME, arrived=headers.received, now=NOW) == []


@pytest.mark.parametrize(
    "header",
    [
        "List-Id: <climbing.lists.example.org>",
        "Precedence: bulk",
        "Precedence: List",
        "Precedence: junk",
        "Auto-Submitted: auto-replied",
        "Auto-Submitted: auto-generated",
        "X-Autoreply: yes",
    ],
)
def test_list_bulk_and_automatic_mail_from_a_contact_is_not_contact(header):
    assert classify(message(extra=(header,))) == []


def test_auto_submitted_no_is_a_person_writing():
    [found] = classify(message(extra=("Auto-Submitted: no",)))
    assert found.direction == "in"


@pytest.mark.parametrize(
    "robot",
    [
        "noreply@shop.example",
        "no-reply@accounts.example",
        "No_Reply.Billing@bank.example",
        "notifications-noreply@social.example",
        "donotreply@airline.example",
        "do-not-reply@tax.example",
        "MAILER-DAEMON@mx.example",
        "postmaster@mx.example",
    ],
)
def test_no_reply_senders_are_not_contact(robot):
    assert classify(message(sender=robot)) == []


@pytest.mark.parametrize("person", ["noreen@friends.example", "postmasterson@friends.example"])
def test_people_whose_names_look_like_robots_are_contact(person):
    assert [i.who for i in classify(message(sender=person))] == [person]


def test_mail_to_thirty_people_is_no_outreach():
    everyone = ", ".join(f"p{i}@x.example" for i in range(30))
    assert classify(message(sender="me@home.example", to=everyone)) == []


def test_max_recipients_counts_the_people_addressed_besides_me():
    five = ", ".join(f"p{i}@x.example" for i in range(5))
    assert len(classify(message(sender="me@home.example", to=f"{five}, me@home.example"))) == 5
    six = f"{five}, p5@x.example"
    assert classify(message(sender="me@home.example", to=six)) == []
    assert len(classify(message(sender="me@home.example", to=six), max_recipients=6)) == 6
    # The same holds for a group mail someone sends to me and many others.
    assert classify(message(to=f"me@home.example, {six}")) == []
    assert len(classify(message(to=f"me@home.example, {five}"))) == 1


def test_mail_to_oneself_is_no_contact():
    assert classify(message(sender="me@home.example", to="me@home.example")) == []
    assert classify(message(sender="me@home.example", to="ME@mycompany.example")) == []
    assert classify(message(sender="me@home.example", to="undisclosed-recipients:;")) == []


# -- me ---------------------------------------------------------------------------------------


def test_me_is_exact_or_a_pattern_and_ignores_case():
    assert mail.is_mine("Me@Home.Example", ME)
    assert mail.is_mine("ana@mycompany.example", ME)
    assert not mail.is_mine("ana@mycompany.example.evil", ME)
    assert not mail.is_mine("me@home.example.org", ME)
    assert not mail.is_mine("anyone@home.example", ME)


def test_mail_from_a_pattern_address_is_outbound():
    raw = message(
        sender="Ana at work <ana@mycompany.example>",
        to="client@customer.example, colleague@mycompany.example",
    )
    [out] = classify(raw)
    assert (out.direction, out.who) == ("out", "client@customer.example")


# -- headers as they come ---------------------------------------------------------------------


def test_rfc2047_names_and_quoted_commas():
    raw = message(
        sender="=?utf-8?q?Bj=C3=B6rn_=C3=85berg?= <Bjorn@Example.SE>",
        to='"Doe, Jane" <jane@x.example>, =?utf-8?q?Lima=2C_Ana?= <ana@x.example>, '
        "undisclosed-recipients:;",
        subject="=?utf-8?q?Fika_p=C3=A5_fredag=3F?=",
    )
    headers = mail.parse(raw)
    assert headers is not None
    assert (headers.sender, headers.sender_name) == ("bjorn@example.se", "Björn Åberg")
    assert headers.recipients == ("jane@x.example", "ana@x.example")
    assert headers.subject == "Fika på fredag?"


def test_raw_8bit_headers_are_read_as_utf8():
    headers = mail.parse((DATA / "raw-8bit.eml").read_bytes())
    assert headers is not None
    assert (headers.sender, headers.sender_name) == ("bjorn@example.se", "Björn Åberg")
    assert headers.recipients == ()  # undisclosed-recipients:; is no one
    assert headers.subject == "Fika på fredag? (caf\N{REPLACEMENT CHARACTER})"  # Latin-1 byte
    assert headers.in_reply_to == ()  # prose, not a Message-ID
    assert headers.date == datetime(2026, 3, 13, 18, 0, tzinfo=UTC)


def test_malformed_headers_are_read_as_far_as_they_make_sense():
    raw = message(
        to="<<<, ,, bo@x.example (Bo), @@",
        subject="=?x-unknown-charset?q?Hall=F6?= there",
        date="Someday, 32 Smarch 20XX 25:61:00 +9999",
        message_id="no-brackets@friends.example",
        extra=("Cc:", "In-Reply-To: <broken", "References: junk <ok@x.example> more junk"),
    )
    headers = mail.parse(raw)
    assert headers is not None
    assert headers.sender == "ana@friends.example"
    assert "bo@x.example" in headers.recipients
    assert headers.date is None
    assert headers.message_id == "<no-brackets@friends.example>"
    assert headers.in_reply_to == ("<ok@x.example>",)
    assert "there" in headers.subject
    arrived = NOW - timedelta(hours=5)
    [found] = mail.interactions(headers, ME, arrived=arrived, now=NOW)
    assert found.at == arrived  # no usable Date: when it arrived


@pytest.mark.parametrize(
    ("subject", "date", "read"),
    [
        # No such charset, and a date in the year 10000 once in UTC.
        ("=?uétf-8?q?abc?= x", "Tue, 31 Dec 9999 23:59:59 -2359", "=?uétf-8?q?abc?= x"),
        ("=?utf-8?b?!!!?=", "Mon, 1 Jan 0001 00:00:00 +0000", ""),  # not base64: nothing
    ],
)
def test_impossible_charsets_and_dates_are_no_error(subject, date, read):
    headers = mail.parse(message(subject=subject, date=date))
    assert headers is not None
    assert headers.subject == read
    arrived = NOW - timedelta(hours=1)
    assert [i.at for i in mail.interactions(headers, ME, arrived=arrived, now=NOW)] == [arrived]


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe binary junk \x00\n\x01\x02",
        b"Subject: no sender at all\nTo: me@home.example\n\nbody",
        b"From: Just A Name\nTo: me@home.example\n\n",
        b"From: undisclosed-recipients:;\n\n",
    ],
)
def test_no_usable_from_is_no_message(raw):
    assert mail.parse(raw) is None


def test_only_the_headers_are_read():
    raw = message(body="From: evil@example.net\nTo: everyone@example.net\n\nList-Id: <x>\n")
    headers = mail.parse(raw)
    assert headers is not None
    assert (headers.sender, headers.recipients, headers.list_id) == (
        "ana@friends.example",
        ("me@home.example",),
        "",
    )


def test_crlf_and_folded_headers():
    raw = message(
        to="Ana\r\n <ana@x.example>,\r\n\tbo@x.example",
        subject="a long\r\n subject",
    ).replace(b"\n", b"\r\n")
    headers = mail.parse(raw.replace(b"\r\r\n", b"\r\n"))
    assert headers is not None
    assert headers.recipients == ("ana@x.example", "bo@x.example")
    assert headers.subject == "a long subject"


def test_a_missing_message_id_gets_a_stable_stand_in():
    raw = message(message_id=None)
    headers = mail.parse(raw)
    assert headers is not None
    assert headers.message_id.startswith("nomsgid:")
    # The same message stored twice (another folder, another delivery hop): the same id.
    again = mail.parse(b"Received: from a by b; Thu, 19 Mar 2026 10:00:00 +0000\n" + raw)
    assert again is not None and again.message_id == headers.message_id
    other = mail.parse(message(message_id=None, subject="Something else"))
    assert other is not None and other.message_id != headers.message_id
    [found] = mail.interactions(headers, ME, arrived=None, now=NOW)
    assert found.external_id == f"{headers.message_id}|ana@friends.example"


# -- dates ------------------------------------------------------------------------------------


def test_dates_are_timezone_aware():
    headers = mail.parse(message(date="Tue, 17 Mar 2026 10:00:00 -0000"))
    assert headers is not None and headers.date == datetime(2026, 3, 17, 10, tzinfo=UTC)
    headers = mail.parse(message(date="Tue, 17 Mar 2026 10:00:00 +0100"))
    assert headers is not None and headers.date == datetime(2026, 3, 17, 9, tzinfo=UTC)
    assert headers.date.tzinfo is not None


def test_a_missing_date_is_when_it_arrived_and_without_that_no_contact():
    arrived = NOW - timedelta(days=4)
    [found] = classify(message(date=None), arrived=arrived)
    assert found.at == arrived
    assert classify(message(date=None)) == []


def test_a_date_in_the_future_is_clamped():
    arrived = NOW - timedelta(hours=2)
    future = message(date=NOW + timedelta(days=400))
    assert [i.at for i in classify(future, arrived=arrived)] == [arrived]
    assert [i.at for i in classify(future)] == [NOW]
    slightly = NOW + timedelta(hours=20)  # a skewed clock, within a day: kept
    assert [i.at for i in classify(message(date=slightly), arrived=arrived)] == [slightly]


def test_an_absurd_date_is_replaced_by_the_arrival():
    arrived = NOW - timedelta(days=1)
    epoch = message(date="Thu, 01 Jan 1970 00:00:00 +0000")
    assert [i.at for i in classify(epoch, arrived=arrived)] == [arrived]
    assert classify(epoch) == []  # no trustworthy time at all
    stale = message(date=arrived - timedelta(days=60))  # written two months before it arrived
    assert [i.at for i in classify(stale, arrived=arrived)] == [arrived]
    late = arrived - timedelta(days=10)  # delayed ten days: possible, kept
    assert [i.at for i in classify(message(date=late), arrived=arrived)] == [late]


# -- the subject as a note --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "note"),
    [
        ("Re: Re: AW: Fwd: SV: Tromsø talk slides", "Tromsø talk slides"),
        ("RE[2]: budget", "budget"),
        ("Fw:Fwd:  photos", "photos"),
        ("Regarding your visit", "Regarding your visit"),
        ("Why Re: matters", "Why Re: matters"),
    ],
)
def test_the_subject_is_the_note_without_reply_prefixes(subject, note):
    [found] = classify(message(subject=subject))
    assert found.note == note


def test_subjects_can_be_left_out():
    [found] = classify(message(subject="Private matters"), keep_subject=False)
    assert found.note == ""


# -- settings and folders -----------------------------------------------------------------------


def test_settings_from_plugin_options_and_the_backfill():
    settings = mail.Settings.of(
        {"max_recipients": 1, "subjects": False, "backfill": timedelta(days=30)}
    )
    assert settings == mail.Settings(1, False, timedelta(days=30))
    assert mail.Settings.of({"max_recipients": None, "path": "x"}) == mail.Settings()
    recent, old = (
        mail.parse(message(date=NOW - timedelta(days=d), message_id=f"<{d}@x>")) for d in (29, 31)
    )
    assert recent is not None and old is not None
    [found] = settings.interactions(recent, ME, arrived=None, now=NOW)
    assert found.note == ""
    assert settings.interactions(old, ME, arrived=None, now=NOW) == []


@pytest.mark.parametrize(
    ("name", "contact"),
    [
        ("INBOX", True),
        ("Sent", True),
        (".Archive", True),
        ("Drafts", False),
        (".INBOX.Drafts", False),
        ("Templates", False),
        ("Junk", False),
        ("spam", False),
    ],
)
def test_drafts_templates_and_spam_folders_hold_no_contact(name, contact):
    assert mail.is_contact_folder(name) is contact
