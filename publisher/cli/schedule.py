"""`publisher schedule`: run the scheduler, or show what it will do."""

from __future__ import annotations

from datetime import UTC
from typing import TYPE_CHECKING

import click

from publisher.cli.context import CliContext, console, pass_cli, run

# Each command imports what its own work needs inside its function, so the group's
# help and the other commands load none of it (docs/development.md, "Start-up time").
if TYPE_CHECKING:
    from publisher.site import Site


@click.group("schedule")
def schedule_group() -> None:
    """Send each reader's digest at their own local send time."""


@schedule_group.command("run")
@pass_cli
def run_command(cli: CliContext) -> None:
    """Run the scheduler until SIGTERM or Ctrl-C (one per database)."""

    from publisher import logs
    from publisher.metrics import metrics_listener
    from publisher.scheduling import ScheduleRunner

    site = cli.site()
    logs.configure(site.settings.log)
    listener = metrics_listener(site)

    async def work(site: Site) -> None:
        await ScheduleRunner(site).run_until_stopped()

    try:
        run(site, work)
    finally:
        if listener is not None:
            listener.close()


@schedule_group.command("show")
@pass_cli
def show_command(cli: CliContext) -> None:
    """Show the scheduler's jobs and the next digest send per time zone."""
    from rich.table import Table

    from publisher.scheduling import every_text, overview

    site = cli.site()
    view = run(site, overview)
    settings = site.settings
    console.print(
        f"digest send time {settings.digest.send_time:%H:%M} local to each reader "
        f"(site time zone {settings.site.timezone}); weekly on {settings.digest.weekly_day}",
        markup=False,
    )
    jobs = Table(title="Jobs", title_justify="left")
    jobs.add_column("job")
    jobs.add_column("next run (UTC)")
    jobs.add_column("runs")
    jobs.add_column("what it does")
    for job in view.jobs:
        when = f"{job.next_run.astimezone(UTC):%Y-%m-%d %H:%M}"
        jobs.add_row(job.id, when, every_text(job.every), job.description)
    console.print(jobs)
    sends = Table(title="Next sends", title_justify="left")
    for name in ("frequency", "time zone", "local time", "UTC", "subscribers"):
        sends.add_column(name, justify="right" if name == "subscribers" else "left")
    for plan in view.sends:
        sends.add_row(
            plan.frequency,
            plan.timezone,
            f"{plan.local_send_at:%a %Y-%m-%d %H:%M %Z}",
            f"{plan.send_at:%Y-%m-%d %H:%M}",
            str(plan.subscribers),
        )
    console.print(sends)


COMMANDS = [schedule_group]
