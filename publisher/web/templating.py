"""Render web pages from templates/web (overridable through site.templates_dir), per language."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from publisher.config import Settings
from publisher.render.i18n import Translations, og_locale, translations
from publisher.resources import template_dirs

HTML_TYPE = "text/html; charset=utf-8"


class PageRenderer:
    """Hold one Jinja environment per language; templates autoescape everything."""

    #: The gettext catalog the pages speak.
    domain = "web"

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
            env.install_gettext_translations(self.catalog(language), newstyle=True)  # type: ignore[attr-defined]
            env.globals["site"] = self.settings.site
            self.configure(env, language)
            self._environments[language] = env
        return env

    def catalog(self, language: str) -> Translations:
        """Return the translations the pages of ``language`` use."""
        return translations(language, self.domain)

    def configure(self, env: Environment, language: str) -> None:
        """Add what this kind of page needs to a new environment."""
        env.globals["og_locale"] = og_locale

    def render(self, name: str, context: dict[str, Any], language: str | None = None) -> str:
        """Render template ``name`` with ``context`` in ``language`` (the site's by default)."""
        language = language or self.settings.site.language
        env = self.environment(language)
        return env.get_template(name).render({"language": language, **context})


def render_page(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    language: str | None = None,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """Render a page through the app's renderer into an HTML response."""
    renderer: PageRenderer = request.app.state.pages
    body = renderer.render(name, {"request_path": request.url.path, **context}, language)
    return HTMLResponse(body, status_code=status_code, headers=headers, media_type=HTML_TYPE)
