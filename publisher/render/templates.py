"""The Jinja environment for email templates: the user's folder first, autoescape always on."""

from __future__ import annotations

import functools
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2

from publisher.errors import TemplateError
from publisher.render.i18n import translations
from publisher.resources import template_dirs


def environment(user_dir: Path | None, language: str, kind: str = "email") -> jinja2.Environment:
    """Return the cached environment for one templates folder and language."""
    return _environment(user_dir, language, kind)


@functools.cache
def _environment(user_dir: Path | None, language: str, kind: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in template_dirs(user_dir, kind)]),
        # Every template is markup (.mjml.j2 included): escape every value by default.
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=True,
    )
    env.install_gettext_translations(  # type: ignore[attr-defined]
        translations(language, kind, user_dir), newstyle=True
    )
    return env


def template_source(env: jinja2.Environment, name: str) -> tuple[str, str]:
    """Return the source text and file path of a template."""
    assert env.loader is not None
    source, filename, _ = env.loader.get_source(env, name)
    return source, filename or name


def render(env: jinja2.Environment, name: str, context: dict[str, Any]) -> str:
    """Render one template, turning any Jinja failure into a TemplateError with name:line."""
    try:
        template = env.get_template(name)
        return template.render(context)
    except jinja2.TemplateSyntaxError as exc:
        where = exc.filename or exc.name or name
        raise TemplateError(f"{where}:{exc.lineno}: {exc.message}") from exc
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(f"template not found: {exc.name}") from exc
    except Exception as exc:
        where = _template_frame(exc.__traceback__) or name
        raise TemplateError(f"{where}: {type(exc).__name__}: {exc}") from exc


def _template_frame(tb: TracebackType | None) -> str:
    """Find the innermost template file and line in a traceback Jinja rewrote."""
    found = ""
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith((".j2", ".mjml", ".html", ".txt")):
            found = f"{filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return found


def clear_cache() -> None:
    """Forget environments (tests switch template folders and catalogs)."""
    _environment.cache_clear()
