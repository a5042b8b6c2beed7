"""The development mail sink (the only aiosmtpd import in publisher/): every message to a file."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

from publisher.errors import DeliveryError

IDENT = "Publisher mailsink"


@dataclass(frozen=True, slots=True)
class SavedMessage:
    """One message the sink received and where it was written."""

    path: Path
    sender: str
    recipients: tuple[str, ...]
    subject: str
    size: int
    received_at: datetime

    def line(self) -> str:
        """Describe the message in one printable line."""
        to = ", ".join(self.recipients)
        return (
            f"{self.received_at:%Y-%m-%d %H:%M:%S} {self.sender or '<>'} -> {to} "
            f'"{self.subject}" ({self.size} bytes) {self.path}'
        )


def _printable(text: str, limit: int = 200) -> str:
    # Headers are attacker-controlled; never let them move the terminal cursor.
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def _subject(content: bytes) -> str:
    headers = BytesHeaderParser(policy=compat32).parsebytes(content)
    raw = headers.get("Subject")
    if raw is None:
        return ""
    try:
        return _printable(str(make_header(decode_header(str(raw)))))
    except (LookupError, UnicodeError, ValueError):
        return _printable(str(raw))


class _Handler:
    def __init__(self, sink: MailSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        try:
            saved = self.sink.save(
                content, envelope.mail_from or "", [str(r) for r in envelope.rcpt_tos]
            )
        except OSError as exc:
            return f"451 4.3.0 cannot save message: {exc.strerror}"
        return f"250 2.0.0 OK saved as {saved.path.name}"


class MailSink:
    """An SMTP server on loopback that saves each message as an .eml file in ``directory``."""

    def __init__(
        self,
        directory: Path,
        host: str = "127.0.0.1",
        port: int = 1025,
        *,
        on_message: Callable[[SavedMessage], None] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.host = host
        self.port = port
        self.on_message = on_message
        self.saved: list[Path] = []
        self.messages: list[SavedMessage] = []
        self._server: asyncio.Server | None = None
        self._sessions: weakref.WeakSet[SMTPServer] = weakref.WeakSet()
        self._counter = itertools.count(1)
        self._stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")

    async def start(self) -> None:
        """Listen; when ``port`` was 0 it becomes the port actually bound."""
        self.directory.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        handler = _Handler(self)

        hostname = socket.gethostname() or "localhost"

        def factory() -> Any:
            session = SMTPServer(
                handler, enable_SMTPUTF8=True, loop=loop, hostname=hostname, ident=IDENT
            )
            self._sessions.add(session)
            return session

        try:
            self._server = await loop.create_server(factory, host=self.host, port=self.port)
        except OSError as exc:
            raise DeliveryError(
                f"mailsink: cannot listen on {self.host}:{self.port}: {exc.strerror}"
            ) from exc
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening and close open sessions."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            for session in list(self._sessions):
                transport = getattr(session, "transport", None)
                if transport is not None:
                    transport.close()
            await server.wait_closed()

    async def __aenter__(self) -> MailSink:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    def save(self, content: bytes, sender: str, recipients: list[str]) -> SavedMessage:
        """Write one message atomically and report it."""
        name = f"{self._stamp}-{os.getpid()}-{next(self._counter):06d}.eml"
        path = self.directory / name
        partial = path.with_suffix(".eml.part")
        partial.write_bytes(content)
        os.replace(partial, path)
        saved = SavedMessage(
            path=path,
            sender=_printable(sender),
            recipients=tuple(_printable(r) for r in recipients),
            subject=_subject(content),
            size=len(content),
            received_at=datetime.now(UTC),
        )
        self.saved.append(path)
        self.messages.append(saved)
        if self.on_message is not None:
            self.on_message(saved)
        return saved
