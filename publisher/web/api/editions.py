"""/api/v1/editions: digest editions with their progress (queued, sent, failed, retrying…)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from publisher.delivery.models import OutboxStatus
from publisher.delivery.progress import Progress, progress_of, progress_page
from publisher.delivery.store import last_errors
from publisher.web.api import pagination
from publisher.web.api.auth import Reader, site_of
from publisher.web.api.errors import not_found
from publisher.web.api.limits import LimitedRoute

router = APIRouter(prefix="/editions", tags=["editions"], route_class=LimitedRoute)

CURSOR_KIND = "editions"
MAX_EDITIONS_PAGE = 50


class Counts(BaseModel):
    """Messages of an edition by outbox status (``sending``: claimed by a worker now)."""

    total: int
    queued: int
    sending: int
    retrying: int
    sent: int
    failed: int
    cancelled: int


class EditionOut(BaseModel):
    """One digest edition and how far its sending has got."""

    period_key: str = Field(description="Frequency and local date, e.g. daily:2026-11-25.")
    frequency: str
    status: str
    languages: list[str]
    created_at: datetime
    finished_at: datetime | None
    paused_until: datetime | None
    last_error: str
    counts: Counts


class ErrorOut(BaseModel):
    """A recent failure or retry."""

    email: str
    status: str
    attempts: int
    code: int | None
    response: str
    next_attempt_at: datetime | None


class EditionDetail(EditionOut):
    """One edition with its latest errors."""

    errors: list[ErrorOut]


def edition_out(progress: Progress) -> EditionOut:
    """Return the API form of an edition and its progress."""
    edition = progress.edition
    count = progress.counts.get
    return EditionOut(
        period_key=edition.period_key,
        frequency=edition.frequency,
        status=edition.status,
        languages=progress.languages,
        created_at=edition.created_at,
        finished_at=edition.finished_at,
        paused_until=edition.paused_until,
        last_error=edition.last_error,
        counts=Counts(
            total=progress.total,
            queued=count(OutboxStatus.QUEUED, 0),
            sending=count(OutboxStatus.CLAIMED, 0),
            retrying=count(OutboxStatus.RETRYING, 0),
            sent=count(OutboxStatus.SENT, 0),
            failed=count(OutboxStatus.FAILED, 0),
            cancelled=count(OutboxStatus.CANCELLED, 0),
        ),
    )


@router.get("", summary="List editions", response_model=pagination.Page[EditionOut])
async def list_editions(
    request: Request,
    who: Reader,
    limit: Annotated[int, Query(ge=1, le=MAX_EDITIONS_PAGE)] = 20,
    cursor: pagination.CursorParam = None,
) -> pagination.Page[EditionOut]:
    """Return editions newest first, each with its message counts by status."""
    before: int | None = None
    if cursor is not None:
        (value,) = pagination.decode(cursor, CURSOR_KIND, 1)
        if not isinstance(value, int) or isinstance(value, bool):
            raise pagination.bad_cursor("not a cursor from this API")
        before = value
    found = await progress_page(site_of(request), limit + 1, before)
    next_cursor = None
    if len(found) > limit:
        next_cursor = pagination.encode(CURSOR_KIND, found[limit - 1].edition.id)
    return pagination.Page[EditionOut](
        items=[edition_out(p) for p in found[:limit]], next_cursor=next_cursor
    )


@router.get("/{period_key}", summary="Get one edition")
async def get_edition(
    request: Request,
    period_key: Annotated[str, Path(max_length=100, description="e.g. daily:2026-11-25")],
    who: Reader,
) -> EditionDetail:
    """Return one edition's progress and its latest failures and retries."""
    site = site_of(request)
    progress = await progress_of(site, period_key)
    if progress is None:
        raise not_found(f"no edition {period_key!r}")
    errors = [ErrorOut(**vars(e)) for e in await last_errors(site, progress.edition.id)]
    return EditionDetail(**edition_out(progress).model_dump(), errors=errors)
