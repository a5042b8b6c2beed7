"""SMTP transport (the only aiosmtplib import): pooled persistent connections and one-off sends.

Every outcome is reduced to a per-recipient :class:`Reply` (accepted, temporary or
permanent), except the failures that are the server's or our configuration's fault
(refused connection, failed TLS or AUTH, our sender refused): those raise
:class:`ServerUnavailable` so the caller pauses instead of failing messages.
"""

from __future__ import annotations

import asyncio
import random
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
from aiosmtplib.protocol import normalize_message_line_endings

from publisher.config import MailSettings
from publisher.errors import ConfigError, DeliveryError
from subscribers.addresses import normalize
from subscribers.errors import InvalidAddress

ReplyKind = Literal["accepted", "temporary", "permanent"]

#: A connection idle longer than this is checked with NOOP before reuse; servers close
#: idle sessions (Postfix after 300 s) and the first message would otherwise fail.
IDLE_CHECK_SECONDS = 30.0

#: Waits until a relay may take one more message (see Relay.pace).
Pacer = Callable[[], Awaitable[object]]
#: Makes the pacer of one relay (its URL without password) and its rate per second.
PacerFactory = Callable[[str, float], Pacer]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    """Where and how to connect, parsed from mail.smtp_url."""

    host: str
    port: int
    implicit_tls: bool
    #: True: require STARTTLS; False: never; None: upgrade when the server offers it.
    starttls: bool | None
    username: str | None
    password: str | None
    validate_certs: bool
    cafile: str | None
    #: True only with ?auth=plain-insecure: AUTH may go over a connection without TLS.
    auth_insecure: bool = False

    def describe(self) -> str:
        """Return the URL without its password, for messages."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        user = f"{self.username}@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"


def parse_smtp_url(url: str) -> SmtpTarget:
    """Parse ``smtp[s]://[user:pass@]host[:port][?starttls=auto|always|never&verify=..&auth=..]``."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ConfigError(f"mail.smtp_url: must start with smtp:// or smtps://, got {url!r}")
    implicit = parts.scheme == "smtps"
    try:
        port = parts.port or (465 if implicit else 25)
    except ValueError as exc:
        raise ConfigError(f"mail.smtp_url: bad port in {_redact(url)!r}") from exc
    if not parts.hostname:
        raise ConfigError(f"mail.smtp_url: no host in {_redact(url)!r}")
    starttls: bool | None = None
    validate = True
    cafile: str | None = None
    auth_insecure = False
    for key, values in parse_qs(parts.query, keep_blank_values=True).items():
        value = values[-1].strip().lower()
        if key == "starttls" and value in ("auto", "always", "never"):
            starttls = {"auto": None, "always": True, "never": False}[value]
        elif key == "verify" and value in _TRUE | _FALSE:
            validate = value in _TRUE
        elif key == "cafile" and value:
            cafile = values[-1].strip()
        elif key == "auth" and value in ("tls", "plain-insecure"):
            auth_insecure = value == "plain-insecure"
        else:
            raise ConfigError(
                f"mail.smtp_url: unknown or bad option {key}={values[-1]!r} (use "
                "starttls=auto|always|never, verify=true|false, cafile=PATH, "
                "auth=tls|plain-insecure)"
            )
    if implicit and starttls:
        raise ConfigError("mail.smtp_url: smtps:// is already TLS; drop starttls=always")
    if parts.username and starttls is False and not implicit and not auth_insecure:
        raise ConfigError(
            f"mail.smtp_url: {_redact(url)!r} would send the password without TLS "
            "(starttls=never); use smtps:// or STARTTLS, or add auth=plain-insecure"
        )
    return SmtpTarget(
        host=parts.hostname,
        port=port,
        implicit_tls=implicit,
        starttls=False if implicit else starttls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        validate_certs=validate,
        cafile=cafile,
        auth_insecure=auth_insecure,
    )


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


@dataclass(frozen=True, slots=True)
class Reply:
    """What happened to one recipient of one message."""

    kind: ReplyKind
    #: The SMTP reply code, or None when there was none (disconnect, timeout).
    code: int | None
    text: str

    @property
    def accepted(self) -> bool:
        """Tell whether the server took responsibility for the message."""
        return self.kind == "accepted"

    def describe(self) -> str:
        """Return ``code text`` on one line, for the outbox and error lists."""
        text = _one_line(self.text)
        return f"{self.code} {text}" if self.code is not None else text


