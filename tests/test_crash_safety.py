"""kill -9 a real `publisher digest send` at random moments; nobody is missed or doubled.

The only copies allowed twice are those in flight at a kill (at most mail.connections
per kill), and each such pair must carry the same Message-ID.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from publisher.cli.init import init_site
from publisher.clock import SystemClock
from publisher.config import load_settings
from publisher.db import transaction
from publisher.delivery.models import Edition, OutboxRow
from publisher.site import Site
from tests.clirunner import ROOT
from tests.delivery_helpers import add_articles, add_subscribers
from tests.smtp_servers import RecordingHandler, message_id_of, smtp_server

SUBSCRIBERS = 400
CONNECTIONS = 4
KILLS = 7


async def _run(
    site_dir: Path, env: dict[str, str], *args: str, kill_after: float | None
) -> int | None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "publisher",
        "--config",
        str(site_dir / "publisher.toml"),
        "digest",
        "send",
        *args,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await asyncio.wait_for(process.wait(), timeout=kill_after or 120)
    except TimeoutError:
        process.kill()  # SIGKILL: no cleanup of any kind
        await process.wait()
        return None
    assert process.stderr is not None
    error = (await process.stderr.read()).decode()
    assert process.returncode == 0, error
    return process.returncode


@pytest.mark.slow
async def test_sigkill_at_random_moments_loses_and_doubles_nothing(tmp_path: Path) -> None:
    seed = int(os.environ.get("PUBLISHER_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    site_dir = tmp_path / "site"
    database = tmp_path / "publisher.db"
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        PUBLISHER_DATABASE__URL=f"sqlite:///{database}",
        PUBLISHER_MAIL__CONNECTIONS=str(CONNECTIONS),
    )
    os.environ.pop("PUBLISHER_MAIL__SMTP_URL", None)
    init_site(site_dir, title="Kabar Crash", base_url="https://news.example.org")
    settings = load_settings(site_dir / "publisher.toml")
    settings.database.url = env["PUBLISHER_DATABASE__URL"]
    site = Site.from_settings(settings, clock=SystemClock())
    await add_articles(site, 4, language="id")
    await add_articles(site, 3, language="en", prefix="story")
    await add_subscribers(site, SUBSCRIBERS, languages=("id", "en"))
    # Slow enough that kills land while sending, not only before or after.
    handler = RecordingHandler(data_delay=0.01)
    kills = 0
    async with smtp_server(handler) as port:
        env["PUBLISHER_MAIL__SMTP_URL"] = f"smtp://127.0.0.1:{port}"
        for attempt in range(KILLS):
            args = ("--resume",) if attempt % 2 else ()
            finished = await _run(site_dir, env, *args, kill_after=rng.uniform(0.4, 3.0))
            if finished is None:
                kills += 1
            elif handler.total() >= SUBSCRIBERS:
                break
        # After the last kill: one resume completes the edition, and a plain re-run is a no-op.
        await _run(site_dir, env, "--resume", kill_after=None)
        delivered_before_rerun = handler.total()
        await _run(site_dir, env, kill_after=None)
        assert handler.total() == delivered_before_rerun, f"seed {seed}: re-run sent again"
    counts = Counter({address: len(copies) for address, copies in handler.delivered.items()})
    missing = [f"reader{n}@example.net" for n in range(SUBSCRIBERS)]
    missing = [address for address in missing if counts[address] == 0]
    assert not missing, f"seed {seed}: {len(missing)} never received, e.g. {missing[:3]}"
    duplicates = {address: n for address, n in counts.items() if n > 1}
    extra = sum(n - 1 for n in duplicates.values())
    assert extra <= kills * CONNECTIONS, f"seed {seed}: {extra} extra copies after {kills} kills"
    for address in duplicates:
        ids = {message_id_of(copy) for copy in handler.delivered[address]}
        assert len(ids) == 1, f"seed {seed}: {address} got different Message-IDs {ids}"
    async with transaction(site.engine) as session:
        statuses = Counter(await session.scalars(sa.select(OutboxRow.status)))
        editions = list(await session.scalars(sa.select(Edition)))
    await site.aclose()
    assert statuses == Counter({"sent": SUBSCRIBERS}), f"seed {seed}"
    assert [e.status for e in editions] == ["done"]
    print(f"seed {seed}: {kills} kills, {extra} duplicate deliveries, all {SUBSCRIBERS} reached")
