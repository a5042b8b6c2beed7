"""Provider webhooks for bounces and complaints: each module checks its provider's signature.

Every parser returns :class:`Delivery`: the events it found plus the ids that make a
replay recognizable. Parsers never touch the database; :mod:`.seen` remembers ids and
the web endpoint hands the events to the one bounce path (subscribers.bounces).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from publisher.errors import PublisherError

#: Largest request body any provider sends us (SendGrid batches are the biggest).
MAX_BODY = 1024 * 1024
#: Most events taken from one delivery.
MAX_EVENTS = 1000

Kind = Literal["hard", "soft", "complaint"]


class Provider(StrEnum):
    """The providers whose webhooks Publisher understands."""

    SES = "ses"
    POSTMARK = "postmark"
    MAILGUN = "mailgun"
    SENDGRID = "sendgrid"


class WebhookError(PublisherError):
    """A delivery that must be refused; ``status`` is the HTTP answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class BadSignature(WebhookError):
    """The signature (or credentials) did not check out."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 401)


class Stale(WebhookError):
    """The signed timestamp is outside the accepted window (a replay, or a wrong clock)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 401)


@dataclass(frozen=True)
class Event:
    """One bounce or complaint for one address."""

    email: str
    kind: Kind
    detail: str
    event_id: str


@dataclass
class Delivery:
    """What one verified webhook request carried."""

    provider: Provider
    #: Identifies the request itself (SNS MessageId, Mailgun token…): seen twice = replay.
    delivery_id: str
    events: list[Event] = field(default_factory=list)
    #: Events the provider sent that are neither bounces nor complaints (opens, deliveries…).
    ignored: int = 0
    #: For SNS subscription confirmations: the URL to visit to confirm.
    confirm_url: str | None = None


def check_age(signed_at: datetime, now: datetime, max_age: timedelta) -> None:
    """Refuse a signed timestamp older than ``max_age`` (or too far in the future)."""
    if abs((now - signed_at).total_seconds()) > max_age.total_seconds():
        raise Stale(f"signed timestamp {signed_at.isoformat()} is outside ±{max_age}")


def text(value: object, limit: int = 500) -> str:
    """Return a provider's field as one bounded line."""
    return " ".join(str(value or "").split())[:limit]
