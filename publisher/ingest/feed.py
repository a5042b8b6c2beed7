"""Read RSS and Atom feeds into ArticleDrafts with feedparser (its only import)."""

from __future__ import annotations

import calendar
import codecs
import hashlib
import json
import logging
import re
import xml.sax
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape, unescape
from typing import Any
from zoneinfo import ZoneInfo

import feedparser

from publisher.content.sanitize import MAX_HTML_DEPTH, html_to_text, nesting_depth
from publisher.content.store import ArticleDraft
from publisher.errors import InputError
from publisher.ingest.options import ImportOptions
from publisher.ingest.source import MAX_BYTES, SourceText, to_utc

_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*\bencoding\s*=\s*["']([A-Za-z0-9_.:-]+)["']""")
_HTTP_CHARSET = re.compile(r"charset\s*=\s*\"?([A-Za-z0-9_.:-]+)", re.IGNORECASE)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
MAX_TITLE_CHARS = 120
#: What a malformed entry may raise from deep inside our mapping or feedparser's values;
#: it costs that entry alone, never the rest of the feed.
ENTRY_ERRORS = (InputError, TypeError, ValueError, AttributeError, KeyError, IndexError)
log = logging.getLogger(__name__)


@dataclass
class ParsedFeed:
    """A feed's own title and link, and one draft per entry (newest as the feed lists them)."""

    title: str
    link: str
    version: str
    drafts: list[ArticleDraft] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def parse_feed(
    data: bytes,
    name: str,
    *,
    language: str,
    tz: ZoneInfo,
    tags: list[str] | None = None,
    source_url: str = "",
    content_type: str = "",
) -> ParsedFeed:
    """Parse RSS, Atom or JSON Feed bytes, or raise InputError saying why they are unusable."""
    encoding = _check_bytes(data, name, content_type)
    if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith((b"{", b"[")):
        return _parse_json_feed(
            data, name, language=language, tz=tz, tags=tags or [], source_url=source_url
        )
    headers = {"content-location": source_url} if source_url else {}
    if content_type:
        headers["content-type"] = content_type
    # feedparser's own HTML passes (sanitizing, resolving relative links) take seconds on
    # markup nested thousands deep; such a feed skips them (our store sanitizes anyway and
    # refuses the deep entries) rather than stall the import.
    limit = MAX_HTML_DEPTH + 8  # the feed's own elements nest a few levels too
    deep = nesting_depth(unescape(data.decode(encoding, "replace")), limit) > limit
    try:
        # Always bytes: given a str, feedparser would treat a URL or a path as something to open.
        parsed = feedparser.parse(
            data, response_headers=headers, sanitize_html=not deep, resolve_relative_uris=not deep
        )
    except Exception as exc:  # a few malformed inputs raise instead of setting bozo
        raise InputError(f"{name}: not a readable feed: {type(exc).__name__}: {exc}") from None
    problem = parsed.get("bozo_exception")
    if not parsed.get("version"):
        if isinstance(problem, xml.sax.SAXParseException):
            raise InputError(
                f"{name}:{_line(problem, data)}: not XML ({problem.getMessage()}); "
                "expected an RSS or Atom feed"
            )
        root = _root_name(data)
        raise InputError(f"{name}: XML but not an RSS or Atom feed (root element <{root}>)")
    feed_info = parsed.get("feed", {})
    feed_language = _primary_language(feed_info.get("language", "")) or language
    result = ParsedFeed(
        title=_plain(feed_info.get("title_detail")) or str(feed_info.get("title", "")),
        link=str(feed_info.get("link", "")),
        version=str(parsed.get("version", "")),
    )
    if isinstance(problem, xml.sax.SAXParseException):
        result.warnings.append(
            f"{name}:{_line(problem, data)}: feed is not well-formed XML "
            f"({problem.getMessage()}); imported what could be read"
        )
    key = source_url or result.link or name
    for position, entry in enumerate(parsed.get("entries", []), start=1):
        try:
            draft = _entry_draft(entry, key=key, language=feed_language, tz=tz, tags=tags or [])
            draft.source_url = source_url or result.link
            result.drafts.append(draft)
        except ENTRY_ERRORS as exc:
            result.warnings.append(_skipped(name, "entry", position, exc))
    return result


def _skipped(name: str, kind: str, position: int, exc: Exception) -> str:
    """Describe, in one logged line, an entry left out of an import."""
    reason = str(exc) if isinstance(exc, InputError) else f"unreadable ({type(exc).__name__})"
    message = f"{name}: {kind} {position}: {' '.join(reason.split())[:300]}"
    log.warning("%s", message)
    return message


def _check_bytes(data: bytes, name: str, content_type: str) -> str:
    """Check size and encoding; return the encoding the feed's bytes are in."""
    if len(data) > MAX_BYTES:
        raise InputError(f"{name}: feed is {len(data):,} bytes, over the 10 MB limit")
    if not data.strip():
        raise InputError(f"{name}: feed is empty")
    utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    if b"\x00" in data[:8192] and not utf16:
        raise InputError(f"{name}: binary data (contains NUL bytes), expected an RSS or Atom feed")
    if data.startswith(_BOMS):
        encoding = "utf-16" if utf16 else "utf-8-sig"
    else:
        declared = _XML_ENCODING.match(data)
        charset = _HTTP_CHARSET.search(content_type)
        if declared:
            encoding = declared[1].decode("ascii")
        elif charset:
            encoding = charset[1]
        else:
            encoding = "utf-8"
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise InputError(f"{name}:1: unknown character encoding {encoding!r}") from None
    try:
        data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{name}:{line}: not valid {encoding} text (byte 0x{data[exc.start]:02x})"
        ) from None
    return encoding


