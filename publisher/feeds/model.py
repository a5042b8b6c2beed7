"""What a feed document holds, independent of its format, and where each one lives."""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urljoin, urlsplit

from publisher.content.models import Article
from publisher.content.sanitize import clean_line, html_to_text, strip_controls

Format = Literal["rss", "atom", "json"]
ScopeKind = Literal["site", "tag", "author"]

#: File name of each format, the same on the server and in a static build.
FILE_NAMES: dict[Format, str] = {"rss": "feed.xml", "atom": "atom.xml", "json": "feed.json"}
FORMAT_OF_FILE: dict[str, Format] = {name: fmt for fmt, name in FILE_NAMES.items()}
MEDIA_TYPES: dict[Format, str] = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
    "json": "application/feed+json; charset=utf-8",
}
#: The time of a feed with no entries: fixed, so an empty feed has stable bytes too.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_ARCHIVE_KEY = re.compile(r"^(\d{20})-([1-9]\d{0,17})$")
_SRCSET = re.compile(r'(\ssrcset=")([^"]*)(")')


@dataclass(frozen=True)
class Scope:
    """Which articles a feed carries: the whole site, one tag or one author."""

    kind: ScopeKind = "site"
    key: str = ""

    @property
    def prefix(self) -> str:
        """Return the path prefix of this scope's feeds ("" or "tags/x/" or "authors/y/")."""
        if self.kind == "tag":
            return f"tags/{self.key}/"
        if self.kind == "author":
            return f"authors/{self.key}/"
        return ""


@dataclass(frozen=True)
class FeedPath:
    """One feed document: its scope, its format and its archive page ("" = current)."""

    scope: Scope
    format: Format
    #: The key of an archive page's newest entry (see archive_key), "" for the current feed.
    archive: str = ""

    def path(self) -> str:
        """Return the path relative to the site root, without a leading slash."""
        page = f"archive/{self.archive}/" if self.archive else ""
        return f"{self.scope.prefix}{page}{FILE_NAMES[self.format]}"

    def sibling(self, *, format: Format | None = None, archive: str | None = None) -> FeedPath:
        """Return the same scope in another format or archive page."""
        return FeedPath(
            self.scope,
            format or self.format,
            self.archive if archive is None else archive,
        )

    @classmethod
    def parse(cls, path: str) -> FeedPath | None:
        """Map a request path ("/tags/x/atom.xml") to a FeedPath, or None when it is none."""
        parts = path.strip("/").split("/")
        fmt = FORMAT_OF_FILE.get(parts[-1])
        if fmt is None:
            return None
        parts = parts[:-1]
        scope = Scope()
        if len(parts) >= 2 and parts[0] in ("tags", "authors"):
            if not _SLUG.match(parts[1]):
                return None
            scope = Scope("tag" if parts[0] == "tags" else "author", parts[1])
            parts = parts[2:]
        archive = ""
        if len(parts) == 2 and parts[0] == "archive" and parse_archive_key(parts[1]):
            archive = parts[1]
            parts = []
        if parts:
            return None
        return cls(scope, fmt, archive)


def archive_key(published: datetime, ident: int) -> str:
    """Name an archive page after its newest entry: UTC time to the microsecond, then id."""
    return f"{published.astimezone(UTC):%Y%m%d%H%M%S%f}-{ident}"


def parse_archive_key(key: str) -> tuple[datetime, int] | None:
    """Read an archive key back into (published_at, id), or None when it is malformed."""
    match = _ARCHIVE_KEY.match(key)
    if match is None:
        return None
    try:
        when = datetime.strptime(match[1], "%Y%m%d%H%M%S%f").replace(tzinfo=UTC)
    except ValueError:
        return None
    return when, int(match[2])


@dataclass(frozen=True)
class Image:
    """An article's lead image, as an enclosure and media:content."""

    url: str
    type: str
    length: int
    width: int = 0
    height: int = 0
    caption: str = ""
    credit: str = ""


