"""Sanitize article HTML with nh3 (the only nh3 import) and derive plain text from it."""

from __future__ import annotations

import html
import re
from urllib.parse import urljoin, urlsplit

import nh3

from publisher.errors import InputError

ALLOWED_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "caption",
    "cite",
    "code",
    "dd",
    "del",
    "details",
    "dfn",
    "div",
    "dl",
    "dt",
    "em",
    "figcaption",
    "figure",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "ins",
    "kbd",
    "li",
    "mark",
    "ol",
    "p",
    "picture",
    "pre",
    "q",
    "s",
    "samp",
    "small",
    "source",
    "span",
    "strong",
    "sub",
    "summary",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "time",
    "tr",
    "u",
    "ul",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title", "hreflang"},
    "img": {"src", "alt", "title", "width", "height", "loading"},
    "source": {"srcset", "type", "media"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "time": {"datetime"},
    "ol": {"start", "reversed"},
    "abbr": {"title"},
    "q": {"cite"},
    "blockquote": {"cite"},
    "*": {"lang", "dir"},
}
URL_ATTRIBUTES = {("a", "href"), ("img", "src"), ("q", "cite"), ("blockquote", "cite")}
URL_SCHEMES = {"http", "https", "mailto"}

# C0 controls (except tab, LF, CR), DEL and C1 controls are invalid in XML 1.0 or
# invisible junk from scraped pages; lone surrogates cannot be encoded at all.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_BLOCK_END = re.compile(r"</(p|div|h[1-6]|li|blockquote|figcaption|tr|pre)>|<br\s*/?>", re.I)
_FIRST_PARAGRAPH = re.compile(r"<p(?:\s[^>]*)?>(.*?)</p>", re.I | re.S)
_SPACE = re.compile(r"[ \t\r\f\v]+")
# Bidi embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069) and the marks
# (U+200E, U+200F, U+061C) let a title display other than it reads ("gpj.exe"); one-line
# fields never need them, the bidi algorithm orders plain text well enough.
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")

#: The sanitizer's work grows with the square of the nesting depth (40,000 nested
#: <div> took 17 s), so deeper markup is refused before it gets there.
MAX_HTML_DEPTH = 256
#: Markup larger than this (in characters) is refused before parsing.
MAX_HTML_CHARS = 2 * 1024 * 1024
_TAG = re.compile(r"<!--.*?-->|<(/?)([a-zA-Z][a-zA-Z0-9:-]*)([^>]*)>", re.S)
_VOID = frozenset(
    {
        *("area", "base", "br", "col", "embed", "hr", "img"),
        *("input", "link", "meta", "param", "source", "track", "wbr"),
    }
)
# Elements an HTML parser closes by itself when a sibling of the same kind opens.
_SELF_CLOSING_SIBLINGS = frozenset(["p", "li", "dt", "dd", "tr", "td", "th", "option"])


def strip_controls(text: str) -> str:
    """Remove characters that XML forbids and that no reader can see."""
    return _CONTROL.sub("", text)


def clean_line(text: str) -> str:
    """Make a one-line plain-text field (title, author, caption, Subject).

    No controls, no bidi overrides or marks, no line breaks.
    """
    return " ".join(_BIDI.sub("", strip_controls(text)).split())


def nesting_depth(fragment: str, limit: int = MAX_HTML_DEPTH) -> int:
    """Estimate how deep an HTML parser would nest ``fragment``'s elements.

    Counting stops once past ``limit``, so the work stays linear in the input.
    """
    stack: list[str] = []
    deepest = 0
    for match in _TAG.finditer(fragment):
        name = match[2]
        if name is None:
            continue  # a comment
        name = name.lower()
        if match[1]:
            for position in range(len(stack) - 1, -1, -1):
                if stack[position] == name:
                    del stack[position:]
                    break
            continue
        if name in _VOID or match[3].endswith("/"):
            continue
        if stack and stack[-1] == name and name in _SELF_CLOSING_SIBLINGS:
            stack.pop()
        stack.append(name)
        deepest = max(deepest, len(stack))
        if deepest > limit:
            break
    return deepest


def check_markup(fragment: str) -> None:
    """Raise InputError when markup is too large or too deeply nested to parse safely."""
    if len(fragment) > MAX_HTML_CHARS:
        raise InputError(
            f"HTML is {len(fragment):,} characters, over the limit of {MAX_HTML_CHARS:,}"
        )
    depth = nesting_depth(fragment)
    if depth > MAX_HTML_DEPTH:
        raise InputError(f"HTML is nested more than {MAX_HTML_DEPTH} elements deep; flatten it")


def sanitize_html(body: str, base_url: str) -> str:
    """Keep only safe markup, with every link and image made absolute against ``base_url``.

    Raise InputError when the markup is over the size or nesting limits.
    """
    check_markup(body)
    base = base_url.rstrip("/") + "/"

    def absolutize(tag: str, attribute: str, value: str) -> str | None:
        if attribute == "srcset":
            return _srcset(value, base)
        if (tag, attribute) in URL_ATTRIBUTES:
            value = value.strip()
            if value.startswith("#"):
                return value
            absolute = urljoin(base, value)
            if urlsplit(absolute).scheme not in URL_SCHEMES:
                return None
            return absolute
        return value

    return nh3.clean(
        strip_controls(body),
        tags=ALLOWED_TAGS,
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        url_schemes=URL_SCHEMES,
        attribute_filter=absolutize,
        link_rel="noopener",
        strip_comments=True,
    ).strip()


def _srcset(value: str, base: str) -> str | None:
    """Keep the http(s) candidates of a srcset, absolute; None when none is left."""
    kept: list[str] = []
    position, end = 0, len(value)
    while position < end:
        # Candidates are "URL [descriptor]" split by commas; a URL itself may hold commas
        # (data:image/png;base64,...), so it runs to the next space, as browsers read it.
        while position < end and (value[position].isspace() or value[position] == ","):
            position += 1
        start = position
        while position < end and not value[position].isspace():
            position += 1
        url, descriptor = value[start:position], ""
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            comma = value.find(",", position)
            stop = end if comma == -1 else comma
            descriptor = " ".join(value[position:stop].split())
            position = stop + 1
        if not url:
            continue
        absolute = urljoin(base, url)
        if urlsplit(absolute).scheme in ("http", "https"):
            kept.append(f"{absolute} {descriptor}".strip())
    return ", ".join(kept) or None


def absolute_url(url: str, base_url: str) -> str:
    """Resolve a possibly relative URL against the site; drop non-web schemes."""
    url = strip_controls(url).strip()
    if not url:
        return ""
    absolute = urljoin(base_url.rstrip("/") + "/", url)
    return absolute if urlsplit(absolute).scheme in ("http", "https") else ""


def html_to_text(fragment: str) -> str:
    """Return the visible text of an HTML fragment, one line per block.

    Raise InputError when the markup is over the size or nesting limits.
    """
    check_markup(fragment)
    with_breaks = _BLOCK_END.sub("\n", fragment)
    text = html.unescape(nh3.clean(with_breaks, tags=set()))
    lines = (_SPACE.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def first_paragraph_text(fragment: str) -> str:
    """Return the plain text of the first non-empty paragraph (the default summary)."""
    for match in _FIRST_PARAGRAPH.finditer(fragment):
        text = " ".join(html_to_text(match[1]).split())
        if text:
            return text
    return " ".join(html_to_text(fragment).split()[:60])


def escape(text: str) -> str:
    """Escape text for HTML element content and quoted attributes."""
    return html.escape(text, quote=True)
