"""Three `publisher worker` processes share one edition on PostgreSQL: everyone exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from publisher.db import transaction
from publisher.delivery.models import Edition, OutboxRow
from publisher.delivery.store import status_counts
from tests.clirunner import ROOT
from tests.delivery_helpers import postgres_edition, start_worker
from tests.smtp_servers import RecordingHandler, smtp_server

SUBSCRIBERS = 900
WORKERS = 3


@pytest.mark.postgres
@pytest.mark.slow
async def test_three_workers_share_one_edition(tmp_path: Path, postgres_server: str | None) -> None:
    site_dir, url, site, edition = await postgres_edition(
        tmp_path, postgres_server, articles=3, readers=SUBSCRIBERS
    )
    handler = RecordingHandler(data_delay=0.003)
    async with smtp_server(handler) as port:
        env = dict(
            os.environ,
            PYTHONPATH=str(ROOT),
            PUBLISHER_DATABASE__URL=url,
            PUBLISHER_MAIL__SMTP_URL=f"smtp://127.0.0.1:{port}",
            PUBLISHER_MAIL__CONNECTIONS="2",
        )
        workers = [await start_worker(site_dir, env) for _ in range(WORKERS)]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            async with transaction(site.engine) as session:
                done = await session.scalar(
                    sa.select(sa.func.count())
                    .select_from(OutboxRow)
                    .where(OutboxRow.status == "sent")
                )
            if done == SUBSCRIBERS:
                break
            await asyncio.sleep(0.2)
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        outputs = [await asyncio.wait_for(w.communicate(), timeout=30) for w in workers]
    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err.decode()
        assert b"worker stopped:" in out
    counts = Counter({address: len(copies) for address, copies in handler.delivered.items()})
    assert len(counts) == SUBSCRIBERS
    assert set(counts.values()) == {1}, counts.most_common(3)
    async with transaction(site.engine) as session:
        senders = Counter(
            await session.scalars(sa.select(OutboxRow.claimed_by).where(OutboxRow.status == "sent"))
        )
        stored = await session.get(Edition, edition.id)
    # Three workers' claims and results, each a statement the tally trigger counted.
    tallied = await status_counts(site, edition.id)
    await site.aclose()
    assert tallied == Counter({"sent": SUBSCRIBERS}), tallied
    assert sum(senders.values()) == SUBSCRIBERS
    assert len(senders) == WORKERS, senders  # the edition really was shared
    assert stored is not None
    assert stored.status == "done"
    assert stored.finished_at is not None
    assert stored.finished_at > datetime(2000, 1, 1, tzinfo=UTC)
