"""Prometheus metrics (the only prometheus_client import): process counters, database gauges.

Two kinds of figures, because Publisher runs as several processes:

* counters and histograms of what *this process* did (HTTP requests, messages it sent,
  scheduler ticks, imports, webhook events). Prometheus sums them across processes;
  each long-running process can expose its own with ``[metrics] listen``.
* gauges read from the database at scrape time (queue depth by status, messages by
  result, send rate over the last minute, bounces and complaints, subscribers, the
  scheduler's next due time). They are the same whichever process answers the scrape.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from publisher import db
from publisher.errors import ConfigError
from publisher.site import Site

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
#: The window the send rate is measured over.
RATE_WINDOW = timedelta(seconds=60)

# The *_created series double the output and nothing here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)

HTTP_REQUESTS = Counter(
    "publisher_http_requests",
    "HTTP requests answered by this process, by route template, method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "publisher_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
MESSAGES = Counter(
    "publisher_messages",
    "Messages this process tried to deliver, by kind and result.",
    ["kind", "result"],
    registry=REGISTRY,
)
SCHEDULER_TICKS = Counter(
    "publisher_scheduler_ticks", "Digest ticks this process's scheduler ran.", registry=REGISTRY
)
IMPORTS = Counter(
    "publisher_imports",
    "Articles this process imported from followed sources, by result.",
    ["result"],
    registry=REGISTRY,
)
WEBHOOK_EVENTS = Counter(
    "publisher_webhook_events",
    "Provider webhook events this process received, by provider and outcome.",
    ["provider", "outcome"],
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "publisher_rate_limited",
    "Requests this process refused with 429, by limit scope.",
    ["scope"],
    registry=REGISTRY,
)


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    """Count one HTTP request and its latency."""
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    HTTP_LATENCY.labels(route, method).observe(seconds)


def count_messages(kind: str, results: Iterable[str]) -> None:
    """Count delivery results (sent, retrying, failed…) of one kind of mail."""
    for result in results:
        MESSAGES.labels(kind, result).inc()


def count_tick() -> None:
    """Count one scheduler tick."""
    SCHEDULER_TICKS.inc()


def count_imports(result: str, amount: int = 1) -> None:
    """Count imported articles by result (created, updated, failed)."""
    if amount:
        IMPORTS.labels(result).inc(amount)


def count_webhook(provider: str, outcome: str) -> None:
    """Count one webhook event by provider and outcome (bounce, complaint, rejected…)."""
    WEBHOOK_EVENTS.labels(provider, outcome).inc()


def count_rate_limited(scope: str) -> None:
    """Count one request refused by a rate limit."""
    RATE_LIMITED.labels(scope).inc()


class DatabaseCollector(Collector):
    """Read queue depth, results, send rate, bounces and the next due time at scrape time."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def _connect(self) -> Engine:
        with self._lock:
            if self._engine is None:
                self._engine = db.create_sync_engine(self.url, pool_size=1, max_overflow=1)
            return self._engine

    def close(self) -> None:
        """Release the collector's connection."""
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    def describe(self) -> Iterator[Any]:
        """Describe nothing up front (so registering never touches the database)."""
        return iter(())

    def collect(self) -> Iterator[Any]:
        """Yield the database gauges; on a database error, only ``publisher_database_up 0``."""
        up = GaugeMetricFamily("publisher_database_up", "1 when the database answered.")
        try:
            families = list(self._families())
        except SQLAlchemyError as exc:
            log.warning("metrics: database unreachable: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self) -> Iterator[Any]:
        now = datetime.now(UTC)
        outbox = sa.table(
            "outbox",
            sa.column("status"),
            sa.column("edition_id"),
            sa.column("sent_at", sa.DateTime),
        )
        tallies = sa.table("outbox_tallies", sa.column("status"), sa.column("messages"))
        bounces = sa.table("bounce_events", sa.column("kind"))
        subscribers = sa.table("subscribers", sa.column("status"))
        # scheduling.JOBS_TABLE, named here so a scrape never imports APScheduler.
        jobs = sa.table("apscheduler_jobs", sa.column("next_run_time"))
        with self._connect().connect() as connection:
            # Editions' rows from their tallies (a million-row send is not walked on every
            # scrape), the rest (notices, test copies) counted.
            by_status: collections.Counter[str] = collections.Counter()
            for status, count in connection.execute(
                sa.select(tallies.c.status, sa.func.sum(tallies.c.messages)).group_by(
                    tallies.c.status
                )
            ):
                by_status[str(status)] += int(count)
            for status, count in connection.execute(
                sa.select(outbox.c.status, sa.func.count())
                .where(outbox.c.edition_id.is_(None))
                .group_by(outbox.c.status)
            ):
                by_status[str(status)] += int(count)
            recent = connection.scalar(
                sa.select(sa.func.count())
                .select_from(outbox)
                # A literal, not a parameter: a prepared statement's generic plan can
                # use the partial index of sent rows (ix_outbox_sent_at) only so.
                .where(outbox.c.status == sa.literal_column("'sent'"))
                .where(outbox.c.sent_at >= (now - RATE_WINDOW).replace(tzinfo=None))
            )
            by_kind = connection.execute(
                sa.select(bounces.c.kind, sa.func.count()).group_by(bounces.c.kind)
            ).all()
            readers = connection.execute(
                sa.select(subscribers.c.status, sa.func.count()).group_by(subscribers.c.status)
            ).all()
            has_jobs = sa.inspect(connection).has_table("apscheduler_jobs")
            next_due = (
                connection.scalar(sa.select(sa.func.min(jobs.c.next_run_time)))
                if has_jobs
                else None
            )
        queue = GaugeMetricFamily(
            "publisher_outbox_messages", "Outbox rows by status (all processes).", labels=["status"]
        )
        for status, count in sorted(by_status.items()):
            queue.add_metric([status], count)
        yield queue
        rate = GaugeMetricFamily(
            "publisher_send_rate", "Messages sent per second over the last minute (all processes)."
        )
        rate.add_metric([], int(recent or 0) / RATE_WINDOW.total_seconds())
        yield rate
        bounce = GaugeMetricFamily(
            "publisher_bounce_events",
            "Bounces and complaints recorded, by kind (hard, soft, complaint).",
            labels=["kind"],
        )
        for kind, count in by_kind:
            bounce.add_metric([str(kind)], int(count))
        yield bounce
        people = GaugeMetricFamily(
            "publisher_subscribers", "Subscribers by status.", labels=["status"]
        )
        for status, count in readers:
            people.add_metric([str(status)], int(count))
        yield people
        due = GaugeMetricFamily(
            "publisher_scheduler_next_due_timestamp_seconds",
            "When the scheduler's next job is due (Unix time; absent when none is stored).",
        )
        if next_due is not None:
            due.add_metric([], float(next_due))
        yield due


class Metrics:
    """This process's metrics registry, with the database gauges of one site."""

    def __init__(self, database_url: str) -> None:
        self.collector = DatabaseCollector(database_url)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Forward(REGISTRY))
        self.registry.register(self.collector)
        self._listener: Any = None

    def render(self) -> bytes:
        """Return every metric in the Prometheus text format (blocks on the database)."""
        return bytes(generate_latest(self.registry))

    def listen(self, address: str) -> str:
        """Serve the metrics on ``host:port`` from a thread; return the address bound."""
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"metrics.listen: expected HOST:PORT, got {address!r}")
        try:
            server, thread = start_http_server(
                int(port), addr=host.strip("[]"), registry=self.registry
            )
        except OSError as exc:
            raise ConfigError(
                f"metrics.listen: cannot listen on {address}: {exc.strerror}"
            ) from exc
        self._listener = (server, thread)
        bound = server.server_address
        return f"{bound[0]!s}:{bound[1]}"

    def close(self) -> None:
        """Stop the listener (if any) and release the database connection."""
        if self._listener is not None:
            server, thread = self._listener
            server.shutdown()
            server.server_close()
            thread.join(5)
            self._listener = None
        self.collector.close()


class _Forward(Collector):
    """Expose the process-wide registry inside a per-site registry."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterator[Any]:
        """Yield every process-wide metric."""
        return iter(self.source.collect())


def metrics_listener(site: Site) -> Metrics | None:
    """Start ``[metrics] listen`` for a long-running command, or return None when unset."""
    address = site.settings.metrics.listen
    if not address:
        return None
    metrics = Metrics(site.settings.database.url)
    bound = metrics.listen(address)
    log.info("metrics on http://%s/metrics", bound)
    return metrics
