"""kill -9 a real `publisher digest send` at random moments; nobody is missed or doubled.

The only copies allowed twice are those in flight at a kill (at most mail.connections
per kill), and each such pair must carry the same Message-ID. Transactional mail queued
in the same outbox (confirmations of pending readers) goes through the same kills.

Kills land anywhere from process start-up to the end of sending. A kill before the send
recorded anything (still importing, say) leaves nothing to resume: that is the one case
where `--resume` rightly sends nothing and a plain send does the work. Once the edition
exists, `--resume` completes it and a plain re-run afterwards sends nothing.

Replay a failure with PUBLISHER_CRASH_SEED=<seed printed by the failing run>.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from publisher.cli.init import init_site
from publisher.clock import SystemClock
from publisher.config import load_settings
from publisher.db import transaction
from publisher.delivery.models import Edition, OutboxRow
from publisher.delivery.store import status_counts
from publisher.site import Site
from tests.clirunner import ROOT
from tests.delivery_helpers import add_articles, add_pending_with_confirmations, add_subscribers
from tests.smtp_servers import RecordingHandler, message_id_of, smtp_server

SUBSCRIBERS = 400
PENDING = 40
CONNECTIONS = 4
KILLS = 10


async def _run(
    site_dir: Path, env: dict[str, str], *args: str, kill_after: float | None
) -> float | None:
    """Run one command; return its duration, or None when it was killed first."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "publisher",
        "--config",
        str(site_dir / "publisher.toml"),
        *args,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await asyncio.wait_for(process.wait(), timeout=kill_after or 300)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):  # it may exit at this very moment
            process.kill()  # SIGKILL: no cleanup of any kind
        await process.wait()
        if process.returncode == -signal.SIGKILL:
            return None
    assert process.stderr is not None
    error = (await process.stderr.read()).decode()
    assert process.returncode == 0, error
    return time.monotonic() - started


async def _edition_exists(site: Site) -> bool:
    async with transaction(site.engine) as session:
        return bool(await session.scalar(sa.select(sa.func.count()).select_from(Edition)))


@pytest.mark.slow
async def test_sigkill_at_random_moments_loses_and_doubles_nothing(tmp_path: Path) -> None:
    seed = int(os.environ.get("PUBLISHER_CRASH_SEED", random.randrange(1 << 30)))
    print(f"PUBLISHER_CRASH_SEED={seed}")
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
    await add_pending_with_confirmations(site, PENDING, start=SUBSCRIBERS)
    readers = SUBSCRIBERS + PENDING
    # Slow enough that kills land while sending, not only before or after.
    handler = RecordingHandler(data_delay=0.02)
    kills = 0
    async with smtp_server(handler) as port:
        env["PUBLISHER_MAIL__SMTP_URL"] = f"smtp://127.0.0.1:{port}"
        # How long this machine takes to start the command: kills spread over start-up
        # and the whole send, however loaded the machine is.
        startup = await _run(
            site_dir, env, "subscribers", "list", "--status", "bounced", "--json", kill_after=None
        )
        assert startup is not None
        for _ in range(KILLS):
            args = ("--resume",) if rng.random() < 0.4 else ()
            kill_after = startup * rng.uniform(0.5, 1.3) + rng.uniform(0.0, 4.0)
            finished = await _run(site_dir, env, "digest", "send", *args, kill_after=kill_after)
            if finished is None:
                kills += 1
            elif handler.total() >= readers:
                break
        recorded = await _edition_exists(site)
        before_resume = handler.total()
        await _run(site_dir, env, "digest", "send", "--resume", kill_after=None)
        if not recorded:
            # Every kill came before the send wrote anything: nothing to resume digests,
            # so a plain send does the job (the confirmations were already queued).
            digests = [a for a in handler.delivered if int(a[6:].split("@")[0]) < SUBSCRIBERS]
            assert not digests, f"seed {seed}: --resume sent digests nobody had queued"
            await _run(site_dir, env, "digest", "send", kill_after=None)
        print(f"seed {seed}: edition recorded before the last resume: {recorded}")
        delivered = handler.total()
        assert delivered >= before_resume
        # After completion a plain re-run and another resume are both no-ops.
        await _run(site_dir, env, "digest", "send", kill_after=None)
        assert handler.total() == delivered, f"seed {seed}: re-run sent again"
        await _run(site_dir, env, "digest", "send", "--resume", kill_after=None)
        assert handler.total() == delivered, f"seed {seed}: second resume sent again"
    counts = Counter({address: len(copies) for address, copies in handler.delivered.items()})
    missing = [f"reader{n}@example.net" for n in range(readers)]
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
        kinds = Counter(await session.scalars(sa.select(OutboxRow.kind)))
        editions = list(await session.scalars(sa.select(Edition)))
    # The edition's counts, kept by triggers through every kill, match its rows.
    tallied = await status_counts(site, editions[0].id) if editions else Counter()
    await site.aclose()
    assert statuses == Counter({"sent": readers}), f"seed {seed}: {statuses}"
    assert tallied == Counter({"sent": SUBSCRIBERS}), f"seed {seed}: tallies {tallied}"
    assert kinds == Counter({"digest": SUBSCRIBERS, "confirmation": PENDING}), f"seed {seed}"
    assert [e.status for e in editions] == ["done"], f"seed {seed}"
    print(
        f"seed {seed}: {kills} kills, {extra} duplicate deliveries, "
        f"all {SUBSCRIBERS} digests and {PENDING} confirmations delivered"
    )
