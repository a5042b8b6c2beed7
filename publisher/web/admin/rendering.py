"""Render the editors' pages (templates/web/admin) in Indonesian or English."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment

from publisher.config import Settings
from publisher.render.i18n import (
    Translations,
    medium_datetime,
    negotiate_language,
    normalize_language,
    translations,
)
from publisher.web.templating import PageRenderer

LANGUAGES = ("id", "en")
LANGUAGE_COOKIE = "publisher_admin_lang"

#: Every admin response carries these; scripts only from /admin/static, nothing framed.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: https: http:; frame-src 'self'; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'; object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


class AdminRenderer(PageRenderer):
    """The site's page renderer with the "admin" catalog and the editors' filters."""

    domain = "admin"

    def catalog(self, language: str) -> Translations:
        """Return the admin catalog (a site's own in templates_dir wins)."""
        return translations(language, self.domain, self.settings.site.templates_dir)

    def configure(self, env: Environment, language: str) -> None:
        """Add the date and number filters the admin templates use."""
        tz = self.settings.tz
        env.filters["when"] = lambda moment: _when(moment, tz, language)
        # Lists show many dates: a fixed numeric form costs far less than Babel's.
        env.filters["stamp"] = lambda moment: (
            "" if moment is None else moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")
        )
        env.filters["number"] = lambda value: f"{int(value):,}".replace(
            ",", "." if language == "id" else ","
        )


def _when(moment: datetime | None, tz: ZoneInfo, language: str) -> str:
    return "" if moment is None else medium_datetime(moment, tz, language)


def language_of(request: Request, settings: Settings) -> str:
    """Pick the page language: the cookie the switcher sets, Accept-Language, then the site's."""
    chosen = normalize_language(request.cookies.get(LANGUAGE_COOKIE, "")[:20])
    if chosen in LANGUAGES:
        return chosen
    site_language = normalize_language(settings.site.language)
    default = site_language if site_language in LANGUAGES else "en"
    # The admin ships the same languages as the site's pages (weights honoured).
    return negotiate_language(request.headers.get("accept-language", ""), default)


def page(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """Render an admin template into a response (security headers come from the middleware)."""
    renderer: AdminRenderer = request.app.state.admin_pages
    language = language_of(request, renderer.settings)
    body = renderer.render(name, {"request_path": request.url.path, **context}, language)
    return HTMLResponse(body, status_code=status_code, headers=headers)
