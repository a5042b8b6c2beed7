"""Login throttling per account and per client address, kept in the database.

The counters live in a table, not in process memory, so every web worker and a
restart see the same count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from publisher.accounts.errors import Throttled
from publisher.accounts.models import LoginThrottle


@dataclass(frozen=True)
class ThrottlePolicy:
    """How many failures a key may have within a window before it is locked, and how long."""

    account_failures: int = 5
    ip_failures: int = 20
    window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=15)


DEFAULT_POLICY = ThrottlePolicy()


def _keys(email_key: str, ip: str) -> list[tuple[str, str]]:
    keys = [("account", f"account:{email_key[:320]}")]
    if ip:
        keys.append(("ip", f"ip:{ip[:64]}"))
    return keys


async def check(
    session: AsyncSession,
    email_key: str,
    ip: str,
    now: datetime,
    policy: ThrottlePolicy = DEFAULT_POLICY,
) -> None:
    """Raise Throttled when the account or the address is locked out right now."""
    for kind, key in _keys(email_key, ip):
        row = await session.get(LoginThrottle, key)
        if row is not None and row.locked_until is not None and row.locked_until > now:
            raise Throttled(
                f"too many failed logins for this {'account' if kind == 'account' else 'address'};"
                " try again later",
                retry_after=row.locked_until - now,
            )


async def record_failure(
    session: AsyncSession,
    email_key: str,
    ip: str,
    now: datetime,
    policy: ThrottlePolicy = DEFAULT_POLICY,
) -> None:
    """Count one failed login against the account and the address, locking them at the limit."""
    for kind, key in _keys(email_key, ip):
        limit = policy.account_failures if kind == "account" else policy.ip_failures
        # Row lock on PostgreSQL: two workers counting the same key must not both read 4.
        row = await session.scalar(
            sa.select(LoginThrottle).where(LoginThrottle.key == key).with_for_update()
        )
        if row is None:
            row = LoginThrottle(key=key, failures=0, window_start=now, locked_until=None)
            session.add(row)
        elif now - row.window_start > policy.window:
            row.failures = 0
            row.window_start = now
        row.failures += 1
        if row.failures >= limit:
            row.locked_until = now + policy.lockout
            row.failures = 0
            row.window_start = now
    await session.flush()


async def clear_account(session: AsyncSession, email_key: str) -> None:
    """Forget an account's failures after a successful login (the address keeps its count)."""
    await session.execute(
        sa.delete(LoginThrottle).where(LoginThrottle.key == f"account:{email_key[:320]}")
    )


async def prune(
    session: AsyncSession, now: datetime, policy: ThrottlePolicy = DEFAULT_POLICY
) -> int:
    """Delete counters whose window and lock are over; return how many."""
    result = await session.execute(
        sa.delete(LoginThrottle).where(
            LoginThrottle.window_start < now - policy.window,
            sa.or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until < now),
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
