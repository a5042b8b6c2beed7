"""Pre-encoded messages: headers, encodings, per-reader substitution and hostile values."""

from __future__ import annotations

import email
import html
import re
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from publisher.errors import ConfigError, InputError
from publisher.render.digest import CompiledDigest, render_digest
from publisher.render.message import (
    MessageTemplate,
    build_digest_template,
    encode_phrase,
    encode_unstructured,
    headers_of,
    qp_encode,
)
from tests.render_support import (
    frozen_clock,
    hostile_article,
    make_digest,
    make_settings,
    recipient,
    sample_articles,
)

_compiled: dict[str, CompiledDigest] = {}


def compiled(language: str = "id") -> CompiledDigest:
    """Render the sample digest once per language for this module."""
    if language not in _compiled:
        _compiled[language] = render_digest(
            make_settings(), make_digest(sample_articles(), language)
        )
    return _compiled[language]


def template(**mail: str) -> MessageTemplate:
    """Encode the sample digest with optional [mail] overrides."""
    return build_digest_template(make_settings(mail=mail), compiled(), clock=frozen_clock())


def parse(message: bytes) -> EmailMessage:
    """Parse strictly, the way a receiving client would."""
    parsed = email.message_from_bytes(message, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def bodies(message: EmailMessage) -> tuple[str, str]:
    """Return the decoded (text, html) parts."""
    text, markup = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None
    assert markup is not None
    # The parser keeps the wire's CRLF line ends in decoded text; clients show lines.
    return (
        text.get_content().replace("\r\n", "\n"),
        markup.get_content().replace("\r\n", "\n"),
    )


def check_wire_format(message: bytes) -> None:
    """Every line ends in CRLF, headers are ASCII-folded and body lines stay within 76."""
    assert b"\n" not in message.replace(b"\r\n", b"")
    assert b"\r" not in message.replace(b"\r\n", b"")
    head, body = message.split(b"\r\n\r\n", 1)
    for line in head.split(b"\r\n"):
        # Only an unbreakable token (a long URL or address) may pass 78, never 998.
        value = line.split(b": ", 1)[-1].strip()
        assert len(line) <= 78 or (b" " not in value and len(line) <= 998), line
    for line in body.split(b"\r\n"):
        assert len(line) <= 76, line


def test_headers_and_structure() -> None:
    token = f"7-{'abcdefgh' * 2}"
    message = template(unsubscribe_mailto="leave@news.example.org").personalize(
        recipient(7, mail_token=token)
    )
    check_wire_format(message)
    parsed = parse(message)
    assert parsed["From"] == "Kabar Nusantara <redaksi@news.example.org>"
    assert parsed["Reply-To"] == "Redaksi <balas@news.example.org>"
    assert parsed["To"] == "Pembaca 7 <pembaca7@example.net>"
    assert parsed["Subject"] == compiled().subject
    assert parsed["Date"] == "Wed, 25 Nov 2026 00:30:00 +0000"
    assert parsed["Message-ID"] == "<daily.2026-11-25.7@news.example.org>"
    assert parsed["List-Id"] == "Kabar Nusantara <daily.news.example.org>"
    assert parsed["List-Unsubscribe"] == (
        "<https://news.example.org/unsubscribe/7.tok-000007>, "
        f"<mailto:leave+{token}@news.example.org?subject=unsubscribe%20{token}>"
    )
    assert parsed["List-Archive"] == "<https://news.example.org/digests/>"
    assert "Auto-Submitted" not in parsed  # bulk mail, not an automatic reply or notice
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["MIME-Version"] == "1.0"
    assert parsed["Content-Language"] == "id"
    assert parsed.get_content_type() == "multipart/alternative"
    parts = list(parsed.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    for part in parts:
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
    assert not parsed.defects
    assert not any(p.defects for p in parts)


def test_personalized_bodies_equal_the_compiled_digest_filled_in() -> None:
    reader = recipient(3, name="Siti Rahayu")
    text, markup = bodies(parse(template().personalize(reader)))
    values = {
        "greeting": "Halo, Siti Rahayu!",
        "email": reader.email,
        "unsubscribe_url": reader.unsubscribe_url,
        "preferences_url": reader.preferences_url,
    }
    expected_html, expected_text = compiled().fill(values)
    assert markup == expected_html
    assert text == expected_text
    assert "Halo, Siti Rahayu!" in text
    assert 'href="https://news.example.org/unsubscribe/3.tok-000003"' in markup
    assert not any(token in markup for token in compiled().tokens.values())


def test_no_reply_to_and_no_mailto_when_not_configured() -> None:
    parsed = parse(template(reply_to="").personalize(recipient()))
    assert parsed["Reply-To"] is None
    assert "mailto" not in parsed["List-Unsubscribe"]


def test_anonymous_reader_gets_a_plain_greeting() -> None:
    text, _ = bodies(parse(template().personalize(recipient(name=""))))
    assert "\nHalo!\n" in text


def test_message_id_is_the_one_given_and_stable() -> None:
    tpl = template()
    first, second = tpl.personalize(recipient(5)), tpl.personalize(recipient(5))
    assert first == second  # same reader, same clock: byte-identical
    assert parse(first)["Message-ID"] == "<daily.2026-11-25.5@news.example.org>"
    bare = tpl.personalize(recipient(5, message_id="daily.5@news.example.org"))
    assert parse(bare)["Message-ID"] == "<daily.5@news.example.org>"


def test_non_ascii_name_and_subject_use_rfc_2047() -> None:
    settings = make_settings(site={"title": "Kabar Nusantara — Édition"})
    digest = render_digest(settings, make_digest(sample_articles()))
    message = build_digest_template(settings, digest, clock=frozen_clock()).personalize(
        recipient(name="Dédé Ñoño 山田 <script>")
    )
    check_wire_format(message)
    head = message.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    assert b"=?utf-8?b?" in head
    parsed = parse(message)
    assert parsed["To"].addresses[0].display_name == "Dédé Ñoño 山田 <script>"
    assert parsed["To"].addresses[0].addr_spec == "pembaca1@example.net"
    assert parsed["Subject"] == digest.subject
    assert parsed["List-Id"] == "Kabar Nusantara — Édition <daily.news.example.org>"
    text, markup = bodies(parsed)
    assert "Halo, Dédé Ñoño 山田 &lt;script&gt;!" in markup
    assert "<script>" not in markup
    assert "Halo, Dédé Ñoño 山田 <script>!" in text


def test_header_injection_through_every_field_is_neutralised() -> None:
    settings = make_settings()
    digest = render_digest(settings, make_digest([hostile_article(), *sample_articles()]))
    tpl = build_digest_template(settings, digest, clock=frozen_clock())
    message = tpl.personalize(recipient(name="Eve\r\nBcc: all@example.com\r\n\r\n<b>x</b>"))
    check_wire_format(message)
    parsed = parse(message)
    assert parsed["Bcc"] is None
    assert parsed["X-Evil"] is None
    assert "Bcc: victim@example.com" in parsed["Subject"]
    assert parsed["To"].addresses[0].display_name == "Eve Bcc: all@example.com <b>x</b>"
    names = [name for name, _ in parsed.items()]
    assert len(names) == len(set(names))
    _, markup = bodies(parsed)
    assert "<b>x</b>" not in markup
    assert "<script" not in markup


@pytest.mark.parametrize(
    "bad",
    [
        {"email": "a@b.c\r\nBcc: x@y.z"},
        {"email": "no-at-sign"},
        {"email": "a b@example.org"},
        {"email": "<a@example.org>"},
        {"unsubscribe_url": "javascript:alert(1)"},
        {"unsubscribe_url": "https://x.example/u\r\nBcc: a@b.c"},
        {"unsubscribe_url": 'https://x.example/"><script>'},
        {"unsubscribe_url": ""},
        {"preferences_url": "/relative/path"},
        {"message_id": "<a@b>\r\nBcc: x@y.z"},
        {"message_id": "no-at"},
    ],
)
def test_bad_recipient_values_are_rejected(bad: dict[str, str]) -> None:
    tpl = template()
    with pytest.raises(InputError):
        tpl.personalize(recipient(1, **bad))


def test_internationalized_addresses() -> None:
    parsed = parse(template().personalize(recipient(email="budi@contoh.co.id")))
    assert parsed["To"].addresses[0].domain == "contoh.co.id"
    idn = template().personalize(recipient(email="budi@bücher.example"))
    assert b"budi@xn--bcher-kva.example" in idn


def test_bad_sender_configuration_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"mail\.from"):
        template(**{"from": "not an address"})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("from", '"News, Inc" <news@example.org>, other@example.org'),
        ("reply_to", "desk@example.org, boss@example.org"),
    ],
)
def test_configured_mailbox_with_two_addresses_is_refused(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=rf"^mail\.{key}: must be one address"):
        template(**{key: value})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.text(max_size=120),
    local=st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,30}", fullmatch=True),
    token=st.from_regex(r"[A-Za-z0-9._~-]{1,200}", fullmatch=True),
)
def test_any_name_and_token_round_trip(name: str, local: str, token: str) -> None:
    reader = recipient(
        email=f"{local}@example.net",
        name=name,
        unsubscribe_url=f"https://news.example.org/unsubscribe/{token}",
    )
    message = template().personalize(reader)
    check_wire_format(message)
    parsed = parse(message)
    cleaned = " ".join(
        re.sub("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]", "", name).split()
    )[:100]
    assert parsed["To"].addresses[0].addr_spec == reader.email
    # Decode with the RFC 2047 decoder: the policy parser adds spaces between words.
    raw_to = dict(headers_of(message))["To"]
    shown = str(make_header(decode_header(raw_to.rsplit(" <", 1)[0]))) if cleaned else ""
    assert unquote(shown) == cleaned
    text, markup = bodies(parsed)
    greeting = f"Halo, {cleaned}!" if cleaned else "Halo!"
    assert greeting in text
    assert html.escape(greeting, quote=True) in markup
    assert f'href="https://news.example.org/unsubscribe/{token}"' in markup


@given(st.binary(max_size=400), st.booleans())
def test_quoted_printable_segments_decode_and_stay_short(data: bytes, open_end: bool) -> None:
    import quopri

    encoded = qp_encode(data, open_end=open_end)
    assert all(len(line) <= 76 for line in encoded.split(b"\r\n"))
    decoded = quopri.decodestring(encoded.replace(b"\r\n", b"\n"))
    assert decoded == data.replace(b"\r\n", b"\n")


def test_phrase_and_subject_encoding() -> None:
    assert encode_phrase("Budi") == "Budi"
    assert encode_phrase('Budi "B" Santoso, Jr.') == '"Budi \\"B\\" Santoso, Jr."'
    assert encode_phrase("Siti\r\nBcc: x") == '"Siti Bcc: x"'
    long_subject = encode_unstructured("kata " * 40, name_length=7)
    assert all(len(line) <= 78 - 9 for line in long_subject.split("\r\n")[:1])
    assert all(len(line) <= 78 for line in long_subject.split("\r\n"))
    word = encode_unstructured("x" * 2000, name_length=7)
    assert all(len(line) <= 76 for line in word.split("\r\n"))
