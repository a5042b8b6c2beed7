"""Import files and folders, each in its own transaction, choosing the importer per file."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from publisher.content.store import ArticleDraft, ArticleStore
from publisher.db import transaction
from publisher.errors import InputError, PublisherError
from publisher.ingest.feed import reject_feed_file
from publisher.ingest.html import decode_html, parse_html
from publisher.ingest.markdown import parse_markdown
from publisher.ingest.options import ImportOptions
from publisher.ingest.source import SourceText, decode_text, read_text_file
from publisher.ingest.text import parse_text

Parser = Callable[[SourceText, ImportOptions], ArticleDraft]

SUFFIXES = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".mdown": "markdown",
}
PARSERS: dict[str, Parser] = {
    "markdown": lambda source, options: parse_markdown(
        source, language=options.language, tz=options.tz
    ),
}


def register(format_name: str, parser: Parser, suffixes: Iterable[str] = ()) -> None:
    """Make an importer available by format name and file suffix."""
    PARSERS[format_name] = parser
    for suffix in suffixes:
        SUFFIXES[suffix] = format_name


def sniff(text: str) -> str:
    """Guess a format from content when the suffix does not tell."""
    head = text.lstrip()[:2048].lower()
    if head.startswith("---\n"):
        return "markdown"
    if head.startswith(("<!doctype html", "<html")) or "<body" in head:
        return "html" if "html" in PARSERS else "markdown"
    if head.startswith("<?xml") or "<rss" in head or "<feed" in head:
        return "feed" if "feed" in PARSERS else "markdown"
    return "text" if "text" in PARSERS else "markdown"


def choose_format(path: Path, text: str, forced: str) -> str:
    """Pick the importer: --format, then the suffix, then sniffing."""
    if forced != "auto":
        if forced not in PARSERS:
            raise InputError(f"{path}: unknown format {forced!r}")
        return forced
    return SUFFIXES.get(path.suffix.lower()) or sniff(text)


@dataclass(frozen=True)
class Found:
    """A file to import, or (with ``skipped`` set) a link a folder walk did not follow."""

    path: Path
    in_folder: bool = False
    skipped: str = ""


def expand(paths: Iterable[Path]) -> Iterator[Found]:
    """Yield files, walking folders for known suffixes in sorted order.

    Symbolic links found inside a folder are never followed (a link to publisher.toml
    would publish its secrets); a path named on the command line is taken as given.
    """
    for path in paths:
        if path.is_dir():
            yield from _walk(path)
        else:
            yield Found(path)


def _walk(folder: Path) -> Iterator[Found]:
    found: list[Found] = []
    for top, dirs, files in os.walk(folder, followlinks=False):
        here = Path(top)
        for name in dirs:
            if (here / name).is_symlink():
                found.append(Found(here / name, True, "symbolic link to a folder, not followed"))
        for name in files:
            child = here / name
            if child.suffix.lower() not in SUFFIXES:
                continue
            if child.is_symlink():
                found.append(Found(child, True, "symbolic link, not followed"))
            elif child.is_file():
                found.append(Found(child, True))
    yield from sorted(found, key=lambda f: f.path)


def located(path: Path, message: str) -> str:
    """Return ``message`` as ``path:line: reason`` (line 1 when the error has none)."""
    name = str(path)
    if message.startswith(name + ":"):
        rest = message[len(name) + 1 :]
        line, sep, _ = rest.partition(":")
        if sep and line.isdigit():
            return message
        message = rest.lstrip()
    return f"{name}:1: {message}"


@dataclass
class ImportOutcome:
    """One file's result: the action taken and the slug, or the error."""

    path: str
    action: str
    slug: str = ""
    error: str = ""


