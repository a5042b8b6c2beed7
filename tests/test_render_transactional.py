"""Confirmation, already-subscribed and unsubscribed notices, in both languages."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage

import pytest

from publisher.errors import InputError
from publisher.render.transactional import Notice, build_notice
from tests.render_support import frozen_clock, make_settings

CONFIRM = "https://news.example.org/confirm/MTIz.abc-DEF_123"


def _parts(message: bytes) -> tuple[EmailMessage, str, str]:
    parsed = email.message_from_bytes(message, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    text, markup = parsed.get_body(("plain",)), parsed.get_body(("html",))
    assert text is not None
    assert markup is not None
    return parsed, text.get_content(), markup.get_content()


@pytest.mark.parametrize(
    ("language", "subject", "button"),
    [
        ("id", "Konfirmasi langganan Anda di Kabar Nusantara", "Konfirmasi langganan saya"),
        ("en", "Please confirm your subscription to Kabar Nusantara", "Confirm my subscription"),
    ],
)
def test_confirmation(language: str, subject: str, button: str) -> None:
    message = build_notice(
        make_settings(),
        Notice.CONFIRMATION,
        email="siti@example.net",
        name="Siti",
        language=language,
        urls={"action_url": CONFIRM},
        message_id="<confirm.1@news.example.org>",
        clock=frozen_clock(),
    )
    parsed, text, markup = _parts(message)
    assert parsed["Subject"] == subject
    assert parsed["To"] == "Siti <siti@example.net>"
    assert parsed["Message-ID"] == "<confirm.1@news.example.org>"
    assert parsed["Content-Language"] == language
    # Transactional mail carries no list headers.
    assert parsed["List-Unsubscribe"] is None
    assert parsed["List-Id"] is None
    assert f'href="{CONFIRM}"' in markup
    assert button in markup
    assert CONFIRM in text.splitlines() or CONFIRM + "\r" in text.splitlines()
    assert "siti@example.net" in markup
    assert "siti@example.net" in text


def test_confirmation_in_indonesian_is_natural() -> None:
    message = build_notice(
        make_settings(),
        Notice.CONFIRMATION,
        email="budi@example.net",
        name="",
        language="id-ID",
        urls={"action_url": CONFIRM},
        message_id="<c2@news.example.org>",
    )
    _, text, _ = _parts(message)
    assert "Halo!" in text
    assert "Tautan konfirmasi berlaku selama 7 hari." in text
    assert "abaikan email ini" in text


def test_already_subscribed_and_unsubscribed() -> None:
    settings = make_settings()
    message = build_notice(
        settings,
        Notice.ALREADY_SUBSCRIBED,
        email="siti@example.net",
        name="Siti",
        language="id",
        urls={
            "preferences_url": "https://news.example.org/preferences/p1",
            "unsubscribe_url": "https://news.example.org/unsubscribe/u1",
        },
        message_id="<a1@news.example.org>",
    )
    parsed, text, markup = _parts(message)
    assert parsed["Subject"] == "Anda sudah berlangganan Kabar Nusantara"
    assert 'href="https://news.example.org/preferences/p1"' in markup
    assert 'href="https://news.example.org/unsubscribe/u1"' in markup
    assert "https://news.example.org/unsubscribe/u1" in text
    message = build_notice(
        settings,
        Notice.UNSUBSCRIBED,
        email="siti@example.net",
        name="Siti",
        language="en",
        urls={"action_url": "https://news.example.org/subscribe"},
        message_id="<u1@news.example.org>",
    )
    parsed, text, markup = _parts(message)
    assert parsed["Subject"] == "You have unsubscribed from Kabar Nusantara"
    assert "Subscribe again" in markup
    assert 'href="https://news.example.org/subscribe"' in markup


@pytest.mark.parametrize(
    ("language", "subject", "sentence"),
    [
        ("id", "Selamat datang di Kabar Nusantara", "sudah dikonfirmasi"),
        ("en", "Welcome to Kabar Nusantara", "is confirmed"),
    ],
)
def test_welcome_in_both_languages(language: str, subject: str, sentence: str) -> None:
    message = build_notice(
        make_settings(),
        Notice.WELCOME,
        email="siti@example.net",
        name="Siti",
        language=language,
        urls={
            "preferences_url": "https://news.example.org/preferences/p1",
            "unsubscribe_url": "https://news.example.org/unsubscribe/u1",
        },
        message_id="<w1@news.example.org>",
    )
    parsed, text, markup = _parts(message)
    assert parsed["Subject"] == subject
    assert sentence in text
    assert "Siti" in text
    assert 'href="https://news.example.org/preferences/p1"' in markup
    assert "https://news.example.org/unsubscribe/u1" in text


def test_notices_are_compiled_once_and_personalized() -> None:
    settings = make_settings()
    first = build_notice(
        settings,
        Notice.CONFIRMATION,
        email="a@example.net",
        name="<b>A</b>",
        language="id",
        urls={"action_url": CONFIRM + "1"},
        message_id="<1@x.example>",
    )
    second = build_notice(
        settings,
        Notice.CONFIRMATION,
        email="b@example.net",
        name="B",
        language="id",
        urls={"action_url": CONFIRM + "2"},
        message_id="<2@x.example>",
    )
    _, _, first_html = _parts(first)
    _, _, second_html = _parts(second)
    assert "&lt;b&gt;A&lt;/b&gt;" in first_html
    assert "<b>A</b>" not in first_html
    assert CONFIRM + "2" in second_html
    assert CONFIRM + "1" not in second_html


def test_hostile_confirm_url_is_rejected() -> None:
    with pytest.raises(InputError):
        build_notice(
            make_settings(),
            Notice.CONFIRMATION,
            email="a@example.net",
            name="",
            language="id",
            urls={"action_url": 'javascript:alert("x")'},
            message_id="<1@x.example>",
        )


def test_a_notice_refuses_the_wrong_links() -> None:
    with pytest.raises(ValueError, match="welcome needs the links"):
        build_notice(
            make_settings(),
            Notice.WELCOME,
            email="a@example.net",
            name="",
            language="id",
            urls={"action_url": CONFIRM},
            message_id="<1@x.example>",
        )
