"""`publisher demo`: the main job on embedded defaults, from an empty folder."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from publisher.cli.context import CliContext, console, pass_cli, run

# The demo runs every part of Publisher; it imports them when it runs, not when
# `publisher demo --help` or the command list loads this module.
if TYPE_CHECKING:
    from publisher.site import Site

#: The demo replays the sample week: its clock stands just after the newest sample.
DEMO_CLOCK_OFFSET = timedelta(hours=2)


@click.command("demo")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Site folder (default: a new temporary folder).",
)
@click.option("--no-serve", is_flag=True, help="Stop before starting the web server.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Web server address.")
@click.option("--port", default=8000, show_default=True, type=int, help="Web server port.")
@pass_cli
def demo(cli: CliContext, directory: Path | None, no_serve: bool, host: str, port: int) -> None:
    """Import the samples, build the feeds, send a digest to the mail sink, serve the site."""
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="publisher-demo-"))
        try:
            _demo(directory, no_serve, host, port)
        finally:
            # A temporary site is kept (its mail, feeds and database are worth a look)
            # but never silently: say where it is and how to remove it.
            console.print(
                f"the demo site stays in {directory}: `rm -rf {directory}` removes it; "
                f"`publisher demo --dir {directory}` reuses it",
                markup=False,
            )
        return
    _demo(directory, no_serve, host, port)


def _demo(directory: Path, no_serve: bool, host: str, port: int) -> None:
    from publisher.cli.init import init_site
    from publisher.config import DEFAULT_CONFIG, load_settings
    from publisher.site import Site
    from publisher.web.server import serve

    config = directory / DEFAULT_CONFIG
    if config.exists():
        console.print(f"using the demo site in {directory}", markup=False)
    else:
        init_site(
            directory,
            title="Kabar Nusantara",
            base_url=f"http://{host}:{port}",
            language="id",
            timezone="Asia/Jakarta",
        )
        console.print(f"created a demo site in {directory} (SQLite, {config.name})", markup=False)
    settings = load_settings(config)
    mail_dir = directory / "mail"
    with mail_sink(mail_dir) as sink_port:
        # Mail goes to the built-in sink, wherever publisher.toml points.
        settings.mail.smtp_url = f"smtp://127.0.0.1:{sink_port}"
        console.print(f"mail sink listening on 127.0.0.1:{sink_port}, saving to {mail_dir}")
        site = Site.from_settings(settings)
        run(site, lambda site: _main_job(site, directory))
        if no_serve:
            return
        console.print(
            f"serving {settings.site.base_url}/ (feeds at /feed.xml, /atom.xml, /feed.json;"
            " subscribe at /subscribe); Ctrl-C stops",
            markup=False,
        )
        serve(site, host, port)


async def _main_job(site: Site, directory: Path) -> None:
    import sqlalchemy as sa

    from publisher import planning
    from publisher.clock import FrozenClock
    from publisher.content.models import PUBLISHED, Article
    from publisher.db import transaction
    from publisher.delivery.editions import current_edition_date, enqueue, open_edition
    from publisher.delivery.worker import deliver
    from publisher.feeds.static import build_static
    from publisher.ingest.files import import_files
    from publisher.ingest.options import ImportOptions
    from publisher.resources import samples_dir
    from publisher.scheduling import schedule_lines
    from publisher.site import Site
    from subscribers import csvio

    options = ImportOptions(language=site.settings.site.language, tz=site.settings.tz)
    report = await import_files(
        site.engine, site.settings.site.base_url, [samples_dir()], options, site.clock.now()
    )
    console.print(
        f"articles: {report.count('created')} created, {report.count('updated')} updated, "
        f"{report.count('unchanged')} unchanged, {len(report.failed)} failed",
        markup=False,
    )
    for outcome in report.failed:
        console.print(f"  {outcome.error}", markup=False)

    public = directory / "public"
    static = await build_static(site, public)
    console.print(f"feeds: {len(static.files)} files written to {public}", markup=False)

    # Replay the sample week: readers joined a week before the newest sample article,
    # and the digest goes out the morning after it, as the scheduler would send it.
    async with transaction(site.engine) as session:
        newest = await session.scalar(
            sa.select(sa.func.max(Article.published_at)).where(Article.status == PUBLISHED)
        )
    clock = FrozenClock((newest or site.clock.now()) + DEMO_CLOCK_OFFSET)
    sending = Site(settings=site.settings, clock=clock, _engine=site.engine)
    csv_path = samples_dir() / "subscribers.csv"
    with csv_path.open(encoding="utf-8", newline="") as handle:
        imported = await csvio.import_csv(
            site.engine,
            handle,
            clock.now() - timedelta(days=7),
            source=str(csv_path),
            confirmed=True,
        )
    console.print(
        f"subscribers: {imported.created} created, {imported.updated} updated, "
        f"{imported.unchanged} unchanged (WIB, WITA and WIT; Indonesian and English)",
        markup=False,
    )

    now = clock.now()
    console.print(f"digest clock: {now.astimezone(site.settings.tz):%Y-%m-%d %H:%M %Z}")
    for frequency in planning.FREQUENCIES:
        day = current_edition_date(sending, frequency, now)
        edition = await open_edition(sending, frequency, day, now, enqueuing=True)
        queued = await enqueue(sending, edition, now)
        console.print(f"digest {queued}", markup=False)
    delivered = await deliver(sending, until_idle=True)
    console.print(f"delivery: {delivered}", markup=False)
    for path in sorted((directory / "mail").glob("*.eml")):
        console.print(f"  {path}", markup=False)

    console.print("schedule (`publisher schedule run`):")
    for line in await schedule_lines(site):
        console.print(f"  {line}", markup=False)


@contextmanager
def mail_sink(directory: Path) -> Iterator[int]:
    """Run the dev mail sink on a free loopback port in a background thread."""
    import asyncio

    from publisher.delivery.mailsink import MailSink

    loop = asyncio.new_event_loop()
    sink = MailSink(directory, "127.0.0.1", 0)
    started = threading.Event()

    def main() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(sink.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=main, name="mailsink", daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield sink.port
    finally:
        asyncio.run_coroutine_threadsafe(sink.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


COMMANDS = [demo]
