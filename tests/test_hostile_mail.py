"""Hostile input on the mail side: SMTP auth and SMTPUTF8, file modes, email markup, DKIM."""

from __future__ import annotations

import base64
import os
import sqlite3
import stat
import subprocess
from email.parser import BytesParser
from email.policy import default
from html.parser import HTMLParser
from pathlib import Path

import pytest

from publisher.cli.init import init_site
from publisher.config import MailSettings, load_settings
from publisher.delivery.smtp import (
    ServerUnavailable,
    SmtpConnection,
    parse_smtp_url,
    send_message,
)
from publisher.errors import ConfigError, DeliveryError
from publisher.render.digest import render_digest
from publisher.render.dkim import verify
from publisher.render.message import build_digest_template
from publisher.render.mjml import escape_attribute_values
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
    return MailSettings.model_validate({"smtp_url": url})


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
