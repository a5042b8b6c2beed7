"""Unsubscribe by mail: the List-Unsubscribe mailto carries a signed token that
`publisher bounces process` honours; forged, tampered and automatic mail change nothing."""

from __future__ import annotations

import asyncio
import email
import email.policy
import mailbox
import re
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa

from publisher.clock import FrozenClock
from publisher.config import load_settings
from publisher.delivery.editions import enqueue, open_edition
from publisher.delivery.worker import deliver
from publisher.site import Site
from subscribers.errors import TokenError
from subscribers.models import Subscriber
from subscribers.tokens import Tokens
from tests.clirunner import invoke
from tests.conftest import NOW
from tests.delivery_helpers import add_articles, add_subscribers
from tests.smtp_servers import RecordingHandler, smtp_server

MAILBOX = "leave@news.example.org"


def test_mail_tokens_round_trip_and_reject_tampering() -> None:
    tokens = Tokens("k" * 32)
    token = tokens.mail_unsubscribe(42)
    assert re.fullmatch(r"42-[a-z2-7]{16}", token)
    assert len(f"leave+{token}") <= 64  # fits an address's local part
    assert tokens.load_mail_unsubscribe(token) == 42
    assert tokens.load_mail_unsubscribe(token.upper()) == 42  # servers may fold case
    mac = token.split("-")[1]
    flipped = mac[:-1] + ("a" if mac[-1] != "a" else "b")
    for bad in (f"42-{flipped}", f"43-{mac}", "42-", "", "x" * 500, f"042-{mac}"):
        with pytest.raises(TokenError):
            tokens.load_mail_unsubscribe(bad)
    with pytest.raises(TokenError):
        Tokens("another key, long enough").load_mail_unsubscribe(token)


def _send_digest(config: Path) -> dict[str, EmailMessage]:
    async def send() -> dict[str, EmailMessage]:
        site = Site.from_settings(load_settings(config), clock=FrozenClock(NOW))
        try:
            await add_articles(site, 2)
            await add_subscribers(site, 3)
            handler = RecordingHandler()
            async with smtp_server(handler) as port:
                site.settings.mail.smtp_url = f"smtp://127.0.0.1:{port}"
                edition = await open_edition(site, "daily", NOW.date(), NOW)
                await enqueue(site, edition, NOW)
                assert (await deliver(site)).sent == 3
            return {
                address: email.message_from_bytes(raws[0], policy=email.policy.default)
                for address, raws in handler.delivered.items()
            }
        finally:
            await site.aclose()

    return asyncio.run(send())


def _statuses(config: Path) -> dict[str, str]:
    async def read() -> dict[str, str]:
        site = Site.from_settings(load_settings(config))
        try:
            async with site.engine.connect() as connection:
                rows = await connection.execute(sa.select(Subscriber.email, Subscriber.status))
                return {email: status for email, status in rows}
        finally:
            await site.aclose()

    return asyncio.run(read())


def _request(box: Path, to: str, subject: str, **headers: str) -> None:
    message = EmailMessage()
    message["From"] = "Pembaca <someone@example.net>"
    message["To"] = to
    message["Subject"] = subject
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("Please stop.\n")
    maildir = mailbox.Maildir(box, create=True)
    maildir.add(message)


def test_a_reply_to_the_mailto_unsubscribes_only_with_a_valid_token(
    site_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("PUBLISHER_MAIL__UNSUBSCRIBE_MAILTO", MAILBOX)
    config = site_dir / "publisher.toml"
    sent = _send_digest(config)
    mailtos = {}
    for address, message in sent.items():
        header = " ".join(str(message["List-Unsubscribe"]).split())
        found = re.search(
            r"<mailto:(leave\+([0-9]+-[a-z2-7]{16})@news\.example\.org)\?subject=unsubscribe%20\2>",
            header,
        )
        assert found is not None, header
        mailtos[address] = (found[1], found[2])
    assert len({token for _, token in mailtos.values()}) == 3  # one per reader
    target, token = mailtos["reader0@example.net"]
    ident, mac = token.split("-")
    other_ident = mailtos["reader1@example.net"][1].split("-")[0]
    box = tmp_path / "forged"
    flipped = mac[:-1] + ("a" if mac[-1] != "a" else "b")
    _request(box, f"leave+{ident}-{flipped}@news.example.org", f"unsubscribe {ident}-{flipped}")
    _request(box, f"leave+{other_ident}-{mac}@news.example.org", "unsubscribe")  # wrong reader
    _request(box, MAILBOX, f"Re: unsubscribe 1-{'a' * 16}")
    # An out-of-office reply carrying a genuine token is a machine talking, not the reader.
    _request(box, target, f"unsubscribe {token}", Auto_Submitted="auto-replied")
    result = invoke(capsys, "--config", config, "bounces", "process", box)
    assert result.exit_code == 0, result.stderr
    assert "3 invalid requests" in result.stdout, result.stdout
    assert set(_statuses(config).values()) == {"active"}
    # The reader's own mail to the address in the header: unsubscribed, and only them.
    box = tmp_path / "genuine"
    _request(box, target, f"unsubscribe {token}")
    # Another reader whose server dropped the +tag: the subject still carries the token.
    _request(box, MAILBOX, f"unsubscribe {mailtos['reader2@example.net'][1]}")
    result = invoke(capsys, "--config", config, "bounces", "process", box)
    assert result.exit_code == 0, result.stderr
    assert "2 unsubscribed by mail" in result.stdout, result.stdout
    assert _statuses(config) == {
        "reader0@example.net": "unsubscribed",
        "reader1@example.net": "active",
        "reader2@example.net": "unsubscribed",
    }
    again = invoke(capsys, "--config", config, "bounces", "process", box)
    assert "already unsubscribed" in again.stdout


def test_hostile_request_headers_are_bounded(
    site_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("PUBLISHER_MAIL__UNSUBSCRIBE_MAILTO", MAILBOX)
    config = site_dir / "publisher.toml"
    box = tmp_path / "hostile"
    many = ", ".join(f"leave+{n}-{'a' * 16}@news.example.org" for n in range(5000))
    _request(box, many, "unsubscribe " + "9" * 10_000 + "-" + "a" * 16)
    result = invoke(capsys, "--config", config, "bounces", "process", box)
    assert result.exit_code == 0, result.stderr
    assert "1 invalid requests" in result.stdout
