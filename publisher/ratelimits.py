"""Request limits shared by every process through the database (subscribe, login, API).

Each (scope, key) has one row in ``rate_limits``: a window that opens at the key's first
hit and lasts the limit's period, and the number of hits inside it. One atomic
``INSERT … ON CONFLICT DO UPDATE … RETURNING`` per hit both opens a fresh window when the
old one is over and counts the hit, so two web servers on one PostgreSQL database (or
one on SQLite) count every hit exactly once, and a restart forgets nothing. Keys are
stored as SHA-256 digests: the table never holds a reader's address or IP in clear.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from publisher import metrics
from publisher.clock import Clock
from publisher.db import Base, is_sqlite, transaction

#: How often (seconds) one process deletes windows that are over; any process may.
PRUNE_EVERY = 300.0
#: Longest key hashed (a longer one is cut first, so a hostile header costs nothing).
MAX_KEY = 1024


class RateLimitRow(Base):
    """One key's current window in one scope."""

    __tablename__ = "rate_limits"

    scope: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    window_start: Mapped[float] = mapped_column(sa.Float)
    expires_at: Mapped[float] = mapped_column(sa.Float, index=True)
    count: Mapped[int] = mapped_column(sa.Integer)


RATE_LIMITS = sa.Table("rate_limits", Base.metadata)


@dataclass(frozen=True)
class Limit:
    """At most ``limit`` hits per key within ``period`` seconds, in a named scope."""

    scope: str
    limit: int
    period: float


def retry_after(wait: float) -> str:
    """Return a Retry-After header value (whole seconds, at least 1) for a wait."""
    return str(max(1, int(wait + 0.999)))


def _digest(key: str) -> str:
    return hashlib.sha256(key[:MAX_KEY].encode("utf-8", "surrogatepass")).hexdigest()


class Limiter:
    """Count hits in the database; tell how long to wait once a key is over its limit."""

    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock
        self._insert = sqlite.insert if is_sqlite(str(engine.url)) else postgresql.insert
        self._last_prune = 0.0

    async def hit(self, limit: Limit, key: str) -> float | None:
        """Record a hit; return seconds to wait when ``key`` is over ``limit``, else None."""
        now = self.clock.now().timestamp()
        table = RATE_LIMITS
        over = table.c.expires_at <= now
        statement = (
            self._insert(table)
            .values(
                scope=limit.scope,
                key=_digest(key),
                window_start=now,
                expires_at=now + limit.period,
                count=1,
            )
            .on_conflict_do_update(
                index_elements=[table.c.scope, table.c.key],
                set_={
                    "window_start": sa.case((over, now), else_=table.c.window_start),
                    "expires_at": sa.case((over, now + limit.period), else_=table.c.expires_at),
                    "count": sa.case((over, 1), else_=table.c.count + 1),
                },
            )
            .returning(table.c.count, table.c.expires_at)
        )
        async with transaction(self.engine) as session:
            row = (await session.execute(statement)).one()
        if now - self._last_prune >= PRUNE_EVERY:
            await self.prune()
        count, expires_at = int(row[0]), float(row[1])
        if count > limit.limit:
            metrics.count_rate_limited(limit.scope)
            # Another process may have opened the window with a clock reading taken a
            # moment after ours: never ask for more than one period.
            return min(limit.period, max(1.0, expires_at - now))
        return None

    async def reset(self, limit: Limit, key: str) -> None:
        """Forget a key's hits (after a successful login, say)."""
        async with transaction(self.engine) as session:
            await session.execute(
                sa.delete(RateLimitRow)
                .where(RateLimitRow.scope == limit.scope)
                .where(RateLimitRow.key == _digest(key))
            )

    async def prune(self) -> int:
        """Delete every window that is over; return how many went."""
        now = self.clock.now().timestamp()
        self._last_prune = now
        async with transaction(self.engine) as session:
            result = await session.execute(
                sa.delete(RateLimitRow).where(RateLimitRow.expires_at <= now)
            )
        return int(getattr(result, "rowcount", 0) or 0)