def _line(problem: xml.sax.SAXParseException, data: bytes) -> int:
    line = int(problem.getLineNumber() or 1)
    # feedparser prepends an XML declaration line to documents that lack one.
    if not data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<?xml"):
        line -= 1
    return max(line, 1)


def _root_name(data: bytes) -> str:
    match = re.search(rb"<([A-Za-z_][\w:.-]*)", re.sub(rb"<[?!][^>]*>", b"", data[:4096]))
    return match[1].decode("ascii", "replace") if match else "?"


def _primary_language(value: object) -> str:
    text = str(value or "").strip().lower().replace("_", "-")
    return text.split("-")[0] if re.fullmatch(r"[a-z]{2,3}(-[a-z0-9]+)*", text) else ""


def _plain(detail: Any) -> str:
    """Return a feed text construct as plain text, whatever its declared type."""
    if not detail:
        return ""
    value = str(detail.get("value", ""))
    if "html" in str(detail.get("type", "")):
        return " ".join(html_to_text(value).split())
    return " ".join(value.split())


def _when(entry: Any, key: str, tz: ZoneInfo) -> datetime | None:
    if key not in entry:
        # feedparser would answer a missing "updated" with "published" (and a warning).
        return None
    raw = str(entry.get(key, "") or "").strip()
    if raw and _ISO_DATE.match(raw):
        try:
            # An ISO date without a zone is in the site's zone, not UTC as feedparser assumes.
            return to_utc(raw, tz, key)
        except InputError:
            pass
    parsed = entry.get(f"{key}_parsed") if f"{key}_parsed" in entry else None
    if parsed:
        try:
            return datetime.fromtimestamp(calendar.timegm(parsed), UTC)
        except (OverflowError, ValueError, TypeError):
            return None
    return None


def _body(entry: Any) -> str:
    contents = entry.get("content") or []
    chosen = None
    for content in contents:
        if "html" in str(content.get("type", "")):
            chosen = content
            break
    chosen = chosen or (contents[0] if contents else entry.get("summary_detail"))
    if not chosen:
        return ""
    value = str(chosen.get("value", "")).strip()
    if "html" in str(chosen.get("type", "text/html")) and "<" in value:
        return value
    if "html" in str(chosen.get("type", "text/html")):
        value = html_to_text(value)  # entity-escaped plain text, e.g. an RSS description
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", value) if p.strip()]
    return "\n".join(f"<p>{escape(p, quote=False)}</p>" for p in paragraphs)


