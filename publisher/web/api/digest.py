"""/api/v1/digest/preview: the next digest for a language and time zone, as readers get it."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

from publisher.delivery.preview import preview_reader, render_preview
from publisher.errors import NotFoundError
from publisher.render.i18n import available_languages, normalize_language
from publisher.web.api.auth import Reader, site_of
from publisher.web.api.errors import not_found
from publisher.web.api.limits import LimitedRoute

router = APIRouter(prefix="/digest", tags=["digest"], route_class=LimitedRoute)

#: The preview is email HTML shown on the site's own origin: never let it run anything.
SANDBOX = {"Content-Security-Policy": "sandbox", "Cache-Control": "no-store"}


class PreviewFormat(StrEnum):
    """What the preview answers with."""

    JSON = "json"
    HTML = "html"
    TEXT = "text"


class Frequency(StrEnum):
    """Which digest to preview."""

    DAILY = "daily"
    WEEKLY = "weekly"


class PreviewOut(BaseModel):
    """The next digest: subject, HTML and text, and whether it is only a sample."""

    subject: str
    html: str
    text: str
    lang: str
    timezone: str
    frequency: Frequency
    articles: int
    sample: bool


def _invalid(field: str, message: str) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("query", field), "msg": message, "type": "value_error"}]
    )


@router.get(
    "/preview",
    summary="Preview the next digest",
    response_model=PreviewOut,
    responses={
        200: {
            "content": {
                "text/html": {"schema": {"type": "string"}},
                "text/plain": {"schema": {"type": "string"}},
            }
        }
    },
)
async def preview(
    request: Request,
    who: Reader,
    lang: Annotated[str | None, Query(max_length=20, description="Default: site.language.")] = None,
    timezone: Annotated[
        str | None, Query(max_length=64, description="IANA zone; default: site.timezone.")
    ] = None,
    frequency: Frequency = Frequency.DAILY,
    format: PreviewFormat = PreviewFormat.JSON,
) -> Response | PreviewOut:
    """Render the digest a new reader of ``lang`` in ``timezone`` would get now.

    The articles are chosen by the planner delivery uses; when nothing is new, the newest
    articles stand in and ``sample`` is true (the subject starts with "[sample]").
    """
    site = site_of(request)
    if lang is not None:
        known = available_languages("email", site.settings.site.templates_dir)
        if normalize_language(lang) not in known:
            raise _invalid("lang", f"no email catalog for {lang!r} (available: {', '.join(known)})")
    if timezone is not None:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise _invalid("timezone", f"unknown time zone {timezone!r}") from None
    reader = await preview_reader(site, None, lang, timezone)
    reader.frequency = frequency.value
    try:
        rendered = await render_preview(site, reader)
    except NotFoundError as exc:
        raise not_found(str(exc)) from exc
    if format is PreviewFormat.HTML:
        return Response(rendered.html, media_type="text/html; charset=utf-8", headers=SANDBOX)
    if format is PreviewFormat.TEXT:
        return Response(rendered.text, media_type="text/plain; charset=utf-8", headers=SANDBOX)
    return PreviewOut(
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        lang=rendered.language,
        timezone=rendered.timezone,
        frequency=frequency,
        articles=rendered.articles,
        sample=rendered.sample,
    )
