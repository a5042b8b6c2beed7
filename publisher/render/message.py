"""Pre-encoded MIME messages: built once per variant, personalized per reader in microseconds.

A MessageTemplate holds the whole message as one bytes pattern. The headers and both
quoted-printable parts are encoded once; each reader slot is a ``%b`` hole. Every literal
run is encoded on its own and, when a slot follows, closed with a soft line break, so the
slot's own encoding starts at column 0 and no line passes 76 characters whatever the value.
"""

from __future__ import annotations

import binascii
import html
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, getaddresses
from urllib.parse import urlsplit

from publisher.clock import Clock, SystemClock
from publisher.config import Settings
from publisher.content.sanitize import clean_line
from publisher.errors import ConfigError, InputError
from publisher.render.digest import CompiledDigest
from publisher.render.dkim import SIGNED_HEADERS, DkimSigner, signer_from_settings
from subscribers.verp import HEADER as BOUNCE_HEADER

NAME_MAX = 100
URL_MAX = 2000
_QP_LINE = 76
_ASCII_PHRASE = re.compile(r"[ !#-'*+\-/-9=?A-Z^-~]*")  # atext and spaces: no quoting needed
_PRINTABLE = re.compile(r"[ -~]*")
_MESSAGE_ID = re.compile(r"<[!-;=?-~]{1,200}@[!-;=?-~]{1,200}>")
_LOCAL = re.compile(r"[^\x00-\x20\x7f<>()\[\]\\,;:@\"]+")
_DOMAIN = re.compile(r"[^\x00-\x20\x7f<>()\[\]\\,;:@\"]+")
_URL = re.compile(r"https?://[!#-;=?-~]+")  # printable ASCII without space, quotes, < and >
_BOUNCE_TOKEN = re.compile(r"[a-z0-9-]{1,100}")


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who one personalized message goes to, and their own links."""

    email: str
    name: str
    unsubscribe_url: str
    preferences_url: str
    message_id: str
    language: str = ""
    #: The VERP token of this message (subscribers/verp.py), also in the envelope sender.
    bounce_token: str = ""


# --- header encoding -----------------------------------------------------------------


def _encoded_words(text: str) -> list[str]:
    """Split text into RFC 2047 "B" encoded words of at most 75 characters each."""
    chunks: list[bytes] = []
    chunk = b""
    for char in text:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > 42:  # 42 bytes → 56 base64 chars + 12 of wrapping
            chunks.append(chunk)
            chunk = b""
        chunk += encoded
    if chunk:
        chunks.append(chunk)
    return [
        "=?utf-8?b?" + binascii.b2a_base64(chunk, newline=False).decode("ascii") + "?="
        for chunk in chunks
    ]


def encode_phrase(text: str) -> str:
    """Encode a display name: as is, quoted, or as RFC 2047 words when it is not ASCII."""
    text = clean_line(text)  # also drops bidi overrides
    if not text:
        return ""
    if _ASCII_PHRASE.fullmatch(text) and len(text) <= 70:
        return text
    if _PRINTABLE.fullmatch(text) and len(text) <= 70:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "\r\n ".join(_encoded_words(text))


def encode_unstructured(text: str, *, name_length: int) -> str:
    """Encode an unstructured value (Subject), folded under 78 columns."""
    text = clean_line(text)  # also drops bidi overrides
    if _PRINTABLE.fullmatch(text) and "=?" not in text:
        lines: list[str] = []
        line = ""
        limit = 78 - name_length - 2
        for word in text.split(" "):
            if line and len(line) + 1 + len(word) > limit:
                lines.append(line)
                line, limit = word, 77
            else:
                line = f"{line} {word}" if line else word
        lines.append(line)
        if all(len(part) <= 900 for part in lines):
            return "\r\n ".join(lines)
    return "\r\n ".join(_encoded_words(text))


def encode_address(email: str) -> str:
    """Check an address (no controls, spaces or brackets) and return it fit for a header."""
    email = email.strip()
    local, at, domain = email.rpartition("@")
    if not at or not _LOCAL.fullmatch(local) or not _DOMAIN.fullmatch(domain) or len(email) > 320:
        raise InputError(f"invalid email address: {email!r}")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise InputError(f"invalid email domain: {email!r}") from exc
    # A non-ASCII local part stays UTF-8 (RFC 6532): it needs an SMTPUTF8 server anyway.
    return f"{local}@{domain}"


def format_address(name: str, email: str, *, name_length: int = 2) -> str:
    """Return "Name <address>" with the name encoded and folded as needed, or the address."""
    address = encode_address(email)
    phrase = encode_phrase(name)
    return join_phrase(phrase, f"<{address}>", name_length) if phrase else address


def join_phrase(phrase: str, angle: str, name_length: int) -> str:
    """Put "<...>" after an encoded phrase, on a folded line when the first would pass 78."""
    last = phrase.rsplit("\r\n", 1)[-1]
    used = len(last) + (name_length + 2 if last == phrase else 1)
    if used + 1 + len(angle) > 78:
        return f"{phrase}\r\n {angle}"
    return f"{phrase} {angle}"


def parse_mailbox(value: str, key: str) -> str:
    """Validate a configured "Name <address>" and return it encoded."""
    if any(c in value for c in "\r\n"):
        raise ConfigError(f"{key}: must be one line")
    mailboxes = getaddresses([value])
    if len(mailboxes) > 1:
        # parseaddr would keep the first and silently drop the rest.
        raise ConfigError(f"{key}: must be one address, got {value!r}")
    name, address = mailboxes[0] if mailboxes else ("", "")
    if not address:
        raise ConfigError(f"{key}: not an email address: {value!r}")
    try:
        return format_address(name, address, name_length=len(key) - len("mail."))
    except InputError as exc:
        raise ConfigError(f"{key}: {exc}") from exc


def check_url(url: str, what: str) -> str:
    """Accept only an absolute http(s) URL that is safe in headers and attributes."""
    url = url.strip()
    if len(url) > URL_MAX or not _URL.fullmatch(url) or not urlsplit(url).hostname:
        raise InputError(f"invalid {what}: {url[:200]!r} (need an absolute http(s) URL)")
    return url


def check_message_id(value: str) -> str:
    """Return ``<id@host>``, adding the brackets when missing; reject anything else."""
    value = value.strip()
    if not value.startswith("<"):
        value = f"<{value}>"
    if not _MESSAGE_ID.fullmatch(value):
        raise InputError(f"invalid Message-ID: {value[:200]!r}")
    return value


def make_message_id(domain: str) -> str:
    """Mint a random Message-ID for one-off mail."""
    return f"<{secrets.token_hex(12)}@{domain}>"


# --- quoted-printable ------------------------------------------------------------------


def qp_encode(data: bytes, *, open_end: bool) -> bytes:
    """Quoted-printable encode with CRLF line ends; end on a soft break when ``open_end``."""
    if not data:
        return b""
    encoded = binascii.b2a_qp(data.replace(b"\r\n", b"\n"), istext=True)
    if open_end and not encoded.endswith(b"\n"):
        start = encoded.rfind(b"\n") + 1
        last = encoded[start:]
        if len(last) >= _QP_LINE:
            cut = _QP_LINE - 2
            if last[cut - 1 : cut] == b"=":
                cut -= 1
            elif last[cut - 2 : cut - 1] == b"=":
                cut -= 2
            encoded = encoded[:start] + last[:cut] + b"=\n" + last[cut:]
        encoded += b"=\n"
    return encoded.replace(b"\n", b"\r\n")


# --- the template ----------------------------------------------------------------------

#: Slot keys: (where, name). "h" = HTML part, "t" = text part, "H" = header.
_Key = tuple[str, str]


class MessageTemplate:
    """One variant's message, encoded once; ``personalize`` fills in one reader."""

    def __init__(
        self,
        *,
        settings: Settings,
        subject: str,
        html_body: str,
        text_body: str,
        tokens: Mapping[str, str],
        greeting: Callable[[str], str],
        language: str,
        list_headers: bool,
        list_id: str = "",
        clock: Clock | None = None,
        signer: DkimSigner | None = None,
    ) -> None:
        self.language = language
        self.subject = subject
        self.list_headers = list_headers
        self._greeting = greeting
        self._clock: Clock = clock or SystemClock()
        self._signer = signer
        self._mailto = _mailto(settings.mail.unsubscribe_mailto) if list_headers else b""
        self._date_cache: tuple[int, bytes] = (-1, b"")
        boundary = "=_publisher_" + secrets.token_hex(12)
        self._keys: list[_Key] = []
        pattern = re.compile("|".join(re.escape(t) for t in tokens.values()))
        by_token = {token: slot for slot, token in tokens.items()}

        def part(where: str, body: str) -> bytes:
            """Encode a body, leaving a %b hole for each token occurrence."""
            pieces: list[bytes] = []
            position = 0
            for match in pattern.finditer(body):
                literal = body[position : match.start()].encode("utf-8")
                pieces.append(qp_encode(literal, open_end=True).replace(b"%", b"%%"))
                pieces.append(b"%b")
                self._keys.append((where, by_token[match[0]]))
                position = match.end()
            pieces.append(qp_encode(body[position:].encode("utf-8"), open_end=False))
            pieces[-1] = pieces[-1].replace(b"%", b"%%")
            return b"".join(pieces)

        def header(name: str, value: str) -> bytes:
            return f"{name}: {value}\r\n".encode().replace(b"%", b"%%")

        def hole(name: str) -> bytes:
            self._keys.append(("H", name))
            return f"{name}: %b\r\n".encode()

        head = [hole("Date"), header("From", parse_mailbox(settings.mail.from_, "mail.from"))]
        if settings.mail.reply_to:
            head.append(header("Reply-To", parse_mailbox(settings.mail.reply_to, "mail.reply_to")))
        head.append(hole("To"))
        head.append(header("Subject", encode_unstructured(subject, name_length=len("Subject"))))
        head.append(hole("Message-ID"))
        # A whole-line hole: the header is there only when the message has a token.
        self._keys.append(("L", BOUNCE_HEADER))
        head.append(b"%b")
        if list_headers:
            head.append(header("List-Id", list_id))
            head.append(hole("List-Unsubscribe"))
            head.append(header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
        head.append(header("MIME-Version", "1.0"))
        head.append(header("Content-Language", language))
        head.append(header("Content-Type", f'multipart/alternative;\r\n boundary="{boundary}"'))
        extra = ["Reply-To"] if settings.mail.reply_to else []
        extra += ["List-Id"] if list_headers else []
        self._signed_headers: tuple[str, ...] = (
            *(h for h in SIGNED_HEADERS if list_headers or not h.startswith("List-")),
            *extra,
            BOUNCE_HEADER,
            "MIME-Version",
            "Content-Type",
        )
        part_head = (
            "--{b}\r\nContent-Type: text/{kind}; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        body = [
            b"\r\n",
            part_head.format(b=boundary, kind="plain").encode(),
            part("t", text_body),
            b"\r\n",
            part_head.format(b=boundary, kind="html").encode(),
            part("h", html_body),
            b"\r\n",
            f"--{boundary}--\r\n".encode(),
        ]
        self._pattern = b"".join(head) + b"".join(body)
        self._order = tuple(self._keys)
        self.size = len(self._pattern)

    def personalize(self, recipient: Recipient) -> bytes:
        """Return the complete message for one reader (CRLF line ends, signed when configured)."""
        return self.fill(
            email=recipient.email,
            name=recipient.name,
            message_id=recipient.message_id,
            urls={
                "unsubscribe_url": recipient.unsubscribe_url,
                "preferences_url": recipient.preferences_url,
            },
            bounce_token=recipient.bounce_token,
        )

    def fill(
        self,
        *,
        email: str,
        name: str,
        message_id: str,
        urls: Mapping[str, str],
        bounce_token: str = "",
    ) -> bytes:
        """Return the message with every slot filled, escaped and encoded for its place."""
        name = clean_line(name)[:NAME_MAX]
        to = format_address(name, email, name_length=2)
        texts = {"greeting": self._greeting(name), "email": clean_line(email)}
        for slot, url in urls.items():
            texts[slot] = check_url(url, slot.replace("_", " ")) if url else ""
        headers = {
            "To": to.encode("utf-8"),
            "Date": self._date(),
            "Message-ID": check_message_id(message_id).encode("ascii"),
        }
        if bounce_token and not _BOUNCE_TOKEN.fullmatch(bounce_token):
            raise InputError(f"invalid bounce token: {bounce_token[:120]!r}")
        lines = {
            BOUNCE_HEADER: f"{BOUNCE_HEADER}: {bounce_token}\r\n".encode() if bounce_token else b""
        }
        if self.list_headers:
            unsubscribe = texts.get("unsubscribe_url", "")
            if not unsubscribe:
                raise InputError(f"no unsubscribe URL for {email!r}: List-Unsubscribe needs one")
            headers["List-Unsubscribe"] = b"<" + unsubscribe.encode("ascii") + b">" + self._mailto
        encoded: dict[_Key, bytes] = {}
        values: list[bytes] = []
        for key in self._order:
            value = encoded.get(key)
            if value is None:
                where, slot = key
                if where == "H":
                    value = headers[slot]
                elif where == "L":
                    value = lines[slot]
                elif where == "h":
                    raw = html.escape(texts.get(slot, ""), quote=True).encode("utf-8")
                    value = qp_encode(raw, open_end=True)
                else:
                    value = qp_encode(texts.get(slot, "").encode("utf-8"), open_end=True)
                encoded[key] = value
            values.append(value)
        message = self._pattern % tuple(values)
        if self._signer is not None:
            # t= is the second the Date header shows (set by _date above).
            signature = self._signer.sign(
                message, self._signed_headers, timestamp=self._date_cache[0]
            )
            return signature + message
        return message

    def _date(self) -> bytes:
        now = self._clock.now()
        second = int(now.timestamp())
        if self._date_cache[0] != second:
            self._date_cache = (second, format_datetime(_aware(now)).encode("ascii"))
        return self._date_cache[1]


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise InputError("the clock returned a naive datetime")
    return moment


def _mailto(value: str) -> bytes:
    value = value.strip()
    if not value:
        return b""
    address = value.removeprefix("mailto:").split("?", 1)[0]
    encode_address(address)
    if not address.isascii():
        raise ConfigError(f"mail.unsubscribe_mailto: must be an ASCII address: {value!r}")
    return f",\r\n <mailto:{address}?subject=unsubscribe>".encode("ascii")


def list_id(settings: Settings, frequency: str) -> str:
    """Return the List-Id value (RFC 2919): "Site title <daily.host>"."""
    host = urlsplit(settings.site.base_url).hostname or "localhost"
    host = host.encode("idna").decode("ascii")
    label = re.sub(r"[^a-z0-9-]", "-", frequency.lower()) or "digest"
    phrase = encode_phrase(settings.site.title)
    angle = f"<{label}.{host}>"
    return join_phrase(phrase, angle, len("List-Id")) if phrase else angle


def build_digest_template(
    settings: Settings, compiled: CompiledDigest, *, clock: Clock | None = None
) -> MessageTemplate:
    """Encode a compiled digest variant once, ready for ``personalize``."""
    return MessageTemplate(
        settings=settings,
        subject=compiled.subject,
        html_body=compiled.html,
        text_body=compiled.text,
        tokens=compiled.tokens,
        greeting=compiled.greeting,
        language=compiled.language,
        list_headers=True,
        list_id=list_id(settings, compiled.frequency),
        clock=clock,
        signer=signer_from_settings(settings.mail),
    )


def headers_of(message: bytes) -> Sequence[tuple[str, str]]:
    """Return the (name, raw value) header pairs of a message, unfolded (for tests/tools)."""
    head = message.split(b"\r\n\r\n", 1)[0].decode("utf-8")
    unfolded = re.sub(r"\r\n[ \t]", " ", head)
    pairs = []
    for line in unfolded.split("\r\n"):
        name, _, value = line.partition(":")
        pairs.append((name, value.strip()))
    return pairs
