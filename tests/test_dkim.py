"""DKIM: digests and notices signed with a generated key, verified offline with dkimpy."""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path

import pytest

from publisher.config import Settings
from publisher.errors import ConfigError
from publisher.render.digest import render_digest
from publisher.render.dkim import verify
from publisher.render.message import build_digest_template
from publisher.render.transactional import build_confirmation
from tests.render_support import (
    frozen_clock,
    make_digest,
    make_settings,
    recipient,
    sample_articles,
)


@pytest.fixture(scope="module")
def key_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """Generate an RSA key and the DNS TXT record that publishes it."""
    folder = tmp_path_factory.mktemp("dkim")
    private = folder / "dkim.pem"
    subprocess.run(
        [
            "openssl",
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            str(private),
        ],
        check=True,
        capture_output=True,
    )
    public = subprocess.run(
        ["openssl", "pkey", "-in", str(private), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    return private, record


def _settings(tmp_path: Path, key: Path) -> Settings:
    return make_settings(
        tmp_path,
        mail={
            "dkim_domain": "news.example.org",
            "dkim_selector": "kabar",
            "dkim_key_file": str(key),
        },
    )


def _dns(record: bytes) -> object:
    def lookup(name: bytes) -> bytes | None:
        return record if name == b"kabar._domainkey.news.example.org." else None

    return lookup


def test_digest_is_signed_over_the_required_headers(
    tmp_path: Path, key_pair: tuple[Path, bytes]
) -> None:
    key, record = key_pair
    settings = _settings(tmp_path, key)
    compiled = render_digest(settings, make_digest(sample_articles()))
    template = build_digest_template(settings, compiled, clock=frozen_clock())
    message = template.personalize(recipient(4, name="Dédé <x>"))
    assert message.startswith(b"DKIM-Signature: ")
    assert verify(message, _dns(record))  # type: ignore[arg-type]
    signature = message.split(b"\r\n\r\n", 1)[0].decode()
    signed = re.search(r"h=([^;]+);", re.sub(r"\r\n\s+", " ", signature))
    assert signed is not None
    covered = {h.strip().lower() for h in signed[1].split(":")}
    assert covered >= {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "reply-to",
        "list-id",
        "mime-version",
        "content-type",
    }
    assert "d=news.example.org" in signature
    assert "s=kabar" in signature
    assert "c=relaxed/simple" in signature


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"List-Unsubscribe: <https://", b"List-Unsubscribe: <http://"),
        (b"\r\nTo: ", b"\r\nTo: other@example.net, "),
        (b"\r\nReply-To: ", b"\r\nReply-To: evil@example.com, "),
        (b"Halo, ", b"Hallo, "),
    ],
)
def test_tampering_breaks_the_signature(
    tmp_path: Path, key_pair: tuple[Path, bytes], old: bytes, new: bytes
) -> None:
    key, record = key_pair
    settings = _settings(tmp_path, key)
    compiled = render_digest(settings, make_digest(sample_articles()))
    message = build_digest_template(settings, compiled, clock=frozen_clock()).personalize(
        recipient()
    )
    assert old in message
    assert not verify(message.replace(old, new, 1), _dns(record))  # type: ignore[arg-type]


def test_notices_are_signed_too(tmp_path: Path, key_pair: tuple[Path, bytes]) -> None:
    key, record = key_pair
    message = build_confirmation(
        _settings(tmp_path, key),
        email="budi@example.net",
        name="Budi",
        language="id",
        confirm_url="https://news.example.org/confirm/abc",
        message_id="<c1@news.example.org>",
    )
    assert verify(message, _dns(record))  # type: ignore[arg-type]


def test_unsigned_without_configuration() -> None:
    compiled = render_digest(make_settings(), make_digest(sample_articles()))
    message = build_digest_template(make_settings(), compiled).personalize(recipient())
    assert b"DKIM-Signature" not in message


@pytest.mark.parametrize(
    ("mail", "error"),
    [
        ({"dkim_domain": "news.example.org"}, "must be set together"),
        (
            {"dkim_domain": "news.example.org", "dkim_selector": "s", "dkim_key_file": "nope.pem"},
            "cannot read",
        ),
    ],
)
def test_incomplete_or_missing_key_is_a_config_error(
    tmp_path: Path, mail: dict[str, str], error: str
) -> None:
    compiled = render_digest(make_settings(), make_digest(sample_articles()))
    with pytest.raises(ConfigError, match=error):
        build_digest_template(make_settings(tmp_path, mail=mail), compiled)


def test_garbage_key_is_a_config_error(tmp_path: Path) -> None:
    key = tmp_path / "bad.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")
    compiled = render_digest(make_settings(), make_digest(sample_articles()))
    with pytest.raises(ConfigError, match=r"bad\.pem"):
        build_digest_template(_settings(tmp_path, key), compiled)
