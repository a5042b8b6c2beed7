"""The suppression list: hashed addresses that are never mailed, even after deletion."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from publisher.columns import sha256_hex
from subscribers.addresses import lookup_key
from subscribers.models import Suppression

UNSUBSCRIBED = "unsubscribed"
HARD_BOUNCE = "hard-bounce"
SOFT_BOUNCE = "soft-bounce"
COMPLAINT = "complaint"
MANUAL = "manual"
REASONS = (UNSUBSCRIBED, HARD_BOUNCE, SOFT_BOUNCE, COMPLAINT, MANUAL)


def hash_key(key: str) -> str:
    """Return the SHA-256 hex digest of an address key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def email_hash(email: str) -> str:
    """Return the hash stored for an address (normalized, case-insensitive)."""
    return hash_key(lookup_key(email))


async def is_suppressed(session: AsyncSession, email: str) -> bool:
    """Tell whether an address is on the suppression list."""
    found = await session.get(Suppression, email_hash(email))
    return found is not None


async def reason(session: AsyncSession, email: str) -> str | None:
    """Return why an address is suppressed, or None."""
    found = await session.get(Suppression, email_hash(email))
    return None if found is None else found.reason


async def suppressed_among(session: AsyncSession, hashes: Iterable[str]) -> set[str]:
    """Return which of the given hashes are suppressed (one query per batch)."""
    wanted = list(set(hashes))
    if not wanted:
        return set()
    rows = await session.scalars(
        sa.select(Suppression.email_hash).where(Suppression.email_hash.in_(wanted))
    )
    return set(rows)


def suppressed_sql(email_key: sa.ColumnElement[str]) -> sa.ColumnElement[bool]:
    """Return SQL telling whether the address with this key (a column) is suppressed."""
    return (
        sa.select(Suppression.email_hash)
        .where(Suppression.email_hash == sha256_hex(email_key))
        .exists()
    )


async def suppress(
    session: AsyncSession, email: str, reason: str, now: datetime, detail: str = ""
) -> Suppression:
    """Put an address on the suppression list (keeping the first reason and time)."""
    if reason not in REASONS:
        raise ValueError(f"unknown suppression reason {reason!r}")
    digest = email_hash(email)
    found = await session.get(Suppression, digest)
    if found is not None:
        return found
    entry = Suppression(email_hash=digest, reason=reason, created_at=now, detail=detail[:2000])
    session.add(entry)
    await session.flush()
    return entry


async def lift(session: AsyncSession, email: str) -> bool:
    """Remove an address from the list; only a confirmed double opt-in may call this."""
    result = await session.execute(
        sa.delete(Suppression).where(Suppression.email_hash == email_hash(email))
    )
    return bool(getattr(result, "rowcount", 0))
