"""`publisher demo`: the main job on embedded defaults, from an empty folder."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from publisher.cli.context import CliContext, console, pass_cli, run
from publisher.cli.init import init_site
from publisher.config import DEFAULT_CONFIG
from publisher.ingest.files import import_files
from publisher.ingest.options import ImportOptions
from publisher.resources import samples_dir
from publisher.site import Site


@click.command("demo")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Site folder (default: a new temporary folder).",
)
@click.option("--no-serve", is_flag=True, help="Do not start the web server at the end.")
@pass_cli
def demo(cli: CliContext, directory: Path | None, no_serve: bool) -> None:
    """Create a demo site, import the sample articles and show what happened."""
    directory = directory or Path(tempfile.mkdtemp(prefix="publisher-demo-"))
    config = directory / DEFAULT_CONFIG
    if not config.exists():
        init_site(directory, title="Kabar Nusantara", language="id", timezone="Asia/Jakarta")
        console.print(f"created demo site in {directory}", markup=False)
    else:
        console.print(f"using demo site in {directory}", markup=False)
    site = Site.open(config)

    async def work(site: Site) -> None:
        options = ImportOptions(language=site.settings.site.language, tz=site.settings.tz)
        report = await import_files(
            site.engine, site.settings.site.base_url, [samples_dir()], options, site.clock.now()
        )
        console.print(
            f"imported sample articles: {report.count('created')} created, "
            f"{report.count('updated')} updated, {report.count('unchanged')} unchanged, "
            f"{len(report.failed)} failed"
        )
        for outcome in report.failed:
            console.print(f"  {outcome.error}", markup=False)

    run(site, work)


COMMANDS = [demo]
