"""The SMTP transport and the dev mail sink, against real servers on loopback."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from publisher.config import MailSettings
from publisher.delivery.mailsink import MailSink
from publisher.delivery.smtp import (
    ServerUnavailable,
    SmtpConnection,
    SmtpPool,
    parse_smtp_url,
    send_message,
    wire_form,
)
from publisher.errors import ConfigError, DeliveryError
from tests.clirunner import ROOT
from tests.services import free_port
from tests.smtp_servers import (
    RecordingHandler,
    dropping_server,
    password_authenticator,
    self_signed_tls,
    smtp_server,
)

MESSAGE = (
    b"From: News <news@example.org>\r\nTo: reader@example.net\r\n"
    b"Subject: =?utf-8?q?Kabar_pagi_=E2=98=95?=\r\nMessage-ID: <m1@example.org>\r\n\r\n"
    b"Halo.\r\n.leading dot\r\n"
)


def mail(url: str, **extra: object) -> MailSettings:
    return MailSettings.from_mapping({"smtp_url": url, **extra})


def test_parse_smtp_url_variants() -> None:
    plain = parse_smtp_url("smtp://127.0.0.1:2525")
    assert (plain.host, plain.port, plain.implicit_tls, plain.starttls) == (
        "127.0.0.1",
        2525,
        False,
        None,
    )
    secure = parse_smtp_url("smtps://us%40er:p%3Ass@mail.example.org")
    assert (secure.port, secure.implicit_tls, secure.username, secure.password) == (
        465,
        True,
        "us@er",
        "p:ss",
    )
    assert "p:ss" not in secure.describe()
    forced = parse_smtp_url("smtp://h:587?starttls=always&verify=false&cafile=/x.pem")
    assert (forced.starttls, forced.validate_certs, forced.cafile) == (True, False, "/x.pem")
    with pytest.raises(ConfigError, match=r"mail.smtp_url: unknown or bad option tls"):
        parse_smtp_url("smtp://h?tls=yes")
    with pytest.raises(ConfigError, match=r"mail\.smtp_url"):
        parse_smtp_url("http://h")
    with pytest.raises(ConfigError, match=r"mail\.smtp_url: no host"):
        parse_smtp_url("smtp://:25")


def _aiosmtplib_wire(message: bytes) -> bytes:
    """What aiosmtplib's own data() puts on the wire, for comparison."""
    from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

    return PERIOD_REGEX.sub(b"..", normalize_message_line_endings(message)) + b".\r\n"


def test_wire_form_matches_aiosmtplib_for_any_line_ends_and_dots() -> None:
    seed = int(os.environ.get("WIRE_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    pieces = [b"\r\n", b"\n", b"\r", b".", b"..", b"a", b"\xc3\xa9", b" ", b"=2E"]
    cases = [b"", b".", b"\r\n.\r\n", b"x\r\n", b"x", MESSAGE]
    cases += [b"".join(rng.choices(pieces, k=rng.randrange(40))) for _ in range(3000)]
    for case in cases:
        size, payload = wire_form(case)
        expected = _aiosmtplib_wire(case)
        assert payload == expected, f"WIRE_SEED={seed}: {case!r}"
        assert size == len(expected) - 3 - expected.count(b"\r\n..") - expected.startswith(b"..")


async def test_dot_lines_and_bare_line_feeds_arrive_as_sent_with_size() -> None:
    handler = RecordingHandler()
    message = MESSAGE.replace(b"Halo.\r\n", b"..two\r\n.\r\nlone\nfeed\rcr\r\n")
    message = b".first line dot\r\n" + message
    async with smtp_server(handler) as port:
        connection = SmtpConnection(parse_smtp_url(f"smtp://127.0.0.1:{port}"), 10)
        replies = await connection.send("news@example.org", ["reader@example.net"], message)
        await connection.close()
    assert replies["reader@example.net"].accepted
    from aiosmtplib.protocol import normalize_message_line_endings

    # The server undoes the dot-stuffing: the reader gets the CRLF form, dots intact.
    assert handler.delivered["reader@example.net"] == [normalize_message_line_endings(message)]


async def test_send_message_reaches_the_mail_sink(tmp_path: Path) -> None:
    seen: list[str] = []
    async with MailSink(
        tmp_path / "out", port=0, on_message=lambda m: seen.append(m.line())
    ) as sink:
        await send_message(
            mail(f"smtp://127.0.0.1:{sink.port}"),
            MESSAGE,
            "news@example.org",
            ["reader@example.net"],
        )
    assert len(sink.saved) == 1
    assert sink.saved[0].read_bytes() == MESSAGE  # dot-stuffing undone, bytes intact
    assert sink.saved[0].suffix == ".eml"
    assert "Kabar pagi ☕" in seen[0]
    assert "reader@example.net" in seen[0]


async def test_mail_sink_prints_hostile_subjects_on_one_line(tmp_path: Path) -> None:
    hostile = b"Subject: x\x1b[2J\x07 =?utf-8?q?a=0D=0Ab?=\r\n\r\nbody\r\n"
    async with MailSink(tmp_path, port=0) as sink:
        await send_message(mail(f"smtp://127.0.0.1:{sink.port}"), hostile, "a@b.c", ["d@e.f"])
    line = sink.messages[0].line()
    assert "\x1b" not in line
    assert "\n" not in line
    assert "\r" not in line


async def test_refused_connection_raises_server_unavailable() -> None:
    port = free_port()
    with pytest.raises(ServerUnavailable, match=rf"127.0.0.1:{port}: cannot connect"):
        await send_message(mail(f"smtp://127.0.0.1:{port}"), MESSAGE, "a@b.c", ["d@e.f"])


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("421 4.3.2 service shutting down", "temporary"),
        ("451 4.3.0 try later", "temporary"),
        ("452 4.2.2 mailbox full", "temporary"),
        ("550 5.1.1 no such user", "permanent"),
        ("552 5.2.2 over quota", "permanent"),
    ],
)
async def test_rcpt_replies_are_classified(code: str, kind: str) -> None:
    handler = RecordingHandler(rcpt_replies={"bad@example.net": [code]})
    async with smtp_server(handler) as port:
        connection = SmtpConnection(parse_smtp_url(f"smtp://127.0.0.1:{port}"), 5)
        replies = await connection.send("a@b.c", ["bad@example.net"], MESSAGE)
        assert replies["bad@example.net"].kind == kind
        assert replies["bad@example.net"].code == int(code[:3])
        # The same connection (reconnecting after a 421) carries on with the next message.
        again = await connection.send("a@b.c", ["bad@example.net"], MESSAGE)
        assert again["bad@example.net"].accepted
        await connection.close()
    assert handler.count("bad@example.net") == 1


