"""Editions, their variants, the outbox (one row per edition and subscriber) and rate windows."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from publisher.columns import UTCDateTime
from publisher.db import Base


class EditionStatus(StrEnum):
    """Where an edition is: its recipients being written, then sent, then done."""

    OPEN = "open"  # created by a zone-limited tick, no recipients written yet
    ENQUEUING = "enqueuing"  # recipients being written for every zone; resumed after a crash
    SENDING = "sending"
    DONE = "done"


class OutboxStatus(StrEnum):
    """Where one message is: waiting (queued, retrying), claimed by a worker, or final."""

    QUEUED = "queued"
    CLAIMED = "claimed"
    RETRYING = "retrying"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


class MailKind(StrEnum):
    """What an outbox row carries: every message Publisher sends is one of these."""

    DIGEST = "digest"
    TEST_COPY = "test_copy"  # `digest send --to`: belongs to no subscriber or edition
    CONFIRMATION = "confirmation"
    ALREADY_SUBSCRIBED = "already_subscribed"
    UNSUBSCRIBED = "unsubscribed"
    WELCOME = "welcome"
    ANNOUNCEMENT = "announcement"  # an editor's one-off email to a chosen audience


#: The subscription flow's mail: what `publisher serve` delivers by itself.
TRANSACTIONAL = (
    MailKind.CONFIRMATION,
    MailKind.ALREADY_SUBSCRIBED,
    MailKind.UNSUBSCRIBED,
    MailKind.WELCOME,
)

OPEN = EditionStatus.OPEN
ENQUEUING = EditionStatus.ENQUEUING
SENDING = EditionStatus.SENDING
DONE = EditionStatus.DONE

QUEUED = OutboxStatus.QUEUED
CLAIMED = OutboxStatus.CLAIMED
RETRYING = OutboxStatus.RETRYING
SENT = OutboxStatus.SENT
FAILED = OutboxStatus.FAILED
CANCELLED = OutboxStatus.CANCELLED
WAITING = (QUEUED, RETRYING)
FINAL = (SENT, FAILED, CANCELLED)
OUTBOX_STATUSES = tuple(OutboxStatus)


class Edition(Base):
    """One digest issue for one period (``daily:2026-11-25``) and its progress."""

    __tablename__ = "editions"

    id: Mapped[int] = mapped_column(primary_key=True)
    period_key: Mapped[str] = mapped_column(sa.String(100), unique=True)
    # daily, weekly, or "announcement" (planning.ANNOUNCEMENT: an announcement's one edition).
    frequency: Mapped[str] = mapped_column(sa.String(20))
    status: Mapped[str] = mapped_column(sa.String(20), default=EditionStatus.OPEN)
    # The span of content the edition's recipients were given (earliest start, latest end).
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Set when the SMTP server refused us outright; nothing is claimed until then.
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str] = mapped_column(sa.Text, default="")

    @property
    def local_date(self) -> str:
        """Return the date part of the period key."""
        return self.period_key.partition(":")[2]


class EditionVariant(Base):
    """One distinct message of an edition: a language and an article list."""

    __tablename__ = "edition_variants"

    id: Mapped[int] = mapped_column(primary_key=True)
    edition_id: Mapped[int] = mapped_column(sa.ForeignKey("editions.id", ondelete="CASCADE"))
    variant_key: Mapped[str] = mapped_column(sa.String(64))
    language: Mapped[str] = mapped_column(sa.String(20))
    article_ids: Mapped[list[int]] = mapped_column(sa.JSON)
    more_count: Mapped[int] = mapped_column(sa.Integer, default=0)

    __table_args__ = (
        sa.UniqueConstraint("edition_id", "variant_key", name="uq_edition_variants_key"),
    )


class OutboxRow(Base):
    """One message to one address (a digest, a notice, a test copy) and all that befell it."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(20), default=MailKind.DIGEST)
    # Digests only: the edition and the variant (language, articles) this reader gets.
    edition_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("editions.id", ondelete="CASCADE"), nullable=True
    )
    variant_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("edition_variants.id"), nullable=True
    )
    # subscribers.id (the foreign key lives in the migration; subscribers/ has its own Base).
    subscriber_id: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    email: Mapped[str] = mapped_column(sa.String(320))
    status: Mapped[str] = mapped_column(sa.String(20), default=OutboxStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    first_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    claimed_by: Mapped[str] = mapped_column(sa.String(100), default="")
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    smtp_code: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    smtp_response: Mapped[str] = mapped_column(sa.Text, default="")
    message_id: Mapped[str] = mapped_column(sa.String(300))
    # Digests: end of this reader's content window, becomes last_digest_at once sent.
    window_end: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Test copies: what to render (language, article ids, sample flag), chosen when queued.
    payload: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, nullable=True)

    __table_args__ = (
        sa.UniqueConstraint("edition_id", "subscriber_id", name="uq_outbox_edition_subscriber"),
        sa.Index("ix_outbox_status_next", "status", "next_attempt_at", "id"),
        sa.Index("ix_outbox_edition_status", "edition_id", "status"),
    )


