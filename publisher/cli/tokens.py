"""`publisher tokens`: create, list and revoke API tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from publisher.cli.context import CliContext, console, pass_cli, print_json, run

# Each command imports the accounts, the store and rich inside its own function, so
# the group's help loads none of them (docs/development.md, "Start-up time").
if TYPE_CHECKING:
    from publisher.site import Site

#: TokenScope's values, literal so the help needs no import (tests/test_cli_startup.py).
SCOPES = ("read", "write")


@click.group("tokens")
def tokens() -> None:
    """Manage API tokens (Authorization: Bearer)."""


@tokens.command("create")
@click.option("--user", "email", required=True, help="The user the token acts as.")
@click.option("--name", required=True, help="A name to tell the token by (and revoke it).")
@click.option("--scope", type=click.Choice(SCOPES), default="write", show_default=True)
@pass_cli
def create(cli: CliContext, email: str, name: str, scope: str) -> None:
    """Create a token and print it once (only its hash is kept)."""
    from publisher.accounts import tokens as api_tokens
    from publisher.accounts import users as accounts
    from publisher.db import transaction

    async def work(site: Site) -> str:
        async with transaction(site.engine) as session:
            user = await accounts.require(session, email)
            created = await api_tokens.create(session, user, name, scope, site.clock.now())
            return created.raw

    raw = run(cli.site(), work)
    # The token alone on stdout, so `$(publisher tokens create ...)` captures it.
    click.echo(raw)
    click.echo("store it now: it is not shown again", err=True)


@tokens.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli
def list_(cli: CliContext, as_json: bool) -> None:
    """List tokens (name, user, scope, created, last used, revoked), never the secrets."""
    from rich.table import Table

    from publisher.accounts import tokens as api_tokens
    from publisher.db import transaction

    async def work(site: Site) -> list[dict[str, object]]:
        async with transaction(site.engine) as session:
            return [
                {
                    "name": token.name,
                    "user": user.email,
                    "scope": token.scope,
                    "prefix": token.prefix,
                    "created_at": token.created_at.isoformat(),
                    "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
                    "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
                }
                for token, user in await api_tokens.list_all(session)
            ]

    rows = run(cli.site(), work)
    if as_json:
        print_json(rows)
        return
    table = Table("name", "user", "scope", "prefix", "created", "last used", "revoked")
    for row in rows:
        table.add_row(
            str(row["name"]),
            str(row["user"]),
            str(row["scope"]),
            str(row["prefix"]) + "…",
            str(row["created_at"])[:16],
            str(row["last_used_at"] or "never")[:16],
            str(row["revoked_at"] or "")[:16],
        )
    console.print(table)
    console.print(f"{len(rows)} tokens", markup=False)


@tokens.command("revoke")
@click.argument("name")
@pass_cli
def revoke(cli: CliContext, name: str) -> None:
    """Revoke the live token with this name; it stops working at once."""
    from publisher.accounts import tokens as api_tokens
    from publisher.db import transaction

    async def work(site: Site) -> str:
        async with transaction(site.engine) as session:
            return (await api_tokens.revoke(session, name, site.clock.now())).name

    console.print(f"revoked {run(cli.site(), work)}", markup=False)


COMMANDS = [tokens]
