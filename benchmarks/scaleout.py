"""Scale-out figures on PostgreSQL (issue 15): a second worker, a million readers, two servers.

* workers: one edition of --readers (8,000) readers through Postfix's smtp-sink, sent by
  `publisher digest send` alone, then (same data, fresh database) by `digest send` with a
  `publisher worker` beside it; their speed-up (goal >= 1.35x), printed beside the
  speed-up bare aiosmtplib gets from a second process in the same run;
* million: --subscribers (1,000,000) readers: planning and enqueueing one edition
  (goal <= 60 s), the peak RSS of the sending process (`publisher worker`) over its first
  --send-seconds of sending (goal <= 300 MB), and `publisher digest status` answering
  during the send (goal < 1 s; printed both as the whole command and as its query),
  and how long /metrics' database gauges take to read meanwhile;
* limits: two `publisher serve` processes on one database; 200 simultaneous subscribe
  requests from one client address across both: exactly the limit (10) pass.

    .venv/bin/python benchmarks/scaleout.py [--part all|workers|million|limits]
        [--readers 8000] [--subscribers 1000000] [--send-seconds 60]

Needs PostgreSQL (PUBLISHER_TEST_POSTGRES_URL, or initdb for a throwaway cluster) and
/usr/sbin/smtp-sink (Debian package postfix).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.send import _free_port, start_sink  # noqa: E402

ARTICLES = 10
WORKER_SPEEDUP_GOAL = 1.35
ENQUEUE_GOAL = 60.0
RSS_GOAL_MB = 300.0
STATUS_GOAL = 1.0
MESSAGE_BYTES = 18 * 1024


def _env(url: str, port: int, connections: int = 4) -> dict[str, str]:
    return dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        PUBLISHER_DATABASE__URL=url,
        PUBLISHER_MAIL__SMTP_URL=f"smtp://127.0.0.1:{port}",
        PUBLISHER_MAIL__CONNECTIONS=str(connections),
    )


def _publisher(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "publisher", "--config", str(config), *args]


async def seed(server: str, workdir: Path, readers: int, *, enqueue_now: bool = False) -> Any:
    """Create a fresh database with articles and active readers; return (url, config, site)."""
    from publisher.cli.init import init_site
    from publisher.clock import SystemClock
    from publisher.config import load_settings
    from publisher.site import Site
    from tests.delivery_helpers import add_articles, add_subscribers
    from tests.services import fresh_postgres_database

    url = fresh_postgres_database(server)
    site_dir = workdir / f"site-{time.monotonic_ns()}"
    os.environ["PUBLISHER_DATABASE__URL"] = url
    init_site(site_dir, title="Kabar Nusantara", base_url="https://news.example.org")
    settings = load_settings(site_dir / "publisher.toml")
    site = Site.from_settings(settings, clock=SystemClock())
    await add_articles(site, ARTICLES, language="id")
    await add_articles(site, ARTICLES, language="en", prefix="story")
    await add_subscribers(site, readers, languages=("id", "en"), batch=10_000)
    # As autovacuum does within a minute of a bulk import in production: without
    # statistics a just-seeded table gets query plans no real site runs.
    async with site.engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.exec_driver_sql("ANALYZE")
    return url, site_dir / "publisher.toml", site


async def sent_count(site: Any) -> int:
    import sqlalchemy as sa

    from publisher.db import transaction
    from publisher.delivery.models import OutboxRow

    async with transaction(site.engine) as session:
        found = await session.scalar(
            sa.select(sa.func.count()).select_from(OutboxRow).where(OutboxRow.status == "sent")
        )
    return int(found or 0)


async def timed_send(
    site: Any, url: str, config: Path, port: int, readers: int, workers: int
) -> float:
    """Run `digest send` (plus ``workers`` workers); return seconds until every reader has it."""
    env = _env(url, port)
    started = time.perf_counter()
    helpers = [
        subprocess.Popen(
            _publisher(config, "worker"),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    sender = subprocess.Popen(
        _publisher(config, "digest", "send"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        while await sent_count(site) < readers:
            if sender.poll() not in (None, 0):
                raise SystemExit(
                    f"digest send failed: {sender.stderr.read().decode() if sender.stderr else ''}"
                )
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
    finally:
        for process in helpers:
            process.send_signal(signal.SIGTERM)
        for process in [*helpers, sender]:
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
    return elapsed


BARE = """
import asyncio, sys
from datetime import timedelta
from publisher.config import MailSettings
from publisher.delivery.smtp import transport_ceiling
port, count, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
body = b"x" * 76 + b"\\r\\n"
message = (b"From: a@news.example.org\\r\\nTo: r@example.net\\r\\nSubject: s\\r\\n\\r\\n"
           + body * (size // len(body)))
mail = MailSettings.from_mapping({"smtp_url": f"smtp://127.0.0.1:{port}", "connections": 4,
                                    "timeout": timedelta(seconds=60)})
asyncio.run(transport_ceiling(mail, message, "a@news.example.org", "r@example.net", count))
"""


def bare_ratio(port: int, count: int) -> tuple[float, float, float]:
    """Time bare aiosmtplib sending ``count`` messages in one process, then split over two."""

    def run(processes: int) -> float:
        started = time.perf_counter()
        children = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    BARE,
                    str(port),
                    str(count // processes),
                    str(MESSAGE_BYTES),
                ],
                env=dict(os.environ, PYTHONPATH=str(ROOT)),
            )
            for _ in range(processes)
        ]
        for child in children:
            if child.wait() != 0:
                raise SystemExit("bare aiosmtplib run failed")
        return time.perf_counter() - started

    one, two = run(1), run(2)
    return one, two, one / two


async def workers_part(server: str, workdir: Path, readers: int, port: int) -> bool:
    alone_url, alone_config, alone_site = await seed(server, workdir, readers)
    pair_url, pair_config, pair_site = await seed(server, workdir, readers)
    alone = await timed_send(alone_site, alone_url, alone_config, port, readers, workers=0)
    pair = await timed_send(pair_site, pair_url, pair_config, port, readers, workers=1)
    await alone_site.aclose()
    await pair_site.aclose()
    one, two, bare = bare_ratio(port, readers)
    ratio = alone / pair
    print(
        f"workers: {readers:,} readers: digest send alone {alone:.1f} s "
        f"({readers / alone:,.0f} msg/s), "
        f"with a second worker {pair:.1f} s ({readers / pair:,.0f} msg/s): "
        f"speed-up {ratio:.2f}x (goal >= {WORKER_SPEEDUP_GOAL}x)"
    )
    print(
        f"workers: bare aiosmtplib, {readers:,} messages of {MESSAGE_BYTES // 1024} KB: "
        f"one process {one:.1f} s, two processes {two:.1f} s: speed-up {bare:.2f}x (same run)"
    )
    return ratio >= WORKER_SPEEDUP_GOAL


def _rss_peak_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


async def million_part(
    server: str, workdir: Path, subscribers: int, port: int, send_seconds: float
) -> bool:
    from publisher.delivery.editions import enqueue, open_edition

    seed_started = time.perf_counter()
    url, config, site = await seed(server, workdir, subscribers)
    print(f"million: seeded {subscribers:,} readers in {time.perf_counter() - seed_started:.0f} s")
    now = site.clock.now()
    started = time.perf_counter()
    edition = await open_edition(site, "daily", now.date(), now)
    queued = await enqueue(site, edition, now)
    enqueue_seconds = time.perf_counter() - started
    env = _env(url, port)
    worker = subprocess.Popen(
        _publisher(config, "worker"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    command_times: list[float] = []
    command_cpu: list[float] = []  # the command's own CPU time: the rest is waiting
    query_times: list[float] = []
    scrape_times: list[float] = []
    peak = 0.0
    from publisher.delivery import store as outbox_queries
    from publisher.metrics import DatabaseCollector

    collector = DatabaseCollector(url)

    deadline = time.perf_counter() + send_seconds
    try:
        while time.perf_counter() < deadline:
            peak = max(peak, _rss_peak_mb(worker.pid))
            began = time.perf_counter()
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run(
                _publisher(config, "digest", "status"), env=env, capture_output=True, check=True
            )
            command_times.append(time.perf_counter() - began)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            command_cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            began = time.perf_counter()
            await outbox_queries.status_counts(site, edition.id)
            await outbox_queries.last_errors(site, edition.id)
            query_times.append(time.perf_counter() - began)
            began = time.perf_counter()
            # /metrics' database gauges, as a Prometheus scrape reads them.
            await asyncio.to_thread(lambda: list(collector.collect()))
            scrape_times.append(time.perf_counter() - began)
            await asyncio.sleep(2)
        peak = max(peak, _rss_peak_mb(worker.pid))
        sent = await sent_count(site)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=300)
        except subprocess.TimeoutExpired:
            worker.kill()
    await site.aclose()
    collector.close()
    status_command = statistics.median(command_times)
    status_query = max(query_times)
    print(
        f"million: {queued.queued:,} readers planned and enqueued in {enqueue_seconds:.1f} s "
        f"(goal <= {ENQUEUE_GOAL:.0f} s)"
    )
    print(
        f"million: sending process peak RSS {peak:.0f} MB over its first {send_seconds:.0f} s "
        f"({sent:,} sent) (goal <= {RSS_GOAL_MB:.0f} MB)"
    )
    print(
        "million: `digest status` during the send: "
        f"whole command median {status_command:.2f} s "
        f"({statistics.median(command_cpu):.2f} s of it on a CPU), "
        f"its queries at most {status_query:.3f} s, {len(command_times)} runs "
        f"(goal < {STATUS_GOAL:.0f} s)"
    )
    print(
        f"million: /metrics database gauges during the send: median "
        f"{statistics.median(scrape_times):.3f} s, at most {max(scrape_times):.3f} s "
        "(no goal; most of it is counting the readers by status)"
    )
    return enqueue_seconds <= ENQUEUE_GOAL and peak <= RSS_GOAL_MB and status_command < STATUS_GOAL


async def limits_part(server: str, workdir: Path, port: int) -> bool:
    import httpx

    from tests.serve_processes import serve_processes
    from tests.services import fresh_postgres_database

    url = fresh_postgres_database(server)
    os.environ["PUBLISHER_DATABASE__URL"] = url
    from publisher.cli.init import init_site

    site_dir = workdir / "limits"
    init_site(site_dir, title="Kabar", base_url="https://news.example.org")
    env = {"PUBLISHER_DATABASE__URL": url, "PUBLISHER_MAIL__SMTP_URL": f"smtp://127.0.0.1:{port}"}
    with serve_processes(site_dir / "publisher.toml", 2, env=env) as urls:
        async with httpx.AsyncClient(timeout=120) as client:
            answers = await asyncio.gather(
                *(
                    client.post(f"{urls[n % 2]}/api/subscribe", json={"email": f"r{n}@example.net"})
                    for n in range(200)
                )
            )
    accepted = sum(answer.status_code == 202 for answer in answers)
    refused = sum(answer.status_code == 429 for answer in answers)
    print(
        f"limits: 2 serve processes, 200 simultaneous subscribes from one address: "
        f"{accepted} accepted, {refused} refused with 429 (limit 10): "
        + ("exact" if accepted == 10 and refused == 190 else "NOT exact")
    )
    return accepted == 10 and refused == 190


async def main_async(args: argparse.Namespace) -> int:
    from tests.services import postgres_url_for_tests

    ok = True
    port = _free_port()
    sink = start_sink(port)
    try:
        with (
            postgres_url_for_tests() as server,
            tempfile.TemporaryDirectory(prefix="publisher-scaleout-") as tmp,
        ):
            if server is None:
                raise SystemExit(
                    "PostgreSQL is needed (set PUBLISHER_TEST_POSTGRES_URL or install it)"
                )
            workdir = Path(tmp)
            if args.part in ("all", "limits"):
                ok &= await limits_part(server, workdir, port)
            if args.part in ("all", "workers"):
                ok &= await workers_part(server, workdir, args.readers, port)
            if args.part in ("all", "million"):
                ok &= await million_part(server, workdir, args.subscribers, port, args.send_seconds)
    finally:
        sink.terminate()
        sink.wait()
    print("scale-out benchmark: " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["all", "workers", "million", "limits"], default="all")
    parser.add_argument("--readers", type=int, default=8000)
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--send-seconds", type=float, default=60.0)
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
