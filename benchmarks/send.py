"""Delivery throughput and memory against Postfix's smtp-sink, with the transport ceiling.

One run prints every figure issue 7 asks for:

* the full pipeline (outbox claims, personalization, MIME, SMTP, batched status updates)
  sending a 10-article digest in two languages to N active subscribers, in msg/s;
* the transport ceiling: bare aiosmtplib sending the same number of prebuilt identical
  messages of the same size over the same number of connections to the same sink;
* their ratio (required: at least 80%);
* our own transport's ceiling (SmtpConnection.send of the same prebuilt message): it
  writes DATA without aiosmtplib's two regular-expression passes over the message, so
  it is faster than bare aiosmtplib, and the pipeline's ratio to it is the share our
  outbox, rendering and bookkeeping leave of what the wire allows (printed, not judged);
* peak RSS of the pipeline at N and at N/10 subscribers (required: at most 300 MB at
  100,000 and at most 1.3 times the smaller run's peak);
* the whole command: `publisher digest send` to --command-subscribers (20,000) readers,
  timed from process start to exit (start-up, enqueue, render and all), against the
  ceiling for as many messages measured in the same run (required: at least 80%).

Each pipeline run happens in a fresh child process so its peak RSS is its own.

    .venv/bin/python benchmarks/send.py [--subscribers 100000] [--connections 4]
        [--command-subscribers 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

# Run from a checkout without installing: make `publisher` importable.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SMTP_SINK = "/usr/sbin/smtp-sink"
RATIO_REQUIRED = 0.80
RSS_LIMIT_MB = 300.0
RSS_GROWTH_LIMIT = 1.3
ARTICLES = 10


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"smtp-sink did not start listening on 127.0.0.1:{port}")


def start_sink(port: int) -> subprocess.Popen[bytes]:
    """Start Postfix's smtp-sink on a loopback port."""
    if not Path(SMTP_SINK).exists():
        raise SystemExit(f"{SMTP_SINK} is missing: install the Debian package postfix")
    args = [SMTP_SINK]
    if os.geteuid() == 0:
        args += ["-u", "nobody"]
    args += [f"127.0.0.1:{port}", "1024"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for_port(port)
    return process


async def pipeline(
    subscribers: int, port: int, connections: int, workdir: Path, *, seed_only: bool = False
) -> dict[str, Any]:
    """Seed a fresh SQLite site, then enqueue and deliver one edition; return the figures.

    ``seed_only`` stops after writing the sample message: the edition is left for a
    `publisher digest send` command (the site's folder is ``workdir/site``).
    """
    from publisher.cli.init import init_site
    from publisher.clock import SystemClock
    from publisher.config import load_settings
    from publisher.db import transaction
    from publisher.delivery.compose import Composer
    from publisher.delivery.editions import enqueue, open_edition
    from publisher.delivery.models import OutboxRow
    from publisher.delivery.store import Job
    from publisher.delivery.worker import deliver
    from publisher.site import Site
    from tests.delivery_helpers import add_articles, add_subscribers

    site_dir = workdir / "site"
    init_site(site_dir, title="Kabar Nusantara", base_url="https://news.example.org")
    settings = load_settings(site_dir / "publisher.toml")
    settings.mail.smtp_url = f"smtp://127.0.0.1:{port}"
    settings.mail.connections = connections
    site = Site.from_settings(settings, clock=SystemClock())
    now = site.clock.now()
    await add_articles(site, ARTICLES, language="id")
    await add_articles(site, ARTICLES, language="en", prefix="story")
    await add_subscribers(site, subscribers, languages=("id", "en"))
    started = time.perf_counter()
    edition = await open_edition(site, "daily", now.date(), now)
    queued = await enqueue(site, edition, now)
    enqueue_seconds = time.perf_counter() - started
    # One real message, for its size and as the ceiling's prebuilt message.
    async with transaction(site.engine) as session:
        row = await session.scalar(sa_select_first(OutboxRow))
    assert row is not None
    assert row.subscriber_id is not None
    composer = Composer(site)
    job = Job(
        row.id,
        row.edition_id,
        row.variant_id,
        row.subscriber_id,
        row.email,
        "Pembaca 0",
        "id",
        row.message_id,
        0,
        None,
        row.window_end,
    )
    await composer.prepare([job])
    sample = composer.message(job)
    assert sample is not None
    (workdir / "sample.eml").write_bytes(sample)
    if seed_only:
        # The command opens its own edition: start from a clean outbox.
        async with transaction(site.engine) as session:
            await session.execute(sa_delete(OutboxRow))
        await site.aclose()
        return {"subscribers": subscribers, "message_bytes": len(sample)}
    started, cpu_started = time.perf_counter(), _cpu()
    report = await deliver(site)
    deliver_seconds = time.perf_counter() - started
    deliver_cpu = _cpu() - cpu_started
    await site.aclose()
    return {
        "subscribers": subscribers,
        "queued": queued.queued,
        "variants": len(queued.variants),
        "enqueue_seconds": enqueue_seconds,
        "sent": report.sent,
        "failed": report.failed + report.retrying,
        "deliver_seconds": deliver_seconds,
        "deliver_cpu": deliver_cpu,
        "message_bytes": len(sample),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def sa_delete(model: Any) -> Any:
    """Delete every row of a model (keeps the import of SQLAlchemy local)."""
    import sqlalchemy as sa

    return sa.delete(model)


def sa_select_first(model: Any) -> Any:
    """Select the first row of a model (keeps the import of SQLAlchemy local)."""
    import sqlalchemy as sa

    return sa.select(model).order_by(model.id).limit(1)


async def ceiling(
    port: int, connections: int, message: bytes, count: int, *, stock: bool = True
) -> float:
    """Time bare aiosmtplib (or, not ``stock``, our transport) sending ``message`` count times."""
    from publisher.config import MailSettings
    from publisher.delivery.smtp import transport_ceiling

    mail = MailSettings.from_mapping(
        {
            "smtp_url": f"smtp://127.0.0.1:{port}",
            "connections": connections,
            "timeout": timedelta(seconds=60),
        }
    )
    return await transport_ceiling(
        mail, message, "newsletter@news.example.org", "reader@example.net", count, stock=stock
    )


def measure_ceiling(
    port: int, connections: int, message: bytes, count: int, *, stock: bool = True
) -> tuple[float, float]:
    """Return (seconds, CPU seconds) of the bare-aiosmtplib (or our transport's) run."""
    cpu_started = _cpu()
    seconds = asyncio.run(ceiling(port, connections, message, count, stock=stock))
    return seconds, _cpu() - cpu_started


def run_child(
    subscribers: int, port: int, connections: int, script: str = __file__
) -> dict[str, Any]:
    """Run one pipeline measurement in a fresh process and return its figures
    (``script``: this file of another checkout, to compare two versions in one run)."""
    with tempfile.TemporaryDirectory(prefix="publisher-bench-send-") as tmp:
        completed = subprocess.run(
            [
                sys.executable,
                script,
                "--child",
                str(subscribers),
                "--port",
                str(port),
                "--connections",
                str(connections),
                "--workdir",
                tmp,
            ],
            capture_output=True,
            text=True,
            check=False,
            # The other checkout's own package, not this venv's editable install of ours.
            env={**os.environ, "PYTHONPATH": str(Path(script).resolve().parent.parent)},
        )
        if completed.returncode != 0:
            raise SystemExit(f"pipeline run failed:\n{completed.stderr}")
        figures: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
        figures["sample"] = (Path(tmp) / "sample.eml").read_bytes()
        return figures


def whole_command(subscribers: int, port: int, connections: int) -> dict[str, Any]:
    """Time `publisher digest send` for ``subscribers`` readers, process start to exit."""
    with tempfile.TemporaryDirectory(prefix="publisher-bench-command-") as tmp:
        seeded = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                str(subscribers),
                "--seed-only",
                "--port",
                str(port),
                "--connections",
                str(connections),
                "--workdir",
                tmp,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if seeded.returncode != 0:
            raise SystemExit(f"seeding failed:\n{seeded.stderr}")
        config = Path(tmp) / "site" / "publisher.toml"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUBLISHER_")}
        started = time.perf_counter()
        completed = subprocess.run(
            [sys.executable, "-m", "publisher", "--config", str(config), "digest", "send"],
            capture_output=True,
            text=True,
            check=False,
            env={
                **env,
                "PYTHONPATH": str(ROOT),
                "PUBLISHER_MAIL__SMTP_URL": f"smtp://127.0.0.1:{port}",
                "PUBLISHER_MAIL__CONNECTIONS": str(connections),
            },
        )
        seconds = time.perf_counter() - started
        if completed.returncode != 0:
            raise SystemExit(f"digest send failed:\n{completed.stderr}")
        sent = _sent_from_summary(completed.stdout)
        return {
            "subscribers": subscribers,
            "seconds": seconds,
            "sent": sent,
            "sample": (Path(tmp) / "sample.eml").read_bytes(),
        }


def _sent_from_summary(stdout: str) -> int:
    for line in stdout.splitlines():
        words = [w for w in line.replace("│", " ").split() if w]
        if len(words) == 2 and words[0] == "sent" and words[1].isdigit():
            return int(words[1])
    raise SystemExit(f"no 'sent N' row in the summary of digest send:\n{stdout}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--command-subscribers", type=int, default=20_000)
    parser.add_argument(
        "--no-check", action="store_true", help="Print the figures without judging them."
    )
    parser.add_argument(
        "--baseline",
        default="",
        help="Also run the pipeline of another checkout (e.g. main) in this run, same sink.",
    )
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default="", help=argparse.SUPPRESS)
    parser.add_argument("--seed-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        figures = asyncio.run(
            pipeline(
                args.child,
                args.port,
                args.connections,
                Path(args.workdir),
                seed_only=args.seed_only,
            )
        )
        print(json.dumps(figures))
        return 0

    port = _free_port()
    sink = start_sink(port)
    try:
        small_n = max(1, args.subscribers // 10)
        small = run_child(small_n, port, args.connections)
        # The ceiling is measured before and after the big run and averaged, so a busy
        # machine slowing one of them does not decide the ratio alone.
        count = args.subscribers
        before = measure_ceiling(port, args.connections, small["sample"], count)
        full = run_child(args.subscribers, port, args.connections)
        after = measure_ceiling(port, args.connections, full["sample"], count)
        ours = measure_ceiling(port, args.connections, full["sample"], count, stock=False)
        baseline: dict[str, Any] | None = None
        if args.baseline:
            script = str(Path(args.baseline).resolve() / "benchmarks" / "send.py")
            baseline = run_child(args.subscribers, port, args.connections, script)
            baseline["after"] = measure_ceiling(port, args.connections, full["sample"], count)
        # The whole command, between two ceilings for as many messages.
        command_n = args.command_subscribers
        command_before = measure_ceiling(port, args.connections, full["sample"], command_n)
        command = whole_command(command_n, port, args.connections)
        command_after = measure_ceiling(port, args.connections, command["sample"], command_n)
    finally:
        sink.terminate()
        sink.wait(timeout=10)

    n = full["subscribers"]
    rate = full["sent"] / full["deliver_seconds"]
    bare_rates = [count / before[0], count / after[0]]
    bare_rate = sum(bare_rates) / 2
    ratio = rate / bare_rate
    cpu_per_message = full["deliver_cpu"] / full["sent"] * 1e6
    bare_cpu = (before[1] + after[1]) / (2 * count) * 1e6
    growth = full["peak_rss_mb"] / small["peak_rss_mb"]
    size_kb = full["message_bytes"] / 1024
    print(
        f"send: {n} active subscribers, {full['variants']} variants (id, en) of "
        f"{ARTICLES} articles, {size_kb:.1f} KB per message, {args.connections} connections "
        "to smtp-sink, SQLite"
    )
    print(
        f"enqueue: {full['queued']} outbox rows in {full['enqueue_seconds']:.1f} s "
        f"({full['queued'] / full['enqueue_seconds']:,.0f} rows/s)"
    )
    print(
        f"pipeline: {full['sent']} sent, {full['failed']} not sent, in "
        f"{full['deliver_seconds']:.1f} s = {rate:,.0f} msg/s ({cpu_per_message:.0f} us CPU/msg)"
    )
    print(
        f"ceiling (bare aiosmtplib, same message size and connections): {count} messages, "
        f"{bare_rates[0]:,.0f} and {bare_rates[1]:,.0f} msg/s before and after = "
        f"{bare_rate:,.0f} msg/s ({bare_cpu:.0f} us CPU/msg)"
    )
    print(
        f"pipeline / ceiling: {ratio:.1%} by msg/s (required >= {RATIO_REQUIRED:.0%}); "
        f"{bare_cpu / cpu_per_message:.1%} by CPU time per message"
    )
    ours_rate = count / ours[0]
    ours_cpu = ours[1] / count * 1e6
    print(
        f"our transport alone (SmtpConnection.send, prebuilt messages, same connections): "
        f"{ours_rate:,.0f} msg/s ({ours_cpu:.0f} us CPU/msg); pipeline / our transport: "
        f"{rate / ours_rate:.1%} by msg/s, {ours_cpu / cpu_per_message:.1%} by CPU time per "
        "message (the share the outbox, rendering and bookkeeping leave)"
    )
    print(
        f"peak RSS: {small['peak_rss_mb']:.0f} MB at {small['subscribers']} subscribers, "
        f"{full['peak_rss_mb']:.0f} MB at {n} (x{growth:.2f}; required <= "
        f"{RSS_LIMIT_MB:.0f} MB and <= x{RSS_GROWTH_LIMIT})"
    )
    print(
        f"small run: {small['sent']} sent in {small['deliver_seconds']:.1f} s = "
        f"{small['sent'] / small['deliver_seconds']:,.0f} msg/s"
    )
    if baseline is not None:
        base_rate = baseline["sent"] / baseline["deliver_seconds"]
        base_ceiling = (count / after[0] + count / baseline["after"][0]) / 2
        print(
            f"baseline {args.baseline}: enqueue {baseline['queued']} rows in "
            f"{baseline['enqueue_seconds']:.1f} s; pipeline {baseline['sent']} sent in "
            f"{baseline['deliver_seconds']:.1f} s = {base_rate:,.0f} msg/s = "
            f"{base_rate / base_ceiling:.1%} of the ceiling measured around it "
            f"({base_ceiling:,.0f} msg/s); this checkout: {ratio:.1%}"
        )
    command_rate = command["sent"] / command["seconds"]
    command_bare = [command_n / command_before[0], command_n / command_after[0]]
    command_ceiling = sum(command_bare) / 2
    command_ratio = command_rate / command_ceiling
    print(
        f"whole command: `publisher digest send` to {command_n} subscribers, process start "
        f"to exit: {command['sent']} sent in {command['seconds']:.1f} s = "
        f"{command_rate:,.0f} msg/s"
    )
    print(
        f"whole command / ceiling ({command_bare[0]:,.0f} and {command_bare[1]:,.0f} msg/s "
        f"before and after = {command_ceiling:,.0f} msg/s): {command_ratio:.1%} "
        f"(required >= {RATIO_REQUIRED:.0%})"
    )
    ok = (
        full["sent"] == n
        and command["sent"] == command_n
        and command_ratio >= RATIO_REQUIRED
        and ratio >= RATIO_REQUIRED
        and full["peak_rss_mb"] <= RSS_LIMIT_MB
        and growth <= RSS_GROWTH_LIMIT
    )
    if args.no_check:
        return 0 if full["sent"] == n else 1
    print("send benchmark: " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    if shutil.which(SMTP_SINK) is None and "--child" not in sys.argv:
        raise SystemExit(f"{SMTP_SINK} is missing: install the Debian package postfix")
    sys.exit(main())
