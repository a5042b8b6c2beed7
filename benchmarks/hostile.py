"""Hostile-content figures (issue 12, rows 2 and 6): what one bad article costs.

Run: .venv/bin/python benchmarks/hostile.py [--runs 3]
Prints: how long importing 40,000 nested <div> (440 KB) takes to be refused, how long
a 330-byte YAML alias bomb takes to be refused, and /healthz latency (median and
worst) while the first request renders a 1.8 MB article page.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from publisher.cli.init import init_site  # noqa: E402
from publisher.config import load_settings  # noqa: E402
from publisher.content.store import ArticleDraft, ArticleStore  # noqa: E402
from publisher.db import transaction  # noqa: E402
from publisher.errors import InputError  # noqa: E402
from publisher.ingest.files import import_files  # noqa: E402
from publisher.ingest.markdown import parse_markdown  # noqa: E402
from publisher.ingest.options import ImportOptions  # noqa: E402
from publisher.ingest.source import SourceText  # noqa: E402
from publisher.site import Site  # noqa: E402
from publisher.web.server import running  # noqa: E402

NOW = datetime(2026, 11, 25, tzinfo=UTC)


def deep_import(folder: Path, site: Site) -> float:
    """Seconds to import (and refuse) one Markdown file of 40,000 nested divs."""
    path = folder / "deep.md"
    path.write_text("---\ntitle: Dalam\n---\n\n" + "<div>" * 40_000 + "x" + "</div>" * 40_000)
    options = ImportOptions(language="id", tz=site.settings.tz)
    started = time.perf_counter()
    report = asyncio.run(import_files(site.engine, "https://x.example", [path], options, NOW))
    elapsed = time.perf_counter() - started
    assert report.outcomes[0].action == "failed", report.outcomes
    return elapsed


def alias_bomb() -> float:
    """Seconds to refuse a 9-per-level, 7-level YAML alias bomb in front matter."""
    levels = ["[lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    levels += [f"[{', '.join([f'*l{n}'] * 9)}]" for n in range(6)]
    anchored = ", ".join(f"&l{n} {level}" for n, level in enumerate(levels))
    text = f"---\ntitle: Bom\ntags: [{anchored}]\n---\n\nIsi.\n"
    started = time.perf_counter()
    try:
        parse_markdown(SourceText(Path("bom.md"), text), language="id", tz=UTC)  # type: ignore[arg-type]
    except InputError:
        return time.perf_counter() - started
    raise AssertionError("the alias bomb was accepted")


def healthz_while_rendering(config: Path) -> tuple[float, float, float]:
    """Return (article seconds, median and worst /healthz seconds) during its first render."""
    paragraph = "<p>" + "Kata demi kata, " * 40 + "<b>tebal</b> <a href='/x'>tautan</a></p>\n"

    async def add() -> None:
        site = Site.open(config)
        try:
            async with transaction(site.engine) as session:
                draft = ArticleDraft(
                    title="Panjang",
                    slug="panjang",
                    body_html=paragraph * (1_800_000 // len(paragraph)),
                    language="id",
                    published_at=NOW,
                )
                await ArticleStore(session, site.settings.site.base_url).upsert(draft, NOW)
        finally:
            await site.aclose()

    asyncio.run(add())
    site = Site.open(config)
    with running(site, poll_interval=0.1) as base:
        urllib.request.urlopen(base + "/healthz", timeout=60).read()  # noqa: S310
        took: dict[str, float] = {}

        def article() -> None:
            started = time.perf_counter()
            urllib.request.urlopen(base + "/articles/panjang", timeout=120).read()  # noqa: S310
            took["article"] = time.perf_counter() - started

        worker = threading.Thread(target=article)
        worker.start()
        latencies: list[float] = []
        while worker.is_alive() or not latencies:
            started = time.perf_counter()
            urllib.request.urlopen(base + "/healthz", timeout=120).read()  # noqa: S310
            latencies.append(time.perf_counter() - started)
        worker.join()
    return took["article"], statistics.median(latencies), max(latencies)


def main() -> None:
    """Print the figures, medians over ``--runs`` runs."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    deep: list[float] = []
    bombs: list[float] = []
    pages: list[tuple[float, float, float]] = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            os.environ["PUBLISHER_DATABASE__URL"] = f"sqlite:///{folder / 'p.db'}"
            init_site(folder / "site", title="Bench", base_url="http://127.0.0.1")
            config = folder / "site" / "publisher.toml"
            site = Site.from_settings(load_settings(config))
            deep.append(deep_import(folder, site))
            asyncio.run(site.aclose())
            bombs.append(alias_bomb())
            pages.append(healthz_while_rendering(config))
    print(f"40,000 nested <div> (440 KB) import refused in {statistics.median(deep):.3f} s")
    print(f"330-byte YAML alias bomb refused in {statistics.median(bombs) * 1000:.1f} ms")
    article = statistics.median(p[0] for p in pages)
    print(
        f"/healthz during a 1.8 MB article's first render ({article:.2f} s): "
        f"median {statistics.median(p[1] for p in pages) * 1000:.0f} ms, "
        f"worst {max(p[2] for p in pages) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
