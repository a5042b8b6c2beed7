"""The subscriber table, the suppression list and bounce events."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Shared with Publisher's tables; re-exported: subscribers/ owns reader preferences.
from publisher.columns import DAILY as DAILY
from publisher.columns import FREQUENCIES as FREQUENCIES
from publisher.columns import WEEKLY as WEEKLY
from publisher.columns import UTCDateTime

PENDING = "pending"
ACTIVE = "active"
UNSUBSCRIBED = "unsubscribed"
BOUNCED = "bounced"
COMPLAINED = "complained"
STATUSES = (PENDING, ACTIVE, UNSUBSCRIBED, BOUNCED, COMPLAINED)


class Base(DeclarativeBase):
    """Declarative base of the subscriber tables."""


class Subscriber(Base):
    """One reader: address, preferences, status and the record of their consent."""

    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The normalized address as it will be written in To:.
    email: Mapped[str] = mapped_column(sa.String(320))
    # Lower-cased normalized address: the case-insensitive uniqueness key.
    email_key: Mapped[str] = mapped_column(sa.String(320), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200), default="")
    status: Mapped[str] = mapped_column(sa.String(20), default=PENDING)
    language: Mapped[str] = mapped_column(sa.String(20), default="")
    timezone: Mapped[str] = mapped_column(sa.String(64), default="")
    frequency: Mapped[str] = mapped_column(sa.String(10), default=DAILY)
    topics: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    consent_source: Mapped[str] = mapped_column(sa.String(50), default="")
    consent_ip: Mapped[str] = mapped_column(sa.String(64), default="")
    consent_user_agent: Mapped[str] = mapped_column(sa.Text, default="")
    consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    consent_text: Mapped[str] = mapped_column(sa.Text, default="")
    confirmation_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    soft_bounces: Mapped[int] = mapped_column(sa.Integer, default=0)
    hard_bounces: Mapped[int] = mapped_column(sa.Integer, default=0)
    last_bounce_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # End of the content window of the last digest delivered to this reader.
    last_digest_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    # AUTOINCREMENT: SQLite must never reuse a deleted subscriber's id, or that
    # reader's old unsubscribe link would act on whoever gets the id next.
    __table_args__ = (
        sa.Index("ix_subscribers_status_frequency", "status", "frequency", "id"),
        {"sqlite_autoincrement": True},
    )


class SubscriberTopic(Base):
    """One (topic, reader) pair, kept by database triggers from ``subscribers.topics``.

    The topic filter walks this table's primary key newest reader first, on SQLite and
    PostgreSQL alike; triggers keep it whichever code writes the JSON list (ORM, CSV).
    """

    __tablename__ = "subscriber_topics"

    topic: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        sa.ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )


class Suppression(Base):
    """An address never to be mailed again, kept as a hash so it outlives deletion."""

    __tablename__ = "suppressions"

    email_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(sa.String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    detail: Mapped[str] = mapped_column(sa.Text, default="")


class BounceEvent(Base):
    """One bounce or complaint seen for an address (soft bounces are counted in a window)."""

    __tablename__ = "bounce_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    email_hash: Mapped[str] = mapped_column(sa.String(64), index=True)
    kind: Mapped[str] = mapped_column(sa.String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    detail: Mapped[str] = mapped_column(sa.Text, default="")
    # The report's Message-ID: processing the same mailbox twice counts nothing twice.
    report_id: Mapped[str | None] = mapped_column(sa.String(300), nullable=True)

    __table_args__ = (sa.UniqueConstraint("email_hash", "report_id", name="uq_bounce_report"),)
