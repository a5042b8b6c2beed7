"""Hostile input on the mail side: SMTP auth and SMTPUTF8, file modes, email markup, DKIM."""

from __future__ import annotations

import asyncio
import base64
import mailbox
import os
import sqlite3
import stat
import subprocess
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from email.parser import BytesParser
from email.policy import default
from html.parser import HTMLParser
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiosmtpd.smtp import Envelope
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from publisher.cli.init import init_site
from publisher.config import MailSettings, load_settings
from publisher.db import transaction
from publisher.delivery import notices
from publisher.delivery.compose import return_paths
from publisher.delivery.editions import enqueue, open_edition
from publisher.delivery.models import MailKind
from publisher.delivery.smtp import (
    ServerUnavailable,
    SmtpConnection,
    parse_smtp_url,
    send_message,
)
from publisher.delivery.worker import deliver
from publisher.errors import ConfigError, DeliveryError
from publisher.render.digest import render_digest
from publisher.render.dkim import verify
from publisher.render.message import build_digest_template
from publisher.render.mjml import escape_attribute_values
from publisher.site import Site
from subscribers import repository, suppression
from subscribers.addresses import normalize
from subscribers.bounces import Report, Verdict, examine, printable
from subscribers.errors import MalformedReport
from subscribers.models import ACTIVE, Subscriber
from subscribers.repository import Consent, Preferences
from subscribers.verp import ReturnPaths
from tests.clirunner import invoke
from tests.delivery_helpers import add_articles, add_subscribers
from tests.render_support import (
    frozen_clock,
    make_digest,
    make_settings,
    recipient,
    sample_articles,
)
from tests.smtp_servers import (
    RecordingHandler,
    password_authenticator,
    self_signed_tls,
    smtp_server,
)

MESSAGE = (
    b"From: News <news@example.org>\r\nTo: reader@example.net\r\n"
    b"Subject: Kabar\r\nMessage-ID: <m1@example.org>\r\n\r\nHalo.\r\n"
)


def mail(url: str) -> MailSettings:
    return MailSettings.from_mapping({"smtp_url": url})


# --- row 7: the SMTP password never crosses the network in clear text by default -----


class AuthLog:
    """An aiosmtpd authenticator that remembers every login attempt it saw."""

    def __init__(self) -> None:
        self.attempts = 0
        self.check = password_authenticator("news", "s3cret")

    def __call__(self, *args: object) -> object:
        self.attempts += 1
        return self.check(*args)


async def test_auth_refused_without_tls_names_the_relay() -> None:
    handler = RecordingHandler()
    auth = AuthLog()
    # A server without STARTTLS that would happily take AUTH PLAIN in clear text.
    async with smtp_server(
        handler, authenticator=auth, auth_required=True, auth_require_tls=False
    ) as port:
        url = f"smtp://news:s3cret@127.0.0.1:{port}"
        with pytest.raises(ServerUnavailable) as caught:
            await send_message(mail(url), MESSAGE, "a@example.org", ["r@example.net"])
        message = str(caught.value)
        assert f"smtp://news@127.0.0.1:{port}" in message
        assert "without TLS" in message
        assert "s3cret" not in message
        assert auth.attempts == 0
        # Saying so explicitly allows it (a relay on loopback, say).
        await send_message(
            mail(url + "?auth=plain-insecure"), MESSAGE, "a@example.org", ["r@example.net"]
        )
    assert auth.attempts == 1
    assert handler.count("r@example.net") == 1


async def test_auth_goes_over_starttls_when_offered(tmp_path: Path) -> None:
    context, cert = self_signed_tls(tmp_path)
    handler = RecordingHandler()
    auth = AuthLog()
    async with smtp_server(handler, tls=context, authenticator=auth, auth_required=True) as port:
        await send_message(
            mail(f"smtp://news:s3cret@127.0.0.1:{port}?cafile={cert}"),
            MESSAGE,
            "a@example.org",
            ["r@example.net"],
        )
    assert auth.attempts == 1
    assert handler.count("r@example.net") == 1


