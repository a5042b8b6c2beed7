"""/api/v1/announcements: one-off emails to chosen readers, sent now or at a local time."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from publisher.db import transaction
from publisher.delivery import announcements
from publisher.delivery.models import Announcement, AnnouncementStatus, SendMode
from publisher.delivery.progress import progress_of
from publisher.delivery.testcopy import send_announcement_test
from publisher.errors import InputError, NotFoundError, UsageError
from publisher.web.api import pagination
from publisher.web.api.auth import Reader, Sender, site_of
from publisher.web.api.editions import EditionOut, edition_out
from publisher.web.api.errors import conflict, not_found
from publisher.web.api.limits import LimitedRoute
from subscribers.addresses import normalize
from subscribers.errors import InvalidInput

router = APIRouter(prefix="/announcements", tags=["announcements"], route_class=LimitedRoute)

CURSOR_KIND = "announcements"
IdPath = Annotated[int, Path(ge=1, le=2**62, description="The announcement's id.")]
Word = Annotated[str, Field(min_length=1, max_length=60)]
_FIELDS = {"subject", "body_markdown", "language", "audience", "send_time", "send_at"}


class AudienceIn(BaseModel):
    """Which readers: each list narrows the audience; all empty (the default) is everyone."""

    model_config = ConfigDict(extra="forbid")

    languages: Annotated[list[Word], Field(max_length=20)] = []
    topics: Annotated[list[Word], Field(max_length=50)] = []
    frequencies: Annotated[list[Word], Field(max_length=2)] = []


class AnnouncementCreate(BaseModel):
    """A new draft: Markdown is rendered and sanitized as an article body is."""

    model_config = ConfigDict(extra="forbid")

    subject: Annotated[str, Field(min_length=1, max_length=announcements.MAX_SUBJECT)]
    body_markdown: Annotated[str, Field(min_length=1, max_length=announcements.MAX_BODY)]
    lang: Annotated[str, Field(max_length=3, pattern=r"^[a-z]{2,3}$")] | None = Field(
        None, description="Language of the email. Default: site.language."
    )
    audience: AudienceIn = AudienceIn()


class SendRequest(BaseModel):
    """Send now (no fields), or at a wall-clock date and time in each reader's zone."""

    model_config = ConfigDict(extra="forbid")

    send_date: date | None = Field(None, description="With send_time: the local date.")
    send_time: Annotated[str, Field(pattern=r"^[0-9]{2}:[0-9]{2}$")] | None = Field(
        None, description="HH:MM on a quarter hour, each reader's local time."
    )


class TestRequest(BaseModel):
    """Where to send a test copy."""

    model_config = ConfigDict(extra="forbid")

    email: Annotated[str, Field(min_length=3, max_length=320)]


class AnnouncementOut(BaseModel):
    """One announcement, its audience and where its sending is."""

    id: int
    subject: str
    body_markdown: str
    body_html: str
    lang: str
    audience: dict[str, list[str]]
    status: AnnouncementStatus
    send_mode: SendMode
    send_date: date | None
    send_time: str | None
    author: str
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    edition: EditionOut | None = Field(
        None, description="Its edition (announcement:ID) once anyone is queued."
    )


def _to_out(found: Announcement, edition: EditionOut | None = None) -> AnnouncementOut:
    return AnnouncementOut(
        id=found.id,
        subject=found.subject,
        body_markdown=found.body_markdown,
        body_html=found.body_html,
        lang=found.language,
        audience=announcements.audience_of(found).to_json(),
        status=AnnouncementStatus(found.status),
        send_mode=SendMode(found.send_mode),
        send_date=found.send_date,
        send_time=found.send_time or None,
        author=found.author,
        created_at=found.created_at,
        updated_at=found.updated_at,
        sent_at=found.sent_at,
        edition=edition,
    )


def _invalid(exc: InputError) -> RequestValidationError:
    field, _, _message = str(exc).partition(": ")
    loc: tuple[str, ...] = ("body", field) if field in _FIELDS else ("body",)
    return RequestValidationError([{"loc": loc, "msg": str(exc), "type": "value_error"}])


async def _answer(request: Request, found: Announcement) -> AnnouncementOut:
    edition = None
    if found.edition_id is not None:
        progress = await progress_of(site_of(request), f"announcement:{found.id}")
        edition = edition_out(progress) if progress is not None else None
    return _to_out(found, edition)


async def _audit(request: Request, who: Any, action: str, target: str, detail: str = "") -> None:
    site = site_of(request)
    async with transaction(site.engine) as session:
        await who.audit(session, site, action, target, detail)


