"""`publisher subscribers`: add, import, export, list and remove subscribers."""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from publisher.cli.context import CliContext, console, err_console, pass_cli, print_json, run
from publisher.errors import InputError, NotFoundError, PublisherError, UsageError
from subscribers.errors import (
    InvalidInput,
    MailboxError,
    SubscriberExists,
    SubscriberNotFound,
    SubscribersError,
    Suppressed,
)

# Each command imports the store, the subscribers package and rich inside its own
# function, so the group's help loads none of them (docs/development.md, "Start-up time").
if TYPE_CHECKING:
    from publisher.site import Site

#: subscribers.models' FREQUENCIES and STATUSES, literal so the help needs no import
#: (tests/test_cli_startup.py checks they stay equal).
FREQUENCIES = ("daily", "weekly")
STATUSES = ("pending", "active", "unsubscribed", "bounced", "complained")


@contextmanager
def converted_errors() -> Iterator[None]:
    """Turn the subscribers package's exceptions into Publisher's (one line, exit 2)."""
    try:
        yield
    except SubscriberNotFound as exc:
        raise NotFoundError(str(exc)) from exc
    except (InvalidInput, SubscriberExists, Suppressed, MailboxError) as exc:
        raise InputError(str(exc)) from exc
    except SubscribersError as exc:
        raise PublisherError(str(exc)) from exc


def site_languages(site: Site) -> tuple[str, ...]:
    """Return the languages readers may choose: the translated ones and the site's."""
    from subscribers.preferences import LANGUAGES

    return tuple(dict.fromkeys((*LANGUAGES, site.settings.site.language)))


@click.group("subscribers")
def subscribers() -> None:
    """Manage the subscriber list."""


@subscribers.command("add")
@click.argument("email")
@click.option("--name", default="", help="Display name.")
@click.option("--lang", default="", help="Language of emails (id or en; default site.language).")
@click.option("--timezone", default="", help="IANA time zone (default site.timezone).")
@click.option("--frequency", type=click.Choice(FREQUENCIES), default="daily", show_default=True)
@click.option("--topic", "topics", multiple=True, help="Only articles with this tag (repeatable).")
@click.option(
    "--confirmed", is_flag=True, help="Add as active: you hold the reader's consent already."
)
@pass_cli
def add(
    cli: CliContext,
    email: str,
    name: str,
    lang: str,
    timezone: str,
    frequency: str,
    topics: tuple[str, ...],
    confirmed: bool,
) -> None:
    """Add one subscriber; without --confirmed they get a confirmation email."""
    from publisher.db import transaction
    from publisher.delivery import notices
    from publisher.delivery.models import MailKind
    from subscribers import consent, repository, suppression
    from subscribers.addresses import normalize
    from subscribers.models import ACTIVE, PENDING
    from subscribers.repository import Consent, Preferences

    site = cli.site()
    with converted_errors():
        address = normalize(email)
        preferences = Preferences.parse(
            name=name,
            language=lang,
            timezone=timezone,
            frequency=frequency,
            topics=topics,
            languages=site_languages(site),
        )

    async def work(site: Site) -> str:
        now = site.clock.now()
        record = Consent(
            source="cli",
            at=now,
            text="added by an administrator" + (" as confirmed" if confirmed else ""),
        )
        with converted_errors():
            async with transaction(site.engine) as session:
                if confirmed:
                    if await suppression.is_suppressed(session, address.email):
                        why = await suppression.reason(session, address.email)
                        raise Suppressed(
                            f"{address.email} is suppressed ({why}); only the reader can lift "
                            "that by subscribing again and confirming"
                        )
                    await repository.add(session, address, preferences, record, now, status=ACTIVE)
                    return f"added {address.email} (active)"
                existing = await repository.get_by_email(session, address.key)
                if existing is not None:
                    raise SubscriberExists(
                        f"{address.email} is already on the list ({existing.status})"
                    )
                outcome = await consent.subscribe(session, address, preferences, record, now)
                await notices.queue(session, site, MailKind.CONFIRMATION, outcome.subscriber.id)
        return f"added {address.email} ({PENDING}); {await _deliver_now(site)}"

    console.print(run(site, work), markup=False)


async def _deliver_now(site: Site) -> str:
    """Send queued notices now; say what became of the one just queued."""
    from publisher.delivery import notices

    report = await notices.deliver_notices(site)
    if report is None:
        return "confirmation email queued (the running sender delivers it)"
    if report.paused:
        return f"confirmation email queued; sending paused: {report.paused}"
    if report.sent:
        return "confirmation email sent"
    return "confirmation email queued (see `publisher digest status` and the worker's log)"


