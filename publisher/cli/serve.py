"""`publisher serve`: the public web app (feeds, pages, subscription flow)."""

from __future__ import annotations

import click

from publisher.cli.context import CliContext, pass_cli

# Each command imports what its own work needs inside its function, so the command
# list, the help and the other commands load none of it (docs/development.md, "Start-up time").


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--access-log/--no-access-log", default=True, show_default=True, help="Log every request."
)
@pass_cli
def serve(cli: CliContext, host: str, port: int, access_log: bool) -> None:
    """Serve the feeds and article pages over HTTP until interrupted."""
    from publisher.web.server import serve as serve_site

    serve_site(cli.site(), host, port, access_log=access_log)


COMMANDS = [serve]
