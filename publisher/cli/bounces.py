"""`publisher bounces process`: read DSNs and complaint reports and suppress addresses."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click

from publisher.cli.context import CliContext, console, pass_cli, run
from publisher.cli.subscribers import converted_errors
from publisher.db import transaction
from publisher.errors import UsageError
from publisher.site import Site
from subscribers import bounces as bounce_reports


@click.group("bounces")
def bounces() -> None:
    """Handle bounce and complaint reports."""


@bounces.command("process")
@click.argument("path", type=click.Path(path_type=Path))
@pass_cli
def process(cli: CliContext, path: Path) -> None:
    """Process a maildir, an mbox or one .eml of bounces (RFC 3464) and complaints (ARF)."""
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    site = cli.site()
    mail = site.settings.mail

    async def work(site: Site) -> Counter[str]:
        totals: Counter[str] = Counter()
        with converted_errors():
            for label, message in bounce_reports.read_messages(path):
                totals["messages"] += 1
                failures = bounce_reports.classify(message)
                if not failures:
                    totals["unrecognized"] += 1
                    console.print(f"skipped   {label}: not a bounce or complaint", markup=False)
                    continue
                # One transaction per report: a crash never records half a message.
                async with transaction(site.engine) as session:
                    for failure in failures:
                        outcome = await bounce_reports.record_bounce(
                            session,
                            failure.email,
                            failure.kind,
                            failure.detail,
                            site.clock.now(),
                            mail.soft_bounce_limit,
                            mail.soft_bounce_window,
                            report_id=failure.report_id,
                        )
                        if outcome.duplicate:
                            totals["duplicate"] += 1
                            state = "already recorded"
                        else:
                            totals[failure.kind] += 1
                            totals["suppressed"] += outcome.suppressed
                            state = "suppressed" if outcome.suppressed else "counted"
                        console.print(
                            f"{failure.kind:9} {failure.email}  {state}  ({failure.detail})",
                            markup=False,
                        )
        return totals

    totals = run(site, work)
    console.print(
        f"{totals['messages']} messages: {totals['hard']} hard, {totals['soft']} soft, "
        f"{totals['complaint']} complaints, {totals['suppressed']} suppressed, "
        f"{totals['duplicate']} already recorded, {totals['unrecognized']} unrecognized",
        markup=False,
    )


COMMANDS = [bounces]
