"""Announcements in the editors' app on a real uvicorn: compose, preview, count, test, send,
schedule, cancel, progress; a viewer reads but cannot send; every change is audited."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from publisher.accounts.models import AuditEntry
from publisher.db import transaction
from publisher.delivery.worker import deliver
from publisher.site import Site
from tests.admin_helpers import AdminClient, add_editors
from tests.scheduling_helpers import add_reader
from tests.smtp_servers import RecordingHandler, threaded_smtp_server

pytestmark = pytest.mark.postgres


@pytest.fixture
def smtp() -> Iterator[tuple[RecordingHandler, int]]:
    handler = RecordingHandler()
    with threaded_smtp_server(handler) as port:
        yield handler, port


@pytest.fixture
async def people(site: Site, smtp: tuple[RecordingHandler, int]) -> Site:
    site.settings.mail.smtp_url = f"smtp://127.0.0.1:{smtp[1]}"
    await add_editors(site)
    await add_reader(site, "id@example.org", "Asia/Jakarta", topics=["ekonomi"])
    await add_reader(site, "en@example.org", "Asia/Makassar", language="en")
    await add_reader(site, "weekly@example.org", "Asia/Jayapura", frequency="weekly")
    return site


COMPOSE = {
    "subject": "Aplikasi <baru> Kabar",
    "body_markdown": "Unduh **sekarang**.\n\n<script>alert(1)</script>",
    "lang": "id",
    "to_lang_id": "1",
    "topics": "",
}


async def test_editor_composes_previews_tests_and_sends(
    server: str, people: Site, smtp: tuple[RecordingHandler, int]
) -> None:
    handler = smtp[0]
    editor = AdminClient(server)
    editor.login("editor@example.org")
    listing = editor.get("/admin/announcements")
    assert listing.status_code == 200
    assert 'href="/admin/announcements/new"' in listing.text
    form = editor.get("/admin/announcements/new")
    assert 'name="subject"' in form.text
    assert 'hx-post="/admin/announcements-preview"' in form.text
    csrf = editor.csrf("/admin/announcements/new")
    preview = editor.post("/admin/announcements-preview", {**COMPOSE, "csrf": csrf})
    assert preview.status_code == 200
    assert "Aplikasi &lt;baru&gt; Kabar" in preview.text
    assert "sandbox" in preview.text
    assert "<script>alert" not in html.unescape(preview.text.split("srcdoc=", 1)[1])
    counted = editor.post("/admin/announcements-count", {**COMPOSE, "csrf": csrf})
    assert counted.text.strip() == "2"  # id readers (daily and weekly), not the English one
    narrowed = {**COMPOSE, "frequency_daily": "1", "topics": "ekonomi", "csrf": csrf}
    assert editor.post("/admin/announcements-count", narrowed).text.strip() == "1"
    hostile = editor.post(
        "/admin/announcements/new", {**COMPOSE, "subject": "A\r\nBcc: x@y", "csrf": csrf}
    )
    assert hostile.status_code == 422
    assert "line breaks are not allowed" in hostile.text
    created = editor.post("/admin/announcements/new", {**COMPOSE, "csrf": csrf})
    assert created.status_code == 303
    location = created.headers["location"]
    assert re.fullmatch(r"/admin/announcements/\d+", location)
    page = editor.get(location)
    assert "Aplikasi &lt;baru&gt; Kabar" in page.text
    frame = editor.get(f"{location}/preview.html")
    assert "<strong>sekarang</strong>" in frame.text
    assert "sandbox" in frame.headers["content-security-policy"]

    tested = editor.post(f"{location}/test", {"email": "editor@example.org"}, csrf_from=location)
    assert tested.status_code == 303
    assert "sent%20a%20test%20copy" in tested.headers["location"]
    assert handler.count("editor@example.org") == 1

    sent = editor.post(f"{location}/send", {"mode": "now"}, csrf_from=location)
    assert sent.status_code == 303
    await deliver(people, until_idle=True)
    assert handler.count("id@example.org") == 1
    assert handler.count("weekly@example.org") == 1
    assert handler.count("en@example.org") == 0
    after = editor.get(location)
    assert 'id="announcement-status">sent<' in after.text or "terkirim" in after.text
    number = location.rsplit("/", 1)[1]
    progress = editor.get(f"/admin/digests/editions/announcement:{number}/progress")
    assert progress.status_code == 200
    assert "100%" in progress.text
    async with transaction(people.engine) as session:
        actions = list(await session.scalars(sa.select(AuditEntry.action)))
    assert {"announcement.create", "announcement.test_copy", "announcement.send"} <= set(actions)


async def test_schedule_then_cancel(server: str, people: Site) -> None:
    editor = AdminClient(server)
    editor.login("editor@example.org")
    csrf = editor.csrf("/admin/announcements/new")
    location = editor.post("/admin/announcements/new", {**COMPOSE, "csrf": csrf}).headers[
        "location"
    ]
    tomorrow = (people.clock.now() + timedelta(days=1)).date().isoformat()
    bad = editor.post(
        f"{location}/send",
        {"mode": "local", "send_date": tomorrow, "send_time": "07:10"},
        csrf_from=location,
    )
    assert "quarter%20hour" in bad.headers["location"]
    scheduled = editor.post(
        f"{location}/send",
        {"mode": "local", "send_date": tomorrow, "send_time": "07:00"},
        csrf_from=location,
    )
    assert scheduled.headers["location"].endswith("notice=scheduled")
    cancelled = editor.post(f"{location}/cancel", {}, csrf_from=location)
    assert cancelled.headers["location"].endswith("notice=cancelled")


async def test_viewer_reads_but_cannot_send(server: str, people: Site) -> None:
    editor = AdminClient(server)
    editor.login("editor@example.org")
    csrf = editor.csrf("/admin/announcements/new")
    location = editor.post("/admin/announcements/new", {**COMPOSE, "csrf": csrf}).headers[
        "location"
    ]
    viewer = AdminClient(server)
    viewer.login("viewer@example.org")
    assert viewer.get("/admin/announcements").status_code == 200
    shown = viewer.get(location)
    assert shown.status_code == 200
    assert f'action="{location}/send"' not in shown.text
    assert 'href="/admin/announcements/new"' not in viewer.get("/admin/announcements").text
    token = viewer.csrf("/admin/")
    for path, data in [
        ("/admin/announcements/new", COMPOSE),
        (f"{location}/send", {"mode": "now"}),
        (f"{location}/test", {"email": "viewer@example.org"}),
        (f"{location}/cancel", {}),
        (location, COMPOSE),
    ]:
        assert viewer.post(path, {**data, "csrf": token}).status_code == 403, path
    # Without a CSRF token even an editor is refused.
    assert editor.post(f"{location}/send", {"mode": "now"}).status_code == 403
