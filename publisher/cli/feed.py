"""`publisher feed build`: write every feed as static files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from publisher.cli.context import CliContext, console, pass_cli, run

# Each command imports what its own work needs inside its function, so the group's
# help and the other commands load none of it (docs/development.md, "Start-up time").
if TYPE_CHECKING:
    from publisher.feeds.static import StaticReport
    from publisher.site import Site


@click.group("feed")
def feed() -> None:
    """Build the RSS, Atom and JSON feeds."""


async def build_and_ping(site: Site, out: Path) -> StaticReport:
    """Write the static feeds, then tell the WebSub hub (when one is set)."""
    import asyncio

    from publisher.feeds.static import build_static
    from publisher.feeds.websub import Pinger

    report = await build_static(site, out)
    pinger = Pinger(site.settings, attempts=3, delay=1.0)
    try:
        pinger.publish_site()
        await asyncio.wait_for(pinger.wait(), timeout=30)
    except TimeoutError:
        pass
    finally:
        await pinger.aclose()
    return report


@feed.command("build")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder (default: public/ next to the configuration file).",
)
@pass_cli
def build(cli: CliContext, out: Path | None) -> None:
    """Write feed.xml, atom.xml, feed.json, tags/, authors/ and archive/ under DIR."""
    site = cli.site()
    target = out or site.settings.base_dir / "public"
    report = run(site, lambda s: build_and_ping(s, target))
    console.print(
        f"wrote {len(report.files)} feed files ({report.bytes_written} bytes) to {target}",
        markup=False,
    )


COMMANDS = [feed]
