"""`publisher digest send`, `publisher digest status` and `publisher worker`."""

from __future__ import annotations

import signal
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import click

from publisher.cli.context import CliContext, console, err_console, pass_cli, print_json, run
from publisher.cli.digest import digest
from publisher.errors import DeliveryError, NotFoundError

# Each command imports what its own work needs inside its functions: `digest status`
# must not load the renderer, DKIM and the SMTP pool that `digest send` uses, and
# `publisher digest --help` none of them (docs/development.md, "Start-up time").
if TYPE_CHECKING:
    from collections import Counter

    from publisher.delivery.editions import EnqueueReport
    from publisher.delivery.worker import DeliveryReport
    from publisher.site import Site

#: Kept literal so the group's help needs no import; test_cli_startup.py checks it
#: equals planning.FREQUENCIES.
FREQUENCIES = ("daily", "weekly")

#: `digest send` waits for retries due this soon before leaving them to a worker.
LINGER = timedelta(seconds=60)


@digest.command("send")
@click.option(
    "--frequency",
    type=click.Choice(FREQUENCIES),
    default=FREQUENCIES[0],
    show_default=True,
    help="Which subscribers: daily or weekly.",
)
@click.option("--dry-run", is_flag=True, help="Render and count; send nothing, write nothing.")
@click.option("--to", "to", default=None, metavar="EMAIL", help="Send one test copy here only.")
@click.option("--resume", is_flag=True, help="Only finish what is queued (after a crash).")
@click.option(
    "--retry-now",
    is_flag=True,
    help="Lift a pause now (the SMTP server is back) instead of waiting it out.",
)
@pass_cli
def send(
    cli: CliContext, frequency: str, dry_run: bool, to: str | None, resume: bool, retry_now: bool
) -> None:
    """Send the digest now to every active subscriber of FREQUENCY (safe to run again)."""
    from publisher.delivery.store import open_store

    site = cli.site()
    if retry_now:
        run(site, lambda s: open_store(s).clear_pause())
    if to is not None:
        run(site, lambda s: _send_test_copy(s, frequency, to))
        return
    if dry_run:
        run(site, lambda s: _dry_run(s, frequency))
        return
    report = run(site, lambda s: _send(s, frequency, resume))
    if report.paused:
        until = f"{report.paused_until:%H:%M:%S} UTC" if report.paused_until else "later"
        raise DeliveryError(
            f"sending paused: {report.paused}; nothing was marked failed. Retrying after "
            f"{until}: run `publisher digest send --resume` or keep `publisher worker` running"
        )


