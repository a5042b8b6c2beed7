"""The database-backed request limiter: exact under concurrency, windows, pruning, restarts."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import sqlalchemy as sa

from publisher.db import transaction
from publisher.metrics import REGISTRY
from publisher.ratelimits import Limit, Limiter, RateLimitRow, retry_after
from publisher.site import Site

LOGIN = Limit("test-login", 5, 300.0)


def refused() -> float:
    return REGISTRY.get_sample_value("publisher_rate_limited_total", {"scope": LOGIN.scope}) or 0


async def test_concurrent_hits_count_exactly(site: Site) -> None:
    limiter = Limiter(site.engine, site.clock)
    before = refused()
    waits = await asyncio.gather(*(limiter.hit(LOGIN, "198.51.100.7") for _ in range(40)))
    assert sum(wait is None for wait in waits) == LOGIN.limit
    assert refused() - before == 40 - LOGIN.limit
    assert all(wait == 300.0 for wait in waits if wait is not None)


async def test_window_reopens_and_keys_and_scopes_are_separate(site: Site) -> None:
    limiter = Limiter(site.engine, site.clock)
    for _ in range(LOGIN.limit):
        assert await limiter.hit(LOGIN, "a") is None
    site.clock.advance(timedelta(seconds=100))  # type: ignore[attr-defined]
    assert await limiter.hit(LOGIN, "a") == 200.0
    assert await limiter.hit(LOGIN, "b") is None
    assert await limiter.hit(Limit("other", 1, 60), "a") is None
    # A second limiter (another process, or this one after a restart) sees the same counts.
    restarted = Limiter(site.engine, site.clock)
    assert await restarted.hit(LOGIN, "a") == 200.0
    site.clock.advance(timedelta(seconds=200))  # type: ignore[attr-defined]
    assert await restarted.hit(LOGIN, "a") is None
    await restarted.reset(LOGIN, "a")
    for _ in range(LOGIN.limit):
        assert await restarted.hit(LOGIN, "a") is None


async def test_old_windows_are_pruned_and_keys_are_not_stored_in_clear(site: Site) -> None:
    limiter = Limiter(site.engine, site.clock)
    hostile = "x" * 1_000_000  # a huge header value costs one bounded hash
    await limiter.hit(LOGIN, hostile)
    await limiter.hit(LOGIN, "reader@example.org")
    async with transaction(site.engine) as session:
        keys = list(await session.scalars(sa.select(RateLimitRow.key)))
    assert len(keys) == 2
    assert all(len(key) == 64 and "@" not in key for key in keys)
    site.clock.advance(timedelta(seconds=301))  # type: ignore[attr-defined]
    assert await limiter.prune() == 2
    async with transaction(site.engine) as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(RateLimitRow)) == 0


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert retry_after(0.2) == "1"
    assert retry_after(59.01) == "60"
    assert retry_after(600.0) == "600"