def _image(entry: Any) -> dict[str, Any]:
    for enclosure in entry.get("enclosures") or []:
        href = str(enclosure.get("href", ""))
        if href and str(enclosure.get("type", "")).startswith("image/"):
            return {
                "image_url": href,
                "image_type": str(enclosure.get("type", "")),
                "image_length": _int(enclosure.get("length")),
            }
    for media in entry.get("media_content") or []:
        url = str(media.get("url", ""))
        is_image = media.get("medium") == "image" or str(media.get("type", "")).startswith("image/")
        if url and is_image:
            return {
                "image_url": url,
                "image_type": str(media.get("type", "")),
                "image_length": _int(media.get("filesize")),
                "image_width": _int(media.get("width")),
                "image_height": _int(media.get("height")),
            }
    for thumbnail in entry.get("media_thumbnail") or []:
        url = str(thumbnail.get("url", ""))
        if url:
            return {
                "image_url": url,
                "image_width": _int(thumbnail.get("width")),
                "image_height": _int(thumbnail.get("height")),
            }
    return {}


def _int(value: object) -> int:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return 0
    return number if 0 <= number < 2**62 else 0


def _entry_draft(
    entry: Any, *, key: str, language: str, tz: ZoneInfo, tags: list[str]
) -> ArticleDraft:
    link = str(entry.get("link", "") or "").strip()
    body = _body(entry)
    title = _plain(entry.get("title_detail")) or " ".join(str(entry.get("title", "")).split())
    if not title:
        words = html_to_text(body).split()
        title = " ".join(words[:12])
        if len(title) > MAX_TITLE_CHARS:
            title = title[:MAX_TITLE_CHARS].rsplit(" ", 1)[0]
        title = title + ("…" if len(words) > 12 else "")
    if not title:
        raise InputError("has no title and no content")
    if not body.strip():
        body = f"<p>{escape(title, quote=False)}</p>"
    entry_id = str(entry.get("id", "") or "").strip() or link
    if not entry_id:
        digest = hashlib.sha256(f"{title}\n{body}".encode()).hexdigest()[:16]
        entry_id = f"sha256:{digest}"
    # Ids like "1" or "post-7" are only unique within their feed; URIs are global.
    external_id = entry_id if ":" in entry_id else f"{key}#{entry_id}"
    published = _when(entry, "published", tz) or _when(entry, "created", tz)
    updated = _when(entry, "updated", tz)
    if published is None:
        published = updated
    if updated is not None and published is not None and updated < published:
        updated = published
    author_detail = entry.get("author_detail") or {}
    author = str(author_detail.get("name", "") or "") or str(entry.get("author", "") or "")
    entry_tags = [
        str(tag.get("label") or tag.get("term") or "")
        for tag in entry.get("tags") or []
        if tag.get("label") or tag.get("term")
    ]
    credit = ""
    credits = entry.get("media_credit") or []
    if credits and isinstance(credits[0], dict):
        credit = str(credits[0].get("content", "") or "")
    image = _image(entry)
    return ArticleDraft(
        title=title,
        body_html=body,
        body_source="",
        source_format="feed",
        author=author,
        language=_primary_language(entry.get("language")) or language,
        tags=[*entry_tags, *tags],
        image_credit=credit if image else "",
        canonical_url=link,
        origin=external_id,
        external_id=external_id[:1000],
        published_at=published,
        updated_at=updated,
        **image,
    )


def reject_feed_file(source: SourceText, options: ImportOptions) -> ArticleDraft:
    """Point `articles add` at `articles import-feed` when handed a feed."""
    raise InputError(
        f"{source.path}:1: this is an RSS or Atom feed; import its entries with "
        f"`publisher articles import-feed {source.path}`"
    )


