"""Editors' app figures with 100,000 subscribers and 100,000 articles.

Run: .venv/bin/python benchmarks/admin.py [--subscribers 100000] [--articles 100000]
                                          [--repeat 15] [--postgres [URL]]
Prints one line per page: median milliseconds over real HTTP on uvicorn, on SQLite (and on
PostgreSQL with ``--postgres``: a server URL, or a throwaway cluster when empty), with the
budget and PASS or FAIL; exits 1 when any page is over its budget.
Targets: every list page <= 200 ms (first and deep pages, filters, title search), subscriber
search by address prefix <= 100 ms, dashboard <= 300 ms (its figures are cached for 30 s;
the cold computation is printed too).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.api import database_urls  # noqa: E402
from publisher.accounts import sessions, users  # noqa: E402
from publisher.accounts.models import Role  # noqa: E402
from publisher.cli.init import init_site  # noqa: E402
from publisher.config import load_settings  # noqa: E402
from publisher.content import search  # noqa: E402
from publisher.content.models import Article, SiteState  # noqa: E402
from publisher.db import create_sync_engine, transaction  # noqa: E402
from publisher.site import Site  # noqa: E402
from publisher.web.admin.dashboard import statistics as dashboard_figures  # noqa: E402
from publisher.web.admin.paging import encode_article_cursor  # noqa: E402
from publisher.web.server import running  # noqa: E402
from subscribers.models import Subscriber  # noqa: E402

ZONES = ["Asia/Jakarta"] * 6 + ["Asia/Makassar"] * 3 + ["Asia/Jayapura"]
STATUSES = ["active"] * 8 + ["pending", "unsubscribed"]
TOPICS = ["politik", "ekonomi", "olahraga", "teknologi", "budaya"]


NOW = datetime(2026, 11, 25, tzinfo=UTC)


def populate(site_dir: Path, url: str, subscribers: int, articles: int) -> Site:
    """Create a site with the given numbers of subscribers and articles (bulk insert)."""
    init_site(site_dir, title="Kabar Bench", base_url="http://127.0.0.1")
    settings = load_settings(site_dir / "publisher.toml")
    settings.database.url = url
    site = Site.from_settings(settings)
    engine = create_sync_engine(settings.database.url)
    now = NOW
    with engine.begin() as connection:
        for first in range(0, articles, 5000):
            rows = []
            for n in range(first, min(articles, first + 5000)):
                when = now - timedelta(minutes=5 * (articles - n))
                rows.append({
                    "id": n + 1, "slug": f"berita-{n}", "guid": f"tag:bench,2026:{n}",
                    "title": f"Berita nomor {n} tentang kota", "summary": f"Ringkasan {n}.",
                    "body_html": "<p>Isi.</p>", "body_source": "Isi.", "source_format": "markdown",
                    "author": "Redaksi", "author_slug": "redaksi",
                    "language": "id" if n % 4 else "en",
                    "tags": [TOPICS[n % 5]], "image_url": "", "image_caption": "",
                    "image_credit": "", "image_type": "", "image_length": 0, "image_width": 0,
                    "image_height": 0, "canonical_url": "", "source_url": "", "origin": "",
                    "external_id": None, "editors": [], "extra": {},
                    "status": "published" if n % 10 else "draft", "published_at": when,
                    "updated_at": when, "created_at": when, "content_hash": f"{n:064d}",
                })  # fmt: skip
            connection.execute(sa.insert(Article), rows)
        connection.execute(sa.insert(SiteState), [{"key": "content_version", "value": 1}])
        # Bulk rows bypass the store's one writer: index their titles as the migration does.
        search.rebuild(connection)
        for first in range(0, subscribers, 5000):
            rows = []
            for n in range(first, min(subscribers, first + 5000)):
                joined = now - timedelta(minutes=3 * (subscribers - n))
                status = STATUSES[n % 10]
                rows.append({
                    "id": n + 1, "email": f"reader{n:06d}@example.org",
                    "email_key": f"reader{n:06d}@example.org", "name": f"Pembaca {n}",
                    "status": status, "language": "id" if n % 3 else "en",
                    "timezone": ZONES[n % 10], "frequency": "weekly" if n % 7 == 0 else "daily",
                    "topics": [TOPICS[n % 5]] if n % 2 else [], "created_at": joined,
                    "confirmed_at": joined if status == "active" else None,
                    "unsubscribed_at": (
                        joined + timedelta(days=1) if status == "unsubscribed" else None
                    ),
                    "consent_source": "bench", "consent_ip": "", "consent_user_agent": "",
                    "consent_at": joined, "consent_text": "", "confirmation_sent_at": None,
                    "soft_bounces": 0, "hard_bounces": 0, "last_bounce_at": None,
                    "last_digest_at": None,
                })  # fmt: skip
            connection.execute(sa.insert(Subscriber), rows)
    if not url.startswith("sqlite"):
        # A live PostgreSQL would have been analysed by autovacuum at this size.
        with engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(
                sa.text("VACUUM ANALYZE")
            )
    engine.dispose()
    return site


async def session_cookie(site: Site) -> str:
    """Create an owner and a login session directly; return the cookie value."""
    async with transaction(site.engine) as session:
        owner = await users.add(
            session, "owner@example.org", Role.OWNER, "bench password 123", site.clock.now()
        )
        opened = await sessions.open_session(session, owner, site.clock.now())
    await site.aclose()
    return opened.raw_id


def median_ms(client: httpx.Client, path: str, repeat: int) -> float:
    """Return the median milliseconds of GET path (one warm-up request first)."""
    timings = []
    for run in range(repeat + 1):
        began = time.perf_counter()
        response = client.get(path)
        elapsed = time.perf_counter() - began
        if response.status_code != 200:  # a 422 (search limits) is a failure here too
            raise SystemExit(f"{path}: HTTP {response.status_code}")
        if run:
            timings.append(elapsed * 1000)
    return statistics.median(timings)


def pages(articles: int, subscribers: int) -> list[tuple[str, str, float]]:
    """Return (label, path, budget ms) of every page to time."""
    middle = articles // 2
    deep = encode_article_cursor((NOW - timedelta(minutes=5 * (articles - middle)), middle + 1))
    return [
        ("articles list", "/admin/articles", 200),
        ("articles list, deep page", f"/admin/articles?after={deep}", 200),
        ("articles list, drafts", "/admin/articles?status=draft", 200),
        ("articles list, english", "/admin/articles?lang=en", 200),
        ("articles search ?q=berita 9999", "/admin/articles?q=berita+9999", 200),
        ("articles search ?q=kota (every title)", "/admin/articles?q=kota", 200),
        ("articles search ?q=kota, deep page", f"/admin/articles?q=kota&after={deep}", 200),
        ("articles search ?q=zzz (no match)", "/admin/articles?q=zzz", 200),
        ("articles search ?q=nomor&status=draft", "/admin/articles?q=nomor&status=draft", 200),
        ("subscribers list", "/admin/subscribers", 200),
        ("subscribers list, deep page", f"/admin/subscribers?before={subscribers // 2}", 200),
        (
            "subscribers, active in WIT",
            "/admin/subscribers?status=active&timezone=Asia/Jayapura",
            200,
        ),
        ("subscribers ?topic=ekonomi", "/admin/subscribers?topic=ekonomi", 200),
        (
            "subscribers ?topic=ekonomi, deep page",
            f"/admin/subscribers?topic=ekonomi&before={subscribers // 2}",
            200,
        ),
        (
            "subscribers, weekly + topic",
            "/admin/subscribers?frequency=weekly&topic=ekonomi",
            200,
        ),
        ("subscribers ?topic=nobody (no match)", "/admin/subscribers?topic=nobody", 200),
        ("subscriber search by address prefix", "/admin/subscribers?q=reader0421", 100),
        ("audit log", "/admin/audit", 200),
        ("editions list", "/admin/digests/editions", 200),
        ("dashboard (cached figures)", "/admin/", 300),
    ]


def main() -> None:
    """Build the site, serve it, time the pages and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument(
        "--postgres",
        nargs="?",
        const="",
        default=None,
        help="also measure PostgreSQL (a server URL, or a throwaway cluster when empty)",
    )
    args = parser.parse_args()
    failed = False
    with (
        tempfile.TemporaryDirectory() as tmp,
        database_urls(Path(tmp), args.postgres) as urls,
    ):
        for label, url in urls:
            failed = measure(Path(tmp) / f"site-{label}", label, url, args) or failed
    if failed:
        raise SystemExit(1)


