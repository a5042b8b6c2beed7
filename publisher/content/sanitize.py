"""Sanitize article HTML with nh3 (the only nh3 import) and derive plain text from it."""

from __future__ import annotations

import html
import re
from urllib.parse import urljoin, urlsplit

import nh3

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


def strip_controls(text: str) -> str:
    """Remove characters that XML forbids and that no reader can see."""
    return _CONTROL.sub("", text)


def clean_line(text: str) -> str:
    """Make a one-line plain-text field (title, author, caption): no controls, no line breaks."""
    return " ".join(strip_controls(text).split())


def sanitize_html(body: str, base_url: str) -> str:
    """Keep only safe markup, with every link and image made absolute against ``base_url``."""
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
    """Return the visible text of an HTML fragment, one line per block."""
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
