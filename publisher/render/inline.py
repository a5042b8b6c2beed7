"""Inline CSS into compiled email HTML (the only css_inline import)."""

from __future__ import annotations

import css_inline

from publisher.errors import TemplateError


def inline_css(html: str, css: str, *, where: str) -> str:
    """Apply ``css`` to the matching elements' style attributes; keep <style> blocks as they are.

    Head styles (media queries, dark mode) must stay in <style>: they cannot be inlined.
    """
    if not css.strip():
        return html
    inliner = css_inline.CSSInliner(
        inline_style_tags=False,
        keep_style_tags=True,
        keep_link_tags=True,
        load_remote_stylesheets=False,
        extra_css=css,
    )
    try:
        return str(inliner.inline(html))
    except (css_inline.InlineError, ValueError) as exc:
        raise TemplateError(f"{where}: invalid inline CSS: {exc}") from exc
