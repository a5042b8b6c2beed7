"""Subscribers: search and filters, a reader's page, add / suppress / delete, CSV export."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from publisher.accounts import audit
from publisher.accounts.models import AuditEntry
from publisher.db import transaction
from publisher.delivery import notices
from publisher.delivery.models import MailKind, OutboxRow
from publisher.web.admin.auth import (
    ManagingSubscribers,
    PostsSubscribers,
    Reading,
    client_ip,
    site_of,
)
from publisher.web.admin.paging import PAGE_SIZE, cursor_int, search_text
from publisher.web.admin.rendering import page
from subscribers import consent, csvio, repository, suppression
from subscribers.addresses import normalize
from subscribers.errors import SubscribersError
from subscribers.models import ACTIVE, FREQUENCIES, STATUSES, Subscriber
from subscribers.preferences import LANGUAGES
from subscribers.repository import Consent, Preferences

router = APIRouter()


def _filters(request: Request) -> dict[str, str]:
    params = request.query_params
    return {
        "q": search_text(params.get("q")).lower(),
        "status": params.get("status", "") if params.get("status") in STATUSES else "",
        "language": params.get("language", "")[:20],
        "timezone": params.get("timezone", "")[:64],
        "frequency": params.get("frequency", "") if params.get("frequency") in FREQUENCIES else "",
        "topic": params.get("topic", "")[:60],
    }


@router.get("/subscribers")
async def subscriber_list(request: Request, editor: Reading) -> Response:
    """List subscribers: search by address prefix, filter, keyset pages."""
    site = site_of(request)
    filters = _filters(request)
    after: int | str | None = cursor_int(request.query_params.get("before"))
    if filters["q"]:
        after = request.query_params.get("after", "")[:320] or None
    wanted = repository.SubscriberFilter(
        status=filters["status"] or None,
        language=filters["language"] or None,
        timezone=filters["timezone"] or None,
        frequency=filters["frequency"] or None,
        topic=filters["topic"] or None,
        email_prefix=filters["q"] or None,
    )
    async with transaction(site.engine) as session:
        rows = await repository.page(session, wanted, PAGE_SIZE + 1, after)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    next_cursor = ""
    if more and rows:
        next_cursor = f"after={rows[-1].email_key}" if filters["q"] else f"before={rows[-1].id}"
    return page(
        request,
        "admin/subscribers.html",
        {
            "editor": editor,
            "rows": rows,
            "filters": filters,
            "next_cursor": next_cursor,
            "statuses": STATUSES,
            "frequencies": FREQUENCIES,
            "languages": LANGUAGES,
            "notice": request.query_params.get("notice", "")[:40],
        },
    )


async def _subscriber(site: Any, subscriber_id: int) -> Subscriber:
    async with transaction(site.engine) as session:
        found = await repository.get(session, subscriber_id)
    if found is None:
        raise HTTPException(404)
    return found


@router.get("/subscribers/{subscriber_id:int}")
async def reader_page(subscriber_id: int, request: Request, editor: Reading) -> Response:
    """Show one reader: preferences, consent history, deliveries, suppression."""
    site = site_of(request)
    reader = await _subscriber(site, subscriber_id)
    async with transaction(site.engine) as session:
        deliveries = (
            await session.execute(
                sa.select(
                    OutboxRow.kind,
                    OutboxRow.edition_id,
                    OutboxRow.status,
                    OutboxRow.attempts,
                    OutboxRow.sent_at,
                    OutboxRow.smtp_code,
                    OutboxRow.smtp_response,
                )
                .where(OutboxRow.subscriber_id == reader.id)
                .order_by(OutboxRow.id.desc())
                .limit(50)
            )
        ).all()
        suppressed = await suppression.reason(session, reader.email)
        history = list(
            await session.scalars(
                sa.select(AuditEntry)
                .where(AuditEntry.target == reader.email)
                .order_by(AuditEntry.id.desc())
                .limit(50)
            )
        )
    return page(
        request,
        "admin/subscriber.html",
        {
            "editor": editor,
            "reader": reader,
            "deliveries": deliveries,
            "suppressed": suppressed,
            "history": history,
        },
    )


@router.post("/subscribers/new")
async def add_subscriber(request: Request, posted: PostsSubscribers) -> Response:
    """Add a reader: active when the editor holds their consent, else pending (confirmation)."""
    site = site_of(request)
    form = posted.form
    confirmed = form.get("confirmed") == "yes"
    now = site.clock.now()
    try:
        address = normalize(form.get("email", "")[:400])
        preferences = Preferences.parse(
            name=form.get("name", ""),
            language=form.get("language", ""),
            timezone=form.get("timezone", ""),
            frequency=form.get("frequency", "daily"),
            topics=[t for t in form.get("topics", "").split(",") if t.strip()][:50],
            languages=tuple(dict.fromkeys((*LANGUAGES, site.settings.site.language))),
        )
        record = Consent(
            source="admin",
            at=now,
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent", "")[:300],
            text=f"added by {posted.editor.user.email}" + (" as confirmed" if confirmed else ""),
        )
        async with transaction(site.engine) as session:
            if confirmed:
                if await suppression.is_suppressed(session, address.email):
                    raise SubscribersError(
                        f"{address.email} is suppressed; only the reader can lift that"
                    )
                subscriber = await repository.add(
                    session, address, preferences, record, now, status=ACTIVE
                )
            else:
                existing = await repository.get_by_email(session, address.key)
                if existing is not None:
                    raise SubscribersError(
                        f"{address.email} is already on the list ({existing.status})"
                    )
                outcome = await consent.subscribe(session, address, preferences, record, now)
                subscriber = outcome.subscriber
                # Queued with the change; the sender `publisher serve` runs delivers it.
                await notices.queue(session, site, MailKind.CONFIRMATION, subscriber.id)
            await audit.record(
                session,
                actor=posted.editor.user.email,
                action="subscriber.add",
                target=address.email,
                source=client_ip(request),
                detail=subscriber.status,
                at=now,
            )
            new_id = subscriber.id
    except SubscribersError as exc:
        return page(
            request,
            "admin/error.html",
            {"editor": posted.editor, "status": 422, "message": str(exc)},
            status_code=422,
        )
    return RedirectResponse(f"/admin/subscribers/{new_id}", status_code=303)


@router.post("/subscribers/{subscriber_id:int}/suppress")
async def suppress_subscriber(
    subscriber_id: int,
    request: Request,
    posted: PostsSubscribers,
) -> Response:
    """Put a reader's address on the suppression list: nothing more is sent to it."""
    site = site_of(request)
    reader = await _subscriber(site, subscriber_id)
    now = site.clock.now()
    async with transaction(site.engine) as session:
        await suppression.suppress(
            session,
            reader.email,
            suppression.MANUAL,
            now,
            detail=f"by {posted.editor.user.email}",
        )
        await audit.record(
            session,
            actor=posted.editor.user.email,
            action="subscriber.suppress",
            target=reader.email,
            source=client_ip(request),
            at=now,
        )
    return RedirectResponse(f"/admin/subscribers/{subscriber_id}", status_code=303)


