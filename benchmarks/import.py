"""Time `articles add` on generated inputs: one line per format, e.g. markdown articles/s.

Each format has a writer that generates ``count`` input files into a folder; the
import itself goes through the real path (``publisher.ingest.files.import_files``,
one transaction per file) into a fresh SQLite site. Add a format by writing a
``write_<format>(directory, count) -> list[Path]`` function and listing it in
``WRITERS`` (and, when it has a time budget, in ``BUDGETS``).

    .venv/bin/python benchmarks/import.py [--count 1000] [--repeat 3] [--format markdown]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Run from a checkout without installing: make `publisher` importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from publisher.cli.init import init_site
from publisher.config import DEFAULT_CONFIG
from publisher.ingest.files import ImportReport, import_files
from publisher.ingest.options import ImportOptions
from publisher.site import Site

Writer = Callable[[Path, int], list[Path]]

_WORD_TEXT = (
    "kapal feri pelabuhan warga pasar harga beras panen petani hujan banjir sungai "
    "sekolah guru murid jalan kota desa pulau laut nelayan ikan listrik surya baterai "
    "the city council harbour farmers market school rain river island power solar "
    "battery ferry schedule volunteers library reading festival batik mangrove"
)
WORDS = _WORD_TEXT.split()
TAGS = ["ekonomi", "transportasi", "pendidikan", "lingkungan", "budaya", "olahraga", "teknologi"]
AUTHORS = ["Andi Saputra", "Rina Wulandari", "Maria Latuconsina", "Kevin Wanggai", "Dewi Lestari"]
START = datetime(2026, 1, 1, tzinfo=UTC)


def _sentence(rng: random.Random) -> str:
    words = rng.choices(WORDS, k=rng.randint(8, 18))
    return " ".join(words).capitalize() + "."


def _paragraph(rng: random.Random) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(3, 6)))


def write_markdown(directory: Path, count: int) -> list[Path]:
    """Write ``count`` Markdown articles with front matter and several paragraphs."""
    rng = random.Random(20261125)  # same corpus on every run, so runs compare
    directory.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for number in range(count):
        published = START + timedelta(minutes=37 * number)
        tags = rng.sample(TAGS, k=rng.randint(1, 3))
        paragraphs = [_paragraph(rng) for _ in range(rng.randint(4, 8))]
        paragraphs.insert(2, f"See [the schedule](/jadwal/{number}) and **more** details.")
        paragraphs.insert(3, f"![Foto {number}](/images/{number}.jpg)")
        text = "\n".join(
            [
                "---",
                f'title: "Berita nomor {number}: {" ".join(rng.choices(WORDS, k=5))}"',
                f"date: {published.isoformat()}",
                f"author: {rng.choice(AUTHORS)}",
                "tags: [" + ", ".join(tags) + "]",
                f"image: /images/lead-{number}.jpg",
                f'image_caption: "Keterangan foto {number}"',
                'image_credit: "Foto: Redaksi"',
                f"lang: {rng.choice(['id', 'en'])}",
                "---",
                "",
                "\n\n".join(paragraphs),
                "",
            ]
        )
        path = directory / f"article-{number:05d}.md"
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def write_text(directory: Path, count: int) -> list[Path]:
    """Write ``count`` scraped news pages as plain text: chrome, captions, body, initials."""
    rng = random.Random(20261126)
    directory.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for number in range(count):
        caption = f"{_sentence(rng)[:-1]} (Foto: {rng.choice(['Reuters', 'via AP', 'AFP'])})"
        paragraphs = [_paragraph(rng) for _ in range(rng.randint(4, 8))]
        paragraphs[-1] += " [ab/cd]"
        lines = [
            "Langsung ke konten",
            "Langsung ke menu utama",
            "",
            "Menu",
            "Berita",
            rng.choice(TAGS).capitalize(),
            "",
            f"Berita nomor {number}: {' '.join(rng.choices(WORDS, k=6))}",
            "",
            caption,
            caption,
            "",
            "\n\n".join(paragraphs),
            "",
            "Komentar",
            "Bagikan",
            "XS",
            "SM",
            "MD",
            "LG",
            "Rekomendasi",
            _sentence(rng)[:-1],
            "",
        ]
        path = directory / f"article-{number:05d}.txt"
        path.write_text("\n".join(lines), encoding="utf-8")
        paths.append(path)
    return paths


def write_html(directory: Path, count: int) -> list[Path]:
    """Write ``count`` news pages as HTML: meta tags, JSON-LD, navigation, figure, footer."""
    rng = random.Random(20261127)
    directory.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for number in range(count):
        title = f"Berita nomor {number}: {' '.join(rng.choices(WORDS, k=6))}"
        published = (START + timedelta(minutes=37 * number)).isoformat()
        paragraphs = "\n".join(f"<p>{_paragraph(rng)}</p>" for _ in range(rng.randint(4, 8)))
        menu = "".join(f'<li><a href="/{tag}">{tag}</a></li>' for tag in TAGS)
        page = f"""<!doctype html>
