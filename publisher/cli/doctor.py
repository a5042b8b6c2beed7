"""`publisher doctor`: check configuration, files, database, relay and DNS before readers do."""

from __future__ import annotations

import sys

import click

from publisher.cli.context import CliContext, console, pass_cli


@click.command("doctor")
@pass_cli
def doctor(cli: CliContext) -> None:
    """Check the configuration, file permissions, database, relay, DKIM, SPF and DMARC."""
    # Imported here, so the command list and `doctor --help` load neither.
    import asyncio

    from publisher.doctor import Status, run_checks

    checks = asyncio.run(run_checks(cli.config_path))
    for check in checks:
        console.print(check.line(), markup=False)
    failed = sum(check.status == Status.FAIL for check in checks)
    if failed:
        console.print(f"{failed} problem(s) found", markup=False)
        sys.exit(1)


COMMANDS = [doctor]
