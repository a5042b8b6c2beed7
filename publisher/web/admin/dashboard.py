"""The dashboard: subscribers by status, growth over 90 days, last editions, next sends."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import Response

from publisher import planning
from publisher.db import transaction
from publisher.delivery.models import FAILED, RETRYING, SENT, Edition
from publisher.delivery.store import edition_counts
from publisher.scheduling import schedule_for, subscriber_zones
from publisher.site import Site
from publisher.web.admin.auth import Reading, site_of
from publisher.web.admin.charts import bar_chart, line_chart
from publisher.web.admin.rendering import page
from subscribers import repository
from subscribers.models import STATUSES, BounceEvent, Subscriber

GROWTH_DAYS = 90
LAST_EDITIONS = 5
#: The figures are recomputed at most this often per process: a busy desk reloading the
#: dashboard must not count 100,000 rows on every view.
CACHE_SECONDS = 30.0

router = APIRouter()


@dataclass(frozen=True)
class EditionLine:
    """One edition's outcome."""

    period_key: str
    status: str
    created_at: datetime
    delivered: int
    failed: int
    retrying: int
    waiting: int
    bounced: int
    unsubscribed: int


async def statistics(site: Site) -> dict[str, Any]:
    """Compute every figure the dashboard shows (one transaction, index-served queries)."""
    now = site.clock.now()
    tz = site.settings.tz
    today = now.astimezone(tz).date()
    start_day = today - timedelta(days=GROWTH_DAYS - 1)
    start = datetime.combine(start_day, datetime.min.time(), tz)
    async with transaction(site.engine) as session:
        by_status = await repository.count_by_status(session)
        day = sa.func.date(Subscriber.created_at)
        daily = {
            str(key): int(count)
            for key, count in (
                await session.execute(
                    sa.select(day, sa.func.count())
                    .where(Subscriber.created_at >= start)
                    .group_by(day)
                )
            ).all()
        }
        editions = list(
            await session.scalars(
                sa.select(Edition).order_by(Edition.id.desc()).limit(LAST_EDITIONS)
            )
        )
        tallies = await edition_counts(session, [edition.id for edition in editions])
        lines = []
        until = now
        for edition in editions:
            counts = tallies.get(edition.id, Counter())
            bounced = await session.scalar(
                sa.select(sa.func.count())
                .select_from(BounceEvent)
                .where(BounceEvent.created_at >= edition.created_at, BounceEvent.created_at < until)
            )
            unsubscribed = await session.scalar(
                sa.select(sa.func.count())
                .select_from(Subscriber)
                .where(
                    Subscriber.unsubscribed_at >= edition.created_at,
                    Subscriber.unsubscribed_at < until,
                )
            )
            lines.append(
                EditionLine(
                    period_key=edition.period_key,
                    status=edition.status,
                    created_at=edition.created_at,
                    delivered=int(counts.get(SENT, 0)),
                    failed=int(counts.get(FAILED, 0)),
                    retrying=int(counts.get(RETRYING, 0)),
                    waiting=sum(
                        [int(n) for s, n in counts.items() if s not in (SENT, FAILED, RETRYING)]
                    ),
                    bounced=int(bounced or 0),
                    unsubscribed=int(unsubscribed or 0),
                )
            )
            until = edition.created_at
    zone_counts = await subscriber_zones(site)
    for frequency in planning.FREQUENCIES:
        # As `schedule show` does: the site's own zone, where new readers start, is always shown.
        zone_counts.setdefault((frequency, site.settings.site.timezone), 0)
    sends = planning.upcoming(now, zone_counts, schedule_for(site.settings))
    total = sum(by_status.values())
    running = total - sum(daily.values())
    growth = []
    for offset in range(GROWTH_DAYS):
        key = (start_day + timedelta(days=offset)).isoformat()
        running += daily.get(key, 0)
        growth.append((key, daily.get(key, 0), running))
    return {
        "by_status": [(status, by_status.get(status, 0)) for status in STATUSES],
        "total": total,
        "new_90": sum(daily.values()),
        "growth": growth,
        "editions": lines,
        "sends": sends[:20],
        "computed_at": now,
    }


async def cached_statistics(request: Request, site: Site) -> dict[str, Any]:
    """Return the figures; once older than CACHE_SECONDS they are refreshed in the background.

    Only the first view after a start waits for the computation; later views get the last
    figures at once while a fresh set is computed (stale-while-revalidate).
    """
    state = request.app.state
    cached: tuple[float, dict[str, Any]] | None = getattr(state, "dashboard_cache", None)
    if cached is None:
        figures = await statistics(site)
        state.dashboard_cache = (time.monotonic(), figures)
        return figures
    refreshing: asyncio.Task[None] | None = getattr(state, "dashboard_refresh", None)
    stale = time.monotonic() - cached[0] >= CACHE_SECONDS
    if stale and (refreshing is None or refreshing.done()):

        async def refresh() -> None:
            state.dashboard_cache = (time.monotonic(), await statistics(site))

        state.dashboard_refresh = asyncio.get_running_loop().create_task(refresh())
    return cached[1]


@router.get("/")
async def dashboard(request: Request, editor: Reading) -> Response:
    """Show the dashboard."""
    site = site_of(request)
    figures = await cached_statistics(request, site)
    return page(
        request,
        "admin/dashboard.html",
        {
            "editor": editor,
            **figures,
            "status_chart": bar_chart(figures["by_status"]),
            "growth_chart": line_chart(figures["growth"]),
            "tz": site.settings.tz,
        },
    )