def reply_for(code: int, text: str) -> Reply:
    """Classify an SMTP reply code."""
    if 200 <= code < 400:
        return Reply("accepted", code, text)
    if 500 <= code < 600:
        return Reply("permanent", code, text)
    return Reply("temporary", code, text)


class ServerUnavailable(DeliveryError):
    """The server cannot be reached or will not accept us at all: pause, do not fail mail."""


_LOCAL_HOSTNAME: str | None = None


async def _local_hostname() -> str:
    # getfqdn can take seconds on a machine with slow DNS; ask once per process.
    global _LOCAL_HOSTNAME
    if _LOCAL_HOSTNAME is None:
        name = await asyncio.to_thread(socket.getfqdn)
        _LOCAL_HOSTNAME = name if name and "." in name else "localhost.localdomain"
    return _LOCAL_HOSTNAME


class SmtpConnection:
    """One persistent SMTP session that sends message after message and reconnects."""

    def __init__(self, target: SmtpTarget, timeout: float) -> None:
        self.target = target
        self.timeout = timeout
        self._client: aiosmtplib.SMTP | None = None
        self._last_used = 0.0

    @property
    def connected(self) -> bool:
        """Tell whether a session is open right now."""
        return self._client is not None and self._client.is_connected

    async def _connect(self) -> aiosmtplib.SMTP:
        target = self.target
        # No username/password here: aiosmtplib would log in even when STARTTLS was not
        # offered (starttls=auto). We log in ourselves once the session is known to be TLS.
        client = aiosmtplib.SMTP(
            hostname=target.host,
            port=target.port,
            use_tls=target.implicit_tls,
            start_tls=target.starttls,
            validate_certs=target.validate_certs,
            cert_bundle=target.cafile,
            timeout=self.timeout,
            local_hostname=await _local_hostname(),
        )
        try:
            await self._open(client)
        except BaseException:
            client.close()  # a failed login leaves the session open
            raise
        return client

    async def _open(self, client: aiosmtplib.SMTP) -> None:
        """Connect, upgrade to TLS as configured, and log in only over TLS (unless allowed)."""
        target = self.target
        where = target.describe()
        try:
            await client.connect()
            if target.username is not None:
                if client.get_transport_info("sslcontext") is None and not target.auth_insecure:
                    raise ServerUnavailable(
                        f"{where}: refusing to send the SMTP password without TLS: the server "
                        "offers no STARTTLS (use smtps://, fix the relay's TLS, or add "
                        "auth=plain-insecure to the URL to allow it)"
                    )
                await client.login(target.username, target.password or "")
            if client.is_ehlo_or_helo_needed:
                # Greet now (connect() does only when it set up TLS or AUTH): SIZE and
                # SMTPUTF8 must be known before the first MAIL FROM.
                try:
                    await client.ehlo()
                except aiosmtplib.SMTPHeloError:
                    if not client.is_connected:
                        raise
                    await client.helo()
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise ServerUnavailable(
                f"{where}: authentication failed: {exc.code} {_one_line(exc.message)}"
            ) from exc
        except aiosmtplib.SMTPConnectResponseError as exc:
            raise ServerUnavailable(
                f"{where}: server refused the session: {exc.code} {_one_line(exc.message)}"
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise ServerUnavailable(
                f"{where}: session setup failed: {exc.code} {_one_line(exc.message)}"
            ) from exc
        except (aiosmtplib.SMTPException, ssl.SSLError, OSError) as exc:
            raise ServerUnavailable(f"{where}: cannot connect: {_describe_exc(exc)}") from exc

    async def _ready(self) -> aiosmtplib.SMTP:
        client = self._client
        if client is not None and client.is_connected:
            if time.monotonic() - self._last_used < IDLE_CHECK_SECONDS:
                return client
            try:
                await client.noop()
                return client
            except (aiosmtplib.SMTPException, OSError):
                client.close()
        self._client = await self._connect()
        return self._client

    async def send(
        self,
        sender: str,
        recipients: list[str],
        message: bytes,
        *,
        before_data: Callable[[], Awaitable[None]] | None = None,
    ) -> dict[str, Reply]:
        """Send one message; return each recipient's reply (raise ServerUnavailable to pause).

        ``before_data`` is awaited after the envelope is accepted and before the message
        is transmitted: until then nothing can be delivered, so a caller can overlap the
        envelope's round trips with its own bookkeeping of the previous message.
        """
        client = await self._ready()
        self._last_used = time.monotonic()
        replies: dict[str, Reply] = {}
        options: list[str] = []
        size, payload = wire_form(message)
        if client.supports_extension("size"):
            options.append(f"size={size}")
        sender_form, sender_utf8 = envelope_address(sender)
        forms = {address: envelope_address(address) for address in recipients}
        utf8 = client.supports_extension("smtputf8")
        if sender_utf8 and not utf8:
            why = f"sender {sender} needs SMTPUTF8, which {self.target.describe()} does not offer"
            return _rest(replies, recipients, Reply("permanent", None, why))
        if utf8 and (sender_utf8 or any(needs for _, needs in forms.values())):
            options.append("SMTPUTF8")
        try:
            await _mail(client, sender, sender_form, sender_utf8, options)
            accepted: list[str] = []
            for address in recipients:
                form, needs_utf8 = forms[address]
                if needs_utf8 and not utf8:
                    # Only this reader fails: the others in the transaction still go.
                    replies[address] = Reply(
                        "permanent",
                        None,
                        f"{address} needs SMTPUTF8 (non-ASCII local part), which "
                        f"{self.target.describe()} does not offer",
                    )
                    continue
                try:
                    await _rcpt(client, address, form, needs_utf8)
                except aiosmtplib.SMTPRecipientRefused as exc:
                    # Each recipient keeps its own code: one transaction may mix 4xx and 5xx.
                    replies[address] = reply_for(exc.code, exc.message)
                else:
                    accepted.append(address)
            if not accepted:
                await self._reset(client)
                return replies
            if before_data is not None:
                await before_data()
            response = await _data(client, payload)
        except aiosmtplib.SMTPSenderRefused as exc:
            await self._reset(client)
            if 500 <= exc.code < 600:
                # A permanent refusal of our own From address is a configuration problem,
                # not the readers' fault: stop and say so rather than bounce everyone.
                raise ServerUnavailable(
                    f"{self.target.describe()}: sender {sender} refused: "
                    f"{exc.code} {_one_line(exc.message)}"
                ) from exc
            return _rest(replies, recipients, reply_for(exc.code, exc.message))
        except aiosmtplib.SMTPResponseException as exc:
            await self._reset(client)
            return _rest(replies, recipients, reply_for(exc.code, exc.message))
        except aiosmtplib.SMTPNotSupported as exc:
            # E.g. a non-ASCII address and a server without SMTPUTF8: retrying cannot help.
            reply = Reply("permanent", None, _one_line(exc.message))
            return _rest(replies, recipients, reply)
        except ValueError as exc:
            return _rest(replies, recipients, Reply("permanent", None, f"bad address: {exc}"))
        except (aiosmtplib.SMTPException, OSError) as exc:
            client.close()
            return _rest(replies, recipients, _lost(_describe_exc(exc)))
        return _rest(replies, recipients, reply_for(response.code, response.message))

    @staticmethod
    async def _reset(client: aiosmtplib.SMTP) -> None:
        # Leave the session clean for the next message; a failing RSET only means the
        # connection is gone, which the next send notices and repairs.
        if client.is_connected:
            try:
                await client.rset()
            except (aiosmtplib.SMTPException, OSError):
                client.close()

    async def close(self) -> None:
        """Say QUIT (politely, briefly) and drop the session."""
        client, self._client = self._client, None
        if client is None or not client.is_connected:
            return
        try:
            await asyncio.wait_for(client.quit(), timeout=min(self.timeout, 5.0))
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            client.close()


def wire_form(message: bytes) -> tuple[int, bytes]:
    """Return a message's SIZE (RFC 1870) and its DATA payload, ended by ``CRLF.CRLF``.

    The same bytes aiosmtplib's ``data()`` would send (lone CR or LF made CRLF, a CRLF at
    the end, every line's leading dot doubled per RFC 5321 4.5.2), found with a few
    ``bytes`` scans instead of two regular-expression passes: on a 47 KB digest those
    passes cost about 1 ms of CPU, most of what a bare ``sendmail`` spends per message.
    """
    crlf = message.count(b"\r\n")
    if message.count(b"\n") != crlf or message.count(b"\r") != crlf:
        message = normalize_message_line_endings(message)
    elif not message.endswith(b"\r\n"):
        message += b"\r\n"
    size = len(message)
    if b"\r\n." in message:
        message = message.replace(b"\r\n.", b"\r\n..")
    if message.startswith(b"."):
        message = b"." + message
    return size, message + b".\r\n"


def _address_arg(prefix: bytes, form: str, utf8: bool) -> bytes:
    return prefix + b"<" + form.encode("utf-8" if utf8 else "ascii") + b">"


async def _mail(
    client: aiosmtplib.SMTP, sender: str, form: str, utf8: bool, options: list[str]
) -> None:
    """Send MAIL FROM for an address already validated (aiosmtplib's mail() re-parses it)."""
    extra = [option.encode("ascii") for option in options]
    response = await client.execute_command(b"MAIL", _address_arg(b"FROM:", form, utf8), *extra)
    if response.code != 250:
        raise aiosmtplib.SMTPSenderRefused(response.code, response.message, sender)


async def _rcpt(client: aiosmtplib.SMTP, recipient: str, form: str, utf8: bool) -> None:
    """Send RCPT TO for an address already validated."""
    response = await client.execute_command(b"RCPT", _address_arg(b"TO:", form, utf8))
    if response.code not in (250, 251):
        raise aiosmtplib.SMTPRecipientRefused(response.code, response.message, recipient)


async def _data(client: aiosmtplib.SMTP, payload: bytes) -> aiosmtplib.SMTPResponse:
    """Send DATA and a payload already in wire form (see :func:`wire_form`)."""
    start = await client.execute_command(b"DATA")
    if start.code != 354:
        raise aiosmtplib.SMTPDataError(start.code, start.message)
    protocol = client.protocol
    if protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    try:
        # One session sends one message at a time (the pool hands it to one task), so
        # the protocol's command lock has nothing to order here.
        protocol.write(payload)
        response = await protocol.read_response(timeout=client.timeout)
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
        client.close()  # as aiosmtplib's data() does: the session is out of step
        raise
    if response.code != 250:
        raise aiosmtplib.SMTPDataError(response.code, response.message)
    return response


def _rest(replies: dict[str, Reply], recipients: list[str], reply: Reply) -> dict[str, Reply]:
    """Give every recipient without a reply of its own the transaction's reply."""
    return {address: replies.get(address, reply) for address in recipients}


def _lost(why: str) -> Reply:
    return Reply("temporary", None, why)


def _one_line(text: str) -> str:
    """Return a server's words on one line, controls escaped: they end up on terminals."""
    line = " ".join(str(text).split())
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in line)