@dataclass(frozen=True)
class Item:
    """One entry, the same in RSS, Atom and JSON Feed."""

    id: str
    url: str
    title: str
    summary: str
    content_html: str
    published: datetime
    updated: datetime
    author: str
    author_url: str
    language: str
    tags: tuple[str, ...]
    image: Image | None
    external_url: str = ""

    @property
    def guid_is_permalink(self) -> bool:
        """Tell whether the guid is the article's own URL (RSS isPermaLink)."""
        return self.id == self.url


@dataclass
class Channel:
    """The feed-level data of one document."""

    where: FeedPath
    base_url: str
    title: str
    description: str
    home_url: str
    language: str
    author: str
    items: list[Item]
    #: The key of the archive page holding the entries just older than these, "" if none.
    prev_archive: str = ""
    hub: str = ""

    def url(self, where: FeedPath) -> str:
        """Return the absolute URL of a feed document of this site."""
        return f"{self.base_url}/{where.path()}"

    @property
    def self_url(self) -> str:
        """Return the URL this document is served at (atom:link rel=self)."""
        return self.url(self.where)

    @property
    def current_url(self) -> str:
        """Return the subscription document's URL, also the feed's stable id."""
        return self.url(self.where.sibling(archive=""))

    def links(self) -> list[tuple[str, str]]:
        """Return the (rel, href) links beyond self and alternate: hub and RFC 5005 archives."""
        links: list[tuple[str, str]] = []
        if self.hub:
            links.append(("hub", self.hub))
        if self.where.archive:
            links.append(("current", self.current_url))
        if self.prev_archive:
            links.append(("prev-archive", self.url(self.where.sibling(archive=self.prev_archive))))
        return links

    @property
    def updated(self) -> datetime:
        """Return the newest change among the items, so the document has no "now" in it."""
        return max((item.updated for item in self.items), default=EPOCH)


def article_url(article: Article, base_url: str) -> str:
    """Return the page an entry links to: its canonical URL, else our own article page."""
    return article.canonical_url or f"{base_url}/articles/{article.slug}"


def absolutize_srcset(fragment: str, base_url: str) -> str:
    """Resolve relative candidates of srcset attributes (the sanitizer resolves src and href)."""
    if "srcset=" not in fragment:
        return fragment
    base = base_url.rstrip("/") + "/"

    def fix(match: re.Match[str]) -> str:
        candidates = []
        for candidate in match[2].split(","):
            bits = candidate.strip().split()
            if not bits:
                continue
            url = urljoin(base, bits[0].replace("&amp;", "&"))
            if urlsplit(url).scheme not in ("http", "https"):
                continue
            candidates.append(" ".join([url.replace("&", "&amp;"), *bits[1:]]))
        return f"{match[1]}{', '.join(candidates)}{match[3]}"

    return _SRCSET.sub(fix, fragment)


def _image(article: Article) -> Image | None:
    if not article.image_url:
        return None
    media_type = article.image_type or mimetypes.guess_type(urlsplit(article.image_url).path)[0]
    return Image(
        url=article.image_url,
        type=media_type or "image/jpeg",
        length=max(article.image_length, 0),
        width=article.image_width,
        height=article.image_height,
        caption=clean_line(article.image_caption),
        credit=clean_line(article.image_credit),
    )


def item_from_article(article: Article, base_url: str, site_author: str) -> Item:
    """Turn a stored article into a feed item, with every URL absolute and no control chars."""
    assert article.published_at is not None
    content = absolutize_srcset(strip_controls(article.body_html), base_url)
    summary = clean_line(article.summary) or " ".join(html_to_text(content).split()[:60])
    author = clean_line(article.author) or site_author
    return Item(
        id=clean_line(article.guid),
        url=article_url(article, base_url),
        title=clean_line(article.title),
        summary=summary,
        content_html=content,
        published=article.published_at,
        updated=max(article.updated_at, article.published_at),
        author=author,
        author_url=f"{base_url}/authors/{article.author_slug}" if article.author_slug else "",
        language=article.language,
        tags=tuple(article.tags),
        image=_image(article),
        external_url=article.source_url if article.source_url.startswith("http") else "",
    )
