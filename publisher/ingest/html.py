"""Import an HTML page: the main article and its metadata, via trafilatura (its only import)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import urljoin, urlsplit

import trafilatura
from trafilatura.utils import load_html

from publisher.content.sanitize import MAX_HTML_DEPTH, nesting_depth
from publisher.content.store import ArticleDraft
from publisher.errors import InputError
from publisher.ingest.options import ImportOptions
from publisher.ingest.source import SourceText, decode_text, to_utc
from publisher.ingest.text import split_credit

ARTICLE_TYPES = {
    "article",
    "newsarticle",
    "reportagenewsarticle",
    "analysisnewsarticle",
    "opinionnewsarticle",
    "blogposting",
    "liveblogposting",
    "report",
    "webpage",
}
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_INLINE = {
    "#b": "strong",
    "#strong": "strong",
    "#i": "em",
    "#em": "em",
    "#u": "u",
    "#t": "code",
    "#sub": "sub",
    "#sup": "sup",
    "#del": "del",
}
_CREDIT_CLASS = re.compile(r"credit|copyright|source|author|photographer", re.IGNORECASE)
_SCRIPTS = re.compile(r"<(script|style|template)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)


def parse_html(source: SourceText, options: ImportOptions, *, url: str = "") -> ArticleDraft:
    """Extract the main article of an HTML page into an ArticleDraft, or raise InputError."""
    name = url or str(source.path)
    # libxml2 silently drops what lies deeper than 256 elements: refuse such a page
    # instead of importing a truncated article (scripts and styles do not nest).
    if nesting_depth(_SCRIPTS.sub("", source.text)) > MAX_HTML_DEPTH:
        raise InputError(f"{name}:1: HTML is nested more than {MAX_HTML_DEPTH} elements deep")
    try:
        tree = load_html(source.text)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{name}:1: not an HTML page ({exc})") from None
    if tree is None:
        raise InputError(f"{name}:1: not an HTML page (nothing to parse)")
    page = _Page(tree, url)
    try:
        document = trafilatura.bare_extraction(
            tree,
            url=url or None,
            with_metadata=True,
            include_comments=False,
            include_images=True,
            include_links=True,
            include_formatting=True,
            include_tables=True,
        )
    except Exception as exc:  # trafilatura raises assorted errors on hostile markup
        raise InputError(f"{name}:1: cannot extract an article: {exc}") from exc
    if document is None:
        raise InputError(f"{name}:1: no article text found on the page")
    # bare_extraction returned a dict before trafilatura 1.5 and a Document since.
    fields: dict[str, Any] = document if isinstance(document, dict) else document.as_dict()
    title = _text(fields.get("title")) or page.meta("og:title") or page.title()
    if not title:
        raise InputError(f"{name}:1: no title found (no <title>, og:title or headline)")
    page_url = page.canonical() or url
    base = page_url or url
    lead_image = _absolute(page.meta("og:image") or page.meta("twitter:image"), base)
    jsonld = page.article_jsonld()
    lead_image = lead_image or _absolute(_jsonld_image_url(jsonld.get("image")), base)
    caption, credit = page.lead_caption(lead_image, base)
    if not caption:
        caption, credit = split_credit(_jsonld_image_caption(jsonld.get("image")))
    body = fields.get("body")
    body_html = _serialize(body, base=base, skip_heading=title, skip_image=lead_image)
    if not body_html.strip():
        raise InputError(f"{name}:1: no article text found on the page")
    author = (
        _text(fields.get("author"))
        or page.meta("author")
        or page.meta("article:author")
        or _jsonld_author(jsonld.get("author"))
    )
    published = (
        page.when(page.meta("article:published_time"), options)
        or page.when(_text(jsonld.get("datePublished")), options)
        or page.when(page.meta("og:published_time") or page.meta("pubdate"), options)
        or page.when(page.meta("date") or page.meta("dc.date.issued"), options)
        or page.when(_text(fields.get("date")), options)
    )
    updated = page.when(page.meta("article:modified_time"), options) or page.when(
        _text(jsonld.get("dateModified")) or page.meta("og:updated_time"), options
    )
    if updated is not None and published is not None and updated < published:
        updated = None
    return ArticleDraft(
        title=title,
        body_html=body_html,
        body_source=source.text,
        source_format="html",
        summary=_text(fields.get("description")) or page.meta("og:description"),
        author=author,
        language=options.language,
        tags=page.metas("article:tag")[:10],
        image_url=lead_image,
        image_caption=caption,
        image_credit=credit,
        canonical_url=page_url,
        source_url=url,
        origin=url or str(source.path.resolve()),
        external_id=url or None,
        published_at=published,
        updated_at=updated,
    )


def decode_html(data: bytes, content_type: str, name: str) -> str:
    """Decode a fetched page using its HTTP or <meta> charset, else as UTF-8."""
    charset = ""
    match = re.search(r"charset\s*=\s*\"?([A-Za-z0-9_.:-]+)", content_type)
    if match:
        charset = match[1]
    else:
        meta = _CHARSET.search(data[:4096])
        if meta:
            charset = meta[1].decode("ascii")
    if charset and charset.lower().replace("_", "-") not in ("utf-8", "utf8"):
        try:
            return decode_text(data.decode(charset).encode("utf-8"), name)
        except (LookupError, UnicodeDecodeError):
            raise InputError(f"{name}: cannot decode the page as {charset}") from None
    return decode_text(data, name)


def _text(value: object) -> str:
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, list) and value and isinstance(value[0], str):
        return " ".join(value[0].split())
    return ""


def _absolute(url: str, base: str) -> str:
    url = url.strip()
    if not url:
        return ""
    absolute = urljoin(base, url) if base else url
    return absolute if urlsplit(absolute).scheme in ("http", "https") else ""


class _Page:
    """Read metadata straight from the parsed page (meta tags, links, JSON-LD, figures)."""

    def __init__(self, tree: Any, url: str) -> None:
        self.tree = tree
        self.url = url
        self._metas: dict[str, list[str]] = {}
        for element in tree.iter("meta"):
            key = (element.get("property") or element.get("name") or "").strip().lower()
            content = element.get("content")
            if key and content and content.strip():
                self._metas.setdefault(key, []).append(" ".join(content.split()))

    def meta(self, key: str) -> str:
        values = self._metas.get(key)
        return values[0] if values else ""

    def metas(self, key: str) -> list[str]:
        return list(dict.fromkeys(self._metas.get(key, [])))

    def title(self) -> str:
        for element in self.tree.iter("title"):
            return " ".join((element.text_content() or "").split())
        return ""

    def canonical(self) -> str:
        for element in self.tree.iter("link"):
            rel = (element.get("rel") or "").lower().split()
            if "canonical" in rel and element.get("href"):
                return _absolute(element.get("href"), self.url)
        return _absolute(self.meta("og:url"), self.url)

    def when(self, value: str, options: ImportOptions) -> datetime | None:
        if not value:
            return None
        try:
            return to_utc(value, options.tz, "date")
        except InputError:
            return None

    def article_jsonld(self) -> dict[str, Any]:
        for element in self.tree.iter("script"):
            if (element.get("type") or "").strip().lower() != "application/ld+json":
                continue
            try:
                data = json.loads(element.text or "")
            except ValueError:
                continue
            for item in _jsonld_items(data):
                kinds = item.get("@type")
                names = kinds if isinstance(kinds, list) else [kinds]
                if any(isinstance(k, str) and k.lower() in ARTICLE_TYPES for k in names):
                    return item
        return {}

    def lead_caption(self, image_url: str, base: str) -> tuple[str, str]:
        """Return (caption, credit) of the figure showing the lead image, else the first one."""
        figures = list(self.tree.iter("figure"))
        chosen = None
        for figure in figures:
            for image in figure.iter("img"):
                if image_url and _absolute(image.get("src") or "", base) == image_url:
                    chosen = figure
                    break
            if chosen is not None:
                break
        if chosen is None and figures and not image_url:
            chosen = figures[0]
        if chosen is None:
            return "", ""
        for caption in chosen.iter("figcaption"):
            credit = ""
            for child in caption.iter():
                classes = child.get("class") or ""
                if child is not caption and (
                    child.tag in ("small", "cite") or _CREDIT_CLASS.search(classes)
                ):
                    credit = " ".join((child.text_content() or "").split())
                    child.drop_tree()
                    break
            text = " ".join((caption.text_content() or "").split())
            if credit:
                return text, credit.strip("()")
            return split_credit(text)
        return "", ""


def _jsonld_items(data: Any) -> Iterator[dict[str, Any]]:
    if isinstance(data, list):
        for item in data:
            yield from _jsonld_items(item)
    elif isinstance(data, dict):
        yield data
        graph = data.get("@graph")
        if isinstance(graph, list):
            yield from _jsonld_items(graph)


def _jsonld_author(value: Any) -> str:
    if isinstance(value, list):
        names = [_jsonld_author(item) for item in value]
        return ", ".join(name for name in names if name)
    if isinstance(value, dict):
        return _text(value.get("name"))
    return _text(value)


def _jsonld_image_url(value: Any) -> str:
    if isinstance(value, list):
        return _jsonld_image_url(value[0]) if value else ""
    if isinstance(value, dict):
        return _text(value.get("url") or value.get("contentUrl"))
    return _text(value)


def _jsonld_image_caption(value: Any) -> str:
    if isinstance(value, list):
        return _jsonld_image_caption(value[0]) if value else ""
    if isinstance(value, dict):
        return _text(value.get("caption"))
    return ""


def _serialize(body: Any, *, base: str, skip_heading: str, skip_image: str) -> str:
    """Write trafilatura's XML body as simple HTML (the store sanitizes it afterwards)."""
    if body is None:
        return ""
    out: list[str] = []
    skipped_title = False
    for child in body:
        if (
            not skipped_title
            and child.tag == "head"
            and " ".join(child.itertext()).split() == skip_heading.split()
        ):
            skipped_title = True
            continue
        _write(child, out, base, skip_image)
        out.append("\n")
    return "".join(out).strip()


