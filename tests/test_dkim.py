"""DKIM: digests and notices signed with a generated key, verified offline with dkimpy."""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
from pathlib import Path

import pytest
from dkim import rfc822_parse
from dkim.canonicalization import Relaxed, Simple
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.config import Settings
from publisher.errors import ConfigError, InputError
from publisher.render.digest import render_digest
from publisher.render.dkim import (
    DkimSigner,
    body_hash,
    canonical_header,
    signer_from_settings,
    split_message,
    verify,
)
from publisher.render.message import MessageTemplate, build_digest_template, list_id
from publisher.render.transactional import Notice, build_notice
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
    message = build_notice(
        _settings(tmp_path, key),
        Notice.CONFIRMATION,
        email="budi@example.net",
        name="Budi",
        language="id",
        urls={"action_url": "https://news.example.org/confirm/abc"},
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


# --- the signer itself: dkimpy is the independent verifier ------------------------------

SIGNED = ["From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe"]


@pytest.fixture(scope="module")
def signer(key_pair: tuple[Path, bytes]) -> DkimSigner:
    return DkimSigner("news.example.org", "kabar", key_pair[0].read_bytes())


def _message(*headers: str, body: bytes = b"Halo, pembaca.\r\n") -> bytes:
    return "".join(f"{h}\r\n" for h in headers).encode("utf-8") + b"\r\n" + body


BASIC = (
    "From: Kabar Nusantara <redaksi@news.example.org>",
    "To: pembaca@example.net",
    "Date: Wed, 25 Nov 2026 00:30:00 +0000",
    "Message-ID: <m1@news.example.org>",
)


def _signed(signer: DkimSigner, message: bytes, headers: list[str] | None = None) -> bytes:
    return signer.sign(message, headers or SIGNED, timestamp=1795566600) + message


def _tags(message: bytes) -> dict[str, str]:
    """Return the DKIM-Signature tags, unfolded and with whitespace removed."""
    fields, _ = split_message(message)
    name, value = fields[0]
    assert name == b"DKIM-Signature"
    text = re.sub(r"\s+", "", value.decode("ascii"))
    return dict(tag.split("=", 1) for tag in text.strip(";").split(";"))


@pytest.mark.parametrize(
    "subject",
    [
        "Subject: Berita pagi",
        "Subject: =?utf-8?b?S2FiYXIgTnVzYW50YXJhOiBEw6lkw6kgw5Fvw7Fv?=",
        # A long folded Subject, tabs and runs of spaces: relaxed canonicalization unfolds.
        "Subject: Kabar Nusantara: Denpasar Adds 60 Battery-Swap Stations for\r\n"
        "\tElectric   Scooters \r\n  and more  ",
        # Raw UTF-8 (RFC 6532) is hashed as bytes.
        "Subject: Kabar pagi — Dédé 山田",
    ],
)
def test_dkimpy_verifies_our_signature(
    signer: DkimSigner, key_pair: tuple[Path, bytes], subject: str
) -> None:
    message = _signed(signer, _message(*BASIC, subject))
    assert verify(message, _dns(key_pair[1]))  # type: ignore[arg-type]
    # The same message re-folded and re-spaced in transit still verifies (relaxed headers),
    # and so does one with extra empty lines at the end (simple body).
    refolded = message.replace(b"To: pembaca", b"To:   \r\n\t pembaca", 1)
    assert verify(refolded + b"\r\n\r\n", _dns(key_pair[1]))  # type: ignore[arg-type]


def test_absent_headers_are_left_out_and_repeated_ones_signed_each_time(
    signer: DkimSigner, key_pair: tuple[Path, bytes]
) -> None:
    message = _signed(
        signer,
        _message(*BASIC, "Subject: one", "X-Tag: first", "X-Tag: second"),
        [*SIGNED, "X-Tag", "List-Unsubscribe-Post", "x-tag"],
    )
    # Absent List-Unsubscribe* are listed once each only because they are oversigned.
    assert _tags(message)["h"].startswith(
        "from:from:to:to:subject:subject:date:date:message-id:message-id:list-unsubscribe:"
        "x-tag:x-tag:list-unsubscribe-post:sender:reply-to:cc:"
    )
    assert verify(message, _dns(key_pair[1]))  # type: ignore[arg-type]
    # Both occurrences are covered: changing either breaks the signature.
    for old in (b"X-Tag: first", b"X-Tag: second"):
        assert not verify(message.replace(old, b"X-Tag: third"), _dns(key_pair[1]))  # type: ignore[arg-type]


def test_signature_header_fields_and_folding(signer: DkimSigner) -> None:
    message = _signed(signer, _message(*BASIC, "Subject: x"))
    header = message.split(b"\r\nFrom: ", 1)[0]
    assert all(len(line) <= 78 for line in header.split(b"\r\n"))
    assert all(line.startswith(b" ") for line in header.split(b"\r\n")[1:])
    tags = _tags(message)
    assert tags["v"] == "1"
    assert tags["a"] == "rsa-sha256"
    assert tags["c"] == "relaxed/simple"
    assert (tags["d"], tags["s"], tags["t"]) == ("news.example.org", "kabar", "1795566600")
    assert "l" not in tags
    assert len(base64.b64decode(tags["b"])) == 256  # 2048-bit key


def test_timestamp_is_the_date_header_second(tmp_path: Path, key_pair: tuple[Path, bytes]) -> None:
    settings = _settings(tmp_path, key_pair[0])
    compiled = render_digest(settings, make_digest(sample_articles()))
    message = build_digest_template(settings, compiled, clock=frozen_clock()).personalize(
        recipient()
    )
    assert _tags(message)["t"] == str(int(frozen_clock().now().timestamp()))
    assert b"Date: Wed, 25 Nov 2026 00:30:00 +0000\r\n" in message


def test_personalized_messages_for_many_readers_verify(
    tmp_path: Path, key_pair: tuple[Path, bytes]
) -> None:
    key, record = key_pair
    settings = _settings(tmp_path, key)
    compiled = render_digest(settings, make_digest(sample_articles()))
    signer = signer_from_settings(settings.mail)
    assert signer is not None
    long_subject = "Kabar pagi: " + " ".join(["Dédé Ñoño berita panjang"] * 8)
    for subject in (compiled.subject, long_subject):
        template = MessageTemplate(
            settings=settings,
            subject=subject,
            html_body=compiled.html,
            text_body=compiled.text,
            tokens=compiled.tokens,
            greeting=compiled.greeting,
            language=compiled.language,
            list_headers=True,
            list_id=list_id(settings, "daily"),
            clock=frozen_clock(),
            signer=signer,
        )
        names = ["", "Budi", "Dédé <x>", 'Siti "Ayu" Rahayu', "山田 " * 30, "Ni Luh\tPutu"]
        for number, name in enumerate(names):
            message = template.personalize(recipient(number, name=name))
            assert verify(message, _dns(record)), name  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"Subject: Berita", b"Subject: Barita"),
        (b"From: Kabar", b"From: Kabir"),
        (b"Date: Wed, 25", b"Date: Wed, 26"),
        (b"Message-ID: <m1@", b"Message-ID: <m2@"),
        (b"Halo, pembaca.", b"Halo, pembeca."),
        (b"Halo, pembaca.\r\n", b"Halo, pembaca.\r\nP.S.\r\n"),
    ],
)
def test_tampered_raw_message_fails(
    signer: DkimSigner, key_pair: tuple[Path, bytes], old: bytes, new: bytes
) -> None:
    message = _signed(signer, _message(*BASIC, "Subject: Berita pagi"))
    assert verify(message, _dns(key_pair[1]))  # type: ignore[arg-type]
    assert old in message
    assert not verify(message.replace(old, new, 1), _dns(key_pair[1]))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("message", "headers", "error"),
    [
        (_message("To: a@example.net", "Subject: x"), SIGNED, "without a From header"),
        (_message(*BASIC), ["To", "Subject"], "must cover From"),
        (_message(*BASIC), ["From", "Bad Name"], "not a header field name"),
        (_message(*BASIC), ["From", "Subjéct"], "not a header field name"),
        (b"\r\nFrom: a@example.org\r\n\r\nx", SIGNED, "without a header"),
        (b" From: a@example.org\r\n\r\nx", SIGNED, "continuation line"),
        (b"From a@example.org\r\n\r\nx", SIGNED, "malformed header line"),
        (b"From: a@example.org\nTo: b@example.net\r\n\r\nx", SIGNED, "bare CR or LF"),
    ],
)
def test_unsignable_messages_are_input_errors(
    signer: DkimSigner, message: bytes, headers: list[str], error: str
) -> None:
    with pytest.raises(InputError, match=error):
        signer.sign(message, headers, timestamp=0)