async def _send(site: Site, frequency: str, resume: bool) -> DeliveryReport:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from publisher.delivery import store
    from publisher.delivery.editions import current_edition_date, enqueue, open_edition
    from publisher.delivery.worker import deliver

    now = site.clock.now()
    if not resume:
        day = current_edition_date(site, frequency, now)
        edition = await open_edition(site, frequency, day, now, enqueuing=True)
        queued = await enqueue(site, edition, now)
        console.print(_enqueue_line(queued), markup=False)
    total = await store.unfinished_count(site)
    started = time.monotonic()
    columns = (
        TextColumn("[bold]sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("sent {task.fields[sent]}  failed {task.fields[failed]}"),
        TextColumn("retrying {task.fields[retrying]}  {task.fields[rate]:.0f} msg/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console.rich, transient=False) as bar:
        task = bar.add_task("send", total=total or None, sent=0, failed=0, retrying=0, rate=0.0)

        def progress(report: DeliveryReport) -> None:
            done = report.sent + report.failed + report.retrying + report.cancelled
            elapsed = time.monotonic() - started
            bar.update(
                task,
                completed=done,
                sent=report.sent,
                failed=report.failed,
                retrying=report.retrying,
                rate=report.sent / elapsed if elapsed > 0 else 0.0,
            )

        report = await deliver(site, until_idle=True, progress=progress, linger=LINGER)
        progress(report)
    await _summary(site, report)
    return report


def _enqueue_line(report: EnqueueReport) -> str:
    return (
        f"edition {report.period_key}: {report.queued} queued now, "
        f"{report.already_queued} already queued, {report.nothing_new} with nothing new, "
        f"{report.suppressed} suppressed, {len(report.variants)} variant(s)"
    )


async def _summary(site: Site, report: DeliveryReport) -> None:
    from rich.table import Table

    from publisher.delivery import store
    from publisher.delivery.editions import get_edition

    table = Table(title="delivery summary", show_edge=False)
    table.add_column("")
    table.add_column("this run", justify="right")
    for label, value in (
        ("sent", report.sent),
        ("failed", report.failed),
        ("to retry", report.retrying),
        ("cancelled", report.cancelled),
        ("recovered after a crash", report.recovered),
    ):
        table.add_row(label, str(value))
    table.add_row("elapsed", f"{report.elapsed:.1f} s")
    rate = report.sent / report.elapsed if report.elapsed > 0 else 0.0
    table.add_row("rate", f"{rate:.0f} msg/s")
    console.print(table)
    edition = await get_edition(site)
    if edition is not None:
        counts = await store.status_counts(site, edition.id)
        console.print(f"edition {edition.period_key} ({edition.status}): {_counts_line(counts)}")
        waiting = counts.get("retrying", 0) + counts.get("queued", 0)
        if waiting and not report.paused:
            console.print(
                f"{waiting} message(s) wait for a retry: `publisher worker` or "
                "`publisher digest send --resume` will send them when due",
                markup=False,
            )


def _counts_line(counts: Counter[str]) -> str:
    from publisher.delivery.models import OUTBOX_STATUSES

    return ", ".join(f"{counts.get(s, 0)} {s}" for s in OUTBOX_STATUSES if counts.get(s, 0))


async def _dry_run(site: Site, frequency: str) -> None:
    import asyncio

    import sqlalchemy as sa
    from rich.table import Table

    from publisher import planning
    from publisher.content.models import Article
    from publisher.db import transaction
    from publisher.delivery.compose import reader_links
    from publisher.delivery.editions import current_edition_date, enqueue, get_edition
    from publisher.delivery.models import Edition
    from publisher.render.digest import Digest, render_digest
    from publisher.render.message import Recipient, build_digest_template, make_message_id

    now = site.clock.now()
    key_date = current_edition_date(site, frequency, now)
    edition = await get_edition(site, planning.period_key(frequency, key_date))
    if edition is None:
        edition = Edition(
            id=None,
            period_key=planning.period_key(frequency, key_date),
            frequency=frequency,
            status="open",
            window_end=now,
            created_at=now,
            last_error="",
        )
    report = await enqueue(site, edition, now, dry_run=True)
    table = Table(title=f"dry run: {edition.period_key}", show_edge=False)
    table.add_column("variant (language:article ids)")
    table.add_column("recipients", justify="right")
    table.add_column("subject")
    table.add_column("bytes", justify="right")
    tokens, base = reader_links(site)
    for variant, count in sorted(report.variants.items()):
        language, _, id_list = variant.partition(":")
        ids = [int(i) for i in id_list.split(",") if i]
        async with transaction(site.engine) as session:
            rows = await session.scalars(sa.select(Article).where(Article.id.in_(ids)))
            found = {a.id: a for a in rows}
        digest_model = Digest(
            articles=[found[i] for i in ids if i in found],
            language=language,
            edition_key=edition.period_key,
            edition_date=key_date,
            tz=site.settings.tz,
            frequency=frequency,
        )
        compiled = await asyncio.to_thread(render_digest, site.settings, digest_model)
        template = build_digest_template(site.settings, compiled, clock=site.clock)
        sample = template.personalize(
            Recipient(
                email="reader@example.org",
                name="",
                unsubscribe_url=f"{base}/unsubscribe/{tokens.unsubscribe(0)}",
                preferences_url=f"{base}/preferences/{tokens.preferences(0)}",
                message_id=make_message_id("example.org"),
                language=compiled.language,
            )
        )
        table.add_row(variant, str(count), compiled.subject, str(len(sample)))
    console.print(table)
    console.print(
        f"would send {report.queued} message(s); {report.already_queued} already queued, "
        f"{report.nothing_new} with nothing new, {report.suppressed} suppressed; "
        "nothing was sent or written",
        markup=False,
    )


async def _send_test_copy(site: Site, frequency: str, to: str) -> None:
    from publisher.delivery.testcopy import send_test_copy

    articles = await send_test_copy(site, frequency, to)
    console.print(
        f"sent one test copy of {articles} article(s) to {to}; no subscriber was touched",
        markup=False,
    )


@digest.command("status")
@click.argument("edition", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@pass_cli
def status(cli: CliContext, edition: str | None, as_json: bool) -> None:
    """Show an edition's messages by status and its latest errors (default: the newest)."""
    run(cli.site(), lambda s: _status(s, edition, as_json))


async def _status(site: Site, key: str | None, as_json: bool) -> None:
    from rich.table import Table

    from publisher.delivery import store
    from publisher.delivery.models import OUTBOX_STATUSES

    # The store's own read, not editions.get_edition: editions imports the planner and
    # the article store, which a status line never needs.
    edition = await store.get_edition(site, key)
    notices = await store.notice_counts(site)
    if edition is None and (key or not notices):
        raise NotFoundError(
            f"no edition {key!r} (keys look like daily:2026-11-25)" if key else "no editions yet"
        )
    notice_data: dict[str, dict[str, int]] = {
        kind: {str(status): counts.get(status, 0) for status in store.NOTICE_STATUSES}
        for kind, counts in sorted(notices.items())
    }
    if edition is None:
        if as_json:
            print_json({"edition": None, "notices": notice_data})
        else:
            _print_notices(notice_data)
        return
    counts = await store.status_counts(site, edition.id)
    errors = await store.last_errors(site, edition.id)
    if as_json:
        data: dict[str, Any] = {
            "edition": edition.period_key,
            "status": edition.status,
            "created_at": edition.created_at.isoformat(),
            "finished_at": edition.finished_at.isoformat() if edition.finished_at else None,
            "paused_until": edition.paused_until.isoformat() if edition.paused_until else None,
            "last_error": edition.last_error,
            "counts": {s: counts.get(s, 0) for s in OUTBOX_STATUSES},
            "total": sum(counts.values()),
            "errors": [
                {
                    "email": e.email,
                    "status": e.status,
                    "attempts": e.attempts,
                    "code": e.code,
                    "response": e.response,
                    "next_attempt_at": e.next_attempt_at.isoformat() if e.next_attempt_at else None,
                }
                for e in errors
            ],
            "notices": notice_data,
        }
        print_json(data)
        return
    console.print(
        f"edition {edition.period_key}: {edition.status}, created "
        f"{edition.created_at:%Y-%m-%d %H:%M} UTC"
        + (f", finished {edition.finished_at:%Y-%m-%d %H:%M} UTC" if edition.finished_at else ""),
        markup=False,
    )
    if edition.paused_until and edition.paused_until > site.clock.now():
        console.print(
            f"paused until {edition.paused_until:%H:%M:%S} UTC: {edition.last_error}", markup=False
        )
    table = Table(show_edge=False)
    table.add_column("status")
    table.add_column("messages", justify="right")
    for name in OUTBOX_STATUSES:
        table.add_row(name, str(counts.get(name, 0)))
    table.add_row("total", str(sum(counts.values())))
    console.print(table)
    if errors:
        console.print("latest errors:")
        for e in errors:
            retry = f", next try {e.next_attempt_at:%H:%M:%S} UTC" if e.next_attempt_at else ""
            console.print(
                f"  {e.email}: {e.status} after {e.attempts} attempt(s): {e.response}{retry}",
                markup=False,
            )
    _print_notices(notice_data)


def _print_notices(notices: dict[str, dict[str, int]]) -> None:
    """Print the transactional mail waiting or failed beside the edition."""
    from rich.table import Table

    from publisher.delivery import store

    if not notices:
        return
    table = Table(show_edge=False, title="other mail (confirmations, notices, test copies)")
    table.add_column("kind")
    for status in store.NOTICE_STATUSES:
        table.add_column(status, justify="right")
    for kind, counts in notices.items():
        table.add_row(kind, *(str(counts[status]) for status in store.NOTICE_STATUSES))
    console.print(table)


@click.command("worker")
@pass_cli
def worker(cli: CliContext) -> None:
    """Send queued mail until SIGTERM, then finish what is in flight and exit."""
    import asyncio

    from publisher import logs
    from publisher.delivery.worker import deliver
    from publisher.metrics import metrics_listener

    site = cli.site()
    logs.configure(site.settings.log)
    listener = metrics_listener(site)

    async def work(site: Site) -> DeliveryReport:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        console.print("worker started; SIGTERM or Ctrl-C stops it cleanly", markup=False)
        last = [time.monotonic()]

        def progress(report: DeliveryReport) -> None:
            if time.monotonic() - last[0] >= 10:
                last[0] = time.monotonic()
                console.print(f"worker: {report}", markup=False)

        report = await deliver(site, stop=stop, until_idle=False, progress=progress)
        console.print(f"worker stopped: {report}", markup=False)
        return report

    try:
        report = run(site, work)
    finally:
        if listener is not None:
            listener.close()
    if report.paused and not report.sent:
        err_console.print(f"last pause: {report.paused}", markup=False)


digest.add_command(send)
digest.add_command(status)

COMMANDS = [worker]
