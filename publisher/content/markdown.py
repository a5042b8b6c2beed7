"""Render Markdown to HTML with markdown-it-py (the only markdown-it import)."""

from __future__ import annotations

from markdown_it import MarkdownIt

_renderer = MarkdownIt("commonmark", {"html": True, "typographer": False}).enable(
    ["table", "strikethrough"]
)


def render_markdown(source: str) -> str:
    """Render CommonMark (plus tables and strikethrough) to unsanitized HTML."""
    html: str = _renderer.render(source)
    return html