def _openssl_key(path: Path, *args: str) -> Path:
    subprocess.run(
        ["openssl", "genpkey", *args, "-out", str(path)], check=True, capture_output=True
    )
    return path


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:512"), "512 bits"),
        (("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"), "not an RSA key"),
        (
            (
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:1024",
                "-aes-128-cbc",
                "-pass",
                "pass:secret",
            ),
            "password-protected",
        ),
    ],
)
def test_weak_foreign_or_encrypted_keys_are_config_errors(
    tmp_path: Path, args: tuple[str, ...], error: str
) -> None:
    key = _openssl_key(tmp_path / "k.pem", *args)
    with pytest.raises(ConfigError, match=rf"mail\.dkim_key_file: .*k\.pem: .*{error}"):
        signer_from_settings(_settings(tmp_path, key).mail)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("dkim_selector", "kabar; h=from"),
        ("dkim_selector", "ka bar"),
        ("dkim_domain", "news.example.org."),
        ("dkim_domain", "bérita.example.org"),
    ],
)
def test_domain_and_selector_must_be_dns_names(
    tmp_path: Path, key_pair: tuple[Path, bytes], key: str, value: str
) -> None:
    settings = _settings(tmp_path, key_pair[0])
    setattr(settings.mail, key, value)
    with pytest.raises(ConfigError, match=rf"mail\.{key}: not an ASCII DNS name"):
        signer_from_settings(settings.mail)


