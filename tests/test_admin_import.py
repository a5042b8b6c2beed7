"""Import an article in the editors' app: URL, upload or pasted text, through the importers."""

from __future__ import annotations

import html
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from publisher.accounts.models import AuditEntry
from publisher.content.models import Article
from publisher.db import transaction
from publisher.site import Site
from tests.admin_helpers import AdminClient, add_editors

DATA = Path(__file__).parent / "data" / "import"


@pytest.fixture
async def people(site: Site) -> Site:
    await add_editors(site)
    return site


@pytest.fixture
def editor(server: str) -> Iterator[AdminClient]:
    client = AdminClient(server)
    assert client.login("editor@example.org").status_code == 303
    yield client
    client.close()


def send(
    client: AdminClient,
    data: dict[str, str],
    file: tuple[str, bytes, str] | None = None,
) -> object:
    """POST the import form as multipart, with the page's CSRF token."""
    fields = {"csrf": client.csrf("/admin/articles/import"), "format": "auto", **data}
    files = {"file": file} if file is not None else {"file": ("", b"", "application/octet-stream")}
    return client.request("POST", "/admin/articles/import", data=fields, files=files)


async def stored(site: Site, slug: str) -> Article:
    async with transaction(site.engine) as session:
        found = await session.scalar(sa.select(Article).where(Article.slug == slug))
        assert found is not None
        return found


async def test_upload_markdown_html_and_pasted_text(editor: AdminClient, people: Site) -> None:
    page = editor.get("/admin/articles/import")
    assert page.status_code == 200
    assert 'enctype="multipart/form-data"' in page.text
    markdown = (
        b"---\ntitle: Kapal pinisi berlayar ke Ambon\ntags: [laut]\n---\nBerangkat **pagi**.\n"
    )
    made = send(editor, {"tags": "impor"}, ("pinisi.md", markdown, "text/markdown"))
    assert made.status_code == 303, made.text  # type: ignore[attr-defined]
    location = made.headers["location"]  # type: ignore[attr-defined]
    assert location == "/admin/articles/kapal-pinisi-berlayar-ke-ambon?imported=created"
    article = await stored(people, "kapal-pinisi-berlayar-ke-ambon")
    assert article.status == "draft"
    assert set(article.tags) == {"laut", "impor"}
    assert "Imported as a draft" in editor.get(location, headers={"Accept-Language": "en"}).text
    again = send(editor, {"tags": "impor"}, ("pinisi.md", markdown, "text/markdown"))
    assert again.headers["location"].endswith("?imported=unchanged")  # type: ignore[attr-defined]

    page_bytes = (DATA / "html" / "pasar-terapung.html").read_bytes()
    page_import = send(editor, {}, ("pasar.html", page_bytes, "text/html"))
    assert page_import.status_code == 303, page_import.text  # type: ignore[attr-defined]
    assert "pasar-terapung-banjarmasin-kembali-ramai" in page_import.headers["location"]  # type: ignore[attr-defined]

    scraped = (DATA / "text" / "nelayan-bitung.txt").read_text(encoding="utf-8")
    pasted = send(editor, {"text": scraped})
    assert pasted.status_code == 303, pasted.text  # type: ignore[attr-defined]
    slug = "nelayan-bitung-mulai-pakai-mesin-es-tenaga-surya-di-dermaga"
    assert pasted.headers["location"] == f"/admin/articles/{slug}?imported=created"  # type: ignore[attr-defined]
    body = (await stored(people, slug)).body_html
    assert "Langsung ke konten" not in body  # the text importer dropped the page chrome
    async with transaction(people.engine) as session:
        details = list(
            await session.scalars(
                sa.select(AuditEntry.detail)
                .where(AuditEntry.action == "article.import")
                .order_by(AuditEntry.id)
            )
        )
    assert details == [
        "file pinisi.md: created",
        "file pinisi.md: unchanged",
        "file pasar.html: created",
        "text pasted: created",
    ]


def test_hostile_input_gets_one_line_errors(editor: AdminClient, people: Site) -> None:
    def error_of(response: object) -> str:
        assert response.status_code == 422, response.text  # type: ignore[attr-defined]
        text = response.text  # type: ignore[attr-defined]
        start = text.index('id="import-error">') + len('id="import-error">')
        return html.unescape(text[start : text.index("</code>", start)])

    binary = send(editor, {}, ("photo.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR", "image/png"))
    assert error_of(binary) == "photo.md:1: binary file (contains NUL bytes), expected text"
    latin1 = send(
        editor, {}, ("berita.txt", "Judul\n\nKafé di Jakarta".encode("latin-1"), "text/plain")
    )
    assert error_of(latin1).startswith("berita.txt:3: not UTF-8 text (byte 0xe9)")
    empty = send(editor, {}, ("kosong.md", b"   \n", "text/plain"))
    assert error_of(empty) == "kosong.md:1: file is empty"
    deep = b"<html><body>" + b"<div>" * 400 + b"x" + b"</div>" * 400 + b"</body></html>"
    assert "nested more than" in error_of(send(editor, {}, ("deep.html", deep, "text/html")))
    # The file name is only a label: a path in it is cut to its base name.
    sneaky = send(editor, {}, ("../../etc/passwd.md", b"\x00", "text/plain"))
    assert error_of(sneaky).startswith("passwd.md:1:")
    assert error_of(send(editor, {})) == "give one of: a URL, a file or pasted text"
    both = send(editor, {"url": "https://example.org/a", "text": "Teks"})
    assert error_of(both) == "give one of: a URL, a file or pasted text"
    assert "unsupported URL scheme 'file'" in error_of(send(editor, {"url": "file:///etc/passwd"}))
    assert error_of(send(editor, {"url": "https://example.org/", "format": "feed"})).startswith(
        "format: 'feed'"
    )
    # The fetcher's rule holds here too: no loopback or private addresses.
    loopback = error_of(send(editor, {"url": "http://127.0.0.1:9/admin"}))
    assert "refusing to fetch from a non-public address" in loopback
    private = error_of(send(editor, {"url": "http://10.0.0.1/"}))
    assert "non-public address" in private
    # Larger than web.max_request_bytes: refused before it is read.
    huge = b"a" * (people.settings.web.max_request_bytes + 1)
    too_big = send(editor, {}, ("huge.txt", huge, "text/plain"))
    assert too_big.status_code == 413  # type: ignore[attr-defined]


def test_viewer_cannot_import(server: str) -> None:
    viewer = AdminClient(server)
    viewer.login("viewer@example.org")
    page = viewer.get("/admin/articles/import")
    assert page.status_code == 200
    assert "<fieldset disabled" in page.text
    denied = send(viewer, {"text": "Judul yang cukup panjang untuk berita\n\nIsi."})
    assert denied.status_code == 403  # type: ignore[attr-defined]
    viewer.close()


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = (DATA / "html" / "harbour-cleanup.html").read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


async def test_import_from_a_url(editor: AdminClient, people: Site) -> None:
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=web.serve_forever, daemon=True)
    thread.start()
    people.settings.fetch.allow_private_addresses = True  # the page is on loopback
    try:
        url = f"http://127.0.0.1:{web.server_address[1]}/harbour"
        made = send(editor, {"url": url})
        assert made.status_code == 303, made.text  # type: ignore[attr-defined]
        slug = made.headers["location"].split("/")[-1].split("?")[0]  # type: ignore[attr-defined]
        article = await stored(people, slug)
        assert article.source_url == url
        assert article.status == "draft"
    finally:
        people.settings.fetch.allow_private_addresses = False
        web.shutdown()
        web.server_close()
