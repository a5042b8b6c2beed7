"""Announcements: list, compose with a live preview and audience count, test, send, cancel."""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from publisher.delivery import announcements
from publisher.delivery.announcements import AnnouncementInput
from publisher.delivery.models import Announcement, AnnouncementStatus
from publisher.delivery.testcopy import send_announcement_test
from publisher.errors import InputError, NotFoundError, PublisherError
from publisher.render.announcement import AnnouncementContent, render_announcement
from publisher.site import Site
from publisher.web.admin.auth import (
    Editor,
    PostsAnything,
    PostsSends,
    Reading,
    record_action,
    site_of,
)
from publisher.web.admin.paging import PAGE_SIZE, cursor_int
from publisher.web.admin.rendering import page
from subscribers.addresses import normalize
from subscribers.errors import InvalidInput
from subscribers.models import FREQUENCIES

router = APIRouter()
LANGUAGES = ("id", "en")
#: The preview frame: our own page may frame it, and it may never run script.
FRAME_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src https: http: data:; "
    "style-src 'unsafe-inline'; frame-ancestors 'self'; sandbox",
    "X-Frame-Options": "SAMEORIGIN",
}


def _values(form: dict[str, str], site: Site) -> dict[str, Any]:
    """Return the compose form's values as the template shows them again."""
    return {
        "subject": form.get("subject", "")[:1000],
        "body_markdown": form.get("body_markdown", "")[: announcements.MAX_BODY + 1],
        "lang": form.get("lang", site.settings.site.language)[:20],
        "languages": [x for x in LANGUAGES if form.get(f"to_lang_{x}")],
        "topics": form.get("topics", "")[:4000],
        "frequencies": [f for f in FREQUENCIES if form.get(f"frequency_{f}")],
    }


def _input(values: dict[str, Any]) -> AnnouncementInput:
    """Return the checked input of a compose form, or raise InputError."""
    topics = [t for t in values["topics"].split(",") if t.strip()]
    return AnnouncementInput(
        subject=values["subject"],
        body_markdown=values["body_markdown"],
        language=values["lang"],
        audience=announcements.parse_audience(values["languages"], topics, values["frequencies"]),
    )


def _stored_values(found: Announcement) -> dict[str, Any]:
    chosen = announcements.audience_of(found)
    return {
        "subject": found.subject,
        "body_markdown": found.body_markdown,
        "lang": found.language,
        "languages": list(chosen.languages),
        "topics": ", ".join(chosen.topics),
        "frequencies": list(chosen.frequencies),
    }


async def _find(site: Site, number: str) -> Announcement:
    if not number.isdigit() or len(number) > 18:
        raise HTTPException(404)
    try:
        return await announcements.get(site, int(number))
    except NotFoundError:
        raise HTTPException(404) from None


def _compose(
    request: Request, editor: Editor, values: dict[str, Any], **extra: Any
) -> HTMLResponse:
    return page(
        request,
        "admin/announcement_edit.html",
        {
            "editor": editor,
            "values": values,
            "languages": LANGUAGES,
            "frequencies": FREQUENCIES,
            "announcement": None,
            "problem": "",
            **extra,
        },
        status_code=422 if extra.get("problem") else 200,
    )


@router.get("/announcements")
async def announcement_list(request: Request, editor: Reading) -> Response:
    """List announcements newest first, a page at a time."""
    site = site_of(request)
    before = cursor_int(request.query_params.get("before"))
    found = await announcements.page(site, PAGE_SIZE + 1, before)
    more = len(found) > PAGE_SIZE
    found = found[:PAGE_SIZE]
    return page(
        request,
        "admin/announcements.html",
        {
            "editor": editor,
            "announcements": found,
            "next_before": found[-1].id if more and found else None,
        },
    )


@router.get("/announcements/new")
async def new_form(request: Request, editor: Reading) -> Response:
    """Show an empty compose form (read-only for a viewer)."""
    site = site_of(request)
    return _compose(request, editor, _values({}, site))


@router.post("/announcements/new")
async def create(request: Request, posted: PostsSends) -> Response:
    """Save a new draft and go to its page."""
    site = site_of(request)
    values = _values(posted.form, site)
    try:
        found = await announcements.create(site, _input(values), posted.editor.user.email)
    except InputError as exc:
        return _compose(request, posted.editor, values, problem=str(exc))
    await record_action(
        request, posted.editor, "announcement.create", f"announcement:{found.id}", found.subject
    )
    return RedirectResponse(f"/admin/announcements/{found.id}", status_code=303)


@router.post("/announcements-preview")
async def preview(request: Request, posted: PostsAnything) -> Response:
    """Return the live preview of an unsaved announcement (htmx swaps it in)."""
    site = site_of(request)
    values = _values(posted.form, site)
    context: dict[str, Any] = {"editor": posted.editor, "problem": "", "subject": "", "html": ""}
    try:
        data = _input(values)
        html = announcements.body_html(site, data.body_markdown)
        compiled = render_announcement(
            site.settings,
            AnnouncementContent(
                announcements.check_subject(data.subject),
                html,
                announcements.check_language(data.language),
                "announcement:0",
                site.clock.now().astimezone(site.settings.tz).date(),
            ),
        )
        filled, text = compiled.fill({"greeting": compiled.greeting(""), "email": "…"})
        context.update(subject=compiled.subject, html=filled, text=text)
    except (InputError, ValueError) as exc:
        context["problem"] = str(exc)
    return page(request, "admin/_announcement_preview.html", context)


