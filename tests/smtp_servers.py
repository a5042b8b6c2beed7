"""Real SMTP servers on loopback for delivery tests: aiosmtpd handlers and a scripted server."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import threading
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from tests.services import free_port


def message_id_of(content: bytes) -> str:
    """Return the Message-ID header of a raw message ('' when missing)."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(content)
    return str(headers.get("Message-ID", "")).strip()


@dataclass
class RecordingHandler:
    """Accept mail and remember it per recipient; answer scripted replies first.

    ``rcpt_replies[address]`` is a list of replies given to that address's RCPT TO,
    one per attempt, before it is accepted; ``data_replies`` likewise for DATA, one per
    transaction (``None`` in the list means "accept this one").
    """

    rcpt_replies: dict[str, list[str]] = field(default_factory=dict)
    data_replies: list[str | None] = field(default_factory=list)
    data_delay: float = 0.0
    delivered: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    attempts: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        with self.lock:
            self.attempts[address] += 1
            queue = self.rcpt_replies.get(address)
            if queue:
                return queue.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        with self.lock:
            if self.data_replies:
                scripted = self.data_replies.pop(0)
                if scripted is not None:
                    return scripted
            for address in envelope.rcpt_tos:
                self.delivered[address].append(envelope.original_content or b"")
        return "250 2.0.0 queued as test"

    def count(self, address: str) -> int:
        """Return how many messages ``address`` received."""
        with self.lock:
            return len(self.delivered.get(address, []))

    def total(self) -> int:
        """Return how many (recipient, message) deliveries happened."""
        with self.lock:
            return sum(len(v) for v in self.delivered.values())


@asynccontextmanager
async def smtp_server(
    handler: Any,
    *,
    tls: ssl.SSLContext | None = None,
    implicit_tls: bool = False,
    port: int = 0,
    **kwargs: Any,
) -> AsyncIterator[int]:
    """Run an aiosmtpd server on the current loop (on ``port``, else any); yield its port."""
    loop = asyncio.get_running_loop()
    sessions: list[SMTPServer] = []

    def factory() -> SMTPServer:
        session = SMTPServer(
            handler,
            loop=loop,
            hostname="mx.test",
            tls_context=None if implicit_tls else tls,
            **kwargs,
        )
        sessions.append(session)
        return session

    server = await loop.create_server(
        factory, host="127.0.0.1", port=port, ssl=tls if implicit_tls else None
    )
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for session in sessions:
            transport = getattr(session, "transport", None)
            if transport is not None:
                transport.close()
        await server.wait_closed()


@contextmanager
def threaded_smtp_server(handler: Any) -> Iterator[int]:
    """Run an aiosmtpd server in its own thread (for tests that block); yield its port."""
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, server_hostname="mx.test")
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def password_authenticator(user: str, password: str) -> Any:
    """Return an aiosmtpd authenticator accepting exactly one user and password."""

    def authenticate(
        server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login == user.encode()
            and data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False)

    return authenticate


def self_signed_tls(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """Make a self-signed certificate for 127.0.0.1 (openssl CLI); return context and cert."""
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key_path),
            "-out",
            str(cert_path),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context, cert_path


@asynccontextmanager
async def dropping_server(after_bytes: int = 200) -> AsyncIterator[int]:
    """Serve a scripted SMTP session that hangs up partway through the message body."""

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 mx.test ESMTP\r\n")
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    writer.write(b"250-mx.test\r\n250 8BITMIME\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go ahead\r\n")
                    await writer.drain()
                    await reader.read(after_bytes)
                    writer.transport.abort()
                    return
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    await writer.drain()
                    writer.close()
                    return
                else:
                    writer.write(b"250 OK\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return

    server = await asyncio.start_server(session, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()
