"""Digests: the next digest as a reader gets it, test copies, editions, pause and resume."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from publisher.accounts import audit
from publisher.db import transaction
from publisher.delivery.editions import (
    current_edition_date,
    enqueue,
    get_edition,
    open_edition,
)
from publisher.delivery.models import Edition, OutboxRow
from publisher.delivery.preview import RenderedPreview, preview_reader, render_preview
from publisher.delivery.store import last_errors, status_counts
from publisher.delivery.testcopy import send_test_copy
from publisher.errors import PublisherError
from publisher.site import Site
from publisher.web.admin.auth import PostsSends, Reading, client_ip, record_action, site_of
from publisher.web.admin.paging import PAGE_SIZE, cursor_int
from publisher.web.admin.rendering import page
from publisher.web.subscription import zones
from subscribers.addresses import normalize
from subscribers.errors import InvalidInput
from subscribers.models import FREQUENCIES

log = logging.getLogger(__name__)
router = APIRouter()
LANGUAGES = ("id", "en")
#: Sends the admin started whose recipients are still being written (kept referenced).
_enqueuing: set[asyncio.Task[Any]] = set()
#: An editor's pause lasts until resumed; the delivery worker skips paused editions.
PAUSE_SPAN = timedelta(days=3650)


def _choice(request: Request, site: Site) -> dict[str, str]:
    params = request.query_params
    language = params.get("lang", site.settings.site.language)
    timezone = params.get("tz", site.settings.site.timezone)
    return {
        "lang": language if language in LANGUAGES else site.settings.site.language,
        "tz": timezone if timezone in zones() else site.settings.site.timezone,
    }


async def _preview(site: Site, choice: dict[str, str]) -> RenderedPreview | str:
    try:
        reader = await preview_reader(site, None, choice["lang"], choice["tz"])
        return await render_preview(site, reader)
    except PublisherError as exc:
        return str(exc)


@router.get("/digests")
async def digests(request: Request, editor: Reading) -> Response:
    """Show the next digest for a language and zone, the test form and the editions."""
    site = site_of(request)
    choice = _choice(request, site)
    rendered = await _preview(site, choice)
    return page(
        request,
        "admin/digests.html",
        {
            "editor": editor,
            "choice": choice,
            "preview": rendered if isinstance(rendered, RenderedPreview) else None,
            "preview_error": rendered if isinstance(rendered, str) else "",
            "languages": LANGUAGES,
            "zones": zones()[:3] + sorted(set(zones()[3:])),
            "frequencies": FREQUENCIES,
            "notice": request.query_params.get("notice", "")[:200],
        },
    )


@router.get("/digests/editions")
async def editions_list(request: Request, editor: Reading) -> Response:
    """List editions newest first, a page at a time."""
    site = site_of(request)
    before = cursor_int(request.query_params.get("before"))
    query = sa.select(Edition).order_by(Edition.id.desc()).limit(PAGE_SIZE + 1)
    if before is not None:
        query = query.where(Edition.id < before)
    async with transaction(site.engine) as session:
        editions = list(await session.scalars(query))
    more = len(editions) > PAGE_SIZE
    editions = editions[:PAGE_SIZE]
    return page(
        request,
        "admin/editions.html",
        {
            "editor": editor,
            "editions": editions,
            "next_before": editions[-1].id if more and editions else None,
        },
    )


@router.get("/digests/preview.html")
async def preview_html(request: Request, editor: Reading) -> Response:
    """Return the digest's HTML alone, for the sandboxed frame on the digests page."""
    site = site_of(request)
    rendered = await _preview(site, _choice(request, site))
    body = rendered.html if isinstance(rendered, RenderedPreview) else ""
    return HTMLResponse(
        body,
        headers={
            # Framed by our own page only, and never allowed to run script.
            "Content-Security-Policy": "default-src 'none'; img-src https: http: data:; "
            "style-src 'unsafe-inline'; frame-ancestors 'self'; sandbox",
            "X-Frame-Options": "SAMEORIGIN",
        },
    )


@router.post("/digests/test")
async def test_copy(request: Request, posted: PostsSends) -> Response:
    """Send a test copy of the next digest to one address."""
    site = site_of(request)
    frequency = posted.form.get("frequency", "daily")
    if frequency not in FREQUENCIES:
        frequency = "daily"
    try:
        address = normalize(posted.form.get("email", "")[:400])
        await send_test_copy(site, frequency, address.email)
    except (InvalidInput, PublisherError) as exc:
        return RedirectResponse("/admin/digests?notice=" + _quote(f"error: {exc}"), status_code=303)
    await record_action(request, posted.editor, "digest.test_copy", address.email, frequency)
    return RedirectResponse(
        "/admin/digests?notice=" + _quote(f"sent a test copy to {address.email}"),
        status_code=303,
    )


