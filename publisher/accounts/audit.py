"""The audit log: one function appends, one pages through it newest first."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from publisher.accounts.models import AuditEntry

#: Who acted when no person did: the command line on the server.
CLI_ACTOR = "cli"

_LIMITS = {"actor": 320, "action": 60, "target": 400, "source": 100, "detail": 2000}


def _clip(field: str, value: str) -> str:
    limit = _LIMITS[field]
    return value if len(value) <= limit else value[: limit - 1] + "…"


async def record(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    target: str = "",
    source: str = "",
    detail: str = "",
    at: datetime,
) -> AuditEntry:
    """Append one line to the audit log in the caller's transaction."""
    entry = AuditEntry(
        at=at,
        actor=_clip("actor", actor),
        action=_clip("action", action),
        target=_clip("target", target),
        source=_clip("source", source),
        detail=_clip("detail", detail),
    )
    session.add(entry)
    await session.flush()
    return entry


async def page(
    session: AsyncSession,
    *,
    before_id: int | None = None,
    limit: int = 50,
    actor: str | None = None,
) -> Sequence[AuditEntry]:
    """Return up to ``limit`` entries older than ``before_id``, newest first (keyset paging)."""
    query = sa.select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    return (await session.scalars(query)).all()
