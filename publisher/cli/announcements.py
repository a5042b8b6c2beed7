"""`publisher announcements`: write, list, send (now or at a local time) and cancel them."""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from publisher.cli.context import CliContext, console, pass_cli, print_json, run
from publisher.errors import InputError, UsageError

# Each command imports delivery, rendering and the store inside its own function, so the
# group's help loads none of them (docs/development.md, "Start-up time").
if TYPE_CHECKING:
    from publisher.delivery.models import Announcement
    from publisher.site import Site

#: announcements.MAX_BODY, literal so reading a body needs no import (checked in a test).
MAX_BODY = 50_000


def read_body(path: str) -> str:
    """Read a Markdown body from a file or standard input ("-"), size-limited, as UTF-8."""
    limit = MAX_BODY * 4 + 1  # characters take up to four bytes
    try:
        if path == "-":
            raw = sys.stdin.buffer.read(limit)
        else:
            with Path(path).open("rb") as stream:
                raw = stream.read(limit)
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start})") from exc


async def _audit(site: Site, action: str, target: str, detail: str = "") -> None:
    from publisher.accounts import audit
    from publisher.db import transaction

    async with transaction(site.engine) as session:
        await audit.record(
            session,
            actor=audit.CLI_ACTOR,
            action=action,
            target=target,
            source="cli",
            detail=detail,
            at=site.clock.now(),
        )


def describe(found: Announcement) -> dict[str, Any]:
    """Return an announcement as `list --json` prints it."""
    return {
        "id": found.id,
        "subject": found.subject,
        "language": found.language,
        "audience": found.audience,
        "status": found.status,
        "send_mode": found.send_mode,
        "send_at_local": (
            f"{found.send_date.isoformat()} {found.send_time}" if found.send_date else None
        ),
        "author": found.author,
        "created_at": found.created_at.isoformat(),
        "sent_at": found.sent_at.isoformat() if found.sent_at else None,
        "edition": f"announcement:{found.id}" if found.edition_id else None,
    }


def parse_local(value: str) -> tuple[date, str]:
    """Parse --at "YYYY-MM-DD HH:MM" into a date and a time string."""
    try:
        moment = datetime.strptime(value.strip(), "%Y-%m-%d %H:%M")
    except ValueError:
        raise UsageError(f"--at: {value[:40]!r} is not YYYY-MM-DD HH:MM") from None
    return moment.date(), moment.strftime("%H:%M")


@click.group("announcements")
def group() -> None:
    """Write and send one-off emails to chosen readers."""


@group.command("create")
@click.option("--subject", required=True, help="The subject line (one line, at most 200).")
@click.option(
    "--body",
    "body_path",
    required=True,
    help="Markdown file of the body, or - for standard input.",
)
@click.option("--lang", "language", default=None, help="Language of the email (default: site).")
@click.option("--to-lang", "languages", multiple=True, help="Only readers in this language.")
@click.option("--topic", "topics", multiple=True, help="Only readers following this topic.")
@click.option("--frequency", "frequencies", multiple=True, help="Only daily or weekly readers.")
@pass_cli
def create(
    cli: CliContext,
    subject: str,
    body_path: str,
    language: str | None,
    languages: tuple[str, ...],
    topics: tuple[str, ...],
    frequencies: tuple[str, ...],
) -> None:
    """Save a draft announcement (everyone unless --to-lang/--topic/--frequency narrow it)."""
    from publisher.delivery import announcements

    site = cli.site()
    data = announcements.AnnouncementInput(
        subject=subject,
        body_markdown=read_body(body_path),
        language=language or site.settings.site.language,
        audience=announcements.parse_audience(languages, topics, frequencies),
    )

    async def work(site: Site) -> str:
        found = await announcements.create(site, data, "cli")
        await _audit(site, "announcement.create", f"announcement:{found.id}", found.subject)
        count = await announcements.audience_size(site, announcements.audience_of(found))
        return f"created announcement {found.id} (draft) for {count} readers"

    console.print(run(site, work), markup=False)


@group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli
def list_(cli: CliContext, as_json: bool) -> None:
    """List announcements, newest first."""
    from publisher.delivery import announcements

    async def work(site: Site) -> list[dict[str, Any]]:
        return [describe(found) for found in await announcements.page(site, 1000)]

    rows = run(cli.site(), work)
    if as_json:
        print_json(rows)
        return
    for row in rows:
        when = f" at {row['send_at_local']} local" if row["send_at_local"] else ""
        console.print(f"{row['id']:>5}  {row['status']:<9}  {row['subject']}{when}", markup=False)
    console.print(f"{len(rows)} announcements", markup=False)


@group.command("send")
@click.argument("announcement_id", type=int)
@click.option(
    "--at", "at_local", default=None, help='"YYYY-MM-DD HH:MM" in each reader\'s time zone.'
)
@click.option("--to", "test_to", default=None, help="Send only a test copy to this address.")
@pass_cli
def send(cli: CliContext, announcement_id: int, at_local: str | None, test_to: str | None) -> None:
    """Send a draft now, schedule it for a local time, or send a test copy (--to)."""
    from publisher.delivery import announcements
    from publisher.delivery.testcopy import send_announcement_test
    from subscribers.addresses import normalize
    from subscribers.errors import InvalidInput

    when = parse_local(at_local) if at_local else None
    if test_to is not None and when is not None:
        raise UsageError("--to sends a test copy now; leave out --at")

    async def work(site: Site) -> str:
        if test_to is not None:
            try:
                address = normalize(test_to[:400]).email
            except InvalidInput as exc:
                raise UsageError(f"--to: {exc}") from exc
            await send_announcement_test(site, announcement_id, address)
            await _audit(site, "announcement.test_copy", f"announcement:{announcement_id}", address)
            return f"sent a test copy of announcement {announcement_id} to {address}"
        found = await announcements.send(site, announcement_id, at_local=when)
        detail = f"at {when[0]} {when[1]} local" if when else "now"
        await _audit(site, "announcement.send", f"announcement:{found.id}", detail)
        if when is not None:
            return (
                f"announcement {found.id} scheduled for {when[0]} {when[1]} in each reader's "
                "time zone (the scheduler sends it)"
            )
        return f"announcement {found.id} queued; `publisher worker` delivers it"

    console.print(run(cli.site(), work), markup=False)


@group.command("cancel")
@click.argument("announcement_id", type=int)
@pass_cli
def cancel(cli: CliContext, announcement_id: int) -> None:
    """Cancel a draft or a scheduled announcement before any of it is queued."""
    from publisher.delivery import announcements

    async def work(site: Site) -> str:
        found = await announcements.cancel(site, announcement_id)
        await _audit(site, "announcement.cancel", f"announcement:{found.id}")
        return f"announcement {found.id} cancelled"

    console.print(run(cli.site(), work), markup=False)


COMMANDS = [group]
