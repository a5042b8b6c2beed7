"""Starting today's edition from the editors' app: opened, queued, audited; viewers refused."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import sqlalchemy as sa

from publisher.accounts.models import AuditEntry
from publisher.db import transaction
from publisher.delivery.models import Edition, OutboxRow
from publisher.site import Site
from tests.admin_helpers import AdminClient, add_editors
from tests.scheduling_helpers import add_reader, publish


@pytest.fixture
async def people(site: Site) -> Site:
    await add_editors(site)
    for n in range(30):
        await add_reader(site, f"reader{n}@example.org", "Asia/Jakarta")
    await publish(site, "Pelabuhan Sorong diperluas", at=site.clock.now() - timedelta(hours=1))
    return site


async def test_send_now_opens_and_queues_the_edition(server: str, people: Site) -> None:
    viewer = AdminClient(server)
    viewer.login("viewer@example.org")
    assert "/admin/digests/send" not in viewer.get("/admin/digests").text
    refused = viewer.post("/admin/digests/send", {"frequency": "daily"}, csrf_from="/admin/")
    assert refused.status_code == 403
    editor = AdminClient(server)
    editor.login("editor@example.org")
    assert "/admin/digests/send" in editor.get("/admin/digests").text
    started = editor.post("/admin/digests/send", {"frequency": "daily"}, csrf_from="/admin/digests")
    assert started.status_code == 303, started.text
    location = started.headers["location"]
    assert location.startswith("/admin/digests/editions/daily:")
    key = location.rsplit("/", 1)[-1]
    for _ in range(200):
        async with transaction(people.engine) as session:
            queued = await session.scalar(
                sa.select(sa.func.count())
                .select_from(OutboxRow)
                .join(Edition, Edition.id == OutboxRow.edition_id)
                .where(Edition.period_key == key)
            )
        if queued == 30:
            break
        await asyncio.sleep(0.1)
    assert queued == 30
    page = editor.get(location, headers={"Accept-Language": "en"})
    assert page.status_code == 200
    assert "30 messages" in page.text
    # Pressing again queues nobody twice.
    again = editor.post("/admin/digests/send", {"frequency": "daily"}, csrf_from="/admin/digests")
    assert again.headers["location"] == location
    await asyncio.sleep(1)
    async with transaction(people.engine) as session:
        total = await session.scalar(sa.select(sa.func.count()).select_from(OutboxRow))
        actions = list(
            await session.scalars(
                sa.select(AuditEntry.target).where(AuditEntry.action == "edition.send")
            )
        )
    assert total == 30
    assert actions == [key, key]
    bad = editor.post("/admin/digests/send", {"frequency": "hourly"}, csrf_from="/admin/digests")
    assert "error" in bad.headers["location"]
