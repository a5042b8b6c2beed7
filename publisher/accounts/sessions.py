"""Server-side login sessions: a random id in the cookie, its hash in the table."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from publisher.accounts import audit
from publisher.accounts.models import LoginSession, User

#: A session ends after this long without a request...
IDLE_TIMEOUT = timedelta(hours=12)
#: ...and after this long in any case.
MAX_AGE = timedelta(days=7)
# Only write last_seen_at when it is this stale: a page view need not be a write.
_TOUCH_EVERY = timedelta(minutes=5)
MAX_SESSION_ID_LENGTH = 100


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class Opened:
    """A session just created: the raw id goes into the cookie and nowhere else."""

    raw_id: str
    row: LoginSession


@dataclass(frozen=True)
class Current:
    """A live session and its user."""

    user: User
    row: LoginSession


async def open_session(
    session: AsyncSession,
    user: User,
    now: datetime,
    *,
    ip: str = "",
    user_agent: str = "",
    replaces: str | None = None,
) -> Opened:
    """Start a session for a user who just logged in; the one it replaces ends (rotation)."""
    if replaces:
        await close(session, replaces)
    raw = secrets.token_urlsafe(32)
    row = LoginSession(
        id_hash=_hash(raw),
        user_id=user.id,
        csrf_secret=secrets.token_hex(32),
        created_at=now,
        last_seen_at=now,
        expires_at=now + MAX_AGE,
        ip=ip[:64],
        user_agent=user_agent[:300],
    )
    session.add(row)
    await session.flush()
    return Opened(raw_id=raw, row=row)


async def current(session: AsyncSession, raw_id: str | None, now: datetime) -> Current | None:
    """Return the live session behind a cookie value and its user, or None."""
    if not raw_id or len(raw_id) > MAX_SESSION_ID_LENGTH:
        return None
    row = await session.get(LoginSession, _hash(raw_id))
    if row is None:
        return None
    if row.expires_at <= now or row.last_seen_at + IDLE_TIMEOUT <= now:
        await session.delete(row)
        return None
    user = await session.get(User, row.user_id)
    if user is None:
        return None
    if now - row.last_seen_at >= _TOUCH_EVERY:
        row.last_seen_at = now
    return Current(user=user, row=row)


async def close(session: AsyncSession, raw_id: str) -> None:
    """End one session (log out)."""
    if raw_id and len(raw_id) <= MAX_SESSION_ID_LENGTH:
        await session.execute(sa.delete(LoginSession).where(LoginSession.id_hash == _hash(raw_id)))


async def close_all(
    session: AsyncSession, user: User, now: datetime, *, actor: str, source: str = ""
) -> int:
    """End every session of a user ("log out everywhere"); return how many; audit it."""
    result = await session.execute(sa.delete(LoginSession).where(LoginSession.user_id == user.id))
    count = int(getattr(result, "rowcount", 0) or 0)
    await audit.record(
        session,
        actor=actor,
        action="sessions.close_all",
        target=user.email,
        source=source,
        detail=f"{count} sessions",
        at=now,
    )
    return count


async def prune(session: AsyncSession, now: datetime) -> int:
    """Delete expired sessions; return how many."""
    result = await session.execute(
        sa.delete(LoginSession).where(
            sa.or_(LoginSession.expires_at <= now, LoginSession.last_seen_at <= now - IDLE_TIMEOUT)
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def csrf_token(row: LoginSession) -> str:
    """Return the CSRF token forms of this session carry."""
    return hmac.new(row.csrf_secret.encode(), b"csrf", hashlib.sha256).hexdigest()


def csrf_valid(row: LoginSession, token: str | None) -> bool:
    """Tell whether a submitted CSRF token belongs to this session (constant time)."""
    return bool(token) and hmac.compare_digest(csrf_token(row), str(token))
