"""/metrics, /healthz, /readyz and JSON logs: real app over ASGI and a real `serve`."""

from __future__ import annotations

import copy
import io
import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from publisher import logs
from publisher.config import LogSettings
from publisher.db import transaction
from publisher.metrics import Metrics
from publisher.site import Site
from publisher.web.app import create_app
from tests.delivery_helpers import add_articles, add_subscribers
from tests.serve_processes import serve_processes, server_log
from tests.services import free_port

BASE = "https://news.example.org"
TOKEN = "metrics-token-0123456789abcdef"


@pytest.fixture
async def client(site: Site) -> AsyncIterator[httpx.AsyncClient]:
    site.settings.metrics.token = TOKEN
    app = create_app(site)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http,
    ):
        yield http


def samples(text: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


async def test_metrics_need_the_token_and_show_routes_queue_and_readers(
    site: Site, client: httpx.AsyncClient
) -> None:
    await add_articles(site, 2)
    await add_subscribers(site, 3)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    # Counters belong to the process (other tests count too): compare before and after.
    before = samples((await client.get("/metrics", headers=auth)).text)
    assert (await client.get("/feed.xml")).status_code == 200
    slug = "artikel-id-0"
    assert (await client.get(f"/articles/{slug}")).status_code == 200
    assert (await client.get("/no/such/page")).status_code == 404
    assert (await client.get("/metrics")).status_code == 401
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer " + "x" * 30})
    assert wrong.status_code == 401
    answer = await client.get("/metrics", headers=auth)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    found = samples(answer.text)
    feed = 'publisher_http_requests_total{method="GET",route="/feed.xml",status="200"}'
    unknown = 'publisher_http_requests_total{method="GET",route="unmatched",status="404"}'
    assert found[feed] - before.get(feed, 0) == 1
    assert found[unknown] - before.get(unknown, 0) == 1
    article = 'publisher_http_requests_total{method="GET",route="/articles/{slug}",status="200"}'
    assert found[article] - before.get(article, 0) == 1
    assert slug not in answer.text  # route templates only, never raw paths
    assert (
        'publisher_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/feed.xml"}'
        in answer.text
    )
    assert found["publisher_database_up"] == 1
    assert found['publisher_subscribers{status="active"}'] == 3
    assert "publisher_send_rate" in found
    assert "publisher_outbox_messages" in answer.text


async def test_metrics_label_the_admin_and_api_by_their_full_route_templates(
    client: httpx.AsyncClient,
) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    before = samples((await client.get("/metrics", headers=auth)).text)
    assert (await client.get("/admin/login")).status_code == 200
    assert (await client.get("/admin/")).status_code == 303  # to the login page
    assert (await client.get("/")).status_code == 200
    assert (await client.get("/api/v1/articles")).status_code == 401
    assert (await client.get("/api/v1/articles/feri-baru")).status_code == 401
    assert (await client.get("/api/v1/no-such-thing")).status_code == 404
    assert (await client.get("/admin/no-such-page")).status_code == 404
    found = samples((await client.get("/metrics", headers=auth)).text)

    def counted(route: str, status: int) -> float:
        key = f'publisher_http_requests_total{{method="GET",route="{route}",status="{status}"}}'
        return found.get(key, 0) - before.get(key, 0)

    assert counted("/admin/login", 200) == 1
    assert counted("/admin/", 303) == 1
    assert counted("/", 200) == 1  # the site's front page, not the admin's
    assert counted("/api/v1/articles", 401) == 1
    assert counted("/api/v1/articles/{slug}", 401) == 1
    assert counted("/api/v1/{path:path}", 404) == 1
    assert counted("unmatched", 404) == 1
    routes = {key.split('route="')[1].split('"')[0] for key in found if 'route="' in key}
    assert "/login" not in routes
    assert "/articles" not in routes
    assert not any("feri-baru" in route or "no-such" in route for route in routes)


async def test_metrics_are_not_public_without_a_token(site: Site) -> None:
    app = create_app(site)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        response = await http.get("/metrics", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 404


async def test_separate_listener_serves_the_same_metrics(site: Site) -> None:
    metrics = Metrics(site.settings.database.url)
    bound = metrics.listen(f"127.0.0.1:{free_port()}")
    try:
        async with httpx.AsyncClient() as http:
            answer = await http.get(f"http://{bound}/metrics")
    finally:
        metrics.close()
    assert answer.status_code == 200
    assert "publisher_database_up 1.0" in answer.text


async def test_readyz_follows_the_database_and_migrations(
    site: Site, client: httpx.AsyncClient
) -> None:
    health = await client.get("/healthz")
    assert health.status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["revision"] == ready.json()["head"]
    async with transaction(site.engine) as session:
        await session.execute(sa.text("UPDATE alembic_version SET version_num = '0001_content'"))
    behind = await client.get("/readyz")
    assert behind.status_code == 503
    assert behind.json()["migrations"] == "behind"
    # A newer release migrated (expand only): this one keeps serving until replaced.
    async with transaction(site.engine) as session:
        await session.execute(sa.text("UPDATE alembic_version SET version_num = '0099_newer'"))
    ahead = await client.get("/readyz")
    assert ahead.status_code == 200, ahead.text
    assert ahead.json()["migrations"] == "ahead"


async def test_readyz_answers_503_when_the_database_is_unreachable(site: Site) -> None:
    settings = copy.deepcopy(site.settings)
    settings.database.url = f"postgresql://nobody@127.0.0.1:{free_port()}/missing"
    gone = Site(settings=settings, clock=site.clock)
    app = create_app(gone)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        response = await http.get("/readyz")
        health = await http.get("/healthz")
    await gone.aclose()
    assert response.status_code == 503
    assert response.json()["database"].startswith("unreachable")
    assert health.status_code == 200  # alive, only not ready


SECRETS = ["s3cr3t-pass", "tok-ABCDEF123456", "BearerSecretXYZ", "sig-998877"]


def test_json_log_lines_hold_no_tokens_or_passwords() -> None:
    stream = io.StringIO()
    handler = logs.configure(LogSettings(format="json", level="debug"), stream=stream)
    try:
        log = logging.getLogger("publisher.test")
        log.info("connecting to %s", "smtp://user:s3cr3t-pass@relay.example.org:587")
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1",
            "GET",
            "/unsubscribe/tok-ABCDEF123456",
            "1.1",
            200,
        )
        log.warning("webhook refused: Authorization: Bearer BearerSecretXYZ")
        log.info("callback ?token=tok-ABCDEF123456&signature=sig-998877 done")
        try:
            raise ValueError("password=s3cr3t-pass")
        except ValueError:
            log.exception("failed\nacross lines")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 5
    events = [json.loads(line) for line in lines]
    assert {e["level"] for e in events} == {"info", "warning", "error"}
    assert events[1]["logger"] == "uvicorn.access"
    assert "/unsubscribe/[redacted]" in events[1]["message"]
    assert "traceback" in events[4]["exception"].lower()
    for secret in SECRETS:
        assert secret not in stream.getvalue()


@pytest.mark.slow
def test_serve_writes_json_logs_without_the_reader_token(site_dir: Path) -> None:
    config = site_dir / "publisher.toml"
    token = "SECRETREADERTOKEN1234567890"
    with serve_processes(config, 1, env={"PUBLISHER_LOG__FORMAT": "json"}) as urls:
        assert httpx.get(f"{urls[0]}/unsubscribe/{token}", timeout=30).status_code == 400
        assert httpx.get(f"{urls[0]}/readyz", timeout=30).status_code == 200
    text = server_log(config, 0)
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines
    events = [json.loads(line) for line in lines]  # every line one JSON event
    assert any(re.search(r"/unsubscribe/\[redacted\]", e["message"]) for e in events), text
    assert token not in text


def test_a_scrape_reads_no_outbox_row_by_row(site: Site) -> None:
    """Queue depth comes from the tallies, the send rate (PostgreSQL) from the partial
    index of sent rows: no scrape walks a million-row outbox (EXPLAIN, no seq scans)."""
    from sqlalchemy import event

    from publisher.metrics import DatabaseCollector

    collector = DatabaseCollector(site.settings.database.url)
    engine = collector._connect()
    sent: list[tuple[str, Any]] = []

    def record(*args: Any) -> None:
        if re.search(r"\bFROM outbox\b", args[2]):
            sent.append((args[2], args[3]))

    event.listen(engine, "before_cursor_execute", record)
    try:
        families = {family.name: family for family in collector.collect()}
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert families["publisher_database_up"].samples[0].value == 1
    sqlite = site.settings.database.url.startswith("sqlite")
    plans = []
    with engine.connect() as connection:
        if not sqlite:
            connection.execute(sa.text("SET enable_seqscan = off"))
        for statement, parameters in sent:
            explain = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
            rows = connection.exec_driver_sql(explain + statement, parameters).all()
            plans.append("\n".join(str(row[-1] if sqlite else row[0]) for row in rows))
    collector.close()
    assert len(plans) == 2, sent  # notices by status; messages sent in the last minute
    notices, recent = plans
    assert "ix_outbox_edition_status" in notices, notices
    # SQLite has no partial index (migration 0011): its status index serves the rate.
    assert ("ix_outbox_status_next" if sqlite else "ix_outbox_sent_at") in recent, recent
    for plan in plans:
        assert not re.search(r"^SCAN outbox$", plan, re.M), plan
        assert "Seq Scan" not in plan, plan
