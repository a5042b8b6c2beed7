"""VERP return paths: every message's envelope sender names its reader and message, signed.

A message to reader 42 from edition 7 leaves with the envelope sender
``bounces+42-e7-<mac>@example.org`` and the same token in an ``X-Publisher-Bounce``
header. A bounce comes back to that address (and usually quotes the header), an ARF
complaint quotes the original message or its envelope sender: the token, checked with
the site secret, tells which reader and message the report answers. Nobody without the
secret can make one, so a made-up report naming a reader proves nothing.
"""

from __future__ import annotations

import email.message
import hashlib
import hmac
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32

from subscribers.errors import InvalidInput, TokenError

#: The header carrying the token (signed by DKIM when signing is configured).
HEADER = "X-Publisher-Bounce"
#: Which message a token answers: "e<edition id>" for digests, one letter for notices.
_REF = re.compile(r"[a-z][a-z0-9]{0,12}")
_MAC_BYTES = 8  # 64 bits: a forger can only guess by mailing us, one report at a time
_TOKEN = re.compile(r"([0-9]{1,18})-([a-z][a-z0-9]{0,12})-([0-9a-f]{16})")
_IN_ADDRESS = re.compile(r"\+([0-9]{1,18}-[a-z][a-z0-9]{0,12}-[0-9a-f]{16})@")
_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*/=?^_`{|}~-]+)*")
#: The longest local part that leaves room for "+<id>-<ref>-<mac>" within 64 octets
#: for ids of up to ten digits (RFC 5321 4.5.3.1.1).
LOCAL_MAX = 64 - len("+0123456789-e12345678901-") - 16
#: Headers of a report (as delivered to us) that can carry the address it was sent to.
_RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")
#: Fields that carry our envelope sender or the token inside a report.
_QUOTED_HEADERS = (HEADER, "Return-Path", "Original-Mail-From")
_MAX_VALUES = 32  # header values looked at per report: a report quotes a handful
_MAX_VALUE = 2000


@dataclass(frozen=True, slots=True)
class Answered:
    """What a verified token says: the report answers ``message`` sent to this reader."""

    subscriber_id: int
    message: str


@dataclass(frozen=True, slots=True)
class Tokens:
    """What a report carries: the verified answers and how many tokens failed the check."""

    answers: frozenset[Answered]
    forged: int


class ReturnPaths:
    """Make and check the signed envelope senders of one site."""

    def __init__(self, secret_key: str, address: str) -> None:
        if len(secret_key) < 16:
            raise TokenError("web.secret_key must be at least 16 characters long")
        local, at, domain = address.strip().rpartition("@")
        if not at or not _LOCAL.fullmatch(local) or not domain or "+" in local:
            raise InvalidInput(
                f"return path {address!r}: need an ASCII local part without '+' and a domain"
            )
        if len(local) > LOCAL_MAX:
            raise InvalidInput(
                f"return path {address!r}: local part longer than {LOCAL_MAX} characters "
                "leaves no room for the token"
            )
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise InvalidInput(f"return path {address!r}: bad domain") from exc
        self.local = local
        self.domain = domain.lower()
        #: The address without a token (for mail to no reader, such as test copies).
        self.plain = f"{local}@{self.domain}"
        # A key of its own: a bounce token can never pass for a link token or vice versa.
        self._key = hashlib.sha256(b"publisher.subscribers.verp\0" + secret_key.encode()).digest()

    def token(self, subscriber_id: int, message: str) -> str:
        """Return the token naming a reader and a message (lowercase: MTAs may fold case)."""
        if subscriber_id < 0 or not _REF.fullmatch(message):
            raise InvalidInput(f"cannot make a bounce token for {subscriber_id!r}/{message!r}")
        return f"{subscriber_id}-{message}-{self._mac(subscriber_id, message)}"

    def address(self, subscriber_id: int, message: str) -> str:
        """Return the envelope sender of one message to one reader."""
        return f"{self.local}+{self.token(subscriber_id, message)}@{self.domain}"

    def load(self, token: str) -> Answered:
        """Return what a token names, or raise TokenError when it is not one of ours."""
        match = _TOKEN.fullmatch(token.strip().lower())
        if match is None:
            raise TokenError("malformed bounce token")
        subscriber_id, message = int(match[1]), match[2]
        if not hmac.compare_digest(match[3], self._mac(subscriber_id, message)):
            raise TokenError("bounce token signature does not match")
        return Answered(subscriber_id, message)

    def find(self, report: email.message.Message, parts: list[email.message.Message]) -> Tokens:
        """Check every token a report carries (in its recipient headers or quoted ones)."""
        answers: set[Answered] = set()
        forged = 0
        for candidate in _candidates(report, parts):
            try:
                answers.add(self.load(candidate))
            except TokenError:
                forged += 1
        return Tokens(frozenset(answers), forged)

    def _mac(self, subscriber_id: int, message: str) -> str:
        # hmac.digest and hex: C all the way (base32 is a Python loop), per message sent.
        digest = hmac.digest(self._key, f"{subscriber_id}-{message}".encode(), "sha256")
        return digest[:_MAC_BYTES].hex()


def _candidates(report: email.message.Message, parts: list[email.message.Message]) -> list[str]:
    """Return the token-shaped strings in the places a genuine report puts ours."""
    found: list[str] = []
    for value in _values(report, parts):
        value = value[:_MAX_VALUE].lower()
        if _TOKEN.fullmatch(value.strip()):
            found.append(value.strip())
        found.extend(_IN_ADDRESS.findall(value))
        if len(found) >= _MAX_VALUES:
            break
    return found[:_MAX_VALUES]


def _values(report: email.message.Message, parts: list[email.message.Message]) -> Iterator[str]:
    for name in _RECIPIENT_HEADERS:
        for value in report.get_all(name, [])[:_MAX_VALUES]:
            yield str(value)
    for part in parts:
        for headers in _quoted_headers(part):
            for name in _QUOTED_HEADERS:
                for value in headers.get_all(name, [])[:_MAX_VALUES]:
                    yield str(value)


def _quoted_headers(part: email.message.Message) -> Iterator[email.message.Message]:
    """Yield the header blocks a report part quotes: the original message, ARF fields."""
    kind = part.get_content_type()
    payload = part.get_payload()
    if kind in ("message/rfc822", "message/feedback-report", "message/delivery-status"):
        if isinstance(payload, list):
            yield from (p for p in payload[:_MAX_VALUES] if isinstance(p, email.message.Message))
    elif kind == "text/rfc822-headers":
        raw = part.get_payload(decode=True)
        if isinstance(raw, bytes):
            yield BytesHeaderParser(policy=compat32).parsebytes(raw[:65536])