# --- differential: our canonicalization against dkimpy's --------------------------------

_NAME = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=":"),
    min_size=1,
    max_size=20,
)
# Header text: printable ASCII, UTF-8, spaces and tabs; folds are CRLF + at least one WSP.
_RUN = st.text(alphabet=st.sampled_from([*" \t\t  abcXYZ;:=<>@.\"'()-", "é", "山"]), max_size=30)
_FOLD = st.sampled_from(["\r\n ", "\r\n\t", "\r\n   ", "\r\n \t "])
_VALUE = st.lists(_RUN, min_size=1, max_size=5).flatmap(
    lambda runs: st.lists(_FOLD, min_size=len(runs) - 1, max_size=len(runs) - 1).map(
        lambda folds: runs[0] + "".join(f + r for f, r in zip(folds, runs[1:], strict=True))
    )
)
_LINE_BODY = st.lists(
    st.text(alphabet=st.sampled_from([*"ab =\t ", "é"]), max_size=20), max_size=12
).map(lambda lines: "\r\n".join(lines)) | st.sampled_from(["", "\r\n", "\r\n\r\n", "x"])


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=400)
    | st.lists(st.sampled_from([b"\r\n", b"\r", b"\n", b"a", b" "])).map(b"".join)
)
def test_body_hash_matches_dkimpy(body: bytes) -> None:
    expected = base64.b64encode(hashlib.sha256(Simple.canonicalize_body(body)).digest())
    assert body_hash(body) == expected


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(_NAME, _VALUE), min_size=1, max_size=8),
    _LINE_BODY,
)
def test_header_canonicalization_and_split_match_dkimpy(
    fields: list[tuple[str, str]], body: str
) -> None:
    message = "".join(f"{n}:{v}\r\n" for n, v in fields).encode() + b"\r\n" + body.encode()
    ours, our_body = split_message(message)
    theirs, their_body = rfc822_parse(message)
    assert [n for n, _ in ours] == [n for n, _ in theirs]
    assert [canonical_header(n, v) for n, v in ours] == [
        n + b":" + v for n, v in Relaxed.canonicalize_headers(theirs)
    ]
    assert our_body == their_body
    assert body_hash(our_body) == base64.b64encode(
        hashlib.sha256(Simple.canonicalize_body(their_body)).digest()
    )


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["Subject", "To", "X-Note", "Date"]), _VALUE), max_size=6),
    _LINE_BODY,
)
def test_random_messages_verify(
    signer: DkimSigner, key_pair: tuple[Path, bytes], fields: list[tuple[str, str]], body: str
) -> None:
    message = _message(BASIC[0], *(f"{n}:{v}" for n, v in fields), body=body.encode())
    signed = _signed(signer, message, [*SIGNED, "X-Note"])
    assert verify(signed, _dns(key_pair[1]))  # type: ignore[arg-type]
