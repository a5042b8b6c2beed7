"""Argon2id password hashing (the only argon2 import)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from publisher.accounts.errors import AccountInputError

#: Longer passwords are refused before hashing: Argon2 would take them, but a
#: megabyte-long password in a login form is an attack, not a person.
MAX_PASSWORD_LENGTH = 1024
MIN_PASSWORD_LENGTH = 10

# argon2-cffi's defaults follow RFC 9106's second recommended option (64 MiB, t=3).
_hasher = PasswordHasher()

# Verified against when the address is unknown, so a miss costs as long as a hit.
_DUMMY_HASH = _hasher.hash("not a real password, only spends the same time")


def check_new_password(password: str) -> None:
    """Refuse a password that is too short or too long."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountInputError(f"password: at least {MIN_PASSWORD_LENGTH} characters, please")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountInputError(f"password: at most {MAX_PASSWORD_LENGTH} characters")


def hash_password(password: str) -> str:
    """Return the Argon2id hash of a new password (checked for length first)."""
    check_new_password(password)
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Tell whether a password matches a hash; None (unknown user) spends the same time."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Tell whether a hash was made with weaker parameters than today's."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True
