"""Subscribers from CSV in the editors' app: the CLI's importer, its progress streamed as it runs.

The upload is capped by ``web.max_request_bytes`` (the whole request). The page is
sent in pieces: its head at once, then a line per committed batch of 1,000 rows and
one per rejected row (``FILE:LINE: reason``), then the totals, so a browser shows
the import moving without polling. The import runs in a task of its own: a reader
who closes the page does not stop it half-way (each batch is one transaction, and
running the file again changes nothing already done).
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.datastructures import UploadFile

from publisher.accounts import audit
from publisher.db import transaction
from publisher.errors import PublisherError
from publisher.ingest.files import upload_name
from publisher.site import Site
from publisher.web.admin.auth import Editor, PostsSubscribers, Reading, client_ip, site_of
from publisher.web.admin.rendering import AdminRenderer, language_of, page
from subscribers import csvio
from subscribers.errors import InvalidInput, SubscribersError
from subscribers.preferences import LANGUAGES

log = logging.getLogger(__name__)
router = APIRouter()

#: Where the streamed lines go in the page.
PROGRESS_MARK = "<!--import-progress-->"
#: Rejected rows listed one by one; beyond this, a count (the page stays readable).
MAX_ERRORS_SHOWN = 500
#: Import tasks still running (a task only weakly referenced may be collected).
_running: set[asyncio.Task[None]] = set()


@dataclass(frozen=True)
class Event:
    """One line of the progress log: a batch committed, a row rejected, the end."""

    kind: str  # "batch" | "error" | "done" | "failed"
    counts: dict[str, int] | None = None
    message: str = ""


def _form(request: Request, editor: Editor, *, error: str = "", status: int = 200) -> Response:
    site = site_of(request)
    return page(
        request,
        "admin/subscribers_import.html",
        {
            "editor": editor,
            "error": error,
            "streaming": False,
            "max_bytes": site.settings.web.max_request_bytes,
        },
        status_code=status,
    )


@router.get("/subscribers/import")
async def import_form(request: Request, editor: Reading) -> Response:
    """Show the CSV import form."""
    return _form(request, editor)


def _counts(report: csvio.ImportReport) -> dict[str, int]:
    return {
        "rows": report.rows,
        "created": report.created,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "suppressed": report.suppressed,
        "failed": len(report.errors),
    }


def _header_problem(text: str, name: str) -> str:
    """Return why the file cannot be imported at all (empty, no email column), or ""."""
    try:
        header = next(csv.reader(io.StringIO(text, newline="")), None)
        if header is None or not any(cell.strip() for cell in header):
            return f"{name}: empty file; expected a header line"
        csvio.check_header(header, name)
    except InvalidInput as exc:
        return str(exc)
    except csv.Error as exc:
        return f"{name}:1: {exc}"
    return ""


async def _run_import(
    site: Site,
    text: str,
    name: str,
    confirmed: bool,
    events: asyncio.Queue[Event],
    actor: str,
    source: str,
) -> None:
    """Import the text, reporting progress to ``events``; audit the outcome."""
    now = site.clock.now()
    shown = 0

    def rejected(error: csvio.RowError) -> None:
        nonlocal shown
        shown += 1
        if shown <= MAX_ERRORS_SHOWN:
            events.put_nowait(Event("error", message=f"{name}:{error.line}: {error.message}"))

    try:
        report = await csvio.import_csv(
            site.engine,
            io.StringIO(text, newline=""),
            now,
            source=name,
            confirmed=confirmed,
            languages=tuple(dict.fromkeys((*LANGUAGES, site.settings.site.language))),
            on_error=rejected,
            on_batch=lambda running: events.put_nowait(Event("batch", _counts(running))),
        )
    except (SubscribersError, PublisherError) as exc:
        events.put_nowait(Event("failed", message=str(exc)))
        return
    except Exception:
        log.exception("subscriber import of %s failed", name)
        events.put_nowait(Event("failed", message=f"{name}: the import stopped on an error"))
        raise
    counts = _counts(report)
    async with transaction(site.engine) as session:
        await audit.record(
            session,
            actor=actor,
            action="subscribers.import",
            target=name,
            source=source,
            detail=", ".join(f"{key} {value}" for key, value in counts.items()),
            at=now,
        )
    events.put_nowait(Event("done", counts, message=f"{max(0, shown - MAX_ERRORS_SHOWN)}"))


@router.post("/subscribers/import")
async def import_subscribers(request: Request, posted: PostsSubscribers) -> Response:
    """Import a CSV upload, streaming progress and per-line errors; suppressed stay suppressed."""
    site = site_of(request)
    upload = (await request.form()).get("file")  # parsed (and capped) by the dependency
    if not isinstance(upload, UploadFile) or not upload.filename:
        return _form(request, posted.editor, error="choose a CSV file", status=422)
    name = upload_name(upload.filename)
    # Undecodable bytes survive as lone surrogates: the importer rejects those rows by line.
    text = (await upload.read()).decode("utf-8-sig", errors="surrogateescape")
    problem = _header_problem(text, name)
    if problem:
        return _form(request, posted.editor, error=problem, status=422)
    confirmed = posted.form.get("confirmed") == "yes"
    renderer: AdminRenderer = request.app.state.admin_pages
    language = language_of(request, site.settings)
    context: dict[str, Any] = {
        "request_path": request.url.path,
        "editor": posted.editor,
        "error": "",
        "streaming": True,
        "name": name,
        "confirmed": confirmed,
        "max_bytes": site.settings.web.max_request_bytes,
    }
    head, tail = renderer.render("admin/subscribers_import.html", context, language).split(
        PROGRESS_MARK, 1
    )
    events: asyncio.Queue[Event] = asyncio.Queue()
    task = asyncio.create_task(
        _run_import(
            site,
            text,
            name,
            confirmed,
            events,
            posted.editor.user.email,
            client_ip(request),
        ),
        name=f"subscriber import {name}",
    )
    _running.add(task)
    task.add_done_callback(_running.discard)

    async def body() -> AsyncIterator[str]:
        yield head
        while True:
            event = await events.get()
            yield renderer.render("admin/_import_event.html", {"event": event}, language)
            if event.kind in ("done", "failed"):
                break
        yield tail

    # Proxies must pass the lines on as they come.
    return StreamingResponse(
        body(), media_type="text/html; charset=utf-8", headers={"X-Accel-Buffering": "no"}
    )
