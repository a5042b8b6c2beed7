"""`publisher db`: schema migrations and SQLite backups."""

from __future__ import annotations

import sys
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING

import click

from publisher.cli.context import CliContext, console, pass_cli

if TYPE_CHECKING:
    from publisher.db import SchemaStatus

# Each command imports what its own work needs inside its function, so the command
# list, the help and the other commands load none of it (docs/development.md, "Start-up time").
#: `db upgrade --lock-timeout`'s default (publisher.db.LOCK_TIMEOUT, not imported for help).
LOCK_TIMEOUT = 10.0


class CheckExit(IntEnum):
    """Exit statuses of `db upgrade --check`, for deploy scripts."""

    CURRENT = 0
    PENDING = 1
    # 2 stays the usage/configuration error every command shares.
    AHEAD = 3
    UNREACHABLE = 4


@click.group("db")
def db_group() -> None:
    """Manage the database schema."""


@db_group.command("upgrade")
@click.option(
    "--check",
    is_flag=True,
    help="Apply nothing: exit 0 at head, 1 with migrations pending, 3 if the database is "
    "newer than this release, 4 if unreachable.",
)
@click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0.1, max=3600),
    default=LOCK_TIMEOUT,
    show_default=True,
    help="PostgreSQL: seconds a migration waits for a table lock before giving up.",
)
@pass_cli
def upgrade(cli: CliContext, check: bool, lock_timeout: float) -> None:
    """Apply every pending migration."""
    from publisher import db
    from publisher.config import load_settings
    from publisher.errors import StoreError

    settings = load_settings(cli.config_path)
    url = settings.database.url
    if check:
        sys.exit(_check(url))
    status = db.schema_status(url)
    if status.state is db.SchemaState.AHEAD:
        raise StoreError(_ahead_line(status))
    after = db.upgrade(url, lock_timeout=lock_timeout)
    if status.state is db.SchemaState.CURRENT:
        console.print(f"database already at {after}")
    else:
        console.print(f"database upgraded from {status.current or 'empty'} to {after}")


def _check(url: str) -> CheckExit:
    from publisher import db
    from publisher.errors import StoreError

    try:
        status = db.schema_status(url)
    except StoreError as exc:
        click.echo(f"error: {exc}", err=True)
        return CheckExit.UNREACHABLE
    if status.state is db.SchemaState.AHEAD:
        click.echo(f"error: {_ahead_line(status)}", err=True)
        return CheckExit.AHEAD
    if status.state is db.SchemaState.BEHIND:
        at = status.current or "no schema"
        click.echo(f"database at {at}, pending: {' '.join(status.pending)}")
        return CheckExit.PENDING
    click.echo(f"database at head {status.head}")
    return CheckExit.CURRENT


def _ahead_line(status: SchemaStatus) -> str:
    return (
        f"database at {status.current}, which this release does not know (its newest is "
        f"{status.head}): a newer release migrated it; upgrade Publisher, never downgrade "
        "the schema under it"
    )


@db_group.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@pass_cli
def backup(cli: CliContext, path: Path) -> None:
    """Copy the SQLite database to PATH while the site runs (PostgreSQL: use pg_dump)."""
    from publisher import db
    from publisher.config import load_settings

    settings = load_settings(cli.config_path)
    db.backup_sqlite(settings.database.url, path)
    console.print(f"database copied to {path}")


COMMANDS = [db_group]
