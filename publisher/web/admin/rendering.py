"""Render the editors' pages (templates/web/admin) in Indonesian or English."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from publisher.config import Settings
from publisher.render.i18n import medium_datetime, normalize_language, translations
from publisher.resources import template_dirs

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


class AdminRenderer:
    """One Jinja environment per language over templates/web, with the "admin" catalog."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._loader = FileSystemLoader(
            [str(path) for path in template_dirs(settings.site.templates_dir, "web")]
        )
        self._environments: dict[str, Environment] = {}

    def environment(self, language: str) -> Environment:
        """Return the environment whose gettext speaks ``language``."""
        env = self._environments.get(language)
        if env is None:
            env = Environment(
                loader=self._loader,
                autoescape=select_autoescape(default=True, default_for_string=True),
                extensions=["jinja2.ext.i18n"],
                trim_blocks=True,
                lstrip_blocks=True,
            )
            catalog = translations(language, "admin", self.settings.site.templates_dir)
            env.install_gettext_translations(catalog, newstyle=True)  # type: ignore[attr-defined]
            env.globals["site"] = self.settings.site
            tz = self.settings.tz
            env.filters["when"] = lambda moment: _when(moment, tz, language)
            # Lists show many dates: a fixed numeric form costs far less than Babel's.
            env.filters["stamp"] = lambda moment: (
                "" if moment is None else moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")
            )
            env.filters["number"] = lambda value: f"{int(value):,}".replace(
                ",", "." if language == "id" else ","
            )
            self._environments[language] = env
        return env

    def render(self, name: str, context: dict[str, Any], language: str) -> str:
        """Render template ``name`` in ``language``."""
        return (
            self.environment(language).get_template(name).render({"language": language, **context})
        )


def _when(moment: datetime | None, tz: ZoneInfo, language: str) -> str:
    return "" if moment is None else medium_datetime(moment, tz, language)


def language_of(request: Request, settings: Settings) -> str:
    """Pick the page language: the cookie the switcher sets, Accept-Language, then the site's."""
    chosen = normalize_language(request.cookies.get(LANGUAGE_COOKIE, "")[:20])
    if chosen in LANGUAGES:
        return chosen
    for part in request.headers.get("accept-language", "")[:200].split(","):
        language = normalize_language(part.split(";")[0])
        if language in LANGUAGES:
            return language
    site_language = normalize_language(settings.site.language)
    return site_language if site_language in LANGUAGES else "en"


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
