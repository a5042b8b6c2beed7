"""Double opt-in: subscribe, confirm, unsubscribe and change preferences."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from subscribers import repository, suppression
from subscribers.addresses import Address
from subscribers.models import ACTIVE, PENDING, UNSUBSCRIBED, Subscriber
from subscribers.repository import Consent, Preferences

#: A pending or active address gets at most one email per this interval.
RESEND_INTERVAL = timedelta(minutes=10)

Action = Literal["confirm", "already", "none"]


@dataclass(frozen=True)
class SubscribeOutcome:
    """What a subscribe request led to, and which email (if any) to send."""

    action: Action
    subscriber: Subscriber


async def subscribe(
    session: AsyncSession,
    address: Address,
    preferences: Preferences,
    consent: Consent,
    now: datetime,
    *,
    resend_interval: timedelta = RESEND_INTERVAL,
) -> SubscribeOutcome:
    """Record a subscribe request and decide which email goes out (never shown to the caller).

    New, pending and former subscribers become (or stay) pending and get a confirmation
    email; active ones get "already subscribed". Suppression stays until confirmation.
    """
    subscriber = await repository.get_by_email(session, address.key)
    if subscriber is None:
        subscriber = await repository.add(session, address, preferences, consent, now)
        subscriber.confirmation_sent_at = now
        return SubscribeOutcome("confirm", subscriber)
    recent = (
        subscriber.confirmation_sent_at is not None
        and now - subscriber.confirmation_sent_at < resend_interval
    )
    if subscriber.status == ACTIVE:
        if recent:
            return SubscribeOutcome("none", subscriber)
        subscriber.confirmation_sent_at = now
        return SubscribeOutcome("already", subscriber)
    if recent and subscriber.status == PENDING:
        return SubscribeOutcome("none", subscriber)
    # Pending again, or back after leaving/bouncing: the new request's choices and
    # consent replace the old ones, but nothing is mailed until confirmation.
    subscriber.status = PENDING
    preferences.apply(subscriber)
    consent.apply(subscriber)
    subscriber.confirmation_sent_at = now
    await session.flush()
    return SubscribeOutcome("confirm", subscriber)


@dataclass(frozen=True)
class Confirmed:
    """A confirmed subscriber, and whether this call was the one that activated them."""

    subscriber: Subscriber
    activated: bool


async def confirm(session: AsyncSession, subscriber_id: int, now: datetime) -> Confirmed | None:
    """Activate a pending subscriber and lift any suppression; None when not confirmable.

    The status changes in one conditional UPDATE, so of concurrent confirmations of one
    reader exactly one is told ``activated`` (the others wait for its row lock, then find
    the reader active): only that one queues the welcome.
    """
    changed = await session.execute(
        sa.update(Subscriber)
        .where(Subscriber.id == subscriber_id)
        .where(Subscriber.status == PENDING)
        .values(status=ACTIVE, confirmed_at=now, unsubscribed_at=None, soft_bounces=0)
        .returning(Subscriber.id)
        .execution_options(synchronize_session=False)
    )
    activated = changed.first() is not None
    subscriber = await session.get(Subscriber, subscriber_id, populate_existing=True)
    if subscriber is None:
        return None
    if activated:
        await suppression.lift(session, subscriber.email)
        await session.flush()
        return Confirmed(subscriber, True)
    if subscriber.status == ACTIVE:
        return Confirmed(subscriber, False)
    # An old link must not undo a later unsubscribe or bounce.
    return None


async def unsubscribe(
    session: AsyncSession, subscriber: Subscriber, now: datetime, *, detail: str = ""
) -> bool:
    """Unsubscribe and suppress the address; idempotent; tell whether the status changed."""
    await suppression.suppress(session, subscriber.email, suppression.UNSUBSCRIBED, now, detail)
    if subscriber.status == UNSUBSCRIBED:
        return False
    if subscriber.status in (ACTIVE, PENDING):
        subscriber.status = UNSUBSCRIBED
        subscriber.unsubscribed_at = now
        await session.flush()
        return True
    # Bounced and complained addresses keep that status; they are suppressed already.
    return False


async def update_preferences(
    session: AsyncSession, subscriber: Subscriber, preferences: Preferences
) -> bool:
    """Save new preferences; tell whether anything changed."""
    changed = preferences.apply(subscriber)
    if changed:
        await session.flush()
    return changed
