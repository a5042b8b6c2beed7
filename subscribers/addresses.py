"""Email addresses: validation and normalization (email-validator) and the uniqueness key."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from subscribers.errors import InvalidAddress

# email-validator is imported by the functions that validate (its constants compile
# dozens of patterns, ~20 ms): listing subscribers never validates an address.
if TYPE_CHECKING:
    from email_validator import ValidatedEmail

MAX_LENGTH = 320
# An unquoted all-ASCII local part (RFC 5322 dot-atom), which email-validator keeps as is.
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


@dataclass(frozen=True, slots=True)
class Address:
    """A valid address: the form written in To:, and its case-insensitive key."""

    email: str
    key: str
    #: The all-ASCII form (IDNA domain), or None when the local part needs SMTPUTF8.
    ascii_email: str | None


def normalize(value: str) -> Address:
    """Validate an address and return its normalized form, or raise InvalidAddress."""
    text = value.strip()
    if not text:
        raise InvalidAddress("empty email address")
    if len(text) > MAX_LENGTH:
        raise InvalidAddress(f"email address longer than {MAX_LENGTH} characters")
    local, at, domain = text.rpartition("@")
    if at and len(local) <= 64 and _DOT_ATOM.fullmatch(local):
        from email_validator import EmailNotValidError

        # Imports see few distinct domains: validate each once, the local part by pattern.
        # The result equals validate_email's (a property test checks it).
        try:
            unicode_domain, ascii_domain = _domain(domain)
        except EmailNotValidError as exc:
            raise InvalidAddress(f"invalid email address {text!r}: {exc}") from None
        email = f"{local}@{unicode_domain}"
        ascii_email = f"{local}@{ascii_domain}" if ascii_domain is not None else None
        if len(ascii_email or email.encode("utf-8")) > 254:
            raise InvalidAddress(f"invalid email address {text!r}: too long")
        return Address(email=email, key=key_of(email), ascii_email=ascii_email)
    return validated(text)


def validated(text: str) -> Address:
    """Normalize through email-validator alone (the reference the fast path must equal)."""
    from email_validator import EmailNotValidError

    try:
        valid = _validate(text)
    except EmailNotValidError as exc:
        raise InvalidAddress(f"invalid email address {text!r}: {exc}") from None
    return Address(
        email=valid.normalized, key=key_of(valid.normalized), ascii_email=valid.ascii_email
    )


@lru_cache(maxsize=4096)
def _domain(domain: str) -> tuple[str, str | None]:
    """Return the normalized (Unicode) and ASCII forms of a domain (EmailNotValidError if bad)."""
    valid = _validate(f"a@{domain}")
    return valid.domain, valid.ascii_domain


def _validate(text: str) -> ValidatedEmail:
    """Check an address's syntax with email-validator (EmailNotValidError if bad)."""
    from email_validator import validate_email

    # Syntax only: a DNS lookup per row would make imports crawl and leak timing.
    return validate_email(text, check_deliverability=False, allow_smtputf8=True)


def key_of(normalized: str) -> str:
    """Return the uniqueness key of an already-normalized address."""
    return normalized.lower()


def lookup_key(value: str) -> str:
    """Return the key of any string that looks like an address, valid or not."""
    try:
        return normalize(value).key
    except InvalidAddress:
        return key_of(value.strip())
