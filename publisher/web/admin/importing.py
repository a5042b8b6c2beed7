"""Import an article into the editor from a URL, an uploaded file or pasted text."""

from __future__ import annotations

from enum import StrEnum

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import UploadFile

from publisher.content import authoring
from publisher.errors import InputError
from publisher.http import is_url
from publisher.ingest.files import PARSERS, ImportOutcome, import_upload, upload_name
from publisher.ingest.options import ImportOptions
from publisher.ingest.sources import import_url
from publisher.site import Site
from publisher.web.admin.auth import (
    Editor,
    PostsContent,
    Reading,
    record_action,
    site_of,
)
from publisher.web.admin.rendering import page

router = APIRouter()

#: Formats an editor may force (a feed goes through `articles import-feed` instead).
FORMATS = ("auto", "markdown", "text", "html")
MAX_URL = 2000


class Origin(StrEnum):
    """Where an imported article comes from."""

    URL = "url"
    FILE = "file"
    TEXT = "text"


def _form_page(
    request: Request,
    editor: Editor,
    values: dict[str, str],
    *,
    error: str = "",
    status_code: int = 200,
) -> Response:
    site = site_of(request)
    return page(
        request,
        "admin/article_import.html",
        {
            "editor": editor,
            "values": values,
            "error": error,
            "formats": FORMATS,
            "languages": ("id", "en"),
            "max_bytes": site.settings.web.max_request_bytes,
        },
        status_code=status_code,
    )


def _defaults(site: Site) -> dict[str, str]:
    return {
        "url": "",
        "text": "",
        "format": "auto",
        "lang": site.settings.site.language,
        "tags": "",
    }


@router.get("/articles/import")
async def import_form(request: Request, editor: Reading) -> Response:
    """Show the import form (one of: URL, file, pasted text)."""
    return _form_page(request, editor, _defaults(site_of(request)))


async def _uploaded(request: Request) -> tuple[str, bytes] | None:
    """Return the uploaded file's name and bytes (the form is already parsed and capped)."""
    form = await request.form()  # starlette returns the copy read_form parsed
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return None
    data = await upload.read()
    return upload_name(upload.filename), data


def _options(site: Site, form: dict[str, str]) -> ImportOptions:
    fmt = form.get("format", "auto")
    if fmt not in FORMATS or (fmt != "auto" and fmt not in PARSERS):
        raise InputError(f"format: {fmt[:20]!r} is not one of {', '.join(FORMATS)}")
    language = form.get("lang", "").strip() or site.settings.site.language
    if len(language) > 20 or not language.replace("-", "").isalnum():
        raise InputError(f"lang: {language[:20]!r} is not a language tag such as id or en")
    tags = authoring.parse_tags(form.get("tags", ""))
    if len(tags) > authoring.MAX_TAGS or any(len(tag) > 60 for tag in tags):
        raise InputError(f"tags: at most {authoring.MAX_TAGS} tags of 60 characters")
    # Imported articles arrive as drafts: an editor reads them before readers do.
    return ImportOptions(language=language, tz=site.settings.tz, format=fmt, tags=tags, draft=True)


@router.post("/articles/import")
async def import_article(request: Request, posted: PostsContent) -> Response:
    """Import through the existing importers; show the importer's one-line error on failure."""
    site = site_of(request)
    form = posted.form
    values = {**_defaults(site), **{k: form.get(k, "") for k in ("url", "format", "lang", "tags")}}
    values["text"] = form.get("text", "")
    url = form.get("url", "").strip()
    text = form.get("text", "")
    upload = await _uploaded(request)
    given = [
        kind
        for kind, present in (
            (Origin.URL, bool(url)),
            (Origin.FILE, upload is not None),
            (Origin.TEXT, bool(text.strip())),
        )
        if present
    ]
    now = site.clock.now()
    outcome: ImportOutcome
    try:
        if len(given) != 1:
            raise InputError("give one of: a URL, a file or pasted text")
        options = _options(site, form)
        if given[0] is Origin.URL:
            if len(url) > MAX_URL or not is_url(url):
                raise InputError(f"url: {url[:80]!r} is not an http(s) URL")
            outcome = await import_url(site, url, options, now)
        elif given[0] is Origin.FILE:
            assert upload is not None
            name, data = upload
            outcome = await import_upload(
                site.engine, site.settings.site.base_url, name, data, options, now
            )
        else:
            outcome = await import_upload(
                site.engine,
                site.settings.site.base_url,
                "pasted",
                text.replace("\r\n", "\n").encode("utf-8", "surrogatepass"),
                options,
                now,
                origin_kind="pasted",
            )
    except (InputError, UnicodeEncodeError) as exc:
        message = str(exc) if isinstance(exc, InputError) else "pasted text: not valid Unicode"
        return _form_page(request, posted.editor, values, error=message, status_code=422)
    if outcome.action == "failed":
        return _form_page(request, posted.editor, values, error=outcome.error, status_code=422)
    detail = f"{given[0].value} {outcome.path[:200]}: {outcome.action}"
    await record_action(request, posted.editor, "article.import", outcome.slug, detail, at=now)
    return RedirectResponse(
        f"/admin/articles/{outcome.slug}?imported={outcome.action}", status_code=303
    )