class OutboxTally(Base):
    """A signed count of one edition's messages in one status, written by triggers.

    An edition's counts by status are the sums of its rows (migration 0010 explains why
    deltas); store.compact_tallies folds them back into one row per status.
    """

    __tablename__ = "outbox_tallies"

    id: Mapped[int] = mapped_column(primary_key=True)
    edition_id: Mapped[int] = mapped_column(sa.ForeignKey("editions.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(sa.String(20))
    messages: Mapped[int] = mapped_column(sa.BigInteger)

    __table_args__ = (sa.Index("ix_outbox_tallies_edition", "edition_id"),)


class RateWindow(Base):
    """How many messages went out in the current window of one named rate limit."""

    __tablename__ = "rate_windows"

    name: Mapped[str] = mapped_column(sa.String(50), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    count: Mapped[int] = mapped_column(sa.Integer, default=0)


class AnnouncementStatus(StrEnum):
    """Where an announcement is: written, waiting for its local time, going out, gone."""

    DRAFT = "draft"
    SCHEDULED = "scheduled"  # waiting for its local time in some readers' zones
    SENDING = "sending"  # every recipient written to the outbox (or being written)
    SENT = "sent"  # its edition is done
    CANCELLED = "cancelled"


class SendMode(StrEnum):
    """When an announcement goes: at once, or at a local time in each reader's zone."""

    NOW = "now"
    LOCAL = "local"


class Announcement(Base):
    """An editor's one-off email: Markdown body, language, audience, and when it goes."""

    __tablename__ = "announcements"

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(sa.String(200))
    body_markdown: Mapped[str] = mapped_column(sa.Text)
    # The Markdown rendered and sanitized as an article body is (content/sanitize.py).
    body_html: Mapped[str] = mapped_column(sa.Text)
    language: Mapped[str] = mapped_column(sa.String(20))
    # subscribers.audience.Audience.to_json(): languages, topics, frequencies (empty: any).
    audience: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    status: Mapped[str] = mapped_column(sa.String(20), default=AnnouncementStatus.DRAFT)
    send_mode: Mapped[str] = mapped_column(sa.String(10), default=SendMode.NOW)
    # Local-time sends: this wall-clock date and time in each reader's zone.
    send_date: Mapped[date | None] = mapped_column(sa.Date, nullable=True)
    send_time: Mapped[str] = mapped_column(sa.String(5), default="")
    author: Mapped[str] = mapped_column(sa.String(320), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # When the send was asked for: readers confirmed before it are the audience.
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Local-time sends: the zones already written, so a tick rereads only new zones' readers.
    zones_queued: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    # Set once every recipient is in the outbox; "sending" without it is resumed.
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    edition_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("editions.id", ondelete="SET NULL"), nullable=True
    )

    __table_args__ = (sa.Index("ix_announcements_status", "status", "id"),)
