"""/api/v1/subscribers: list and search, add with consent, read, suppress and delete readers."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, IPvAnyAddress
from sqlalchemy.ext.asyncio import AsyncSession

from publisher.db import transaction
from publisher.delivery import notices
from publisher.delivery.models import MailKind
from publisher.site import Site
from publisher.web import subscription
from publisher.web.api import pagination
from publisher.web.api.auth import Reader, SubscriberWriter, site_of
from publisher.web.api.errors import conflict, not_found
from publisher.web.api.limits import MAX_LIST_ITEMS, LimitedRoute
from subscribers import consent, repository, suppression
from subscribers.addresses import normalize
from subscribers.errors import InvalidInput
from subscribers.models import ACTIVE, BOUNCED, COMPLAINED, PENDING, UNSUBSCRIBED, Subscriber
from subscribers.preferences import LANGUAGES
from subscribers.repository import Consent, Preferences, SubscriberFilter

router = APIRouter(prefix="/subscribers", tags=["subscribers"], route_class=LimitedRoute)

CURSOR_NEWEST = "subscribers"
CURSOR_ADDRESS = "subscribers-by-address"
EmailPath = Annotated[str, Path(min_length=3, max_length=320, description="The address.")]


class SubscriberStatus(StrEnum):
    """Where a reader stands."""

    PENDING = PENDING
    ACTIVE = ACTIVE
    UNSUBSCRIBED = UNSUBSCRIBED
    BOUNCED = BOUNCED
    COMPLAINED = COMPLAINED


class Frequency(StrEnum):
    """How often a reader gets a digest."""

    DAILY = "daily"
    WEEKLY = "weekly"


class ConsentOut(BaseModel):
    """How and when the reader agreed."""

    source: str
    at: datetime | None
    ip: str
    user_agent: str
    text: str


class SubscriberOut(BaseModel):
    """One reader."""

    email: str
    name: str
    status: SubscriberStatus
    lang: str
    timezone: str
    frequency: Frequency
    topics: list[str]
    created_at: datetime
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None
    consent: ConsentOut
    soft_bounces: int
    hard_bounces: int
    last_bounce_at: datetime | None


class SubscriberCreate(BaseModel):
    """A new reader and the record of their consent."""

    model_config = ConfigDict(extra="forbid")

    email: Annotated[str, Field(min_length=3, max_length=320)]
    name: Annotated[str, Field(max_length=200)] = ""
    lang: Annotated[str, Field(max_length=20)] = Field("", description="Default: site.language.")
    timezone: Annotated[str, Field(max_length=64)] = Field("", description="Default: site's.")
    frequency: Frequency = Frequency.DAILY
    topics: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=100)]], Field(max_length=MAX_LIST_ITEMS)
    ] = []
    confirmed: bool = Field(
        False,
        description="True: the reader confirmed with you already (active at once). "
        "False: pending, and a confirmation email goes out.",
    )
    consent_text: Annotated[str, Field(min_length=1, max_length=4000)] = Field(
        description="The words the reader agreed to, as they saw them."
    )
    consent_ip: IPvAnyAddress | None = Field(
        None, description="The reader's address when they agreed; default: the caller's."
    )
    consent_user_agent: Annotated[str, Field(max_length=1000)] = ""


def to_out(subscriber: Subscriber) -> SubscriberOut:
    """Return the API form of a subscriber."""
    return SubscriberOut(
        email=subscriber.email,
        name=subscriber.name,
        status=SubscriberStatus(subscriber.status),
        lang=subscriber.language,
        timezone=subscriber.timezone,
        frequency=Frequency(subscriber.frequency),
        topics=list(subscriber.topics or []),
        created_at=subscriber.created_at,
        confirmed_at=subscriber.confirmed_at,
        unsubscribed_at=subscriber.unsubscribed_at,
        consent=ConsentOut(
            source=subscriber.consent_source,
            at=subscriber.consent_at,
            ip=subscriber.consent_ip,
            user_agent=subscriber.consent_user_agent,
            text=subscriber.consent_text,
        ),
        soft_bounces=subscriber.soft_bounces,
        hard_bounces=subscriber.hard_bounces,
        last_bounce_at=subscriber.last_bounce_at,
    )


def _invalid(field: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": "value_error"}])


def _languages(site: Site) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*LANGUAGES, site.settings.site.language)))


@router.get("", summary="List or search subscribers", response_model=pagination.Page[SubscriberOut])
async def list_subscribers(
    request: Request,
    who: Reader,
    limit: pagination.Limit = pagination.DEFAULT_LIMIT,
    cursor: pagination.CursorParam = None,
    status: SubscriberStatus | None = None,
    lang: Annotated[str | None, Query(max_length=20)] = None,
    timezone: Annotated[str | None, Query(max_length=64)] = None,
    frequency: Frequency | None = None,
    topic: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    email: Annotated[
        str | None,
        Query(min_length=1, max_length=320, description="Start of the address; sorts by address."),
    ] = None,
) -> pagination.Page[SubscriberOut]:
    """Return subscribers newest first, or in address order when searching by ``email``."""
    kind = CURSOR_ADDRESS if email is not None else CURSOR_NEWEST
    after: int | str | None = None
    if cursor is not None:
        (value,) = pagination.decode(cursor, kind, 1)
        if not isinstance(value, str if email is not None else int) or isinstance(value, bool):
            raise pagination.bad_cursor("not a cursor from this API")
        after = value
    wanted = SubscriberFilter(
        status=status.value if status else None,
        language=lang,
        timezone=timezone,
        frequency=frequency.value if frequency else None,
        topic=topic,
        email_prefix=email,
    )
    site = site_of(request)
    async with transaction(site.engine) as session:
        found = await repository.page(session, wanted, limit + 1, after)
    next_cursor = None
    if len(found) > limit:
        last = found[limit - 1]
        next_cursor = pagination.encode(kind, last.email_key if email is not None else last.id)
    return pagination.Page[SubscriberOut](
        items=[to_out(s) for s in found[:limit]], next_cursor=next_cursor
    )


@router.post("", status_code=201, summary="Add a subscriber")
async def create_subscriber(
    request: Request, response: Response, data: SubscriberCreate, who: SubscriberWriter
) -> SubscriberOut:
    """Add a reader with their consent; unconfirmed readers get the confirmation email."""
    site = site_of(request)
    try:
        address = normalize(data.email)
    except InvalidInput as exc:
        raise _invalid("email", str(exc)) from exc
    try:
        preferences = Preferences.parse(
            name=data.name,
            language=data.lang,
            timezone=data.timezone,
            frequency=data.frequency.value,
            topics=data.topics,
            languages=_languages(site),
        )
    except InvalidInput as exc:
        raise _invalid("preferences", str(exc)) from exc
    now = site.clock.now()
    record = Consent(
        source="api",
        at=now,
        ip=str(data.consent_ip)
        if data.consent_ip
        else (request.client.host if request.client else ""),
        user_agent=data.consent_user_agent or request.headers.get("user-agent", "")[:1000],
        text=data.consent_text,
    )
    async with transaction(site.engine) as session:
        existing = await repository.get_by_email(session, address.key)
        if existing is not None:
            raise conflict(f"{address.email} is already on the list ({existing.status})")
        if data.confirmed:
            if await suppression.is_suppressed(session, address.email):
                why = await suppression.reason(session, address.email)
                raise conflict(
                    f"{address.email} is suppressed ({why}); only the reader can lift that "
                    "by subscribing again and confirming"
                )
            added = await repository.add(session, address, preferences, record, now, status=ACTIVE)
        else:
            added = (await consent.subscribe(session, address, preferences, record, now)).subscriber
            # The same notice, through the same outbox, as the subscribe form's.
            await notices.queue(session, site, MailKind.CONFIRMATION, added.id)
        await who.audit(session, site, "subscriber.create", added.email, added.status)
        out = to_out(added)
    if not data.confirmed:
        subscription.state_of(request).sender.poke()
    response.headers["Location"] = f"{request.url.path}/{out.email}"
    return out


async def _require(session: AsyncSession, email: str) -> Subscriber:
    found = await repository.get_by_email(session, email)
    if found is None:
        raise not_found(f"no subscriber {email.strip()!r}")
    return found


@router.get("/{email}", summary="Get one subscriber")
async def get_subscriber(request: Request, email: EmailPath, who: Reader) -> SubscriberOut:
    """Return one reader, with their consent record."""
    async with transaction(site_of(request).engine) as session:
        return to_out(await _require(session, email))


@router.post("/{email}/suppress", summary="Suppress a subscriber")
async def suppress_subscriber(
    request: Request, email: EmailPath, who: SubscriberWriter
) -> SubscriberOut:
    """Never mail this address again (it stays suppressed even if the reader is deleted)."""
    site = site_of(request)
    async with transaction(site.engine) as session:
        subscriber = await _require(session, email)
        await repository.suppress(session, subscriber, site.clock.now(), detail=f"api {who.actor}")
        await who.audit(session, site, "subscriber.suppress", subscriber.email)
        return to_out(subscriber)


@router.delete("/{email}", status_code=204, summary="Delete a subscriber")
async def delete_subscriber(request: Request, email: EmailPath, who: SubscriberWriter) -> Response:
    """Delete a reader's record (any suppression of the address stays)."""
    site = site_of(request)
    async with transaction(site.engine) as session:
        subscriber = await _require(session, email)
        await repository.remove(session, subscriber.email)
        await who.audit(session, site, "subscriber.delete", subscriber.email)
    return Response(status_code=204)