def test_auth_url_options() -> None:
    with pytest.raises(ConfigError, match="without TLS"):
        parse_smtp_url("smtp://u:p@mail.example.org?starttls=never")
    assert parse_smtp_url("smtp://u:p@h?starttls=never&auth=plain-insecure").auth_insecure
    assert not parse_smtp_url("smtp://u:p@h?auth=tls").auth_insecure
    with pytest.raises(ConfigError, match=r"auth=tls\|plain-insecure"):
        parse_smtp_url("smtp://u:p@h?auth=yes")


# --- row 8: secrets and the database are private files --------------------------------


def test_config_and_database_files_are_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PUBLISHER_DATABASE__URL", raising=False)
    previous = os.umask(0o022)  # the usual umask: files would come out 0644
    try:
        path = init_site(tmp_path / "site")
    finally:
        os.umask(previous)
    settings = load_settings(path)
    database = tmp_path / "site" / "publisher.db"
    assert settings.database.url.endswith("publisher.db")
    # Open it the way a running site does, so the WAL files exist.
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE IF NOT EXISTS probe (x)")
        connection.execute("INSERT INTO probe VALUES (1)")
        files = [path, database, *database.parent.glob("publisher.db-*")]
        assert len(files) >= 3  # -wal and -shm while the connection is open
        for found in files:
            assert stat.S_IMODE(found.stat().st_mode) == 0o600, found


# --- row 13: internationalized addresses ----------------------------------------------


@pytest.mark.parametrize("smtputf8", [True, False])
async def test_internationalized_addresses(smtputf8: bool) -> None:
    handler = RecordingHandler()
    async with smtp_server(handler, enable_SMTPUTF8=smtputf8) as port:
        connection = SmtpConnection(parse_smtp_url(f"smtp://127.0.0.1:{port}"), 10)
        recipients = ["pembaca@bücher.example", "δοκιμή@example.net", "plain@example.net"]
        replies = await connection.send("news@example.org", recipients, MESSAGE)
        await connection.close()
    # A Unicode domain only needs punycode: every server takes it.
    assert replies["pembaca@bücher.example"].accepted
    assert handler.count("pembaca@xn--bcher-kva.example") == 1
    assert replies["plain@example.net"].accepted
    if smtputf8:
        assert replies["δοκιμή@example.net"].accepted
        assert handler.count("δοκιμή@example.net") == 1
    else:
        refused = replies["δοκιμή@example.net"]
        assert refused.kind == "permanent"
        assert refused.code is None  # not the reader's fault: no suppression follows
        assert "needs SMTPUTF8" in refused.text
        assert "δοκιμή@example.net" in refused.text


async def test_one_off_mail_to_internationalized_address_fails_in_one_line() -> None:
    handler = RecordingHandler()
    async with smtp_server(handler, enable_SMTPUTF8=False) as port:
        with pytest.raises(DeliveryError, match=r"δοκιμή@example\.net.*needs SMTPUTF8"):
            await send_message(
                mail(f"smtp://127.0.0.1:{port}"), MESSAGE, "a@example.org", ["δοκιμή@example.net"]
            )


# --- row 9: a quote in text never turns the email's layout into visible text -----------


