"""Feed figures: build time at 1,000 vs 100,000 articles, and requests/s served (wrk).

Run: .venv/bin/python benchmarks/feeds.py [--small 1000] [--large 100000] [--duration 10]
Prints one line per figure; the build ratio must stay <= 1.5, the server must do
>= 3,000 req/s of 304s and >= 1,500 req/s of 200s with zero feed rebuilds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from publisher.cli.init import init_site  # noqa: E402
from publisher.config import load_settings  # noqa: E402
from publisher.content.models import Article, ArticleTag, SiteState  # noqa: E402
from publisher.db import create_sync_engine, transaction  # noqa: E402
from publisher.feeds.documents import FORMATS, FeedBuilder  # noqa: E402
from publisher.feeds.model import FeedPath, Scope  # noqa: E402
from publisher.site import Site  # noqa: E402

TAGS = ["politik", "ekonomi", "olahraga", "teknologi", "budaya", "energi", "pendidikan"]
AUTHORS = ["Andi Saputra", "Maria Lede", "Ketut Ardana", "Nadia Prameswari", ""]
BODY = "".join(
    f"<p>Paragraf {n}: warga kota menyambut jadwal baru dengan <strong>antusias</strong>, "
    f'lihat <a href="https://example.org/info/{n}">informasi</a> lengkap.</p>'
    for n in range(8)
)


def populate(site_dir: Path, count: int) -> Site:
    """Create a site whose store holds ``count`` published articles (bulk insert)."""
    init_site(site_dir, title="Kabar Bench", base_url="https://news.example.org")
    settings = load_settings(site_dir / "publisher.toml")
    site = Site.from_settings(settings)
    engine = create_sync_engine(settings.database.url)
    start = datetime(2015, 1, 1, tzinfo=UTC)
    with engine.begin() as connection:
        for first in range(0, count, 5000):
            rows, tag_rows = [], []
            for n in range(first, min(count, first + 5000)):
                when = start + timedelta(minutes=37 * n)
                author = AUTHORS[n % len(AUTHORS)]
                tags = [TAGS[n % len(TAGS)], TAGS[(n * 3 + 1) % len(TAGS)]]
                tags = list(dict.fromkeys(tags))
                rows.append({
                    "id": n + 1, "slug": f"berita-{n}", "guid": f"tag:news.example.org,2015:{n}",
                    "title": f"Berita nomor {n} & kabar lain", "summary": f"Ringkasan berita {n}.",
                    "body_html": BODY, "body_source": BODY, "source_format": "html",
                    "author": author, "author_slug": author.lower().replace(" ", "-"),
                    "language": "id", "tags": tags,
                    "image_url": f"https://images.example.org/{n}.jpg",
                    "image_caption": f"Foto {n}", "image_credit": "Redaksi",
                    "image_type": "image/jpeg", "image_length": 120_000 + n,
                    "image_width": 1200, "image_height": 800, "canonical_url": "",
                    "source_url": "", "origin": "", "external_id": None, "editors": [],
                    "extra": {}, "status": "published", "published_at": when,
                    "updated_at": when, "created_at": when, "content_hash": f"{n:064d}",
                })  # fmt: skip
                tag_rows += [
                    {"article_id": n + 1, "tag": t, "status": "published", "published_at": when}
                    for t in tags
                ]
            connection.execute(sa.insert(Article), rows)
            connection.execute(sa.insert(ArticleTag), tag_rows)
        connection.execute(sa.insert(SiteState), [{"key": "content_version", "value": 1}])
    engine.dispose()
    return site


async def time_site_build(site: Site, repeat: int) -> float:
    """Return the median seconds to build the three site feeds from the store."""
    builder = FeedBuilder(site.settings)
    timings = []
    for run in range(repeat + 1):
        began = time.perf_counter()
        for fmt in FORMATS:
            async with transaction(site.engine) as session:
                document = await builder.document(session, FeedPath(Scope(), fmt))
            assert document is not None
            assert len(document.body) > 1000
        if run:  # the first run warms caches (SQL compilation, imports)
            timings.append(time.perf_counter() - began)
    await site.aclose()
    return statistics.median(timings)


def free_port() -> int:
    """Return a TCP port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def healthz(base: str) -> dict[str, int]:
    """Read the server's counters."""
    with urllib.request.urlopen(f"{base}/healthz", timeout=5) as response:  # noqa: S310
        data: dict[str, int] = json.load(response)
        return data


def wrk(url: str, duration: int, connections: int, headers: dict[str, str]) -> float:
    """Run wrk against ``url`` and return requests per second (non-2xx/3xx counted as failure)."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx or 3xx responses" in output:
        raise SystemExit(f"wrk saw error responses:\n{output}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    assert match, output
    return float(match[1])


def serve_figures(site_dir: Path, duration: int, connections: int) -> None:
    """Start `publisher serve` in its own process and load it with wrk from another."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (make system-deps)")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PUBLISHER_CONFIG": str(site_dir / "publisher.toml")}
    server = subprocess.Popen(
        [sys.executable, "-m", "publisher", "serve", "--port", str(port), "--no-access-log"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                healthz(base)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("server did not start") from None
                time.sleep(0.1)
        gz = {"Accept-Encoding": "gzip"}
        request = urllib.request.Request(f"{base}/feed.xml", headers=gz)  # noqa: S310
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            etag = response.headers["ETag"]
        before = healthz(base)["builds"]
        not_modified = wrk(f"{base}/feed.xml", duration, connections, {**gz, "If-None-Match": etag})
        full = wrk(f"{base}/feed.xml", duration, connections, gz)
        after = healthz(base)["builds"]
        print(f"wrk: {connections} connections, {duration} s per run, server in its own process")
        print(f"serve /feed.xml 304 (If-None-Match): {not_modified:,.0f} req/s (target >= 3,000)")
        print(f"serve /feed.xml 200 (gzip): {full:,.0f} req/s (target >= 1,500)")
        print(f"feed rebuilds during the load: {after - before} (target 0)")
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    """Measure and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--no-serve", action="store_true", help="skip the wrk figures")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="publisher-bench-") as tmp:
        medians = {}
        for count in (args.small, args.large):
            began = time.perf_counter()
            site = populate(Path(tmp) / f"site-{count}", count)
            loaded = time.perf_counter() - began
            medians[count] = asyncio.run(time_site_build(site, args.repeat))
            print(
                f"build site feeds (RSS+Atom+JSON) from {count:,} articles: "
                f"{medians[count] * 1000:.1f} ms median of {args.repeat} "
                f"(store filled in {loaded:.1f} s)"
            )
        ratio = medians[args.large] / medians[args.small]
        print(
            f"build ratio {args.large:,} / {args.small:,} articles: {ratio:.2f}x (target <= 1.5x)"
        )
        if not args.no_serve:
            serve_figures(Path(tmp) / f"site-{args.large}", args.duration, args.connections)


if __name__ == "__main__":
    main()
