"""Editions, their variants, the outbox (one row per edition and subscriber) and rate windows."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from publisher.columns import UTCDateTime
from publisher.db import Base

# Edition statuses.
OPEN = "open"  # created, no recipients written yet
ENQUEUING = "enqueuing"  # recipients being written for every zone; resumed after a crash
SENDING = "sending"
DONE = "done"

# Outbox statuses. QUEUED and RETRYING wait for next_attempt_at; SENDING is claimed by a
# worker; SENT, FAILED and CANCELLED are final.
QUEUED = "queued"
CLAIMED = "sending"
RETRYING = "retrying"
SENT = "sent"
FAILED = "failed"
CANCELLED = "cancelled"
WAITING = (QUEUED, RETRYING)
FINAL = (SENT, FAILED, CANCELLED)
OUTBOX_STATUSES = (QUEUED, CLAIMED, RETRYING, SENT, FAILED, CANCELLED)


class Edition(Base):
    """One digest issue for one period (``daily:2026-11-25``) and its progress."""

    __tablename__ = "editions"

    id: Mapped[int] = mapped_column(primary_key=True)
    period_key: Mapped[str] = mapped_column(sa.String(100), unique=True)
    frequency: Mapped[str] = mapped_column(sa.String(10))
    status: Mapped[str] = mapped_column(sa.String(20), default=OPEN)
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
    """One message to one subscriber for one edition, and everything that happened to it."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    edition_id: Mapped[int] = mapped_column(sa.ForeignKey("editions.id", ondelete="CASCADE"))
    variant_id: Mapped[int] = mapped_column(sa.ForeignKey("edition_variants.id"))
    # subscribers.id (the foreign key lives in the migration; subscribers/ has its own Base).
    subscriber_id: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    email: Mapped[str] = mapped_column(sa.String(320))
    status: Mapped[str] = mapped_column(sa.String(20), default=QUEUED)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    first_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    claimed_by: Mapped[str] = mapped_column(sa.String(100), default="")
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    smtp_code: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    smtp_response: Mapped[str] = mapped_column(sa.Text, default="")
    message_id: Mapped[str] = mapped_column(sa.String(300))
    # End of this reader's content window: becomes subscriber.last_digest_at once sent.
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        sa.UniqueConstraint("edition_id", "subscriber_id", name="uq_outbox_edition_subscriber"),
        sa.Index("ix_outbox_status_next", "status", "next_attempt_at", "id"),
        sa.Index("ix_outbox_edition_status", "edition_id", "status"),
    )


class RateWindow(Base):
    """How many messages went out in the current window of one named rate limit."""

    __tablename__ = "rate_windows"

    name: Mapped[str] = mapped_column(sa.String(50), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    count: Mapped[int] = mapped_column(sa.Integer, default=0)
