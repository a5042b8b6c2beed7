"""`publisher bounces process`: read DSNs and complaint reports and suppress addresses."""

from __future__ import annotations

import email.message
from collections import Counter
from pathlib import Path

import click

from publisher.cli.context import CliContext, console, pass_cli, run
from publisher.cli.subscribers import converted_errors
from publisher.db import transaction
from publisher.errors import UsageError
from publisher.site import Site
from subscribers import bounces as bounce_reports
from subscribers import mailunsubscribe
from subscribers.tokens import Tokens


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
                    request = await unsubscribe_request(site, message)
                    if request is None:
                        totals["unrecognized"] += 1
                        console.print(f"skipped   {label}: not a bounce or complaint", markup=False)
                    elif request.valid:
                        totals["unsubscribed"] += 1
                        state = "unsubscribed" if request.changed else "already unsubscribed"
                        console.print(f"mail      {request.email}  {state}", markup=False)
                    else:
                        totals["forged"] += 1
                        console.print(
                            f"ignored   {label}: unsubscribe request with an invalid token",
                            markup=False,
                        )
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
        f"{totals['duplicate']} already recorded, {totals['unrecognized']} unrecognized, "
        f"{totals['unsubscribed']} unsubscribed by mail, {totals['forged']} invalid requests",
        markup=False,
    )


async def unsubscribe_request(
    site: Site, message: email.message.Message
) -> mailunsubscribe.MailRequest | None:
    """Handle a reader's mail to the List-Unsubscribe address (None when it is not one)."""
    address = site.settings.mail.unsubscribe_mailto.removeprefix("mailto:").split("?", 1)[0]
    local_part = address.rpartition("@")[0].split("+", 1)[0]
    tokens = Tokens(site.settings.web.secret_key)
    async with transaction(site.engine) as session:
        request = await mailunsubscribe.handle_mail(
            session, tokens, message, local_part, site.clock.now()
        )
    if request is not None and request.changed and site.settings.mail.unsubscribe_notice:
        from publisher.web.subscription import send_subscription_mail

        assert request.subscriber_id is not None
        await send_subscription_mail(site, "unsubscribed", request.subscriber_id)
    return request


COMMANDS = [bounces]
