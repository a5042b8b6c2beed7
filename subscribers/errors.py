"""The subscribers package's own exceptions; the CLI and web layers translate them."""

from __future__ import annotations


class SubscribersError(Exception):
    """Report a subscriber-list failure in one line."""


class InvalidInput(SubscribersError):
    """Reject a bad address, preference value or CSV row."""


class InvalidAddress(InvalidInput):
    """Reject an email address that is not valid."""


class TokenError(SubscribersError):
    """Reject a tampered, expired or unknown signed token."""


class SubscriberNotFound(SubscribersError):
    """Report that no subscriber has the given address or id."""


class SubscriberExists(SubscribersError):
    """Refuse to add an address that is already on the list."""


class Suppressed(SubscribersError):
    """Refuse to activate an address on the suppression list."""


class MailboxError(SubscribersError):
    """Report an unreadable maildir, mbox or .eml file."""


class MalformedReport(SubscribersError):
    """Reject one bounce or complaint message that is past a limit or cannot be parsed."""
