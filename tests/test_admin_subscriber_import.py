"""CSV import of subscribers in the editors' app: streamed progress, per-line errors, limits."""

from __future__ import annotations

import html

import httpx
import pytest
import sqlalchemy as sa

from publisher.accounts.models import AuditEntry
from publisher.db import transaction
from publisher.site import Site
from subscribers import suppression
from subscribers.models import ACTIVE, Subscriber
from tests.admin_helpers import AdminClient, add_editors


@pytest.fixture
async def people(site: Site) -> Site:
    await add_editors(site)
    async with transaction(site.engine) as session:
        await suppression.suppress(session, "gone@example.org", "complaint", site.clock.now())
    return site


def upload(
    client: AdminClient, name: str, data: bytes, *, confirmed: bool = True
) -> httpx.Response:
    fields = {"csrf": client.csrf("/admin/subscribers/import")}
    if confirmed:
        fields["confirmed"] = "yes"
    return client.request(
        "POST",
        "/admin/subscribers/import",
        data=fields,
        files={"file": (name, data, "text/csv")},
        headers={"Accept-Language": "en"},
    )


def big_csv() -> bytes:
    lines = ["email,name,language,timezone,frequency,topics"]
    lines += [
        f"reader{n}@example.org,Reader {n},id,Asia/Jakarta,daily,ekonomi" for n in range(2400)
    ]
    lines[5] = "not-an-address,Bad,id,Asia/Jakarta,daily,"  # line 6 of the file
    lines[10] = "short@example.org,only two"  # line 11
    lines[20] = "tz@example.org,Zone,id,Mars/Olympus,daily,"  # line 21
    lines.append("gone@example.org,Suppressed,id,Asia/Jakarta,daily,")  # line 2402
    text = "\n".join(lines) + "\n"
    # A row in Latin-1 (not UTF-8): rejected by its line, the rest imports.
    return text.encode("utf-8") + "kafé@example.org,Café,id,Asia/Jakarta,daily,\n".encode("latin-1")


async def test_import_streams_progress_and_line_errors(server: str, people: Site) -> None:
    editor = AdminClient(server)
    editor.login("editor@example.org")
    form = editor.get("/admin/subscribers/import")
    assert form.status_code == 200
    assert 'enctype="multipart/form-data"' in form.text
    answer = upload(editor, "people.csv", big_csv())
    assert answer.status_code == 200
    assert "content-length" not in answer.headers  # streamed, not built first
    text = html.unescape(answer.text)
    # One progress line per committed batch of 1,000 rows, in order.
    assert text.count("rows read:") == 4  # three batches and the finished line
    assert text.index("1,003 rows read: 1,000 new") < text.index("2,003 rows read: 2,000 new")
    assert "people.csv:6: invalid email address 'not-an-address'" in text
    assert "people.csv:11: expected 6 fields, found 2" in text
    assert "people.csv:21:" in text
    assert "Mars/Olympus" in text
    assert "people.csv:2403: not UTF-8 text" in text
    done = text[text.index('id="import-done"') :]
    assert "Finished: 2,402 rows read: 2,397 new, 0 updated, 0 unchanged, 1 suppressed" in done
    assert "4 rejected" in done
    async with transaction(people.engine) as session:
        active = await session.scalar(
            sa.select(sa.func.count()).select_from(Subscriber).where(Subscriber.status == ACTIVE)
        )
        gone = await session.scalar(
            sa.select(Subscriber).where(Subscriber.email == "gone@example.org")
        )
        entry = await session.scalar(
            sa.select(AuditEntry).where(AuditEntry.action == "subscribers.import")
        )
    assert active == 2397
    assert gone is None  # a suppressed address is never (re)activated
    assert entry is not None
    assert entry.target == "people.csv"
    assert "created 2397" in entry.detail
    # Importing the same file again changes nothing.
    again = html.unescape(upload(editor, "people.csv", big_csv()).text)
    assert (
        "0 new, 0 updated, 2,397 unchanged" in again or "0 new, 0 updated, 2.397 unchanged" in again
    )


def test_whole_file_problems_and_limits(server: str, people: Site) -> None:
    editor = AdminClient(server)
    editor.login("editor@example.org")

    def error_of(response: httpx.Response) -> str:
        assert response.status_code == 422, response.text
        start = response.text.index('id="import-error">') + len('id="import-error">')
        return html.unescape(response.text[start : response.text.index("</code>", start)])

    assert error_of(upload(editor, "names.csv", b"name,language\nSiti,id\n")).startswith(
        "names.csv:1: header must name an email column"
    )
    assert (
        error_of(upload(editor, "empty.csv", b"\n\n"))
        == "empty.csv: empty file; expected a header line"
    )
    assert error_of(upload(editor, "odd.csv", b"email,shoe_size\na@example.org,44\n")).startswith(
        "odd.csv:1: unknown column 'shoe_size'"
    )
    binary = upload(editor, "photo.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert binary.status_code in (200, 422)
    assert "photo.csv:1:" in html.unescape(binary.text)
    none = editor.request(
        "POST",
        "/admin/subscribers/import",
        data={"csrf": editor.csrf("/admin/subscribers/import")},
        files={"file": ("", b"", "text/csv")},
    )
    assert error_of(none) == "choose a CSV file"
    huge = b"email\n" + b"a@example.org\n" * (people.settings.web.max_request_bytes // 14 + 10)
    assert upload(editor, "huge.csv", huge).status_code == 413
    # Without the CSRF token: refused.
    forged = editor.request(
        "POST",
        "/admin/subscribers/import",
        data={"csrf": "x"},
        files={"file": ("a.csv", b"email\na@example.org\n", "text/csv")},
    )
    assert forged.status_code == 403


def test_viewer_cannot_import(server: str) -> None:
    viewer = AdminClient(server)
    viewer.login("viewer@example.org")
    page = viewer.get("/admin/subscribers/import")
    assert "<fieldset disabled" in page.text
    assert upload(viewer, "a.csv", b"email\nv@example.org\n").status_code == 403