def _describe_exc(exc: BaseException) -> str:
    if isinstance(exc, aiosmtplib.SMTPTimeoutError):
        return f"timed out ({_one_line(exc.message)})"
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        return f"connection lost ({_one_line(exc.message)})"
    if isinstance(exc, aiosmtplib.SMTPException):
        return _one_line(exc.message)
    return _one_line(str(exc)) or exc.__class__.__name__


class Relay:
    """One [[mail.relays]] entry in this process: its sessions, pace and health."""

    def __init__(
        self,
        target: SmtpTarget,
        weight: int,
        connections: int,
        rate: float,
        pacer: Pacer | None = None,
    ) -> None:
        self.target = target
        self.weight = weight
        self.rate = rate
        self.pacer = pacer
        self.down_until = 0.0
        self.last_error = ""
        self._next_send = 0.0
        self._connections = connections
        self._free: asyncio.Queue[SmtpConnection] | None = None

    def sessions(self, timeout: float) -> asyncio.Queue[SmtpConnection]:
        """Return the relay's idle sessions (created on first use, on the running loop)."""
        if self._free is None:
            self._free = asyncio.Queue()
            for _ in range(self._connections):
                self._free.put_nowait(SmtpConnection(self.target, timeout))
        return self._free

    def healthy(self, now: float) -> bool:
        """Tell whether the relay is not being skipped after a refusal."""
        return now >= self.down_until

    async def pace(self) -> None:
        """Wait for this relay's rate_per_second, if it has one.

        With a pacer (the delivery worker's, counted in the database) the rate holds
        across every process; without one (a single transactional message) it is
        kept in this process.
        """
        if self.rate <= 0:
            return
        if self.pacer is not None:
            await self.pacer()
            return
        now = time.monotonic()
        wait = self._next_send - now
        self._next_send = max(now, self._next_send) + 1.0 / self.rate
        if wait > 0:
            await asyncio.sleep(wait)

    async def close(self) -> None:
        """Close every session of the relay."""
        if self._free is not None:
            sessions = []
            while not self._free.empty():
                sessions.append(self._free.get_nowait())
            await asyncio.gather(*(session.close() for session in sessions))
            for session in sessions:
                self._free.put_nowait(session)


