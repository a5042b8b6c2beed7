"""Compile MJML to HTML with mjml-python (the only mjml import), then inline its CSS."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mjml import mjml2html

from publisher.errors import TemplateError
from publisher.render.inline import inline_css

# mjml-python (MRML) leaves <mj-style inline="inline"> in a <style> tag: we pull those
# blocks out before compiling and inline them ourselves with css-inline.
_INLINE_STYLE = re.compile(
    r"<mj-style\b[^>]*\binline\s*=\s*[\"']inline[\"'][^>]*>(.*?)</mj-style\s*>", re.S | re.I
)
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_TOKEN = re.compile(
    r"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<(/?)([A-Za-z][\w:.-]*)((?:\s+[^\s=/>]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'>]+))?)*)\s*(/?)>|<",
    re.S,
)
_VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "param",
    "source",
    "track",
    "wbr",
}
_RAW_TEXT = {"mj-style", "style", "script"}
KNOWN_TAGS = {
    "mjml",
    "mj-head",
    "mj-body",
    "mj-attributes",
    "mj-all",
    "mj-class",
    "mj-breakpoint",
    "mj-font",
    "mj-html-attributes",
    "mj-html-attribute",
    "mj-selector",
    "mj-preview",
    "mj-style",
    "mj-title",
    "mj-raw",
    "mj-include",
    "mj-accordion",
    "mj-accordion-element",
    "mj-accordion-title",
    "mj-accordion-text",
    "mj-button",
    "mj-carousel",
    "mj-carousel-image",
    "mj-column",
    "mj-divider",
    "mj-group",
    "mj-hero",
    "mj-image",
    "mj-navbar",
    "mj-navbar-link",
    "mj-section",
    "mj-social",
    "mj-social-element",
    "mj-spacer",
    "mj-table",
    "mj-text",
    "mj-wrapper",
}


@dataclass(frozen=True)
class Problem:
    """Where a markup scan found the first structural fault."""

    offset: int
    message: str


def compile_mjml(source: str, *, template: str, template_text: str = "") -> str:
    """Turn rendered MJML into email HTML with inlined CSS, or raise one TemplateError.

    ``template`` names the Jinja template the MJML came from and ``template_text`` is its
    source, so a fault is reported at the template line the author can fix.
    """
    inline_rules = "\n".join(match[1] for match in _INLINE_STYLE.finditer(source))
    stripped = _INLINE_STYLE.sub("", source)
    problem = scan(stripped)
    if problem is None:
        try:
            html = mjml2html(stripped, disable_comments=True, fonts={})
        except (ValueError, RuntimeError) as exc:
            raise TemplateError(_locate(template, template_text, source, str(exc))) from exc
    else:
        raise TemplateError(_locate(template, template_text, source, problem.message))
    return escape_attribute_values(inline_css(html, inline_rules, where=template))


# What the HTML serializer can write after inlining: comments (Outlook's conditional ones
# included), declarations, raw-text elements whole, start tags with their attributes.
# Text never holds a bare "<" (the serializer writes &lt;), so these are all the tags.
_SERIALIZED = re.compile(
    r"<!--.*?-->|<![^>]*>|<(?:style|script)\b[^>]*>.*?</(?:style|script)\s*>"
    r"|(?P<start><[A-Za-z][^\s/>]*(?:\s+[^\s=/>]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'>]+))?)*\s*/?>)",
    re.S | re.I,
)
_QUOTED_VALUE = re.compile(r"(=\s*)(\"[^\"]*\"|'[^']*')")


def escape_attribute_values(html: str) -> str:
    """Write < and > as entities inside attribute values, leaving text and comments alone.

    css-inline's serializer writes them raw in attributes (legal HTML, but a subject like
    ``<script>`` would then appear verbatim in the aria-label MRML copies it into). Only
    the values of real start tags are touched: text such as ``Budi x="1`` is not a tag.
    """

    def tag(match: re.Match[str]) -> str:
        markup = match["start"]
        if markup is None or ("<" not in markup[1:] and ">" not in markup[:-1]):
            return match[0]
        return _QUOTED_VALUE.sub(
            lambda value: value[1] + value[2].replace("<", "&lt;").replace(">", "&gt;"), markup
        )

    return _SERIALIZED.sub(tag, html)


def scan(markup: str) -> Problem | None:
    """Check that tags nest and close and that every mj-* tag exists; return the first fault."""
    stack: list[tuple[str, int]] = []
    position = 0
    while True:
        match = _TOKEN.search(markup, position)
        if match is None:
            break
        position = match.end()
        if match[0] == "<":
            return Problem(match.start(), "stray '<' (write &lt; for a literal less-than sign)")
        if match[2] is None:
            continue  # comment or CDATA
        closing, name, self_closing = match[1] == "/", match[2].lower(), match[4] == "/"
        if (name.startswith("mj-") or name == "mjml") and name not in KNOWN_TAGS:
            return Problem(match.start(), f"unknown MJML element <{name}>")
        if closing:
            if not stack:
                return Problem(match.start(), f"</{name}> closes nothing")
            open_name, open_at = stack.pop()
            if open_name != name:
                return Problem(
                    open_at if name in {n for n, _ in stack} else match.start(),
                    f"<{open_name}> is not closed before </{name}>",
                )
            continue
        if self_closing or name in _VOID:
            continue
        if name in _RAW_TEXT:
            end = re.compile(rf"</{re.escape(name)}\s*>", re.I).search(markup, position)
            if end is None:
                return Problem(match.start(), f"<{name}> is not closed")
            position = end.end()
            continue
        stack.append((name, match.start()))
    if stack:
        name, offset = stack[-1]
        return Problem(offset, f"<{name}> is not closed")
    if not re.search(r"<mjml\b", markup):
        return Problem(0, "no <mjml> root element")
    return None


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _blank_jinja(text: str) -> str:
    """Replace Jinja tags by spaces (keeping line breaks) so the MJML structure can be scanned."""
    return _JINJA.sub(lambda m: re.sub(r"[^\n]", " ", m[0]), text)


def _locate(template: str, template_text: str, rendered: str, message: str) -> str:
    if template_text:
        in_template = scan(_INLINE_STYLE.sub(_keep_lines, _blank_jinja(template_text)))
        if in_template is not None:
            line = _line_of(template_text, in_template.offset)
            return f"{template}:{line}: invalid MJML: {in_template.message}"
    found = scan(_INLINE_STYLE.sub(_keep_lines, rendered))
    if found is not None:
        line = _line_of(rendered, found.offset)
        return f"{template}: invalid MJML at line {line} of the rendered output: {found.message}"
    return f"{template}: invalid MJML: {message}"


def _keep_lines(match: re.Match[str]) -> str:
    return "\n" * match[0].count("\n")
