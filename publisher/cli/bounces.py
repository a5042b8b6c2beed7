"""`publisher bounces process`: read DSNs and complaint reports and suppress readers."""

from __future__ import annotations

import email.message
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import click

from publisher.cli.context import CliContext, console, pass_cli, run
from publisher.cli.subscribers import converted_errors
from publisher.errors import UsageError
from subscribers.errors import MalformedReport

# Each command imports what its own work needs inside its function, so the group's
# help and the other commands load none of it (docs/development.md, "Start-up time").
if TYPE_CHECKING:
    from publisher.site import Site
    from subscribers import mailunsubscribe


@click.group("bounces")
def bounces() -> None:
    """Handle bounce and complaint reports."""


@bounces.command("process")
@click.argument("path", type=click.Path(path_type=Path))
@pass_cli
def process(cli: CliContext, path: Path) -> None:
    """Process a maildir, an mbox or one .eml of bounces (RFC 3464) and complaints (ARF)."""
    from publisher.db import transaction
    from publisher.delivery.compose import return_paths
    from subscribers import bounces as bounce_reports
    from subscribers.bounces import Verdict, printable

    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    site = cli.site()
    mail = site.settings.mail
    paths = return_paths(site.settings)

    def say(line: str) -> None:
        # Everything after the label comes from the report's author: printable() it.
        console.print(line, markup=False)

    async def work(site: Site) -> Counter[str]:
        totals: Counter[str] = Counter()
        with converted_errors():
            for raw in bounce_reports.read_mailbox(path):
                totals["messages"] += 1
                label = printable(raw.label, 500)
                if raw.error is not None:
                    totals["malformed"] += 1
                    say(f"malformed {label}: {raw.error}")
                    continue
                # One message's trouble is logged with its key; the rest go on.
                try:
                    report = bounce_reports.examine(raw.data, paths)
                except MalformedReport as exc:
                    totals["malformed"] += 1
                    say(f"malformed {label}: {printable(exc, 300)}")
                    continue
                if report.verdict == Verdict.NOT_A_REPORT:
                    # A reader's mail to the List-Unsubscribe mailto shares the mailbox.
                    message = bounce_reports.parse_message(raw.data)
                    request = await unsubscribe_request(site, message)
                    if request is None:
                        totals["unrecognized"] += 1
                        say(f"skipped   {label}: not a bounce or complaint")
                    elif request.valid:
                        totals["unsubscribed"] += 1
                        state = "unsubscribed" if request.changed else "already unsubscribed"
                        say(f"mail      {printable(request.email, 320)}  {state}")
                    else:
                        totals["forged"] += 1
                        say(f"ignored   {label}: unsubscribe request with an invalid token")
                    continue
                if report.verdict == Verdict.UNVERIFIED or report.subscriber_id is None:
                    totals["ignored"] += 1
                    say(f"ignored   {label}: {report.why}")
                    continue
                assert report.kind is not None
                # One transaction per report: a crash never records half a message.
                async with transaction(site.engine) as session:
                    outcome = await bounce_reports.record_verified(
                        session,
                        report.subscriber_id,
                        report.kind,
                        report.detail,
                        site.clock.now(),
                        mail.soft_bounce_limit,
                        mail.soft_bounce_window,
                        report_id=report.report_id,
                    )
                if outcome is None:
                    totals["ignored"] += 1
                    say(f"ignored   {label}: reader #{report.subscriber_id} no longer exists")
                    continue
                if outcome.duplicate:
                    totals["duplicate"] += 1
                    state = "already recorded"
                else:
                    totals[report.kind] += 1
                    totals["suppressed"] += outcome.suppressed
                    state = "suppressed" if outcome.suppressed else "counted"
                say(f"{report.kind:9} {outcome.email}  {state}  ({printable(report.detail)})")
        return totals

    totals = run(site, work)
    console.print(
        f"{totals['messages']} messages: {totals['hard']} hard, {totals['soft']} soft, "
        f"{totals['complaint']} complaints, {totals['suppressed']} suppressed, "
        f"{totals['duplicate']} already recorded, {totals['unrecognized']} unrecognized, "
        f"{totals['ignored']} ignored (not answering mail we sent), "
        f"{totals['malformed']} malformed, "
        f"{totals['unsubscribed']} unsubscribed by mail, {totals['forged']} invalid requests",
        markup=False,
    )


async def unsubscribe_request(
    site: Site, message: email.message.Message
) -> mailunsubscribe.MailRequest | None:
    """Handle a reader's mail to the List-Unsubscribe address (None when it is not one)."""
    from publisher.db import transaction
    from publisher.delivery import notices
    from publisher.delivery.models import MailKind
    from subscribers import mailunsubscribe
    from subscribers.tokens import Tokens

    address = site.settings.mail.unsubscribe_mailto.removeprefix("mailto:").split("?", 1)[0]
    local_part = address.rpartition("@")[0].split("+", 1)[0]
    tokens = Tokens(site.settings.web.secret_key)
    async with transaction(site.engine) as session:
        request = await mailunsubscribe.handle_mail(
            session, tokens, message, local_part, site.clock.now()
        )
        if request is not None and request.changed and site.settings.mail.unsubscribe_notice:
            assert request.subscriber_id is not None
            # Queued with the change; `serve` or a worker delivers it from the outbox.
            await notices.queue(session, site, MailKind.UNSUBSCRIBED, request.subscriber_id)
    return request


COMMANDS = [bounces]
