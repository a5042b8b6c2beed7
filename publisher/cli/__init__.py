"""The `publisher` command: global options, error handling and the command groups."""

from __future__ import annotations

import importlib
import sys

import click

from publisher import __version__
from publisher.cli.context import CliContext, collector
from publisher.errors import PublisherError

#: Where each command lives. A module is imported only when its command runs: a short
#: command (`digest send` of a few thousand) otherwise spends most of its life importing
#: every other command's libraries. `digest` gains `send` and `status` from sending.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "init": ("publisher.cli.init",),
    "db": ("publisher.cli.database",),
    "articles": ("publisher.cli.articles",),
    "demo": ("publisher.cli.demo",),
    "mailsink": ("publisher.cli.mailsink",),
    "feed": ("publisher.cli.feed",),
    "serve": ("publisher.cli.serve",),
    "schedule": ("publisher.cli.schedule",),
    "digest": ("publisher.cli.sending", "publisher.cli.digest"),
    "worker": ("publisher.cli.sending",),
    "subscribers": ("publisher.cli.subscribers",),
    "bounces": ("publisher.cli.bounces",),
    "doctor": ("publisher.cli.doctor",),
    "users": ("publisher.cli.users",),
    "tokens": ("publisher.cli.tokens",),
    "announcements": ("publisher.cli.announcements",),
}

#: Each command's one-line help, so `publisher --help` lists them without importing a
#: single command module. tests/test_cli_startup.py checks each line equals the command's
#: own docstring line, so the two cannot drift.
COMMAND_HELP: dict[str, str] = {
    "announcements": "Write and send one-off emails to chosen readers.",
    "articles": "Manage articles in the content store.",
    "bounces": "Handle bounce and complaint reports.",
    "db": "Manage the database schema.",
    "demo": "Import the samples, build the feeds, send a digest to the mail sink, serve the site.",
    "digest": "Preview, send and inspect email digests.",
    "doctor": "Check the configuration, file permissions, database, relay, DKIM, SPF and DMARC.",
    "feed": "Build the RSS, Atom and JSON feeds.",
    "init": "Create publisher.toml, the database and posts/ with a first article in DIRECTORY.",
    "mailsink": "Receive mail on HOST:PORT and save each message as an .eml file in DIR.",
    "schedule": "Send each reader's digest at their own local send time.",
    "serve": "Serve the feeds and article pages over HTTP until interrupted.",
    "subscribers": "Manage the subscriber list.",
    "tokens": "Manage API tokens (Authorization: Bearer).",
    "users": "Manage the editors who log in to the web app.",
    "worker": "Send queued mail until SIGTERM, then finish what is in flight and exit.",
}


class _LazyGroup(click.Group):
    """A group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMAND_MODULES, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        for module_name in COMMAND_MODULES.get(cmd_name, ()):
            module = importlib.import_module(module_name)
            commands: list[click.Command] = module.COMMANDS
            for command in commands:
                if command.name == cmd_name:
                    self.add_command(command)
                    return command
        return None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List the commands from COMMAND_HELP, importing none of them (click would)."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            loaded = self.commands.get(name)
            if loaded is not None:
                if loaded.hidden:
                    continue
                rows.append((name, loaded.get_short_help_str(limit)))
            else:
                # A bare Command shortens the line exactly as the real one would.
                stand_in = click.Command(name, help=COMMAND_HELP[name])
                rows.append((name, stand_in.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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


def main(argv: list[str] | None = None) -> None:
    """Run the CLI, turning PublisherErrors into one line on stderr and an exit status.

    Without ``argv`` (the console script, ``python -m publisher``) this is the process's
    own command, and start-up may tune the garbage collector (context.StartupCollector).
    """
    if argv is None:
        collector.starting()
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