def measure(site_dir: Path, label: str, url: str, args: argparse.Namespace) -> bool:
    """Fill one database, time every page on it, print the lines; tell whether any failed."""
    began = time.perf_counter()
    site = populate(site_dir, url, args.subscribers, args.articles)
    cookie = asyncio.run(session_cookie(site))
    print(
        f"[{label}] admin: built {args.subscribers:,} subscribers and {args.articles:,} "
        f"articles in {time.perf_counter() - began:.1f} s"
    )

    async def cold() -> float:
        fresh = Site(settings=site.settings)
        timings = []
        for _ in range(5):
            start = time.perf_counter()
            await dashboard_figures(fresh)
            timings.append((time.perf_counter() - start) * 1000)
        await fresh.aclose()
        return statistics.median(timings)

    cold_ms = asyncio.run(cold())
    served = Site(settings=site.settings)
    with (
        running(served) as base,
        httpx.Client(base_url=base, cookies={"publisher_admin": cookie}, timeout=60) as client,
    ):
        results = [
            (name, median_ms(client, path, args.repeat), limit)
            for name, path, limit in pages(args.articles, args.subscribers)
        ]
    failed = False
    for name, ms, limit in [*results, ("dashboard figures computed cold", cold_ms, 300)]:
        verdict = "PASS" if ms <= limit else "FAIL"
        failed = failed or ms > limit
        print(f"[{label}] admin: {name}: {ms:.1f} ms median (budget {limit} ms) {verdict}")
    return failed


if __name__ == "__main__":
    main()
