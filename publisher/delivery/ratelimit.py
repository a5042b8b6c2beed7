"""mail.rate_per_second, mail.rate_per_hour and each relay's rate, counted in the database.

Every limit is a fixed window kept in ``rate_windows`` (the second, and the clock hour),
so every worker process sharing the database shares the budget and a restart does not
reset the hour. Workers reserve small blocks of sends at a time and give back what they
did not use when they stop. A relay's ``rate_per_second`` is the same kind of window,
under a name of its own (:func:`relay_scope`).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from publisher.clock import Clock
from publisher.db import is_sqlite, transaction
from publisher.delivery.models import RateWindow


@dataclass
class _Window:
    name: str
    length: timedelta
    limit: int
    start: datetime | None = None
    held: int = 0  # reserved in this window and not used yet


def relay_scope(relay: str) -> str:
    """Return the prefix of a relay's windows: the same for every process, 50 characters at most."""
    # A digest of the URL without its password: every process derives the same name,
    # and a long host name cannot overflow rate_windows.name.
    return f"relay:{hashlib.sha256(relay.encode()).hexdigest()[:16]}:"


def window_start(now: datetime, length: timedelta) -> datetime:
    """Return the start of the fixed window of ``length`` that contains ``now``."""
    epoch = datetime(2000, 1, 1, tzinfo=now.tzinfo)
    seconds = length.total_seconds()
    elapsed = (now - epoch).total_seconds()
    return epoch + timedelta(seconds=math.floor(elapsed / seconds) * seconds)


class RateLimiter:
    """Wait before each send so the configured per-second and per-hour limits hold."""

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        *,
        per_second: float,
        per_hour: int,
        stop: asyncio.Event | None = None,
        scope: str = "",
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.stop = stop
        self._windows: list[_Window] = []
        if per_second > 0:
            # Fractional rates (0.5/s) become a whole number per longer window.
            length = timedelta(seconds=max(1.0, 1.0 / per_second))
            limit = max(1, round(per_second * length.total_seconds()))
            self._windows.append(_Window(f"{scope}second", length, limit))
        if per_hour > 0:
            self._windows.append(_Window(f"{scope}hour", timedelta(hours=1), per_hour))
        self._lock = asyncio.Lock()
        self._sqlite = is_sqlite(str(engine.url))

    @property
    def unlimited(self) -> bool:
        """Tell whether no limit is configured."""
        return not self._windows

    async def acquire(self) -> bool:
        """Wait for permission to send one message; False when stopped while waiting."""
        if not self._windows:
            return True
        async with self._lock:
            while True:
                now = self.clock.now()
                for window in self._windows:
                    start = window_start(now, window.length)
                    if window.start != start:
                        window.start, window.held = start, 0
                if all(w.held > 0 for w in self._windows):
                    for window in self._windows:
                        window.held -= 1
                    return True
                granted = await self._reserve(now)
                if granted:
                    continue
                wait = min(
                    (w.start + w.length - now).total_seconds()
                    for w in self._windows
                    if w.held == 0 and w.start is not None
                )
                if not await self._sleep(max(0.01, wait)):
                    return False

    async def _sleep(self, seconds: float) -> bool:
        if self.stop is None:
            await asyncio.sleep(seconds)
            return True
        try:
            await asyncio.wait_for(self.stop.wait(), timeout=seconds)
        except TimeoutError:
            return True
        return False

    async def _reserve(self, now: datetime) -> bool:
        """Take a block from every window that has none in hand; False if any is spent."""
        async with transaction(self.engine) as session:
            for window in self._windows:
                if window.held > 0:
                    continue
                assert window.start is not None
                block = max(1, min(window.limit // 20, 50))
                query = sa.select(RateWindow).where(RateWindow.name == window.name)
                if not self._sqlite:
                    query = query.with_for_update()
                row = await session.scalar(query)
                if row is None:
                    row = RateWindow(name=window.name, window_start=window.start, count=0)
                    session.add(row)
                elif row.window_start != window.start:
                    row.window_start, row.count = window.start, 0
                granted = min(block, window.limit - row.count)
                if granted <= 0:
                    return False
                row.count += granted
                window.held = granted
        return True

    async def release(self) -> None:
        """Give back reserved sends that were not used (on shutdown)."""
        unused = [w for w in self._windows if w.held > 0 and w.start is not None]
        if not unused:
            return
        async with transaction(self.engine) as session:
            for window in unused:
                remaining = sa.case(
                    (RateWindow.count > window.held, RateWindow.count - window.held), else_=0
                )
                await session.execute(
                    sa.update(RateWindow)
                    .where(RateWindow.name == window.name)
                    .where(RateWindow.window_start == window.start)
                    .values(count=remaining)
                )
                window.held = 0