class _Visible(HTMLParser):
    """Collect the text a mail client shows (not style/script/comments) and every tag."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.tags: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._hidden += tag in ("style", "script", "title")

    def handle_endtag(self, tag: str) -> None:
        self._hidden -= tag in ("style", "script", "title")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.text.append(data)


def _digest_with(author: str, other: str, caption: str) -> _Visible:
    articles = sample_articles()
    lead = articles[0]
    lead.author = author
    lead.image_url = lead.image_url or "https://images.example.org/a.jpg"
    lead.image_caption = caption
    for article in articles[1:]:
        article.author = other
    parsed = _Visible()
    parsed.feed(render_digest(make_settings(), make_digest(articles)).html)
    return parsed


def test_quotes_in_author_and_caption_stay_text() -> None:
    parsed = _digest_with('Budi x="1', 'Sari" y="3', 'Foto "pantai" x="2 <b>tebal</b>')
    visible = " ".join(" ".join(parsed.text).split())
    assert 'Budi x="1' in visible
    assert 'Sari" y="3' in visible
    assert 'Foto "pantai" x="2 <b>tebal</b>' in visible
    # No markup leaked into what the reader sees, and the layout's tags are all there.
    for leaked in ("<p", "<a ", "<div", "<td", "style=", "&lt;", "&gt;"):
        assert leaked not in visible, leaked
    reference = _digest_with("Budi", "Sari", "Foto pantai")
    assert parsed.tags == reference.tags


def test_attribute_values_escaped_only_inside_tags() -> None:
    html = (
        '<!--[if mso]><table x="<y>"><![endif]--><style>a[x="<"] {}</style>'
        '<div aria-label="A <script> B" title=\'q > r\'>Budi x="1 <b>, "z"</div>'
    )
    assert escape_attribute_values(html) == (
        '<!--[if mso]><table x="<y>"><![endif]--><style>a[x="<"] {}</style>'
        '<div aria-label="A &lt;script&gt; B" title=\'q &gt; r\'>Budi x="1 <b>, "z"</div>'
    )


# --- DKIM: a header added after signing breaks the signature --------------------------


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    folder = tmp_path_factory.mktemp("dkim")
    private = folder / "dkim.pem"
    subprocess.run(
        [
            *("openssl", "genpkey", "-algorithm", "RSA"),
            *("-pkeyopt", "rsa_keygen_bits:2048", "-out", str(private)),
        ],
        check=True,
        capture_output=True,
    )
    public = subprocess.run(
        ["openssl", "pkey", "-in", str(private), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    return private, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


@pytest.mark.parametrize(
    "added",
    [
        b"Subject: =?utf-8?b?VXJnZW50OiB2ZXJpZnkgeW91ciBhY2NvdW50?=",
        b"Reply-To: thief@evil.example",
        b"From: Bank <security@bank.example>",
        b"To: someone@else.example",
        b"Cc: someone@else.example",
        b"Date: Thu, 01 Jan 2026 00:00:00 +0000",
        b"List-Unsubscribe: <https://evil.example/u>",
        b"Content-Type: text/html",
    ],
)
def test_added_header_breaks_dkim(
    tmp_path: Path, dkim_key: tuple[Path, bytes], added: bytes
) -> None:
    private, record = dkim_key
    settings = make_settings(
        tmp_path,
        mail={
            "dkim_domain": "news.example.org",
            "dkim_selector": "kabar",
            "dkim_key_file": str(private),
        },
    )
    compiled = render_digest(settings, make_digest(sample_articles()))
    message = build_digest_template(settings, compiled, clock=frozen_clock()).personalize(
        recipient()
    )

    def txt(name: bytes) -> bytes | None:
        return record if name == b"kabar._domainkey.news.example.org." else None

    assert verify(message, txt)
    head, body = message.split(b"\r\n\r\n", 1)
    at_bottom = head + b"\r\n" + added + b"\r\n\r\n" + body
    at_top = added + b"\r\n" + message
    assert not verify(at_bottom, txt)
    assert not verify(at_top, txt)


# --- bidi overrides never reach the Subject or display names --------------------------


def test_bidi_overrides_stripped_from_subject_and_names() -> None:
    articles = sample_articles()
    articles[0].title = "Tagihan \u202egpj.exe\u202c dan \u2066isolat\u2069"
    settings = make_settings()
    compiled = render_digest(settings, make_digest(articles))
    message = build_digest_template(settings, compiled, clock=frozen_clock()).personalize(
        recipient(name="Eve \u202eevE")
    )
    parsed = BytesParser(policy=default).parsebytes(message)
    assert "Tagihan gpj.exe dan isolat" in str(parsed["Subject"])
    assert parsed["To"].addresses[0].display_name == "Eve evE"
    controls = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
    for header in ("Subject", "To"):
        assert not set(str(parsed[header])) & controls


# --- rows 4 and 5: bounces count only when they answer mail we sent; poison is isolated --


@dataclass
class EnvelopeHandler(RecordingHandler):
    """Accept mail and remember each message's envelope sender too."""

    senders: dict[str, str] = field(default_factory=dict)

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
        for address in envelope.rcpt_tos:
            self.senders[address] = str(envelope.mail_from)
        return await super().handle_DATA(server, session, envelope)  # type: ignore[arg-type]


