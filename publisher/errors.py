"""The one exception tree every part of Publisher raises."""

from __future__ import annotations


class PublisherError(Exception):
    """Report a failure the user can act on, in one line."""

    #: Process exit status when this error reaches the command line.
    exit_code = 1


class UsageError(PublisherError):
    """Reject a bad command-line argument."""

    exit_code = 2


class ConfigError(PublisherError):
    """Reject a missing or invalid configuration file, key or value."""

    exit_code = 2


class InputError(PublisherError):
    """Reject a bad input file, feed, CSV row or address."""

    exit_code = 2


class NotFoundError(PublisherError):
    """Report that a named article, subscriber or edition does not exist."""

    exit_code = 2


class StoreError(PublisherError):
    """Report a database failure or conflict."""


class TemplateError(PublisherError):
    """Report a broken Jinja or MJML template, naming it and the position."""

    exit_code = 2


class FetchError(PublisherError):
    """Report a failed HTTP fetch of a page or feed."""


class DeliveryError(PublisherError):
    """Report a failure to hand mail to the SMTP server."""


class LockedError(PublisherError):
    """Report that another process holds a lock this one needs."""


class LockBusy(LockedError):
    """Report that a lock is held by someone else right now, naming the lock and its holder."""

    def __init__(self, where: str, holder: str) -> None:
        super().__init__(f"{where} is held by {holder}")
        self.where = where
        self.holder = holder
