"""Time the API's lists on a big store (100,000 articles and subscribers); print the figures.

Fills a fresh site (SQLite, and PostgreSQL with ``--postgres``) with ``--articles``
articles (2% undated drafts, two languages, tags, authors), ``--subscribers`` readers and
an edition whose outbox holds one row per reader, creates an API token through
publisher.accounts, serves the real app with uvicorn on loopback and times each list
request end to end over HTTP (keep-alive), ``--repeat`` times after a warm-up. The issue's
budgets: every API list at most 200 ms (median), subscriber search by address prefix at
most 100 ms.

    .venv/bin/python benchmarks/api.py [--articles 100000] [--subscribers 100000]
                                       [--repeat 15] [--postgres [URL]]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from publisher.accounts import tokens, users
from publisher.accounts.models import Role
from publisher.cli.init import init_site
from publisher.config import load_settings
from publisher.content import search
from publisher.content.models import Article, ArticleTag, SiteState
from publisher.db import create_sync_engine, transaction
from publisher.delivery.models import Edition, EditionVariant, OutboxRow
from publisher.site import Site
from publisher.web.api import pagination
from publisher.web.server import running
from subscribers.models import Subscriber

LIST_BUDGET_MS = 200.0
SEARCH_BUDGET_MS = 100.0
TAGS = ["ekonomi", "olahraga", "politik", "budaya", "teknologi", "lingkungan", "kesehatan"]
AUTHORS = ["Andi Saputra", "Maria Lede", "Ketut Ardana", "Nadia Prameswari", ""]
ZONES = ["Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura", "", "Asia/Singapore"]
BODY = "".join(
    f"<p>Paragraf {n}: warga kota menyambut jadwal baru dengan <strong>antusias</strong>.</p>"
    for n in range(12)
)
START = datetime(2015, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 25, tzinfo=UTC)


def fill_articles(engine: sa.Engine, count: int) -> None:
    """Bulk-insert ``count`` articles: 2% undated drafts, 30% English, two tags each."""
    with engine.begin() as connection:
        for first in range(0, count, 5000):
            rows, tag_rows = [], []
            for n in range(first, min(count, first + 5000)):
                draft = n % 50 == 7
                when = None if draft else START + timedelta(minutes=37 * n)
                author = AUTHORS[n % len(AUTHORS)]
                tags = list(dict.fromkeys([TAGS[n % len(TAGS)], TAGS[(n * 3 + 1) % len(TAGS)]]))
                status = "draft" if draft else "published"
                rows.append({
                    "id": n + 1, "slug": f"berita-{n}", "guid": f"tag:news.example.org,2015:{n}",
                    "title": f"Berita nomor {n} tentang {tags[0]}", "summary": f"Ringkasan {n}.",
                    "body_html": BODY, "body_source": BODY, "source_format": "html",
                    "author": author, "author_slug": author.lower().replace(" ", "-"),
                    "language": "en" if n % 10 < 3 else "id", "tags": tags,
                    "image_url": "", "image_caption": "", "image_credit": "", "image_type": "",
                    "image_length": 0, "image_width": 0, "image_height": 0, "canonical_url": "",
                    "source_url": "", "origin": "", "external_id": None, "editors": [],
                    "extra": {}, "status": status, "published_at": when,
                    "updated_at": when or NOW, "created_at": when or NOW,
                    "content_hash": f"{n:064d}",
                })  # fmt: skip
                tag_rows += [
                    {"article_id": n + 1, "tag": t, "status": status, "published_at": when}
                    for t in tags
                ]
            connection.execute(sa.insert(Article), rows)
            connection.execute(sa.insert(ArticleTag), tag_rows)
        connection.execute(sa.insert(SiteState), [{"key": "content_version", "value": 1}])
        # Bulk rows bypass the store's one writer: index their titles as the migration does.
        began = time.perf_counter()
        search.rebuild(connection)
        print(
            f"[{engine.dialect.name}] title index built for {count:,} articles in "
            f"{time.perf_counter() - began:.1f} s (the backfill of migration 0007_search)"
        )


def fill_subscribers(engine: sa.Engine, count: int) -> None:
    """Bulk-insert ``count`` readers and an edition with one outbox row for each."""
    statuses = ["active"] * 17 + ["pending", "unsubscribed", "bounced"]
    with engine.begin() as connection:
        edition_id = connection.execute(
            sa.insert(Edition).returning(Edition.id),
            [{"period_key": "daily:2026-11-25", "frequency": "daily", "status": "sending",
              "window_end": NOW, "created_at": NOW, "last_error": ""}],
        ).scalar_one()  # fmt: skip
        variant_id = connection.execute(
            sa.insert(EditionVariant).returning(EditionVariant.id),
            [{"edition_id": edition_id, "variant_key": "id", "language": "id",
              "article_ids": [1, 2, 3], "more_count": 0}],
        ).scalar_one()  # fmt: skip
        for n in range(1, 30):
            connection.execute(
                sa.insert(Edition),
                [{"period_key": f"weekly:2026-{1 + n // 5:02d}-{1 + n:02d}", "frequency": "weekly",
                  "status": "done", "window_end": NOW, "created_at": NOW - timedelta(days=n),
                  "last_error": ""}],
            )  # fmt: skip
        for first in range(0, count, 5000):
            rows, outbox = [], []
            for n in range(first, min(count, first + 5000)):
                local = f"pembaca.{n}" if n % 3 else f"reader{n}"
                address = f"{local}@example{n % 7}.org"
                rows.append({
                    "id": n + 1, "email": address, "email_key": address.lower(),
                    "name": f"Pembaca {n}", "status": statuses[n % len(statuses)],
                    "language": "en" if n % 4 == 0 else "id", "timezone": ZONES[n % len(ZONES)],
                    "frequency": "weekly" if n % 9 == 0 else "daily",
                    "topics": [TAGS[n % len(TAGS)]] if n % 2 else [],
                    "created_at": START + timedelta(minutes=n), "consent_source": "csv",
                    "consent_ip": "", "consent_user_agent": "", "consent_text": "",
                    "soft_bounces": 0, "hard_bounces": 0,
                })  # fmt: skip
                outbox.append({
                    "edition_id": edition_id, "variant_id": variant_id, "subscriber_id": n + 1,
                    "email": address, "status": ["sent", "sent", "queued", "failed"][n % 4],
                    "attempts": 1, "claimed_by": "", "smtp_response": "",
                    "message_id": f"<{n}@example.org>", "window_end": NOW,
                })  # fmt: skip
            connection.execute(sa.insert(Subscriber), rows)
            connection.execute(sa.insert(OutboxRow), outbox)


async def make_token(site: Site) -> str:
    """Create an editor and a read token for them; return the token."""
    try:
        async with transaction(site.engine) as session:
            user = await users.add(session, "bench@example.org", Role.EDITOR, "bench pass 1", NOW)
            return (await tokens.create(session, user, "bench", "read", NOW)).raw
    finally:
        await site.aclose()


@contextmanager
def database_urls(tmp: Path, postgres: str | None) -> Iterator[list[tuple[str, str]]]:
    """Yield (label, URL) of each database to measure."""
    urls = [("sqlite", f"sqlite:///{tmp / 'api.db'}")]
    if postgres is None:
        yield urls
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.services import fresh_postgres_database, postgres_url_for_tests

    if postgres:
        yield [*urls, ("postgresql", fresh_postgres_database(postgres))]
        return
    with postgres_url_for_tests() as server:
        if server is None:
            raise SystemExit("--postgres: no PostgreSQL server binaries found")
        yield [*urls, ("postgresql", fresh_postgres_database(server))]


def requests() -> list[tuple[str, str, dict[str, Any], float]]:
    """Return (label, path, params, budget in ms) of every request to time."""
    middle = START + timedelta(minutes=37 * 50_000)
    deep_article = pagination.encode("articles", middle.isoformat(), 50_001)
    lists = [
        ("articles, first page", "/api/v1/articles", {}),
        ("articles, deep cursor", "/api/v1/articles", {"cursor": deep_article}),
        ("articles ?status=draft", "/api/v1/articles", {"status": "draft"}),
        ("articles ?status=published", "/api/v1/articles", {"status": "published"}),
        ("articles ?tag=budaya", "/api/v1/articles", {"tag": "budaya"}),
        ("articles ?tag=budaya&status=draft", "/api/v1/articles", {"tag": "budaya",
                                                                    "status": "draft"}),
        ("articles ?author=maria-lede", "/api/v1/articles", {"author": "Maria Lede"}),
        ("articles ?lang=en", "/api/v1/articles", {"lang": "en"}),
        ("articles ?q=politik", "/api/v1/articles", {"q": "politik"}),
        ("articles ?q=politik, deep cursor", "/api/v1/articles", {"q": "politik",
                                                                   "cursor": deep_article}),
        ("articles ?q=nomor 99999 (one match)", "/api/v1/articles", {"q": "nomor 99999 "}),
        ("articles ?q=b (one letter: every title)", "/api/v1/articles", {"q": "b"}),
        ("articles ?q=zzz (no match)", "/api/v1/articles", {"q": "zzz"}),
        ("articles ?q=\"Berita\" AND (NEAR* (hostile syntax)", "/api/v1/articles",
         {"q": '"Berita" AND (NEAR*'}),
        ("articles ?q=tentang&status=draft", "/api/v1/articles", {"q": "tentang",
                                                                   "status": "draft"}),
        ("articles ?q=tentang&tag=budaya", "/api/v1/articles", {"q": "tentang",
                                                                 "tag": "budaya"}),
        ("subscribers, first page", "/api/v1/subscribers", {}),
        ("subscribers, deep cursor", "/api/v1/subscribers", {"cursor": pagination.encode(
            "subscribers", 50_000)}),
        ("subscribers ?status=pending", "/api/v1/subscribers", {"status": "pending"}),
        ("subscribers ?lang=en&timezone=Asia/Jayapura", "/api/v1/subscribers",
         {"lang": "en", "timezone": "Asia/Jayapura"}),
        ("subscribers ?frequency=weekly", "/api/v1/subscribers", {"frequency": "weekly"}),
        ("subscribers ?topic=politik", "/api/v1/subscribers", {"topic": "politik"}),
        ("subscribers ?topic=politik, deep cursor", "/api/v1/subscribers", {"topic": "politik",
         "cursor": pagination.encode("subscribers", 50_000)}),
        ("subscribers ?topic=politik&status=pending", "/api/v1/subscribers",
         {"topic": "politik", "status": "pending"}),
        ("subscribers ?topic=nobody-follows (no match)", "/api/v1/subscribers",
         {"topic": "nobody-follows"}),
        ("subscribers ?timezone=Europe/Berlin (no match: walks every row)", "/api/v1/subscribers",
         {"timezone": "Europe/Berlin"}),
        ("editions (one with 100,000 messages)", "/api/v1/editions", {}),
    ]  # fmt: skip
    searches = [
        ("subscribers ?email=pemb (prefix search)", "/api/v1/subscribers", {"email": "pemb"}),
        ("subscribers ?email=reader9999 (prefix search)", "/api/v1/subscribers",
         {"email": "reader9999"}),
        ("subscribers ?email=nobody (prefix search)", "/api/v1/subscribers", {"email": "nobody"}),
    ]  # fmt: skip
    return [(label, path, params, LIST_BUDGET_MS) for label, path, params in lists] + [
        (label, path, params, SEARCH_BUDGET_MS) for label, path, params in searches
    ]


def time_requests(base: str, token: str, repeat: int) -> list[tuple[str, float, float, int]]:
    """Return (label, median ms, budget ms, items) of every request.

    The requests take turns (one round of all, ``repeat`` times), so a burst of load from
    elsewhere on the machine spreads over all of them instead of spoiling one.
    """
    headers = {"Authorization": f"Bearer {token}"}
    wanted = requests()
    timings: list[list[float]] = [[] for _ in wanted]
    items = [0] * len(wanted)
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        for run in range(repeat + 1):
            for n, (_label, path, params, _budget) in enumerate(wanted):
                began = time.perf_counter()
                response = client.get(path, params=params)
                elapsed = time.perf_counter() - began
                response.raise_for_status()
                items[n] = len(response.json()["items"])
                if run:  # the first round warms caches (SQL compilation, pages)
                    timings[n].append(elapsed * 1000)
    return [
        (label, statistics.median(timings[n]), budget, items[n])
        for n, (label, _path, _params, budget) in enumerate(wanted)
    ]


def main() -> None:
    """Measure and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--subscribers", type=int, default=100_000)
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
        tempfile.TemporaryDirectory(prefix="publisher-bench-") as tmp,
        database_urls(Path(tmp), args.postgres) as urls,
    ):
        for label, url in urls:
            site_dir = Path(tmp) / f"site-{label}"
            init_site(site_dir, title="Kabar Bench", base_url="https://news.example.org")
            settings = load_settings(site_dir / "publisher.toml")
            settings.database.url = url
            site = Site.from_settings(settings)
            began = time.perf_counter()
            engine = create_sync_engine(url)
            fill_articles(engine, args.articles)
            fill_subscribers(engine, args.subscribers)
            # SQLite runs without ANALYZE statistics, as a fresh site does; PostgreSQL's
            # autovacuum would have analysed tables this size.
            if label == "postgresql":
                with engine.connect() as connection:
                    connection.execution_options(isolation_level="AUTOCOMMIT").execute(
                        sa.text("VACUUM ANALYZE")
                    )
            engine.dispose()
            token = asyncio.run(make_token(site))
            print(
                f"[{label}] {args.articles:,} articles, {args.subscribers:,} subscribers, "
                f"{args.subscribers:,} outbox rows (filled in {time.perf_counter() - began:.1f} s)"
            )
            with running(Site.from_settings(settings)) as base:
                for name, median, budget, items in time_requests(base, token, args.repeat):
                    verdict = "PASS" if median <= budget else "FAIL"
                    failed = failed or median > budget
                    print(
                        f"[{label}] GET {name}: {median:.1f} ms median of {args.repeat} "
                        f"({items} items; budget {budget:.0f} ms) {verdict}"
                    )
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
