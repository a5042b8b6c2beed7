"""Signed tokens for confirmation, unsubscribe, preference and form (CSRF) links."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from itsdangerous import BadSignature, Signer, TimestampSigner

from subscribers.errors import TokenError

CONFIRM_MAX_AGE = timedelta(days=7)
CSRF_MAX_AGE = timedelta(hours=12)


class _Clock(Protocol):
    def now(self) -> datetime: ...


class _ClockedSigner(TimestampSigner):
    """A timestamp signer that reads the injected clock, so tests can age tokens."""

    clock: _Clock | None = None

    def get_timestamp(self) -> int:
        if self.clock is None:
            return int(time.time())
        return int(self.clock.now().timestamp())


class Tokens:
    """Sign and check the tokens in subscriber links, one salt per purpose."""

    def __init__(self, secret_key: str, *, clock: _Clock | None = None) -> None:
        if len(secret_key) < 16:
            raise TokenError("web.secret_key must be at least 16 characters long")

        def plain(salt: str) -> Signer:
            return Signer(secret_key, salt=salt, digest_method=hashlib.sha256)

        def timed(salt: str) -> _ClockedSigner:
            signer = _ClockedSigner(secret_key, salt=salt, digest_method=hashlib.sha256)
            signer.clock = clock
            return signer

        # Plain signers cost a few microseconds: delivery signs one per recipient.
        self._unsubscribe = plain("publisher.subscribers.unsubscribe")
        self._preferences = plain("publisher.subscribers.preferences")
        self._confirm = timed("publisher.subscribers.confirm")
        self._csrf = timed("publisher.web.csrf")

    def unsubscribe(self, subscriber_id: int) -> str:
        """Return the non-expiring unsubscribe token of a subscriber."""
        return self._unsubscribe.sign(str(subscriber_id)).decode("ascii")

    def preferences(self, subscriber_id: int) -> str:
        """Return the non-expiring preferences token of a subscriber."""
        return self._preferences.sign(str(subscriber_id)).decode("ascii")

    def confirm(self, subscriber_id: int) -> str:
        """Return a confirmation token valid for seven days."""
        return self._confirm.sign(str(subscriber_id)).decode("ascii")

    def load_unsubscribe(self, token: str) -> int:
        """Return the subscriber id inside an unsubscribe token, or raise TokenError."""
        return _id(_unsign(self._unsubscribe, self._unsubscribe.unsign, token))

    def load_preferences(self, token: str) -> int:
        """Return the subscriber id inside a preferences token, or raise TokenError."""
        return _id(_unsign(self._preferences, self._preferences.unsign, token))

    def load_confirm(self, token: str) -> int:
        """Return the subscriber id inside an unexpired confirmation token."""
        max_age = int(CONFIRM_MAX_AGE.total_seconds())
        return _id(
            _unsign(self._confirm, lambda t: self._confirm.unsign(t, max_age=max_age), token)
        )

    def csrf(self, nonce: str) -> str:
        """Sign a form's CSRF nonce (the nonce also travels in a cookie)."""
        return self._csrf.sign(nonce).decode("ascii")

    def check_csrf(self, token: str, nonce: str) -> None:
        """Raise TokenError unless ``token`` signs ``nonce`` and is recent."""
        max_age = int(CSRF_MAX_AGE.total_seconds())
        signed = _unsign(self._csrf, lambda t: self._csrf.unsign(t, max_age=max_age), token)
        if not nonce or not secrets.compare_digest(signed, nonce.encode("ascii", "replace")):
            raise TokenError("form token does not match")


def new_nonce() -> str:
    """Return a fresh random nonce for a CSRF cookie."""
    return secrets.token_urlsafe(24)


def _unsign(signer: Signer, unsign: Callable[[bytes], bytes], token: str) -> bytes:
    if not token or len(token) > 200 or not token.isascii():
        raise TokenError("malformed token")
    raw = token.encode("ascii")
    try:
        value = unsign(raw)
    except BadSignature as exc:
        # SignatureExpired is a BadSignature too; callers show one page for all.
        raise TokenError(f"bad token: {exc.__class__.__name__}") from None
    # The signature's base64 has spare low bits and optional padding, so several
    # spellings verify; accept only the one we issue (one token, one URL, one log key).
    signed, _, signature = raw.rpartition(signer.sep)
    if not secrets.compare_digest(signer.get_signature(signed), signature):
        raise TokenError("bad token: not in canonical form")
    return value


def _id(value: bytes) -> int:
    if not value.isdigit() or len(value) > 18:
        raise TokenError("malformed token payload")
    return int(value)