def _parse_json_feed(
    data: bytes, name: str, *, language: str, tz: ZoneInfo, tags: list[str], source_url: str
) -> ParsedFeed:
    """Read JSON Feed 1.0/1.1 (feedparser 6 reads only XML feeds)."""
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise InputError(f"{name}: not valid utf-8 text (byte 0x{data[exc.start]:02x})") from None
    except ValueError as exc:
        line = getattr(exc, "lineno", 1)
        raise InputError(f"{name}:{line}: not XML or JSON ({exc}); expected a feed") from None
    version = document.get("version") if isinstance(document, dict) else None
    if not isinstance(version, str) or "jsonfeed.org" not in version:
        raise InputError(f"{name}: JSON but not a JSON Feed (no jsonfeed.org version)")
    items = document.get("items")
    if not isinstance(items, list):
        raise InputError(f"{name}: JSON Feed without an items list")
    result = ParsedFeed(
        title=_json_text(document.get("title")),
        link=_json_text(document.get("home_page_url")),
        version="json" + version.rstrip("/").rsplit("/", 1)[-1].replace(".", ""),
    )
    feed_language = _primary_language(document.get("language")) or language
    feed_author = _json_author(document)
    key = source_url or result.link or name
    for position, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            result.warnings.append(_skipped(name, "item", position, InputError("not an object")))
            continue
        try:
            entry = _json_entry(item, feed_author)
            draft = _entry_draft(entry, key=key, language=feed_language, tz=tz, tags=tags)
        except ENTRY_ERRORS as exc:
            result.warnings.append(_skipped(name, "item", position, exc))
            continue
        draft.source_url = source_url or result.link
        result.drafts.append(draft)
    return result


def _json_text(value: object) -> str:
    return " ".join(value.split()) if isinstance(value, str) else ""


def _json_number(value: object) -> str:
    """Return an integer id as text (JSON Feed 1.0 allowed numbers); "" for anything else."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else ""


def _json_list(value: object) -> list[Any]:
    """Return a JSON Feed list member, or [] when the feed put something else there."""
    return value if isinstance(value, list) else []


def _json_author(holder: dict[str, Any]) -> str:
    authors = holder.get("authors")
    if isinstance(authors, list) and authors and isinstance(authors[0], dict):
        return _json_text(authors[0].get("name"))
    author = holder.get("author")  # JSON Feed 1.0
    return _json_text(author.get("name")) if isinstance(author, dict) else ""


def _json_entry(item: dict[str, Any], feed_author: str) -> dict[str, Any]:
    """Shape a JSON Feed item like a feedparser entry, so one mapping serves both."""
    entry: dict[str, Any] = {
        "id": _json_text(item.get("id")) or _json_number(item.get("id")),
        "link": _json_text(item.get("url")) or _json_text(item.get("external_url")),
        "title": _json_text(item.get("title")),
        "author": _json_author(item) or feed_author,
        "tags": [{"term": t} for t in _json_list(item.get("tags")) if isinstance(t, str)],
        "language": item.get("language"),
    }
    if isinstance(item.get("content_html"), str):
        entry["content"] = [{"type": "text/html", "value": item["content_html"]}]
    elif isinstance(item.get("content_text"), str):
        entry["content"] = [{"type": "text/plain", "value": item["content_text"]}]
    elif isinstance(item.get("summary"), str):
        entry["summary_detail"] = {"type": "text/plain", "value": item["summary"]}
    for key, field_name in (("published", "date_published"), ("updated", "date_modified")):
        if isinstance(item.get(field_name), str):
            entry[key] = item[field_name]
    image = _json_text(item.get("image")) or _json_text(item.get("banner_image"))
    if image:
        entry["media_content"] = [{"url": image, "medium": "image"}]
    for attachment in _json_list(item.get("attachments")):
        if isinstance(attachment, dict) and str(attachment.get("mime_type", "")).startswith(
            "image/"
        ):
            entry["enclosures"] = [
                {
                    "href": _json_text(attachment.get("url")),
                    "type": attachment.get("mime_type"),
                    "length": attachment.get("size_in_bytes"),
                }
            ]
            break
    return entry
