"""Import remote pages and feeds, and follow the feeds listed in [[sources]]."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from publisher.content.models import FeedSource
from publisher.content.slugs import slugify
from publisher.content.store import ArticleDraft
from publisher.db import transaction
from publisher.errors import InputError, PublisherError, UsageError
from publisher.http import Fetched, fetch, is_url
from publisher.ingest.feed import ParsedFeed, parse_feed
from publisher.ingest.files import ImportOutcome, apply_options, store_draft
from publisher.ingest.html import decode_html, parse_html
from publisher.ingest.markdown import parse_markdown
from publisher.ingest.options import ImportOptions
from publisher.ingest.source import SourceText, read_bytes_file
from publisher.ingest.text import parse_text

if TYPE_CHECKING:
    from publisher.site import Site

FEED_ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.8"
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, text/plain;q=0.5"
_FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/rdf+xml")
log = logging.getLogger(__name__)


@dataclass
class FeedImportReport:
    """What importing one feed did: per-entry outcomes, or why nothing was imported."""

    source: str
    status: str = "imported"  # imported | not-modified | failed
    title: str = ""
    error: str = ""
    warnings: list[str] = field(default_factory=list)
    outcomes: list[ImportOutcome] = field(default_factory=list)

    def count(self, action: str) -> int:
        """Return how many entries ended with ``action``."""
        return sum(1 for outcome in self.outcomes if outcome.action == action)

    def summary(self) -> str:
        """Describe the result in one line."""
        if self.status == "failed":
            return f"{self.source}: failed: {self.error}"
        if self.status == "not-modified":
            return f"{self.source}: not modified since the last fetch"
        return (
            f"{self.source}: {self.count('created')} created, {self.count('updated')} updated, "
            f"{self.count('unchanged')} unchanged, {self.count('failed')} failed"
        )


@dataclass
class SourcesReport:
    """What one pass over [[sources]] did, feed by feed."""

    feeds: list[FeedImportReport] = field(default_factory=list)

    @property
    def failed(self) -> list[FeedImportReport]:
        """Return the feeds that could not be imported."""
        return [feed for feed in self.feeds if feed.status == "failed"]

    def count(self, action: str) -> int:
        """Return how many entries across all feeds ended with ``action``."""
        return sum(feed.count(action) for feed in self.feeds)


async def follow_sources(site: Site) -> SourcesReport:
    """Import new and changed entries of every [[sources]] feed; one failure spares the rest."""
    report = SourcesReport()
    for source in site.settings.sources:
        try:
            feed = await import_feed(site, source.url, tags=source.tags)
        except PublisherError as exc:
            feed = FeedImportReport(source.url, status="failed", error=str(exc))
        except Exception as exc:  # a hostile feed may break a parser in ways we did not list
            log.debug("following %s failed", source.url, exc_info=True)
            error = f"unexpected {type(exc).__name__} while importing"
            feed = FeedImportReport(source.url, status="failed", error=error)
        if feed.status == "failed":
            log.warning("%s", feed.summary())
        report.feeds.append(feed)
    return report


async def import_feed(
    site: Site,
    target: str,
    *,
    tags: Sequence[str] = (),
    on_outcome: Callable[[ImportOutcome], None] | None = None,
) -> FeedImportReport:
    """Import a feed from a URL (conditional GET) or a file; raise when nothing could be read."""
    report = FeedImportReport(target)
    if not is_url(target):
        data = read_bytes_file(Path(target))
        parsed = _parse(data, target, site, tags, source_url="", content_type="")
        await _store_entries(site, parsed, report, on_outcome)
        return report
    state = await _source_state(site, target)
    try:
        fetched = await fetch(
            target,
            etag=state.etag,
            last_modified=state.last_modified,
            accept=FEED_ACCEPT,
            allow_private=site.settings.fetch.allow_private_addresses,
        )
        if fetched.not_modified:
            report.status = "not-modified"
            await _remember(site, target, etag=state.etag, last_modified=state.last_modified)
            return report
        parsed = _parse(
            fetched.content,
            target,
            site,
            tags,
            source_url=fetched.url,
            content_type=fetched.content_type,
        )
    except PublisherError as exc:
        await _remember(
            site, target, etag=state.etag, last_modified=state.last_modified, error=str(exc)
        )
        raise
    await _store_entries(site, parsed, report, on_outcome)
    failed = report.count("failed")
    # Keep the validators only when every entry landed, so a failed entry is retried next time.
    await _remember(
        site,
        target,
        etag=fetched.etag if not failed else "",
        last_modified=fetched.last_modified if not failed else "",
        error=f"{failed} entries failed" if failed else "",
    )
    return report


async def import_url(site: Site, url: str, options: ImportOptions, now: datetime) -> ImportOutcome:
    """Fetch one page and import it as an article (HTML, or plain text when served as such)."""
    try:
        fetched = await fetch(
            url, accept=PAGE_ACCEPT, allow_private=site.settings.fetch.allow_private_addresses
        )
        # trafilatura may spend seconds on a big page: off the event loop (a server calls this).
        draft = await asyncio.to_thread(
            lambda: apply_options(_page_draft(fetched, url, options), options)
        )
        action, slug = await store_draft(site.engine, site.settings.site.base_url, draft, now)
    except PublisherError as exc:
        message = str(exc)
        if not message.startswith(url):
            message = f"{url}: {message}"
        return ImportOutcome(url, "failed", error=message)
    return ImportOutcome(url, action, slug)


def _page_draft(fetched: Fetched, url: str, options: ImportOptions) -> ArticleDraft:
    media_type = fetched.content_type.split(";")[0].strip().lower()
    fmt = options.format
    if fmt == "auto":
        if media_type in _FEED_TYPES or media_type.endswith("/xml"):
            raise UsageError(
                f"{url}: this is a feed ({media_type}); use `publisher articles import-feed {url}`"
            )
        fmt = {"text/plain": "text", "text/markdown": "markdown"}.get(media_type, "html")
    text = decode_html(fetched.content, fetched.content_type, url)
    source = SourceText(Path(urlsafe_name(url)), text)
    if fmt == "html":
        return parse_html(source, options, url=url)
    if fmt == "text":
        return replace(parse_text(source, options, name=url), source_url=url, external_id=url)
    if fmt == "markdown":
        draft = parse_markdown(source, language=options.language, tz=options.tz)
        return replace(draft, origin=url, source_url=url, external_id=url)
    raise UsageError(f"--format {fmt} cannot import a URL (use html, text or markdown)")


def urlsafe_name(url: str) -> str:
    """Return a file-like name for a URL, for parsers that report a path."""
    return url.replace("://", "/", 1)


def _parse(
    data: bytes,
    name: str,
    site: Site,
    tags: Sequence[str],
    *,
    source_url: str,
    content_type: str,
) -> ParsedFeed:
    return parse_feed(
        data,
        name,
        language=site.settings.site.language,
        tz=site.settings.tz,
        tags=list(tags),
        source_url=source_url,
        content_type=content_type,
    )


async def _store_entries(
    site: Site,
    parsed: ParsedFeed,
    report: FeedImportReport,
    on_outcome: Callable[[ImportOutcome], None] | None,
) -> None:
    report.title = parsed.title
    report.warnings.extend(parsed.warnings)
    base_url = site.settings.site.base_url
    now = site.clock.now()
    # Oldest first, so articles are created in publication order.
    for draft in reversed(parsed.drafts):
        label = draft.canonical_url or draft.external_id or draft.title
        try:
            action, slug = await _store_entry(site, base_url, draft, now)
            outcome = ImportOutcome(label, action, slug)
        except PublisherError as exc:
            outcome = ImportOutcome(label, "failed", error=f"{report.source}: {label}: {exc}")
        report.outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)


async def _store_entry(
    site: Site, base_url: str, draft: ArticleDraft, now: datetime
) -> tuple[str, str]:
    try:
        return await store_draft(site.engine, base_url, draft, now)
    except InputError as exc:
        if "already used" not in str(exc):
            raise
    # Two entries (or an entry and a local article) share a title: give this one a stable,
    # distinct slug derived from its entry id, so re-imports find the same article again.
    digest = hashlib.sha256((draft.external_id or draft.title).encode()).hexdigest()[:6]
    slug = f"{slugify(draft.title, max_length=72)}-{digest}"
    return await store_draft(site.engine, base_url, replace(draft, slug=slug), now)


@dataclass(frozen=True)
class _State:
    etag: str = ""
    last_modified: str = ""


async def _source_state(site: Site, url: str) -> _State:
    async with transaction(site.engine) as session:
        row = await session.scalar(sa.select(FeedSource).where(FeedSource.url == url))
        if row is None:
            return _State()
        return _State(row.etag, row.last_modified)


async def _remember(
    site: Site,
    url: str,
    *,
    etag: str = "",
    last_modified: str = "",
    error: str = "",
) -> None:
    now = site.clock.now()
    values = {
        "etag": etag,
        "last_modified": last_modified,
        "last_error": error[:2000],
        "last_fetched_at": now,
    }
    for _attempt in range(2):
        try:
            async with transaction(site.engine) as session:
                row = await session.scalar(sa.select(FeedSource).where(FeedSource.url == url))
                if row is None:
                    session.add(FeedSource(url=url, **values))
                else:
                    for key, value in values.items():
                        setattr(row, key, value)
            return
        except IntegrityError:
            continue  # another process inserted the row first; update it instead