@router.get("", summary="List announcements", response_model=pagination.Page[AnnouncementOut])
async def list_announcements(
    request: Request,
    who: Reader,
    limit: pagination.Limit = pagination.DEFAULT_LIMIT,
    cursor: pagination.CursorParam = None,
) -> pagination.Page[AnnouncementOut]:
    """Return announcements newest first."""
    before: int | None = None
    if cursor is not None:
        (value,) = pagination.decode(cursor, CURSOR_KIND, 1)
        if not isinstance(value, int) or isinstance(value, bool):
            raise pagination.bad_cursor("not a cursor from this API")
        before = value
    found = await announcements.page(site_of(request), limit + 1, before)
    next_cursor = None
    if len(found) > limit:
        next_cursor = pagination.encode(CURSOR_KIND, found[limit - 1].id)
    return pagination.Page[AnnouncementOut](
        items=[_to_out(a) for a in found[:limit]], next_cursor=next_cursor
    )


@router.post("", status_code=201, summary="Create a draft announcement")
async def create_announcement(
    request: Request, data: AnnouncementCreate, who: Sender
) -> AnnouncementOut:
    """Check, render and sanitize the Markdown and store a draft (nothing is sent yet)."""
    site = site_of(request)
    try:
        chosen = announcements.parse_audience(
            data.audience.languages, data.audience.topics, data.audience.frequencies
        )
        found = await announcements.create(
            site,
            announcements.AnnouncementInput(
                subject=data.subject,
                body_markdown=data.body_markdown,
                language=data.lang or site.settings.site.language,
                audience=chosen,
            ),
            who.actor,
        )
    except InputError as exc:
        raise _invalid(exc) from exc
    await _audit(request, who, "announcement.create", f"announcement:{found.id}", found.subject)
    return _to_out(found)


@router.get("/{announcement_id}", summary="Get one announcement")
async def get_announcement(
    request: Request, announcement_id: IdPath, who: Reader
) -> AnnouncementOut:
    """Return one announcement with its edition's progress once it is going out."""
    try:
        found = await announcements.get(site_of(request), announcement_id)
    except NotFoundError as exc:
        raise not_found(str(exc)) from exc
    return await _answer(request, found)


@router.post("/{announcement_id}/send", summary="Send or schedule an announcement")
async def send_announcement(
    request: Request, announcement_id: IdPath, data: SendRequest, who: Sender
) -> AnnouncementOut:
    """Queue a draft for every reader now, or schedule it for a local date and time."""
    if (data.send_date is None) != (data.send_time is None):
        raise _invalid(InputError("send_at: give both send_date and send_time, or neither"))
    at_local = None
    if data.send_date is not None and data.send_time is not None:
        at_local = (data.send_date, data.send_time)
    try:
        found = await announcements.send(site_of(request), announcement_id, at_local=at_local)
    except NotFoundError as exc:
        raise not_found(str(exc)) from exc
    except UsageError as exc:
        raise conflict(str(exc)) from exc
    except InputError as exc:
        raise _invalid(exc) from exc
    detail = f"at {at_local[0]} {at_local[1]} local" if at_local else "now"
    await _audit(request, who, "announcement.send", f"announcement:{found.id}", detail)
    return await _answer(request, found)


@router.post("/{announcement_id}/cancel", summary="Cancel a draft or scheduled announcement")
async def cancel_announcement(
    request: Request, announcement_id: IdPath, who: Sender
) -> AnnouncementOut:
    """Cancel an announcement before any of it was queued."""
    try:
        found = await announcements.cancel(site_of(request), announcement_id)
    except NotFoundError as exc:
        raise not_found(str(exc)) from exc
    except UsageError as exc:
        raise conflict(str(exc)) from exc
    await _audit(request, who, "announcement.cancel", f"announcement:{found.id}")
    return _to_out(found)


@router.post("/{announcement_id}/test", summary="Send a test copy of an announcement")
async def test_announcement(
    request: Request, announcement_id: IdPath, data: TestRequest, who: Sender
) -> dict[str, str]:
    """Send one copy (subject marked [test]) to an address now, through the outbox."""
    try:
        address = normalize(data.email).email
    except InvalidInput as exc:
        raise RequestValidationError(
            [{"loc": ("body", "email"), "msg": str(exc), "type": "value_error"}]
        ) from exc
    try:
        await send_announcement_test(site_of(request), announcement_id, address)
    except NotFoundError as exc:
        raise not_found(str(exc)) from exc
    await _audit(request, who, "announcement.test_copy", f"announcement:{announcement_id}", address)
    return {"sent_to": address}