<html lang="id"><head><meta charset="utf-8"><title>{title} | Kabar</title>
<link rel="canonical" href="https://kabar.example.id/berita/{number}">
<meta property="og:image" content="https://kabar.example.id/img/{number}.jpg">
<meta property="article:published_time" content="{published}">
<meta name="author" content="{rng.choice(AUTHORS)}">
<script type="application/ld+json">{{"@type": "NewsArticle", "headline": "{title}"}}</script>
</head><body><header><a href="#isi">Langsung ke konten</a><nav><ul>{menu}</ul></nav></header>
<main id="isi"><article><h1>{title}</h1>
<figure><img src="/img/{number}.jpg" alt="Foto {number}">
<figcaption>{_sentence(rng)} <span class="credit">Foto: Redaksi</span></figcaption></figure>
{paragraphs}
</article><aside><h3>Berita terkait</h3><ul>{menu}</ul></aside></main>
<footer><p>Hak cipta dilindungi.</p></footer></body></html>
"""
        path = directory / f"article-{number:05d}.html"
        path.write_text(page, encoding="utf-8")
        paths.append(path)
    return paths


WRITERS: dict[str, Writer] = {"markdown": write_markdown, "text": write_text, "html": write_html}
#: Seconds allowed for 1,000 articles (issue 2: Markdown under 10 s).
BUDGETS: dict[str, float] = {"markdown": 10.0}


@dataclass(frozen=True)
class Measurement:
    """One timed import of ``count`` files of one format."""

    format: str
    count: int
    seconds: float

    @property
    def rate(self) -> float:
        """Return articles per second."""
        return self.count / self.seconds if self.seconds else float("inf")


async def _import(site: Site, paths: list[Path], fmt: str) -> ImportReport:
    options = ImportOptions(language=site.settings.site.language, tz=site.settings.tz, format=fmt)
    try:
        return await import_files(
            site.engine, site.settings.site.base_url, paths, options, site.clock.now()
        )
    finally:
        await site.aclose()


def measure(fmt: str, count: int, workdir: Path) -> Measurement:
    """Generate ``count`` inputs, import them into a fresh site and time the import."""
    paths = WRITERS[fmt](workdir / "input", count)
    site_dir = workdir / "site"
    init_site(site_dir, title="Benchmark", base_url="https://news.example.org")
    site = Site.open(site_dir / DEFAULT_CONFIG)
    started = time.perf_counter()
    report = asyncio.run(_import(site, paths, fmt))
    seconds = time.perf_counter() - started
    if report.failed or report.count("created") != count:
        first = report.failed[0].error if report.failed else "none failed"
        raise SystemExit(
            f"{fmt}: expected {count} created, got {report.count('created')} "
            f"({len(report.failed)} failed; first: {first})"
        )
    return Measurement(fmt, count, seconds)


def run(fmt: str, count: int, repeat: int) -> Measurement:
    """Measure ``repeat`` times on fresh sites and return the median run."""
    runs: list[Measurement] = []
    for attempt in range(repeat):
        with tempfile.TemporaryDirectory(prefix=f"bench-{fmt}-{attempt}-") as tmp:
            runs.append(measure(fmt, count, Path(tmp)))
    median = statistics.median(m.seconds for m in runs)
    return Measurement(fmt, count, median)


def format_line(measurement: Measurement, repeat: int) -> str:
    """Render one result line, e.g. ``markdown: 1000 articles in 3.21 s (311 articles/s)``."""
    line = (
        f"{measurement.format}: {measurement.count} articles in {measurement.seconds:.2f} s "
        f"({measurement.rate:.0f} articles/s)"
    )
    if repeat > 1:
        line += f" [median of {repeat}]"
    return line


def main(argv: list[str] | None = None) -> int:
    """Run each chosen format, print one line per format, fail when over budget."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=1000, help="articles per format")
    parser.add_argument("--repeat", type=int, default=3, help="runs per format (median)")
    parser.add_argument(
        "--format",
        dest="formats",
        action="append",
        choices=sorted(WRITERS),
        help="format to time (repeatable; default all)",
    )
    args = parser.parse_args(argv)
    over_budget: list[str] = []
    for fmt in args.formats or list(WRITERS):
        result = run(fmt, args.count, max(1, args.repeat))
        print(format_line(result, args.repeat), flush=True)
        budget = BUDGETS.get(fmt)
        # Budgets hold from 1,000 articles up (scaled above that); smaller smoke runs are
        # dominated by fixed start-up costs, so a scaled-down budget would measure noise.
        if (
            budget is not None
            and args.count >= 1000
            and result.seconds > budget * args.count / 1000
        ):
            over_budget.append(f"{fmt}: {result.seconds:.2f} s is over the {budget:.0f} s budget")
    for message in over_budget:
        print(message, file=sys.stderr)
    return 1 if over_budget else 0


if __name__ == "__main__":
    sys.exit(main())
