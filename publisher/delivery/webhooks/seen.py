"""Webhook deliveries already handled, kept a week: a replayed request is recognized."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from publisher.columns import UTCDateTime
from publisher.db import Base

#: How long a delivery id is remembered; far beyond any signed timestamp's window.
KEEP = timedelta(days=7)


class WebhookDelivery(Base):
    """One provider request that was verified and handled."""

    __tablename__ = "webhook_deliveries"

    provider: Mapped[str] = mapped_column(sa.String(20), primary_key=True)
    delivery_id: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


WEBHOOK_DELIVERIES = sa.Table("webhook_deliveries", Base.metadata)


async def first_time(session: AsyncSession, provider: str, delivery_id: str, now: datetime) -> bool:
    """Remember a delivery; False when it was seen before (in any process)."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
    await session.execute(
        sa.delete(WebhookDelivery).where(WebhookDelivery.received_at < now - KEEP)
    )
    statement = (
        insert(WEBHOOK_DELIVERIES)
        .values(provider=provider, delivery_id=delivery_id[:200], received_at=now)
        .on_conflict_do_nothing()
        .returning(WEBHOOK_DELIVERIES.c.provider)
    )
    return (await session.execute(statement)).first() is not None