async def test_one_transaction_with_mixed_recipient_codes() -> None:
    handler = RecordingHandler(
        rcpt_replies={"soft@x.org": ["452 4.2.2 full"], "hard@x.org": ["550 5.1.1 unknown"]}
    )
    async with smtp_server(handler) as port:
        connection = SmtpConnection(parse_smtp_url(f"smtp://127.0.0.1:{port}"), 5)
        replies = await connection.send("a@b.c", ["soft@x.org", "hard@x.org"], MESSAGE)
        assert (replies["soft@x.org"].kind, replies["soft@x.org"].code) == ("temporary", 452)
        assert (replies["hard@x.org"].kind, replies["hard@x.org"].code) == ("permanent", 550)
        mixed = await connection.send("a@b.c", ["ok@x.org", "gone@x.org"], MESSAGE)
        await connection.close()
    assert mixed["ok@x.org"].accepted
    assert mixed["gone@x.org"].accepted
    handler.rcpt_replies["soft@x.org"] = ["452 4.2.2 full"]
    async with smtp_server(handler) as port:
        with pytest.raises(DeliveryError, match=r"soft@x\.org: 452"):
            await send_message(
                mail(f"smtp://127.0.0.1:{port}"), MESSAGE, "a@b.c", ["soft@x.org", "ok@x.org"]
            )


async def test_data_replies_apply_to_every_recipient() -> None:
    handler = RecordingHandler(data_replies=["451 4.3.0 queue full", "554 5.7.1 rejected"])
    async with smtp_server(handler) as port:
        connection = SmtpConnection(parse_smtp_url(f"smtp://127.0.0.1:{port}"), 5)
        first = await connection.send("a@b.c", ["r@x.org"], MESSAGE)
        second = await connection.send("a@b.c", ["r@x.org"], MESSAGE)
        third = await connection.send("a@b.c", ["r@x.org"], MESSAGE)
        await connection.close()
    assert first["r@x.org"].kind == "temporary"
    assert second["r@x.org"].kind == "permanent"
    assert third["r@x.org"].accepted
    assert handler.count("r@x.org") == 1


async def test_sender_refused_for_good_pauses_instead_of_bouncing() -> None:
    class RefuseSender(RecordingHandler):
        async def handle_MAIL(self, server, session, envelope, address, options):  # type: ignore[no-untyped-def]
            return "553 5.7.1 sender not allowed"

    async with smtp_server(RefuseSender()) as port:
        connection = SmtpConnection(parse_smtp_url(f"smtp://127.0.0.1:{port}"), 5)
        with pytest.raises(ServerUnavailable, match=r"sender a@b\.c refused: 553"):
            await connection.send("a@b.c", ["r@x.org"], MESSAGE)
        await connection.close()