@dataclass
class ImportReport:
    """What a run of `articles add` did, file by file."""

    outcomes: list[ImportOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[ImportOutcome]:
        """Return the outcomes that failed."""
        return [o for o in self.outcomes if o.action == "failed"]

    def count(self, action: str) -> int:
        """Return how many files ended with ``action``."""
        return sum(1 for o in self.outcomes if o.action == action)


def apply_options(draft: ArticleDraft, options: ImportOptions) -> ArticleDraft:
    """Overlay command-line choices on what the file said."""
    changes: dict[str, object] = {}
    if options.tags:
        changes["tags"] = [*draft.tags, *options.tags]
    if options.published_at is not None:
        changes["published_at"] = options.published_at
    if options.draft is not None:
        changes["draft"] = options.draft
    if options.image_url:
        changes["image_url"] = options.image_url
    if options.publish_at is not None:
        changes["publish_at"] = options.publish_at
        changes["draft"] = True
    return replace(draft, **changes)  # type: ignore[arg-type]


async def store_draft(
    engine: AsyncEngine, base_url: str, draft: ArticleDraft, now: datetime
) -> tuple[str, str]:
    """Store one draft in its own transaction and return (action, slug)."""
    async with transaction(engine) as session:
        result = await ArticleStore(session, base_url).upsert(draft, now)
        return result.action, result.article.slug


async def import_files(
    engine: AsyncEngine,
    base_url: str,
    paths: Iterable[Path],
    options: ImportOptions,
    now: datetime,
    on_outcome: Callable[[ImportOutcome], None] | None = None,
) -> ImportReport:
    """Import every file; a bad file is reported and the others still import."""
    report = ImportReport()
    for found in expand(paths):
        path = found.path
        if found.skipped:
            outcome = ImportOutcome(str(path), "skipped", error=f"{path}: {found.skipped}")
            report.outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
            continue
        try:
            source = read_text_file(path, follow_symlinks=not found.in_folder)
            fmt = choose_format(path, source.text, options.format)
            draft = apply_options(PARSERS[fmt](source, options), options)
            action, slug = await store_draft(engine, base_url, draft, now)
            outcome = ImportOutcome(str(path), action, slug)
        except PublisherError as exc:
            outcome = ImportOutcome(str(path), "failed", error=located(path, str(exc)))
        report.outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return report


def upload_name(filename: str) -> str:
    """Return the base name of an uploaded file, printable and short (it appears in errors)."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    printable = "".join(ch for ch in base if ch.isprintable()).strip()
    return printable[:100] or "upload"


async def import_upload(
    engine: AsyncEngine,
    base_url: str,
    name: str,
    data: bytes,
    options: ImportOptions,
    now: datetime,
    *,
    origin_kind: str = "upload",
) -> ImportOutcome:
    """Import one uploaded file or pasted text through the same parsers as `articles add`.

    ``name`` (a base name such as ``story.md``; no suffix means sniff the content)
    chooses the importer and names the input in errors. The origin records where the
    text came from plus its hash, so sending the same bytes twice changes nothing.
    Parsing runs in a worker thread: a large page must not stall the server.
    """
    path = Path(name)

    def parse() -> ArticleDraft:
        suffix_format = SUFFIXES.get(path.suffix.lower())
        if suffix_format == "html" or options.format == "html":
            text = decode_html(data, "", name)  # honours a <meta charset>
        else:
            text = decode_text(data, name)
        fmt = choose_format(path, text, options.format)
        return apply_options(PARSERS[fmt](SourceText(path, text), options), options)

    digest = hashlib.sha256(data).hexdigest()[:16]
    try:
        draft = await asyncio.to_thread(parse)
        draft = replace(draft, origin=f"{origin_kind}:{digest}:{name}")
        action, slug = await store_draft(engine, base_url, draft, now)
    except PublisherError as exc:
        return ImportOutcome(name, "failed", error=located(path, str(exc)))
    return ImportOutcome(name, action, slug)


register("text", parse_text, (".txt", ".text"))
register("html", parse_html, (".html", ".htm", ".xhtml"))
register("feed", reject_feed_file)  # sniffed feeds get a pointer to `articles import-feed`
