"""The accounts' errors, in Publisher's one exception tree."""

from __future__ import annotations

from datetime import timedelta

from publisher.errors import InputError, PublisherError


class AccountError(PublisherError):
    """Report a failed account operation."""


class BadCredentials(AccountError):
    """Reject a wrong address, password or second-factor code (without saying which)."""


class Throttled(AccountError):
    """Refuse a login because too many attempts failed recently."""

    def __init__(self, message: str, retry_after: timedelta) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Forbidden(AccountError):
    """Refuse an action the user's role or the token's scope does not allow."""


class AccountInputError(InputError):
    """Reject a bad address, role, name or password given for an account."""