def dsn(
    delivered_to: str,
    recipient: str,
    quoted: bytes,
    *,
    number: int,
    diagnostic: str = "smtp; 550 5.1.1 User unknown",
) -> bytes:
    """Return a Postfix-style DSN for ``recipient``, delivered to ``delivered_to``."""
    return (
        (
            f"Return-Path: <>\r\n"
            f"Delivered-To: {delivered_to}\r\n"
            f"From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n"
            f"To: {delivered_to}\r\n"
            f"Subject: Undelivered Mail Returned to Sender\r\n"
            f"Message-Id: <dsn-{number}@mx.example.net>\r\n"
            "MIME-Version: 1.0\r\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
            "--B\r\nContent-Type: text/plain\r\n\r\nCould not deliver.\r\n"
            "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.example.net\r\n\r\n"
            f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
            f"Diagnostic-Code: {diagnostic}\r\n\r\n"
            "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        ).encode()
        + quoted
        + b"\r\n--B--\r\n"
    )


def nested_multiparts(depth: int) -> bytes:
    """Return a message whose multiparts nest ``depth`` levels deep."""
    head = b"".join(
        b'Content-Type: multipart/mixed; boundary="n%d"\r\n\r\n--n%d\r\n' % (i, i)
        for i in range(depth)
    )
    tail = b"".join(b"\r\n--n%d--\r\n" % i for i in reversed(range(depth)))
    return (
        b"From: x@example.net\r\nSubject: deep\r\n"
        + head
        + b"Content-Type: text/plain\r\n\r\nx"
        + tail
    )


async def _ids(site: Site) -> dict[str, int]:
    async with transaction(site.engine) as session:
        rows = await session.execute(sa.select(Subscriber.email, Subscriber.id))
        return {email: int(number) for email, number in rows}


async def _statuses(site: Site) -> dict[str, str]:
    async with transaction(site.engine) as session:
        rows = await session.execute(sa.select(Subscriber.email, Subscriber.status))
        return {email: str(status) for email, status in rows}


async def test_only_bounces_answering_our_mail_count(
    site: Site, site_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    await add_articles(site, 2)
    await add_subscribers(site, 4)
    handler = EnvelopeHandler()
    async with smtp_server(handler) as port:
        site.settings.mail.smtp_url = f"smtp://127.0.0.1:{port}"
        now = site.clock.now()
        edition = await open_edition(site, "daily", date(2026, 11, 25), now)
        await enqueue(site, edition, now)
        assert (await deliver(site)).sent == 4
    ids = await _ids(site)
    paths = return_paths(site.settings)
    quoted: dict[str, bytes] = {}
    for n in range(4):
        reader = f"reader{n}@example.net"
        sender = handler.senders[reader]
        # Every message left from its own signed return path, repeated in a header.
        assert sender == paths.address(ids[reader], f"e{edition.id}")
        assert sender.startswith("newsletter+")
        assert sender.endswith("@news.example.org")
        content = handler.delivered[reader][0]
        headers = BytesParser(policy=default).parsebytes(content, headersonly=True)
        assert paths.load(str(headers["X-Publisher-Bounce"])).subscriber_id == ids[reader]
        quoted[reader] = content.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    evil = "\x1b[2J\x1b]0;pwned\x07\x9b31m"
    reader1_token = paths.token(ids["reader1@example.net"], f"e{edition.id}")
    reader2_token = paths.token(ids["reader2@example.net"], f"e{edition.id}")
    forged_token = reader1_token[:-16] + reader2_token[-16:]
    box = mailbox.Maildir(tmp_path / "Maildir")
    reports = [
        # 1. Anyone can write a DSN naming reader1: no token, no effect.
        dsn(
            "bounces@news.example.org",
            "reader1@example.net",
            b"To: reader1@example.net\r\n",
            number=1,
        ),
        # 2. A token whose signature belongs to someone else: forged, no effect.
        dsn(f"newsletter+{forged_token}@news.example.org", "reader1@example.net", b"", number=2),
        # 3. The poison message: thousands of nested multiparts.
        nested_multiparts(3000),
        # 4. A genuine bounce of reader0's digest, Diagnostic-Code full of escapes.
        dsn(
            handler.senders["reader0@example.net"],
            "reader0@example.net",
            quoted["reader0@example.net"],
            number=4,
            diagnostic=f"smtp; 550 5.1.1 {evil}",
        ),
        # 5. Reader2 holds their own genuine token and writes a DSN naming reader3:
        #    the token decides who it is about, so only reader2 can be hurt by it.
        dsn(
            handler.senders["reader2@example.net"],
            "reader3@example.net",
            b"To: reader3@example.net\r\n",
            number=5,
        ),
        # 6. Garbage where an address should be, with a genuine token: nothing to record.
        dsn(handler.senders["reader3@example.net"], "<script>@@", b"", number=6),
        # 7. A header block past the limit.
        b"X-Big: " + b"a" * (300 * 1024) + b"\r\n\r\nbody",
    ]
    for raw in reports:
        box.add(raw)
    # The command runs its own event loop: give it a thread, as a shell would a process.
    result = await asyncio.to_thread(
        invoke,
        capsys,
        *("--config", site_dir / "publisher.toml", "bounces", "process", tmp_path / "Maildir"),
    )
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert not set(out) & {"\x1b", "\x07", "\x9b"}
    assert "\\x1b[2J" in out  # shown, escaped
    assert out.count("malformed ") == 2
    assert f"malformed {tmp_path / 'Maildir'}/" in out
    assert "nested deeper than 12 levels" in out or "multipart/message parts" in out
    assert "header block larger than" in out
    assert "no bounce token: it answers no message we sent (names reader1@example.net)" in out
    assert "forged or damaged bounce token" in out
    assert (
        "7 messages: 2 hard, 0 soft, 0 complaints, 2 suppressed, 0 already recorded, "
        "1 unrecognized, 2 ignored (not answering mail we sent), 2 malformed"
    ) in out
    assert await _statuses(site) == {
        "reader0@example.net": "bounced",
        "reader1@example.net": "active",
        "reader2@example.net": "bounced",
        "reader3@example.net": "active",
    }
    async with transaction(site.engine) as session:
        assert not await suppression.is_suppressed(session, "reader1@example.net")
        assert not await suppression.is_suppressed(session, "reader3@example.net")
        assert not await suppression.is_suppressed(session, "<script>@@")


# --- fuzz: the bounce parser never crashes, hangs or records without a token ---------

FUZZ_SECRET = "fuzz-secret-0123456789"
FUZZ_PATHS = ReturnPaths(FUZZ_SECRET, "bounces@news.example.org")
GENUINE = FUZZ_PATHS.token(7, "e3")
DAMAGED = GENUINE[:-1] + ("1" if GENUINE.endswith("0") else "0")
_text_values = st.text(alphabet=st.characters(codec="utf-8"), max_size=80) | st.sampled_from(
    [
        "rfc822; reader@example.net",
        "rfc822; <script>@@",
        "failed",
        "5.1.1",
        "4.2.2",
        "smtp; 550 \x1b[31mred\x1b[0m",
        f"bounces+{GENUINE}@news.example.org",
        f"bounces+{DAMAGED}@news.example.org",
        GENUINE,
        "=?utf-8?b?AAAA?=",
        "\r\n\t folded",
    ]
)
_header_names = st.sampled_from(
    [
        "To",
        "Delivered-To",
        "Final-Recipient",
        "Original-Recipient",
        "Action",
        "Status",
        "Diagnostic-Code",
        "Feedback-Type",
        "Original-Rcpt-To",
        "Original-Mail-From",
        "Return-Path",
        "X-Publisher-Bounce",
        "Message-ID",
        "Content-Transfer-Encoding",
    ]
)
_types = st.sampled_from(
    [
        "text/plain",
        "message/delivery-status",
        "message/feedback-report",
        "text/rfc822-headers",
        "message/rfc822",
        "application/octet-stream",
    ]
)


def _headers(pairs: list[tuple[str, str]]) -> bytes:
    return b"".join(
        f"{name}: {value}\r\n".encode("utf-8", "surrogateescape") for name, value in pairs
    )


@st.composite
def _leaf(draw: st.DrawFn) -> bytes:
    kind = draw(_types)
    blocks = draw(
        st.lists(st.lists(st.tuples(_header_names, _text_values), max_size=6), max_size=3)
    )
    body = b"\r\n".join(_headers(block) for block in blocks) + draw(st.binary(max_size=200))
    return f"Content-Type: {kind}\r\n\r\n".encode() + body


@st.composite
def _container(draw: st.DrawFn, children: st.SearchStrategy[list[bytes]]) -> bytes:
    boundary = f"b{draw(st.integers(0, 10**6))}"
    subtype = draw(st.sampled_from(["mixed", "report", "alternative", "digest"]))
    report_type = draw(st.sampled_from(["delivery-status", "feedback-report", ""]))
    parts = draw(children)
    head = f'Content-Type: multipart/{subtype}; report-type={report_type}; boundary="{boundary}"'
    inner = b"".join(f"--{boundary}\r\n".encode() + part + b"\r\n" for part in parts)
    return head.encode() + b"\r\n\r\n" + inner + f"--{boundary}--\r\n".encode()


_tree = st.recursive(
    _leaf(), lambda children: _container(st.lists(children, max_size=4)), max_leaves=12
)


@st.composite
def _report(draw: st.DrawFn) -> bytes:
    top = _headers(draw(st.lists(st.tuples(_header_names, _text_values), max_size=8)))
    shape = draw(st.sampled_from(["tree", "deep", "bytes"]))
    if shape == "deep":
        return top + nested_multiparts(draw(st.integers(0, 4000)))
    if shape == "bytes":
        return top + draw(st.binary(max_size=2000))
    return top + draw(_tree)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_report())
def test_fuzz_bounce_parser(raw: bytes) -> None:
    started = time.perf_counter()
    report: Report | MalformedReport
    try:
        report = examine(raw, FUZZ_PATHS)
    except MalformedReport as exc:
        report = exc
    # The time budget: far below what a poison message cost (seconds, then a crash).
    assert time.perf_counter() - started < 2.0
    if isinstance(report, MalformedReport):
        assert "\n" not in str(report)
        return
    assert report.verdict in set(Verdict)
    for text in (report.detail, report.why, *(f.detail for f in report.failures)):
        assert text.isprintable() or not text, repr(text)
    for failure in report.failures:
        assert normalize(failure.email).email == failure.email
    if report.verdict == Verdict.VERIFIED:
        # Only the one genuine token can ever verify, and it names reader 7.
        assert report.subscriber_id == 7
        assert report.message == "e3"
    else:
        assert report.subscriber_id is None


def test_printable_escapes_every_control() -> None:
    assert printable("a\x1b[2Jb\x07c\x9bd\u202ee\x00") == "a\\x1b[2Jb\\x07c\\x9bd\\u202ee\\x00"
    assert printable("x" * 5000, 100) == "x" * 100


async def test_server_replies_reach_terminals_escaped() -> None:
    handler = RecordingHandler(rcpt_replies={"r@example.net": ["550 5.1.1 \x1b[2Jgone\x07"]})
    async with smtp_server(handler) as port:
        connection = SmtpConnection(parse_smtp_url(f"smtp://127.0.0.1:{port}"), 10)
        replies = await connection.send("a@example.org", ["r@example.net"], MESSAGE)
        await connection.close()
    described = replies["r@example.net"].describe()
    assert described == "550 5.1.1 \\x1b[2Jgone\\x07"


def test_complaint_verified_by_the_quoted_original() -> None:
    paths = ReturnPaths(FUZZ_SECRET, "bounces@news.example.org")
    arf = (Path(__file__).parent / "data" / "bounces" / "arf-complaint.eml").read_bytes()
    # A feedback loop mails a fixed address: only the quoted original carries the token.
    assert examine(arf, paths).verdict == Verdict.UNVERIFIED
    quoted = arf.replace(
        b"Subject: Kabar pagi\nMessage-ID: <daily",
        f"Subject: Kabar pagi\nX-Publisher-Bounce: {paths.token(5, 'e9')}\n".encode()
        + b"Message-ID: <daily",
    )
    assert quoted != arf
    report = examine(quoted, paths)
    assert (report.verdict, report.subscriber_id, report.message, report.kind) == (
        Verdict.VERIFIED,
        5,
        "e9",
        "complaint",
    )
    # Or ARF's Original-Mail-From, our envelope sender.
    envelope = arf.replace(
        b"Original-Mail-From: <bounces@news.example.org>",
        f"Original-Mail-From: <{paths.address(6, 'c')}>".encode(),
    )
    assert examine(envelope, paths).subscriber_id == 6


@pytest.mark.parametrize("smtputf8", [True, False])
async def test_digest_and_confirmation_reach_internationalized_addresses(
    site: Site, smtputf8: bool
) -> None:
    await add_articles(site, 2)
    now = site.clock.now()
    joined = now - timedelta(days=3)  # before the articles: they are news to them
    async with transaction(site.engine) as session:
        for address in ("pembaca@bücher.example", "δοκιμή@example.net"):
            await repository.add(
                session, address, Preferences(), Consent("test", joined), joined, status=ACTIVE
            )
        pending = await repository.add(
            session, "baru@bücher.example", Preferences(), Consent("test", now), now
        )
        # The confirmation goes through the outbox like every other message.
        await notices.queue(session, site, MailKind.CONFIRMATION, pending.id)
    handler = EnvelopeHandler()
    async with smtp_server(handler, enable_SMTPUTF8=smtputf8) as port:
        site.settings.mail.smtp_url = f"smtp://127.0.0.1:{port}"
        edition = await open_edition(site, "daily", date(2026, 11, 25), now)
        await enqueue(site, edition, now)
        report = await deliver(site)
    ids = await _ids(site)
    paths = return_paths(site.settings)
    assert handler.count("pembaca@xn--bcher-kva.example") == 1
    # The confirmation leaves from its own return path too ("c": the confirmation).
    assert handler.senders["baru@xn--bcher-kva.example"] == paths.address(
        ids["baru@bücher.example"], "c"
    )
    confirmation = handler.delivered["baru@xn--bcher-kva.example"][0]
    assert (
        f"X-Publisher-Bounce: {paths.token(ids['baru@bücher.example'], 'c')}".encode()
        in confirmation
    )
    if smtputf8:
        assert (report.sent, report.failed) == (3, 0)
        assert handler.count("δοκιμή@example.net") == 1
    else:
        assert (report.sent, report.failed) == (2, 1)
        # The reader is not to blame for our relay: no bounce, no suppression.
        assert (await _statuses(site))["δοκιμή@example.net"] == "active"
        async with transaction(site.engine) as session:
            assert not await suppression.is_suppressed(session, "δοκιμή@example.net")