@subscribers.command("resend-confirmation")
@click.argument("email")
@pass_cli
def resend_confirmation(cli: CliContext, email: str) -> None:
    """Queue a fresh confirmation email for a pending reader, and send it."""
    from publisher.db import transaction
    from publisher.delivery import notices
    from publisher.delivery.models import MailKind
    from subscribers import repository
    from subscribers.models import PENDING

    async def work(site: Site) -> str:
        with converted_errors():
            async with transaction(site.engine) as session:
                subscriber = await repository.get_by_email(session, email)
                if subscriber is None:
                    raise SubscriberNotFound(f"no subscriber {email.strip()!r}")
                if subscriber.status != PENDING:
                    raise InvalidInput(
                        f"{subscriber.email} is {subscriber.status}, not {PENDING}: "
                        "only pending readers are asked to confirm"
                    )
                subscriber.confirmation_sent_at = site.clock.now()
                await notices.queue(session, site, MailKind.CONFIRMATION, subscriber.id)
                address = subscriber.email
        return f"{address}: {await _deliver_now(site)}"

    console.print(run(cli.site(), work), markup=False)


@subscribers.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--confirmed", is_flag=True, help="Import as active (you hold their consent).")
@pass_cli
def import_(cli: CliContext, file: Path, confirmed: bool) -> None:
    """Import subscribers from CSV (header: email,name,language,timezone,frequency,topics)."""
    from subscribers import csvio

    site = cli.site()

    def show(error: csvio.RowError) -> None:
        err_console.print(f"error: {file}:{error.line}: {error.message}", markup=False)

    async def work(site: Site) -> csvio.ImportReport:
        try:
            if stat.S_ISCHR(file.stat().st_mode):  # /dev/zero would be one endless line
                raise InputError(f"{file}: a device, not a CSV file")
            handle = file.open(encoding="utf-8-sig", errors="surrogateescape", newline="")
        except OSError as exc:
            raise InputError(f"{file}: cannot read: {exc.strerror or exc}") from exc
        with handle, converted_errors():
            return await csvio.import_csv(
                site.engine,
                handle,
                site.clock.now(),
                source=str(file),
                confirmed=confirmed,
                languages=site_languages(site),
                on_error=show,
            )

    report = run(site, work)
    console.print(
        f"{report.created} created, {report.updated} updated, {report.unchanged} unchanged, "
        f"{report.suppressed} suppressed (skipped), {len(report.errors)} failed",
        markup=False,
    )
    if report.errors:
        raise SystemExit(2)


@subscribers.command("export")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@pass_cli
def export(cli: CliContext, file: Path | None) -> None:
    """Export every subscriber with consent fields as CSV (to FILE or stdout)."""
    from publisher.db import transaction
    from subscribers import csvio

    async def work(site: Site) -> int:
        async with transaction(site.engine) as session:
            if file is None:
                return await csvio.export_csv(session, sys.stdout)
            # Write beside the target and rename, so a failure leaves no half file.
            directory = file.resolve().parent
            fd, tmp = tempfile.mkstemp(prefix=f".{file.name}.", dir=directory)
            try:
                with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
                    count = await csvio.export_csv(session, out)
                os.replace(tmp, file)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return count

    site = cli.site()
    if file is not None and not file.resolve().parent.is_dir():
        raise UsageError(f"{file}: folder does not exist")
    count = run(site, work)
    if file is not None:
        console.print(f"exported {count} subscribers to {file}", markup=False)


@subscribers.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only this status.")
@pass_cli
def list_(cli: CliContext, as_json: bool, status: str | None) -> None:
    """List subscribers."""
    from rich.table import Table

    from publisher.db import transaction
    from subscribers import repository

    async def work(site: Site) -> list[dict[str, object]]:
        async with transaction(site.engine) as session:
            found = await repository.list_subscribers(session, status=status)
            return [repository.to_dict(s) for s in found]

    rows = run(cli.site(), work)
    if as_json:
        print_json(rows)
        return
    table = Table("email", "status", "lang", "timezone", "frequency", "topics", "created")
    for row in rows:
        table.add_row(
            str(row["email"]),
            str(row["status"]),
            str(row["language"]),
            str(row["timezone"]),
            str(row["frequency"]),
            ", ".join(row["topics"]),  # type: ignore[arg-type]
            str(row["created_at"])[:16],
        )
    console.print(table)
    console.print(f"{len(rows)} subscribers", markup=False)


@subscribers.command("remove")
@click.argument("email")
@pass_cli
def remove(cli: CliContext, email: str) -> None:
    """Delete a subscriber; a suppressed address stays suppressed."""
    from publisher.db import transaction
    from subscribers import repository

    async def work(site: Site) -> str:
        with converted_errors():
            async with transaction(site.engine) as session:
                removed = await repository.remove(session, email)
                return removed.email

    console.print(f"removed {run(cli.site(), work)}", markup=False)


COMMANDS = [subscribers]