def relays_of(mail: MailSettings, pacer_for: PacerFactory | None = None) -> list[Relay]:
    """Return the configured relays: [[mail.relays]], else mail.smtp_url with weight 1.

    ``pacer_for(relay, rate)`` gives a relay with a rate its shared pacer; ``relay`` is
    the URL without its password, the same in every process.
    """
    if not mail.relays:
        return [Relay(parse_smtp_url(mail.smtp_url), 1, mail.connections, 0)]
    relays = []
    for relay in mail.relays:
        target = parse_smtp_url(relay.url)
        rate = relay.rate_per_second
        pacer = pacer_for(target.describe(), rate) if pacer_for and rate > 0 else None
        relays.append(Relay(target, relay.weight, relay.connections, rate, pacer))
    return relays


class RelayConnection(SmtpConnection):
    """A pool slot that sends each message through a relay chosen by weight, failing over.

    A relay that cannot be reached (or refuses the session) is skipped for
    mail.relay_cooldown and the message goes to another; only when every relay is
    down does ServerUnavailable reach the caller, which pauses as with one relay.
    """

    def __init__(self, relays: list[Relay], timeout: float, cooldown: float) -> None:
        super().__init__(relays[0].target, timeout)
        self.relays = relays
        self.cooldown = cooldown
        self._random = random.Random()
        self._held: SmtpConnection | None = None

    @property
    def connected(self) -> bool:
        """Tell whether this slot is in the middle of a send."""
        return self._held is not None

    def _choose(self, tried: set[int]) -> Relay | None:
        now = time.monotonic()
        candidates = [r for n, r in enumerate(self.relays) if n not in tried and r.healthy(now)]
        if not candidates:
            return None
        timeout = self.timeout
        # Prefer relays with an idle session: a busy relay's share goes to the others.
        idle = [r for r in candidates if not r.sessions(timeout).empty()]
        pool = idle or candidates
        return self._random.choices(pool, weights=[r.weight for r in pool])[0]

    async def send(
        self,
        sender: str,
        recipients: list[str],
        message: bytes,
        *,
        before_data: Callable[[], Awaitable[None]] | None = None,
    ) -> dict[str, Reply]:
        """Send through a healthy relay; fail over to the next when one is unavailable."""
        tried: set[int] = set()
        errors: list[str] = []
        while True:
            relay = self._choose(tried)
            if relay is None:
                detail = "; ".join(errors) or "; ".join(
                    f"{r.target.describe()}: {r.last_error}" for r in self.relays
                )
                raise ServerUnavailable(f"every relay is unavailable: {detail}")
            tried.add(self.relays.index(relay))
            sessions = relay.sessions(self.timeout)
            session = await sessions.get()
            self._held = session
            try:
                await relay.pace()
                return await session.send(sender, recipients, message, before_data=before_data)
            except ServerUnavailable as exc:
                relay.down_until = time.monotonic() + self.cooldown
                relay.last_error = str(exc)
                errors.append(str(exc))
                await session.close()
            finally:
                self._held = None
                sessions.put_nowait(session)

    async def close(self) -> None:
        """Close every relay's sessions (the pool closes them once; repeats are harmless)."""
        await asyncio.gather(*(relay.close() for relay in self.relays))


