"""`publisher users`: add, list and remove the editors who log in to /admin/."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from publisher.cli.context import CliContext, console, pass_cli, print_json, run
from publisher.errors import UsageError

# Each command imports the accounts, the store and rich inside its own function, so
# the group's help loads none of them (docs/development.md, "Start-up time").
if TYPE_CHECKING:
    from publisher.site import Site

#: Role's values, literal so the help needs no import (tests/test_cli_startup.py).
ROLES = ("owner", "editor", "viewer")


def read_password(from_stdin: bool) -> str:
    """Read a new password from stdin (one line) or ask twice on the terminal."""
    if from_stdin:
        line = sys.stdin.readline(4096)
        password = line.rstrip("\r\n")
        if not password:
            raise UsageError("--password-stdin: no password on standard input")
        return password
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask for a password: pass it with --password-stdin")
    value = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return str(value)


@click.group("users")
def users() -> None:
    """Manage the editors who log in to the web app."""


@users.command("add")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), required=True, help="owner, editor or viewer.")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input (one line)."
)
@pass_cli
def add(cli: CliContext, email: str, role: str, password_stdin: bool) -> None:
    """Add a user; the password is asked for (or read with --password-stdin)."""
    from publisher.accounts import users as accounts
    from publisher.db import transaction

    site = cli.site()
    password = read_password(password_stdin)

    async def work(site: Site) -> str:
        async with transaction(site.engine) as session:
            user = await accounts.add(session, email, role, password, site.clock.now())
            return f"added {user.email} ({user.role})"

    console.print(run(site, work), markup=False)


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli
def list_(cli: CliContext, as_json: bool) -> None:
    """List users with their role and last login."""
    from rich.table import Table

    from publisher.accounts import users as accounts
    from publisher.db import transaction

    async def work(site: Site) -> list[dict[str, object]]:
        async with transaction(site.engine) as session:
            return [
                {
                    "email": user.email,
                    "role": user.role,
                    "totp": user.totp_secret is not None,
                    "created_at": user.created_at.isoformat(),
                    "last_login_at": user.last_login_at.isoformat() if user.last_login_at else None,
                }
                for user in await accounts.list_all(session)
            ]

    rows = run(cli.site(), work)
    if as_json:
        print_json(rows)
        return
    table = Table("email", "role", "2fa", "created", "last login")
    for row in rows:
        table.add_row(
            str(row["email"]),
            str(row["role"]),
            "yes" if row["totp"] else "no",
            str(row["created_at"])[:16],
            str(row["last_login_at"] or "never")[:16],
        )
    console.print(table)
    console.print(f"{len(rows)} users", markup=False)


@users.command("remove")
@click.argument("email")
@pass_cli
def remove(cli: CliContext, email: str) -> None:
    """Delete a user with their sessions and API tokens (the last owner stays)."""
    from publisher.accounts import users as accounts
    from publisher.db import transaction

    async def work(site: Site) -> str:
        async with transaction(site.engine) as session:
            return (await accounts.remove(session, email, site.clock.now())).email

    console.print(f"removed {run(cli.site(), work)}", markup=False)


@users.command("password")
@click.argument("email")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input (one line)."
)
@pass_cli
def password(cli: CliContext, email: str, password_stdin: bool) -> None:
    """Set a user's password and end all their sessions."""
    from publisher.accounts import sessions
    from publisher.accounts import users as accounts
    from publisher.db import transaction

    site = cli.site()
    new = read_password(password_stdin)

    async def work(site: Site) -> str:
        now = site.clock.now()
        async with transaction(site.engine) as session:
            user = await accounts.require(session, email)
            await accounts.set_password(session, user, new, now, actor="cli")
            await sessions.close_all(session, user, now, actor="cli")
            return user.email

    console.print(f"password changed for {run(site, work)}; its sessions ended", markup=False)


@users.command("totp")
@click.argument("email")
@click.option("--off", is_flag=True, help="Remove the second factor instead.")
@pass_cli
def totp_(cli: CliContext, email: str, off: bool) -> None:
    """Give a user a TOTP second factor (prints the secret and otpauth URI once)."""
    from publisher.accounts import totp
    from publisher.accounts import users as accounts
    from publisher.db import transaction

    async def work(site: Site) -> str:
        now = site.clock.now()
        async with transaction(site.engine) as session:
            user = await accounts.require(session, email)
            if off:
                await accounts.disable_totp(session, user, now, actor="cli")
                return f"second factor removed for {user.email}"
            secret = await accounts.enable_totp(session, user, now, actor="cli")
            uri = totp.provisioning_uri(secret, user.email, site.settings.site.title)
            return f"secret: {secret}\n{uri}"

    console.print(run(cli.site(), work), markup=False)


COMMANDS = [users]
