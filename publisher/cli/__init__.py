"""The `publisher` command: global options, error handling and the command groups."""

from __future__ import annotations

import importlib
import sys

import click

from publisher import __version__
from publisher.cli.context import CliContext
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
