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

# Verified against when the address is unknown, so a miss costs as long as a hit. A
# literal, not hashed at import: hashing spends ~0.3 s that every command importing the
# accounts would wait for. Made with today's parameters (a test checks they still are).
DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$Ej1TXIRPJu5pKBxS1H+0ow"
    "$Pk21GkX0xZDpt5/H6pC9ruTBqgNmX6dd0zP2FjUnr5Y"
)


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
        return _hasher.verify(password_hash or DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Tell whether a hash was made with weaker parameters than today's."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True