def _write(element: Any, out: list[str], base: str, skip_image: str) -> None:
    tag = element.tag if isinstance(element.tag, str) else ""
    html_tag = ""
    attributes = ""
    if tag == "head":
        level = (element.get("rend") or "h2").lstrip("h")
        html_tag = f"h{min(max(int(level), 2), 6)}" if level.isdigit() else "h2"
    elif tag == "hi":
        html_tag = _INLINE.get(element.get("rend") or "", "em")
    elif tag == "list":
        html_tag = "ol" if (element.get("rend") or "").startswith("ol") else "ul"
    elif tag == "graphic":
        src = _absolute(element.get("src") or "", base)
        if src and src != skip_image:
            alt = escape(element.get("alt") or "", quote=True)
            out.append(f'<img src="{escape(src, quote=True)}" alt="{alt}">')
        out.append(escape(element.tail or "", quote=False))
        return
    elif tag == "lb":
        out.append("<br>")
        out.append(escape(element.tail or "", quote=False))
        return
    elif tag == "ref":
        href = _absolute(element.get("target") or "", base)
        html_tag = "a" if href else ""
        attributes = f' href="{escape(href, quote=True)}"' if href else ""
    elif tag == "cell":
        html_tag = "th" if element.get("role") == "head" else "td"
    else:
        html_tag = {
            "p": "p",
            "item": "li",
            "quote": "blockquote",
            "code": "pre",
            "table": "table",
            "row": "tr",
            "del": "del",
            "div": "div",
        }.get(tag, "")
    if html_tag:
        out.append(f"<{html_tag}{attributes}>")
    out.append(escape(element.text or "", quote=False))
    for child in element:
        _write(child, out, base, skip_image)
    if html_tag:
        out.append(f"</{html_tag}>")
    out.append(escape(element.tail or "", quote=False))