@router.post("/subscribers/{subscriber_id:int}/delete")
async def delete_subscriber(
    subscriber_id: int,
    request: Request,
    posted: PostsSubscribers,
) -> Response:
    """Delete a reader (a suppression of the address stays)."""
    site = site_of(request)
    reader = await _subscriber(site, subscriber_id)
    now = site.clock.now()
    async with transaction(site.engine) as session:
        await repository.remove(session, reader.email)
        await audit.record(
            session,
            actor=posted.editor.user.email,
            action="subscriber.delete",
            target=reader.email,
            source=client_ip(request),
            at=now,
        )
    return RedirectResponse("/admin/subscribers?notice=deleted", status_code=303)


@router.get("/subscribers.csv")
async def export(request: Request, editor: ManagingSubscribers) -> Response:
    """Export every subscriber with consent fields (the CLI's format), streamed from disk."""
    site = site_of(request)
    # Closed by the streaming generator once the response is sent.
    spool = tempfile.TemporaryFile(mode="w+", encoding="utf-8", newline="")  # noqa: SIM115
    async with transaction(site.engine) as session:
        await csvio.export_csv(session, spool)
        await audit.record(
            session,
            actor=editor.user.email,
            action="subscribers.export",
            source=client_ip(request),
            at=site.clock.now(),
        )
    spool.seek(0)

    async def chunks() -> AsyncIterator[bytes]:
        with spool:
            while block := spool.read(65536):
                yield block.encode("utf-8")

    return StreamingResponse(
        chunks(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="subscribers.csv"'},
    )
