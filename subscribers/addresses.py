"""Email addresses: validation and normalization (email-validator) and the uniqueness key."""

from __future__ import annotations

from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

from subscribers.errors import InvalidAddress

MAX_LENGTH = 320


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
    try:
        # Syntax only: a DNS lookup per row would make imports crawl and leak timing.
        valid = validate_email(text, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise InvalidAddress(f"invalid email address {text!r}: {exc}") from None
    return Address(
        email=valid.normalized, key=key_of(valid.normalized), ascii_email=valid.ascii_email
    )


def key_of(normalized: str) -> str:
    """Return the uniqueness key of an already-normalized address."""
    return normalized.lower()


def lookup_key(value: str) -> str:
    """Return the key of any string that looks like an address, valid or not."""
    try:
        return normalize(value).key
    except InvalidAddress:
        return key_of(value.strip())
