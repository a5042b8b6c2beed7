"""The `publisher` command: global options, error handling and the command groups."""

from __future__ import annotations

import sys

import click

from publisher import __version__
from publisher.cli import articles, database, demo, doctor, init, mailsink
from publisher.cli import bounces as bounces_cli
from publisher.cli import digest as digest_cli
from publisher.cli import feed as feed_cli
from publisher.cli import schedule as schedule_cli
from publisher.cli import sending as sending_cli
from publisher.cli import serve as serve_cli
from publisher.cli import subscribers as subscribers_cli
from publisher.cli.context import CliContext
from publisher.errors import PublisherError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="PUBLISHER_CONFIG",
    help="Configuration file (default ./publisher.toml; env PUBLISHER_CONFIG).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(__version__, prog_name="publisher")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, debug: bool) -> None:
    """Publish articles as feeds and email digests."""
    ctx.obj = CliContext(config_path=config_path, debug=debug)


for module in (
    init,
    database,
    articles,
    demo,
    mailsink,
    feed_cli,
    serve_cli,
    schedule_cli,
    digest_cli,
    sending_cli,
    subscribers_cli,
    bounces_cli,
    doctor,
):
    for command in module.COMMANDS:
        cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI, turning PublisherErrors into one line on stderr and an exit status."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="publisher", standalone_mode=False)
    except PublisherError as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        # A bug or an unconverted library error: still one line unless --debug.
        if debug:
            raise
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
        click.echo(
            f"error: unexpected {type(exc).__name__}: {first} (run with --debug for the traceback)",
            err=True,
        )
        sys.exit(1)
    sys.exit(0)
