"""/api/v1/announcements: create, list, get, send now or at a local time, test, cancel."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from publisher.accounts.models import AuditEntry
from publisher.db import transaction
from publisher.delivery.worker import deliver
from tests import test_api
from tests.scheduling_helpers import add_reader
from tests.test_api import Api, errors_at

pytestmark = pytest.mark.postgres

api = test_api.api


def announcement(**extra: object) -> dict[str, object]:
    return {
        "subject": "Kabar kini punya aplikasi",
        "body_markdown": "Unduh **sekarang**.",
        "lang": "id",
        **extra,
    }


async def test_create_send_and_watch_it_go_out(api: Api) -> None:
    await add_reader(api.site, "id@example.org", "Asia/Jakarta")
    await add_reader(api.site, "en@example.org", "Asia/Jakarta", language="en")
    created = await api.post("/api/v1/announcements", announcement(audience={"languages": ["id"]}))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "draft"
    assert body["audience"] == {"languages": ["id"], "topics": [], "frequencies": []}
    assert "<strong>sekarang</strong>" in body["body_html"]
    number = body["id"]
    tested = await api.post(f"/api/v1/announcements/{number}/test", {"email": "Editor@Example.org"})
    assert tested.status_code == 200, tested.text
    sent = await api.post(f"/api/v1/announcements/{number}/send", {})
    assert sent.status_code == 200, sent.text
    assert sent.json()["status"] == "sending"
    assert sent.json()["edition"]["counts"]["queued"] == 1
    await deliver(api.site, until_idle=True)
    got = await api.get(f"/api/v1/announcements/{number}", "viewer")
    assert got.status_code == 200
    assert got.json()["status"] == "sent"
    assert got.json()["edition"]["period_key"] == f"announcement:{number}"
    assert got.json()["edition"]["counts"]["sent"] == 1
    subjects = sorted((str(m["To"]), str(m["Subject"])) for m in api.mails())
    assert subjects == [
        ("Editor@example.org", "[test] Kabar kini punya aplikasi"),
        ("id@example.org", "Kabar kini punya aplikasi"),
    ]
    again = await api.post(f"/api/v1/announcements/{number}/send", {})
    assert again.status_code == 409
    listed = await api.get("/api/v1/announcements", "reader", limit=1)
    assert [a["id"] for a in listed.json()["items"]] == [number]
    async with transaction(api.site.engine) as session:
        actions = list(await session.scalars(sa.select(AuditEntry.action).order_by(AuditEntry.id)))
    assert [a for a in actions if a.startswith("announcement.")] == [
        "announcement.create",
        "announcement.test_copy",
        "announcement.send",
    ]


async def test_schedule_cancel_and_pages(api: Api) -> None:
    for n in range(3):
        made = await api.post("/api/v1/announcements", announcement(subject=f"Nomor {n}"))
        assert made.status_code == 201
    tomorrow = (api.site.clock.now() + timedelta(days=1)).date().isoformat()
    scheduled = await api.post(
        "/api/v1/announcements/3/send", {"send_date": tomorrow, "send_time": "07:00"}
    )
    assert scheduled.status_code == 200, scheduled.text
    assert scheduled.json()["status"] == "scheduled"
    assert scheduled.json()["send_time"] == "07:00"
    cancelled = await api.post("/api/v1/announcements/3/cancel")
    assert cancelled.json()["status"] == "cancelled"
    first = (await api.get("/api/v1/announcements", limit=2)).json()
    assert [a["id"] for a in first["items"]] == [3, 2]
    rest = (await api.get("/api/v1/announcements", limit=2, cursor=first["next_cursor"])).json()
    assert [a["id"] for a in rest["items"]] == [1]
    assert rest["next_cursor"] is None
    assert (await api.get("/api/v1/announcements/99")).status_code == 404
    assert (await api.post("/api/v1/announcements/99/send", {})).status_code == 404


async def test_bad_and_hostile_input_is_422_with_the_field(api: Api) -> None:
    cases: list[tuple[dict[str, object], tuple[str, ...]]] = [
        (announcement(subject="Halo\r\nBcc: victim@example.org"), ("body", "subject")),
        (announcement(subject="x" * 201), ("body", "subject")),
        (announcement(body_markdown="x" * 50_001), ("body", "body_markdown")),
        (announcement(body_markdown="<div>" * 500), ("body", "body_markdown")),
        (announcement(lang="xx-evil"), ("body", "lang")),
        (announcement(audience={"frequencies": ["hourly"]}), ("body", "audience")),
        (announcement(audience={"topics": ["t"] * 51}), ("body", "audience", "topics")),
        (announcement(audience={"everyone": True}), ("body", "audience", "everyone")),
        (announcement(extra="x"), ("body", "extra")),
    ]
    for data, where in cases:
        response = await api.post("/api/v1/announcements", data)
        assert where in errors_at(response), (data, response.text)
    made = await api.post("/api/v1/announcements", announcement())
    number = made.json()["id"]
    sends: list[tuple[dict[str, object], tuple[str, ...]]] = [
        ({"send_date": "2026-11-26"}, ("body", "send_at")),
        ({"send_date": "2026-11-26", "send_time": "07:10"}, ("body", "send_time")),
        ({"send_date": "2020-01-01", "send_time": "07:00"}, ("body", "send_at")),
        ({"send_time": "7am", "send_date": "2026-11-26"}, ("body", "send_time")),
    ]
    for data, where in sends:
        response = await api.post(f"/api/v1/announcements/{number}/send", data)
        assert where in errors_at(response), (data, response.text)
    bad_test = await api.post(f"/api/v1/announcements/{number}/test", {"email": "not an address"})
    assert ("body", "email") in errors_at(bad_test)