class SmtpPool:
    """Persistent connections to mail.smtp_url, or spread over [[mail.relays]]."""

    def __init__(
        self, mail: MailSettings, size: int | None = None, *, pacer_for: PacerFactory | None = None
    ) -> None:
        self.target = parse_smtp_url(mail.smtp_url)
        timeout = mail.timeout.total_seconds()
        self.connections: list[SmtpConnection]
        if not mail.relays:
            self.connections = [
                SmtpConnection(self.target, timeout) for _ in range(size or mail.connections)
            ]
            return
        relays = relays_of(mail, pacer_for)
        cooldown = mail.relay_cooldown.total_seconds()
        slots = size or sum(relay.connections for relay in mail.relays)
        self.connections = [RelayConnection(relays, timeout, cooldown) for _ in range(slots)]

    async def close(self) -> None:
        """Close every connection."""
        await asyncio.gather(*(c.close() for c in self.connections))

    async def __aenter__(self) -> SmtpPool:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()


async def send_message(
    mail_settings: MailSettings, message: bytes, sender: str, recipients: list[str]
) -> None:
    """Send one transactional message now, or raise DeliveryError naming who was refused."""
    if not recipients:
        raise DeliveryError("no recipients given")
    timeout = mail_settings.timeout.total_seconds()
    connection = (
        RelayConnection(
            relays_of(mail_settings), timeout, mail_settings.relay_cooldown.total_seconds()
        )
        if mail_settings.relays
        else SmtpConnection(parse_smtp_url(mail_settings.smtp_url), timeout)
    )
    try:
        replies = await connection.send(sender, recipients, message)
    finally:
        await connection.close()
    failed = [f"{address}: {r.describe()}" for address, r in replies.items() if not r.accepted]
    if failed:
        raise DeliveryError(f"{connection.target.describe()} refused " + "; ".join(failed))