@router.post("/announcements-count")
async def count(request: Request, posted: PostsAnything) -> Response:
    """Return how many readers the chosen audience has now (htmx swaps it in)."""
    site = site_of(request)
    values = _values(posted.form, site)
    try:
        chosen = _input({**values, "subject": "x", "body_markdown": "x"}).audience
        text = str(await announcements.audience_size(site, chosen))
    except InputError as exc:
        text = str(exc)
    return page(request, "admin/_announcement_count.html", {"count": text})


@router.get("/announcements/{number}")
async def show(number: str, request: Request, editor: Reading) -> Response:
    """Show one announcement: preview, audience, and what may be done with it now."""
    site = site_of(request)
    found = await _find(site, number)
    size = None
    if found.status in (AnnouncementStatus.DRAFT, AnnouncementStatus.SCHEDULED):
        size = await announcements.audience_size(site, announcements.audience_of(found))
    return page(
        request,
        "admin/announcement.html",
        {
            "editor": editor,
            "announcement": found,
            "audience": announcements.audience_of(found).describe(),
            "size": size,
            "values": _stored_values(found),
            "languages": LANGUAGES,
            "frequencies": FREQUENCIES,
            "edition_key": f"announcement:{found.id}" if found.edition_id else "",
            "today": site.clock.now().astimezone(site.settings.tz).date().isoformat(),
            "notice": request.query_params.get("notice", "")[:200],
            "problem": "",
        },
    )


@router.get("/announcements/{number}/preview.html")
async def preview_html(number: str, request: Request, editor: Reading) -> Response:
    """Return the stored announcement's HTML alone, for the sandboxed frame on its page."""
    site = site_of(request)
    found = await _find(site, number)
    compiled = render_announcement(site.settings, announcements.content_of(site, found))
    html, _text = compiled.fill({"greeting": compiled.greeting(""), "email": "…"})
    return HTMLResponse(html, headers=FRAME_HEADERS)


def _back(number: int, notice: str) -> RedirectResponse:
    return RedirectResponse(
        f"/admin/announcements/{number}?notice=" + quote(notice[:200], safe=""), status_code=303
    )


@router.post("/announcements/{number}")
async def save(number: str, request: Request, posted: PostsSends) -> Response:
    """Save changes to a draft."""
    site = site_of(request)
    found = await _find(site, number)
    values = _values(posted.form, site)
    try:
        await announcements.update(site, found.id, _input(values))
    except (InputError, PublisherError) as exc:
        return _back(found.id, f"error: {exc}")
    await record_action(request, posted.editor, "announcement.edit", f"announcement:{found.id}")
    return _back(found.id, "saved")


@router.post("/announcements/{number}/test")
async def test_copy(number: str, request: Request, posted: PostsSends) -> Response:
    """Send a test copy to one address."""
    site = site_of(request)
    found = await _find(site, number)
    try:
        address = normalize(posted.form.get("email", "")[:400]).email
        await send_announcement_test(site, found.id, address)
    except (InvalidInput, PublisherError) as exc:
        return _back(found.id, f"error: {exc}")
    await record_action(
        request, posted.editor, "announcement.test_copy", f"announcement:{found.id}", address
    )
    return _back(found.id, f"sent a test copy to {address}")


@router.post("/announcements/{number}/send")
async def send(number: str, request: Request, posted: PostsSends) -> Response:
    """Send now, or schedule for a local date and time in each reader's zone."""
    site = site_of(request)
    found = await _find(site, number)
    at_local: tuple[date, str] | None = None
    try:
        if posted.form.get("mode") == "local":
            raw = posted.form.get("send_date", "")[:20]
            try:
                day = date.fromisoformat(raw)
            except ValueError:
                raise InputError(f"send_date: {raw!r} is not a date") from None
            at_local = (day, posted.form.get("send_time", "")[:20])
        await announcements.send(site, found.id, at_local=at_local)
    except PublisherError as exc:
        return _back(found.id, f"error: {exc}")
    detail = f"at {at_local[0]} {at_local[1]} local" if at_local else "now"
    await record_action(
        request, posted.editor, "announcement.send", f"announcement:{found.id}", detail
    )
    return _back(found.id, "scheduled" if at_local else "queued")


@router.post("/announcements/{number}/cancel")
async def cancel(number: str, request: Request, posted: PostsSends) -> Response:
    """Cancel a draft or a scheduled announcement."""
    site = site_of(request)
    found = await _find(site, number)
    try:
        await announcements.cancel(site, found.id)
    except PublisherError as exc:
        return _back(found.id, f"error: {exc}")
    await record_action(request, posted.editor, "announcement.cancel", f"announcement:{found.id}")
    return _back(found.id, "cancelled")
