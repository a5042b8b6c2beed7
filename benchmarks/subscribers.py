"""Time `subscribers import` (CSV, streamed, batched) on a generated list; print the figures.

Generates ``--rows`` subscribers (with a few percent bad rows and duplicates, IDN and
mixed-case addresses), imports them ``--repeat`` times into fresh SQLite sites through
the real path (``subscribers.csvio.import_csv``, one transaction per 1,000 rows), then
re-imports once (the idempotent path) and exports once. The issue's budget is 100,000
rows in under 30 s.

    .venv/bin/python benchmarks/subscribers.py [--rows 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

# The checkout first: this script shares its name with the subscribers package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from publisher.cli.init import init_site
from publisher.config import DEFAULT_CONFIG
from publisher.db import transaction
from publisher.site import Site
from subscribers import csvio

BUDGET_SECONDS = 30.0
ZONES = ["Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura", "", "Asia/Singapore"]
TOPICS = ["ekonomi", "olahraga", "pendidikan;budaya", "", "teknologi;ekonomi;lingkungan"]
NAMES = ["Siti Aminah", "Budi Santoso", "Maria Latuconsina", "Kevin Wanggai", "", "Dewi, S."]
DOMAINS = ["example.org", "Example.COM", "surel.example.id", "bücher.example"]


def write_csv(path: Path, rows: int) -> int:
    """Write ``rows`` data rows (about 1% bad) and return how many are bad."""
    rng = random.Random(20261125)
    bad = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("email,name,language,timezone,frequency,topics\n")
        for n in range(rows):
            if n % 97 == 13:
                out.write(f"broken-{n},x,id,Asia/Jakarta,daily,\n")
                bad += 1
                continue
            domain = DOMAINS[n % len(DOMAINS)]
            local = f"Pembaca.{n}" if n % 3 else f"reader{n}"
            name = NAMES[n % len(NAMES)]
            out.write(
                f'{local}@{domain},"{name}",{rng.choice(["id", "en", ""])},'
                f"{rng.choice(ZONES)},{rng.choice(['daily', 'weekly'])},{rng.choice(TOPICS)}\n"
            )
    return bad


async def run_import(site: Site, path: Path) -> tuple[float, csvio.ImportReport]:
    start = time.perf_counter()
    with path.open(encoding="utf-8", newline="") as handle:
        report = await csvio.import_csv(
            site.engine, handle, site.clock.now(), source=str(path), confirmed=True
        )
    return time.perf_counter() - start, report


async def run_export(site: Site) -> tuple[float, int]:
    start = time.perf_counter()
    out = io.StringIO()
    async with transaction(site.engine) as session:
        count = await csvio.export_csv(session, out)
    return time.perf_counter() - start, count


def open_site(root: Path, name: str) -> Site:
    directory = root / name
    init_site(directory, title="Bench", base_url="https://news.example.org")
    return Site.open(directory / DEFAULT_CONFIG)


async def main(rows: int, repeat: int) -> int:
    with tempfile.TemporaryDirectory(prefix="publisher-bench-") as tmp:
        root = Path(tmp)
        csv_path = root / "list.csv"
        bad = write_csv(csv_path, rows)
        times: list[float] = []
        site: Site | None = None
        report = csvio.ImportReport()
        for run in range(repeat):
            if site is not None:
                await site.aclose()
            site = open_site(root, f"site{run}")
            elapsed, report = await run_import(site, csv_path)
            times.append(elapsed)
        assert site is not None
        if len(report.errors) != bad or report.created != rows - bad:
            print(f"unexpected import result: {report}", file=sys.stderr)
            return 1
        median = statistics.median(times)
        print(
            f"subscribers import: {rows} rows in {median:.2f} s "
            f"({rows / median:,.0f} rows/s; median of {repeat}; {report.created} created, "
            f"{len(report.errors)} bad rows reported) [sqlite]"
        )
        again, second = await run_import(site, csv_path)
        print(
            f"subscribers re-import (idempotent): {rows} rows in {again:.2f} s "
            f"({second.created} created, {second.updated} updated, "
            f"{second.unchanged} unchanged) [sqlite]"
        )
        exported, count = await run_export(site)
        print(f"subscribers export: {count} rows in {exported:.2f} s [sqlite]")
        await site.aclose()
        # The budget is for the full size; small runs are dominated by start-up costs.
        if rows >= 100_000 and median * 100_000 / rows > BUDGET_SECONDS:
            print(f"over budget: {median:.2f} s > {BUDGET_SECONDS:.0f} s", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.rows, args.repeat)))