def envelope_address(address: str) -> tuple[str, bool]:
    """Return an address as MAIL FROM / RCPT TO carry it, and whether it needs SMTPUTF8.

    An internationalized domain is sent as punycode, which every server takes; only a
    non-ASCII local part needs the SMTPUTF8 extension (RFC 6531).
    """
    if address.isascii():
        return address, False
    try:
        valid = normalize(address)
    except InvalidAddress:
        return address, True  # the server (or the missing extension) refuses it, per recipient
    if valid.ascii_email is not None:
        return valid.ascii_email, False
    return valid.email, True


def sender_address(from_header: str) -> str:
    """Return the bare address of a From value such as ``Name <a@b>``."""
    return parseaddr(from_header)[1] or from_header.strip()


async def transport_ceiling(
    mail_settings: MailSettings,
    message: bytes,
    sender: str,
    recipient: str,
    count: int,
    *,
    stock: bool = True,
) -> float:
    """Send one prebuilt message ``count`` times over bare sessions; return seconds taken.

    The delivery benchmark's yardsticks, with no outbox, rendering or bookkeeping, on
    mail.connections persistent connections: ``stock`` calls aiosmtplib's own
    ``sendmail``; otherwise :meth:`SmtpConnection.send`, this module's transport.
    """
    target = parse_smtp_url(mail_settings.smtp_url)
    timeout = mail_settings.timeout.total_seconds()
    sessions = [SmtpConnection(target, timeout) for _ in range(mail_settings.connections)]
    clients = await asyncio.gather(*(session._ready() for session in sessions))
    shares = [count // len(clients) + (i < count % len(clients)) for i in range(len(clients))]

    async def blast(session: SmtpConnection, client: aiosmtplib.SMTP, n: int) -> None:
        for _ in range(n):
            if stock:
                await client.sendmail(sender, [recipient], message)
            else:
                await session.send(sender, [recipient], message)

    started = time.perf_counter()
    await asyncio.gather(
        *(blast(s, c, n) for s, c, n in zip(sessions, clients, shares, strict=True))
    )
    elapsed = time.perf_counter() - started
    await asyncio.gather(*(session.close() for session in sessions))
    return elapsed


@dataclass(frozen=True)
class Probe:
    """What one test session with a relay showed (for `publisher doctor`)."""

    where: str
    tls: bool
    starttls_offered: bool
    authenticated: bool
    extensions: tuple[str, ...]


async def probe(target: SmtpTarget, command_timeout: float) -> Probe:
    """Open a session as delivery would (EHLO, STARTTLS, AUTH), note what it got, QUIT."""
    connection = SmtpConnection(target, command_timeout)
    client = await connection._connect()
    try:
        extensions = tuple(sorted(client.esmtp_extensions))
        tls = client.get_transport_info("sslcontext") is not None
        return Probe(
            where=target.describe(),
            tls=tls,
            starttls_offered=tls or "starttls" in client.esmtp_extensions,
            authenticated=target.username is not None,
            extensions=extensions,
        )
    finally:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError):
            client.close()