@router.post("/digests/send")
async def send_now(request: Request, posted: PostsSends) -> Response:
    """Start today's edition for every reader of a frequency, like `publisher digest send`.

    The edition is opened (marked for resumption) before answering; its recipients are
    written by a task here, and `publisher worker` delivers them. Should this server stop
    half-way, the worker finishes writing them (the edition is marked enqueuing), and
    the (edition, subscriber) constraint means a second press mails nobody twice.
    """
    site = site_of(request)
    frequency = posted.form.get("frequency", "daily")
    if frequency not in FREQUENCIES:
        return RedirectResponse(
            "/admin/digests?notice=" + _quote(f"error: frequency {frequency[:20]!r}"),
            status_code=303,
        )
    now = site.clock.now()
    day = current_edition_date(site, frequency, now)
    edition = await open_edition(site, frequency, day, now, enqueuing=True)
    await record_action(request, posted.editor, "edition.send", edition.period_key, at=now)

    async def write_recipients() -> None:
        try:
            report = await enqueue(site, edition, now)
            log.info("edition %s: %d queued from the admin", edition.period_key, report.queued)
        except Exception:  # the worker resumes an edition left enqueuing
            log.exception("edition %s: queueing stopped", edition.period_key)

    task = asyncio.create_task(write_recipients(), name=f"enqueue {edition.period_key}")
    _enqueuing.add(task)
    task.add_done_callback(_enqueuing.discard)
    return RedirectResponse(f"/admin/digests/editions/{edition.period_key}", status_code=303)


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text[:200], safe="")


async def _progress(site: Site, edition: Edition) -> dict[str, Any]:
    counts = await status_counts(site, edition.id)
    now = site.clock.now()
    async with transaction(site.engine) as session:
        last_minute = await session.scalar(
            sa.select(sa.func.count())
            .select_from(OutboxRow)
            .where(
                OutboxRow.edition_id == edition.id, OutboxRow.sent_at >= now - timedelta(minutes=1)
            )
        )
    total = sum(counts.values())
    done = sum(counts.get(s, 0) for s in ("sent", "failed", "cancelled"))
    return {
        "edition": edition,
        "counts": dict(sorted(counts.items())),
        "total": total,
        "percent": int(100 * done / total) if total else 0,
        "rate": int(last_minute or 0),
        "paused": edition.paused_until is not None and edition.paused_until > now,
        "errors": await last_errors(site, edition.id),
    }


async def _edition(site: Site, key: str) -> Edition:
    if len(key) > 100:
        raise HTTPException(404)
    found = await get_edition(site, key)
    if found is None:
        raise HTTPException(404)
    return found


@router.get("/digests/editions/{key}")
async def edition_page(key: str, request: Request, editor: Reading) -> Response:
    """Show one edition's progress (the progress panel refreshes itself)."""
    site = site_of(request)
    edition = await _edition(site, key)
    return page(
        request,
        "admin/edition.html",
        {"editor": editor, **await _progress(site, edition)},
    )


@router.get("/digests/editions/{key}/progress")
async def edition_progress(key: str, request: Request, editor: Reading) -> Response:
    """Return the progress panel alone (htmx polls it)."""
    site = site_of(request)
    edition = await _edition(site, key)
    return page(
        request,
        "admin/_edition_progress.html",
        {"editor": editor, **await _progress(site, edition)},
    )


async def _set_pause(request: Request, posted: PostsSends, key: str, paused: bool) -> Response:
    """Pause or resume one edition and audit it, in one transaction."""
    site = site_of(request)
    edition = await _edition(site, key)
    now = site.clock.now()
    editor = posted.editor.user.email
    until, error = (now + PAUSE_SPAN, f"paused by {editor}") if paused else (None, "")
    async with transaction(site.engine) as session:
        await session.execute(
            sa.update(Edition)
            .where(Edition.id == edition.id)
            .values(paused_until=until, last_error=error)
        )
        await audit.record(
            session,
            actor=editor,
            action="edition.pause" if paused else "edition.resume",
            target=edition.period_key,
            source=client_ip(request),
            at=now,
        )
    return RedirectResponse(f"/admin/digests/editions/{key}", status_code=303)


@router.post("/digests/editions/{key}/pause")
async def pause(key: str, request: Request, posted: PostsSends) -> Response:
    """Stop handing this edition's messages to the workers until resumed."""
    return await _set_pause(request, posted, key, paused=True)


@router.post("/digests/editions/{key}/resume")
async def resume(key: str, request: Request, posted: PostsSends) -> Response:
    """Let the workers take this edition's messages again."""
    return await _set_pause(request, posted, key, paused=False)
