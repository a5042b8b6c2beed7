"""`publisher db`: schema migrations."""

from __future__ import annotations

import click

from publisher.cli.context import CliContext, console, pass_cli

# Each command imports what its own work needs inside its function, so the command
# list, the help and the other commands load none of it (docs/development.md, "Start-up time").


@click.group("db")
def db_group() -> None:
    """Manage the database schema."""


@db_group.command("upgrade")
@pass_cli
def upgrade(cli: CliContext) -> None:
    """Apply every pending migration."""
    from publisher import db
    from publisher.config import load_settings

    settings = load_settings(cli.config_path)
    before = db.current_revision(settings.database.url)
    after = db.upgrade(settings.database.url)
    if before == after:
        console.print(f"database already at {after}")
    else:
        console.print(f"database upgraded from {before or 'empty'} to {after}")


COMMANDS = [db_group]