async def test_dropped_connection_mid_message_is_temporary_then_reconnects() -> None:
    async with dropping_server() as port:
        connection = SmtpConnection(parse_smtp_url(f"smtp://127.0.0.1:{port}"), 5)
        replies = await connection.send("a@b.c", ["r@x.org"], MESSAGE * 50)
        assert replies["r@x.org"].kind == "temporary"
        assert replies["r@x.org"].code is None
        assert not connection.connected
        again = await connection.send("a@b.c", ["r@x.org"], MESSAGE * 50)
        assert again["r@x.org"].kind == "temporary"
        await connection.close()


async def test_stalled_server_times_out_as_temporary() -> None:
    handler = RecordingHandler(data_delay=3)
    async with smtp_server(handler) as port:
        connection = SmtpConnection(parse_smtp_url(f"smtp://127.0.0.1:{port}"), 0.5)
        started = time.monotonic()
        replies = await connection.send("a@b.c", ["r@x.org"], MESSAGE)
        assert time.monotonic() - started < 2.5
        await connection.close()
    assert replies["r@x.org"].kind == "temporary"
    assert "timed out" in replies["r@x.org"].text


async def test_starttls_and_auth(tmp_path: Path) -> None:
    context, cert = self_signed_tls(tmp_path)
    handler = RecordingHandler()
    kwargs = {
        "tls": context,
        "require_starttls": True,
        "auth_required": True,
        "authenticator": password_authenticator("news", "s3cret"),
    }
    async with smtp_server(handler, **kwargs) as port:
        good = f"smtp://news:s3cret@127.0.0.1:{port}?cafile={cert}"
        async with SmtpPool(mail(good, connections=2)) as pool:
            for connection in pool.connections:
                replies = await connection.send("a@b.c", ["r@x.org"], MESSAGE)
                assert replies["r@x.org"].accepted
        with pytest.raises(ServerUnavailable, match="authentication failed: 535"):
            await send_message(
                mail(f"smtp://news:wrong@127.0.0.1:{port}?cafile={cert}"),
                MESSAGE,
                "a@b.c",
                ["r@x.org"],
            )
        # Unverifiable certificate: a clear error, not a silent plaintext fallback.
        with pytest.raises(ServerUnavailable, match="cannot connect"):
            await send_message(
                mail(f"smtp://news:s3cret@127.0.0.1:{port}"), MESSAGE, "a@b.c", ["r@x.org"]
            )
        # STARTTLS switched off with a password: refused before connecting.
        with pytest.raises(ConfigError, match="without TLS"):
            await send_message(
                mail(f"smtp://news:s3cret@127.0.0.1:{port}?starttls=never"),
                MESSAGE,
                "a@b.c",
                ["r@x.org"],
            )
    assert handler.count("r@x.org") == 2


async def test_implicit_tls(tmp_path: Path) -> None:
    context, cert = self_signed_tls(tmp_path)
    handler = RecordingHandler()
    async with smtp_server(handler, tls=context, implicit_tls=True) as port:
        await send_message(
            mail(f"smtps://127.0.0.1:{port}?cafile={cert}"), MESSAGE, "a@b.c", ["r@x.org"]
        )
        await send_message(
            mail(f"smtps://127.0.0.1:{port}?verify=false"), MESSAGE, "a@b.c", ["r@x.org"]
        )
    assert handler.count("r@x.org") == 2


async def test_pool_opens_parallel_connections() -> None:
    handler = RecordingHandler()
    async with (
        smtp_server(handler) as port,
        SmtpPool(mail(f"smtp://127.0.0.1:{port}", connections=3)) as pool,
    ):
        assert len(pool.connections) == 3
        results = await asyncio.gather(
            *(c.send("a@b.c", [f"r{i}@x.org"], MESSAGE) for i, c in enumerate(pool.connections))
        )
    assert all(r[f"r{i}@x.org"].accepted for i, r in enumerate(results))


def test_mailsink_command_saves_and_prints(tmp_path: Path) -> None:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen(
        [sys.executable, "-m", "publisher", "mailsink", "--port", str(port), "--dir", "inbox"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert f"listening on 127.0.0.1:{port}" in banner
        for n in range(2):
            asyncio.run(
                send_message(
                    mail(f"smtp://127.0.0.1:{port}", timeout=timedelta(seconds=5)),
                    MESSAGE.replace(b"m1@", f"m{n}@".encode()),
                    "news@example.org",
                    [f"reader{n}@example.net"],
                )
            )
        lines = [process.stdout.readline() for _ in range(2)]
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "reader0@example.net" in lines[0]
    assert "reader1@example.net" in lines[1]
    assert "Kabar pagi" in lines[0]
    saved = sorted((tmp_path / "inbox").glob("*.eml"))
    assert len(saved) == 2
    assert b"Message-ID: <m1@example.org>" in saved[1].read_bytes()
    assert "after 2 message(s)" in out
