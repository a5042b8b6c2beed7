"""`publisher articles`: add, import, list, show and remove articles."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from publisher.cli.context import CliContext, console, err_console, pass_cli, print_json, run
from publisher.errors import InputError, UsageError

# Each command imports what its own work needs inside its function: the importers pull
# trafilatura and an HTTP client that `articles list` must not wait for, and the group's
# help needs none of it (docs/development.md, "Start-up time").
if TYPE_CHECKING:
    from publisher.ingest.files import ImportOutcome
    from publisher.ingest.sources import FeedImportReport
    from publisher.site import Site


@click.group("articles")
def articles() -> None:
    """Manage articles in the content store."""


def _report(outcome: ImportOutcome) -> None:
    if outcome.action == "failed":
        err_console.print(f"error: {outcome.error}", markup=False)
    elif outcome.action == "skipped":
        err_console.print(f"warning: {outcome.error}", markup=False)
    else:
        console.print(f"{outcome.action:9} {outcome.slug}  ({outcome.path})", markup=False)


@articles.command("add")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--format", "fmt", default="auto", show_default=True, help="auto, markdown, text or html."
)
@click.option("--lang", default=None, help="Language of the articles (default site.language).")
@click.option("--tag", "tags", multiple=True, help="Add a tag (repeatable).")
@click.option("--published-at", default=None, help="Publication time, ISO 8601.")
@click.option("--image", "image_url", default="", help="Lead image URL.")
@click.option("--draft", is_flag=True, help="Store as drafts, not published.")
@pass_cli
def add(
    cli: CliContext,
    paths: tuple[str, ...],
    fmt: str,
    lang: str | None,
    tags: tuple[str, ...],
    published_at: str | None,
    image_url: str,
    draft: bool,
) -> None:
    """Import articles from files, folders or URLs; each file in its own transaction."""
    from publisher.http import is_url
    from publisher.ingest.files import PARSERS, import_files
    from publisher.ingest.options import ImportOptions
    from publisher.ingest.source import to_utc
    from publisher.ingest.sources import import_url

    site = cli.site()
    if fmt != "auto" and fmt not in PARSERS:
        raise UsageError(
            f"--format: unknown format {fmt!r} (choose from auto, {', '.join(PARSERS)})"
        )
    when: datetime | None = None
    if published_at:
        try:
            when = to_utc(published_at, site.settings.tz, "--published-at")
        except InputError as exc:
            raise UsageError(str(exc)) from None
    options = ImportOptions(
        language=lang or site.settings.site.language,
        tz=site.settings.tz,
        format=fmt,
        tags=list(tags),
        published_at=when,
        draft=True if draft else None,
        image_url=image_url,
    )

    async def work(site: Site) -> int:
        report = await import_files(
            site.engine,
            site.settings.site.base_url,
            [Path(p) for p in paths if not is_url(p)],
            options,
            site.clock.now(),
            on_outcome=_report,
        )
        for url in (p for p in paths if is_url(p)):
            outcome = await import_url(site, url, options, site.clock.now())
            _report(outcome)
            report.outcomes.append(outcome)
        console.print(
            f"{report.count('created')} created, {report.count('updated')} updated, "
            f"{report.count('unchanged')} unchanged, {len(report.failed)} failed"
        )
        return len(report.failed)

    failed = run(site, work)
    if failed:
        raise SystemExit(2)


@articles.command("import-feed")
@click.argument("target", metavar="URL_OR_FILE")
@pass_cli
def import_feed_command(cli: CliContext, target: str) -> None:
    """Import an RSS or Atom feed's entries; re-running adds only new or changed ones."""
    from publisher.ingest.sources import import_feed

    site = cli.site()
    tags = next((s.tags for s in site.settings.sources if s.url == target), [])

    async def work(site: Site) -> FeedImportReport:
        return await import_feed(site, target, tags=tags, on_outcome=_report)

    report = run(site, work)
    for warning in report.warnings:
        err_console.print(f"warning: {warning}", markup=False)
    console.print(report.summary(), markup=False)
    if report.count("failed"):
        raise SystemExit(2)


@articles.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--tag", default=None, help="Only articles with this tag.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100000))
@click.option("--drafts/--no-drafts", default=True, show_default=True, help="Include drafts.")
@pass_cli
def list_articles(
    cli: CliContext, as_json: bool, tag: str | None, limit: int, drafts: bool
) -> None:
    """List articles, newest first."""
    from publisher.content.store import ArticleStore, article_to_dict
    from publisher.db import transaction

    async def work(site: Site) -> list[dict[str, object]]:
        async with transaction(site.engine) as session:
            store = ArticleStore(session, site.settings.site.base_url)
            found = await store.latest(limit, tag=tag, include_drafts=drafts and tag is None)
            return [article_to_dict(a) for a in found]

    rows = run(cli.site(), work)
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table("slug", "status", "published", "lang", "tags", "title")
    for row in rows:
        table.add_row(
            str(row["slug"]),
            str(row["status"]),
            str(row["published_at"] or "")[:16],
            str(row["language"]),
            ", ".join(row["tags"]),  # type: ignore[arg-type]
            str(row["title"]),
        )
    console.print(table)


@articles.command("show")
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli
def show(cli: CliContext, slug: str, as_json: bool) -> None:
    """Show one article."""
    from publisher.content.store import ArticleStore, article_to_dict
    from publisher.db import transaction

    async def work(site: Site) -> dict[str, object]:
        async with transaction(site.engine) as session:
            article = await ArticleStore(session, site.settings.site.base_url).require(slug)
            return article_to_dict(article)

    data = run(cli.site(), work)
    if as_json:
        print_json(data)
        return
    for key in (
        "title",
        "slug",
        "guid",
        "status",
        "published_at",
        "updated_at",
        "author",
        "language",
        "tags",
        "summary",
        "image_url",
        "image_caption",
        "image_credit",
        "canonical_url",
    ):
        console.print(f"[bold]{key}[/]: ", end="")
        console.print(str(data[key]), markup=False)
    console.print()
    console.print(str(data["body_html"]), markup=False)


@articles.command("remove")
@click.argument("slug")
@pass_cli
def remove(cli: CliContext, slug: str) -> None:
    """Delete an article."""
    from publisher.content.store import ArticleStore
    from publisher.db import transaction

    async def work(site: Site) -> None:
        async with transaction(site.engine) as session:
            await ArticleStore(session, site.settings.site.base_url).remove(slug)

    run(cli.site(), work)
    console.print(f"removed {slug}", markup=False)


COMMANDS = [articles]
