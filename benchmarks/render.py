"""Personalized, fully encoded digest messages per second on one core (with and without DKIM).

Renders a 10-article digest of the sample articles once (Jinja → MJML → inlined HTML,
plain text, pre-encoded MIME), then calls ``MessageTemplate.personalize`` for distinct
readers: each message gets its own To (some non-ASCII names), Date, Message-ID,
List-Unsubscribe and escaped, quoted-printable greeting, address and links. Figures are
medians over rounds; the process is pinned to one CPU.

    .venv/bin/python benchmarks/render.py [--messages 20000] [--rounds 5] [--dkim-messages 3000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

# Run from a checkout without installing: make `publisher` importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from publisher.clock import SystemClock
from publisher.config import Settings, settings_from_mapping
from publisher.content.models import PUBLISHED, Article
from publisher.content.sanitize import clean_line, first_paragraph_text, sanitize_html
from publisher.ingest.markdown import parse_markdown
from publisher.ingest.source import read_text_file
from publisher.render.digest import Digest, render_digest
from publisher.render.message import MessageTemplate, Recipient, build_digest_template
from publisher.resources import samples_dir

BASE_URL = "https://news.example.org"
BUDGET_US = 200.0
NAMES = ["Siti Rahayu", "Budi", "", "Dédé Ñoño", "Ni Luh Putu Ayu", "Andi <Saputra>", "山田"]


def ten_articles() -> list[Article]:
    """Load the sample articles, repeated as needed to make ten."""
    tz = ZoneInfo("Asia/Jakarta")
    base = []
    for path in sorted(samples_dir().glob("*.md")):
        draft = parse_markdown(read_text_file(path), language="id", tz=tz)
        body = sanitize_html(draft.body_html, BASE_URL)
        base.append((draft, body))
    articles = []
    for number in range(10):
        draft, body = base[number % len(base)]
        articles.append(
            Article(
                id=number + 1,
                slug=f"{draft.slug}-{number}",
                title=clean_line(draft.title),
                summary=clean_line(draft.summary) or first_paragraph_text(body),
                author=clean_line(draft.author),
                language=draft.language,
                image_url=draft.image_url,
                image_caption=clean_line(draft.image_caption),
                image_credit=clean_line(draft.image_credit),
                image_width=0,
                image_height=0,
                canonical_url="",
                status=PUBLISHED,
                published_at=datetime(2026, 11, 24, tzinfo=UTC),
            )
        )
    return articles


def settings_for(mail: dict[str, str]) -> Settings:
    """Return benchmark settings with optional [mail] overrides."""
    return settings_from_mapping(
        {
            "site": {"title": "Kabar Nusantara", "base_url": BASE_URL},
            "mail": {
                "from": "Kabar Nusantara <redaksi@news.example.org>",
                "reply_to": "redaksi@news.example.org",
                "postal_address": "Jl. Merdeka Barat 9, Jakarta 10110",
                "unsubscribe_mailto": "leave@news.example.org",
                **mail,
            },
        }
    )


def readers(count: int) -> list[Recipient]:
    """Build distinct readers with token-sized links, as delivery would."""
    return [
        Recipient(
            email=f"reader{n}@example{n % 97}.net",
            name=NAMES[n % len(NAMES)],
            unsubscribe_url=f"{BASE_URL}/unsubscribe/{n}.Xq3nZ8pL0vW2-aK9mB4cD7eF1gH5",
            preferences_url=f"{BASE_URL}/preferences/{n}.Yr4oA9qM1wX3-bL0nC5dE8fG2hI6",
            message_id=f"<daily.2026-11-25.{n}@news.example.org>",
            language="id",
        )
        for n in range(count)
    ]


def rate(
    template: MessageTemplate, batch: list[Recipient], rounds: int
) -> tuple[float, float, int]:
    """Return the median messages/s over ``rounds`` passes (wall, CPU time), and the size."""
    personalize = template.personalize
    size = len(personalize(batch[0]))
    rates, cpu_rates = [], []
    for _ in range(rounds):
        started, cpu_started = time.perf_counter(), time.process_time()
        for reader in batch:
            personalize(reader)
        rates.append(len(batch) / (time.perf_counter() - started))
        cpu_rates.append(len(batch) / max(time.process_time() - cpu_started, 1e-9))
    return statistics.median(rates), statistics.median(cpu_rates), size


def make_key(folder: Path) -> Path | None:
    """Generate a 2048-bit RSA key with openssl, or None when openssl is missing."""
    if shutil.which("openssl") is None:
        return None
    key = folder / "dkim.pem"
    command = ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
    subprocess.run(
        [*command, "-out", str(key)],
        check=True,
        capture_output=True,
    )
    return key


def main() -> int:
    """Run the benchmark and print its figures; exit 1 when the no-DKIM budget is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000, help="readers per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dkim-messages", type=int, default=3000)
    parser.add_argument("--no-check", action="store_true", help="do not fail on the budget")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    settings = settings_for({})
    digest = Digest(
        articles=ten_articles(),
        language="id",
        edition_key="daily:2026-11-25",
        edition_date=date(2026, 11, 25),
        tz=ZoneInfo("Asia/Jakarta"),
    )
    compile_times = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        compiled = render_digest(settings, digest)
        template = build_digest_template(settings, compiled, clock=SystemClock())
        compile_times.append(time.perf_counter() - started)
    print(
        f"render once per variant (Jinja+MJML+css-inline+MIME): "
        f"{statistics.median(compile_times) * 1000:.1f} ms; HTML {len(compiled.html):,} bytes"
    )

    per_second, _, size = rate(template, readers(args.messages), args.rounds)
    micros = 1e6 / per_second
    print(
        f"personalize without DKIM: {per_second:,.0f} messages/s on one core "
        f"({micros:.1f} µs/message, {size:,} bytes each; budget {BUDGET_US:.0f} µs)"
    )

    with tempfile.TemporaryDirectory() as folder:
        key = make_key(Path(folder))
        if key is None:
            print("personalize with DKIM: skipped (openssl not found)")
        else:
            signed_settings = settings_for(
                {
                    "dkim_domain": "news.example.org",
                    "dkim_selector": "kabar",
                    "dkim_key_file": str(key),
                }
            )
            signed = build_digest_template(signed_settings, compiled, clock=SystemClock())
            dkim_rate, dkim_cpu, dkim_size = rate(signed, readers(args.dkim_messages), args.rounds)
            print(
                f"personalize with DKIM (rsa-sha256, 2048-bit, OpenSSL): {dkim_rate:,.0f} "
                f"messages/s on one core ({1e6 / dkim_rate:,.0f} µs/message, "
                f"{dkim_size:,} bytes each; CPU time alone: {dkim_cpu:,.0f} messages/s)"
            )
    if micros > BUDGET_US and not args.no_check:
        print(f"FAIL: {micros:.1f} µs/message is over the {BUDGET_US:.0f} µs budget")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
