"""HTML pages: trafilatura extraction, metadata, sanitizing, and URLs over a real local server."""

from __future__ import annotations

import asyncio
import gzip
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from publisher import http as fetch_module
from publisher.config import DEFAULT_CONFIG
from publisher.content.models import Article
from publisher.content.store import ArticleStore
from publisher.db import transaction
from publisher.errors import FetchError, InputError
from publisher.http import fetch
from publisher.ingest.html import parse_html
from publisher.ingest.options import ImportOptions
from publisher.ingest.source import SourceText, read_text_file
from publisher.site import Site
from tests.clirunner import invoke

DATA = Path(__file__).parent / "data" / "import" / "html"
OPTIONS = ImportOptions(language="id", tz=ZoneInfo("Asia/Jakarta"))


@dataclass
class Route:
    """What the local server answers on one path."""

    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    repeat: int = 1  # send the body this many times, streamed without Content-Length


class LocalServer:
    """A real HTTP server on 127.0.0.1 in a thread, answering from a table of routes."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append((self.path, dict(self.headers.items())))
                route = server.routes.get(self.path, Route(b"not here", 404))
                if route.delay:
                    time.sleep(route.delay)
                etag = route.headers.get("ETag")
                if etag and self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(route.status)
                for name, value in route.headers.items():
                    self.send_header(name, value)
                if route.repeat == 1 and "Content-Length" not in route.headers:
                    self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                try:
                    for _ in range(route.repeat):
                        self.wfile.write(route.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up on purpose (size limit)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        """Return the absolute URL of ``path`` on this server."""
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}{path}"

    def __enter__(self) -> LocalServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalServer]:
    """Serve routes on a loopback port for the test (which may therefore fetch from it)."""
    monkeypatch.setenv("PUBLISHER_FETCH__ALLOW_PRIVATE_ADDRESSES", "true")
    with LocalServer() as running:
        yield running


def stored_articles(config: Path) -> list[Article]:
    """Return every article in the site's store, newest first."""

    async def read(site: Site) -> list[Article]:
        try:
            async with transaction(site.engine) as session:
                store = ArticleStore(session, site.settings.site.base_url)
                return await store.latest(100, include_drafts=True)
        finally:
            await site.aclose()

    return asyncio.run(read(Site.open(config)))


def test_indonesian_page_metadata_and_body() -> None:
    draft = parse_html(read_text_file(DATA / "pasar-terapung.html"), OPTIONS)
    assert draft.title == "Pasar terapung Banjarmasin kembali ramai"
    assert draft.author == "Siti Rahmah"
    assert draft.source_format == "html"
    assert draft.canonical_url == (
        "https://kabar.example.id/nusantara/pasar-terapung-banjarmasin-kembali-ramai"
    )
    assert draft.image_url == "https://kabar.example.id/img/2026/11/lok-baintan.jpg"
    assert draft.image_caption == (
        "Perahu pedagang sayur di pasar terapung Lok Baintan, Kabupaten Banjar."
    )
    assert draft.image_credit == "Foto: Redaksi/Ahmad Fauzi"
    # Full time and zone from article:published_time, not just the day.
    assert draft.published_at == datetime(2026, 11, 17, 22, 30, tzinfo=UTC)
    assert draft.updated_at == datetime(2026, 11, 18, 1, 5, tzinfo=UTC)
    assert draft.tags == ["Pariwisata"]
    body = draft.body_html
    assert "<h1>" not in body
    assert "Pasar terapung Banjarmasin kembali ramai" not in body
    assert "<h2>Wisatawan kembali datang</h2>" in body
    assert "“Dua minggu kemarin arusnya terlalu deras" in body
    # Links resolve against the page, not the site; the lead image is not repeated.
    assert '<a href="https://kabar.example.id/nusantara/rambu-sungai">' in body
    assert "lok-baintan.jpg" not in body
    for chrome in ("Langsung ke konten", "Beranda", "Jembatan baru", "Hak cipta", "alert"):
        assert chrome not in body


def test_english_page_with_json_ld_date() -> None:
    draft = parse_html(read_text_file(DATA / "harbour-cleanup.html"), OPTIONS)
    assert draft.title == "Volunteers clear plastic from Kupang harbour"
    assert draft.author == "Daniel Tefa"
    assert draft.published_at == datetime(2026, 11, 20, 23, 45, tzinfo=UTC)
    assert draft.image_url == "https://news.example.com/media/kupang-harbour.jpg"
    assert draft.body_html.count("<p>") == 4
    assert "Home" not in draft.body_html
    assert "onclick" not in draft.body_html


def test_page_without_article_text_is_an_error() -> None:
    page = "<html><head><title>Kosong</title></head><body><nav>Menu</nav></body></html>"
    with pytest.raises(InputError, match=r"empty\.html:1: no article text found"):
        parse_html(SourceText(Path("empty.html"), page), OPTIONS)


def test_cli_html_file_is_sanitized_and_idempotent(
    site_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile = (
        (DATA / "harbour-cleanup.html")
        .read_text()
        .replace(
            "<p>The clean-up is the third this year.",
            '<p><a href="javascript:alert(1)">Klik</a> <img src=x onerror="alert(2)"> '
            "The clean-up is the third this year.",
        )
    )
    page = tmp_path / "hostile.html"
    page.write_text(hostile)
    config = site_dir / DEFAULT_CONFIG
    first = invoke(
        capsys, "--config", config, "articles", "add", page, DATA / "pasar-terapung.html"
    )
    assert first.exit_code == 0, first.stderr
    assert "2 created" in first.stdout
    again = invoke(
        capsys, "--config", config, "articles", "add", page, DATA / "pasar-terapung.html"
    )
    assert "2 unchanged" in again.stdout
    articles = {a.title: a for a in stored_articles(config)}
    harbour = articles["Volunteers clear plastic from Kupang harbour"]
    assert "javascript:" not in harbour.body_html
    assert "onerror" not in harbour.body_html
    assert "<script" not in harbour.body_html
    assert harbour.source_format == "html"
    pasar = articles["Pasar terapung Banjarmasin kembali ramai"]
    assert pasar.published_at == datetime(2026, 11, 17, 22, 30, tzinfo=UTC)
    assert pasar.image_credit == "Foto: Redaksi/Ahmad Fauzi"


def test_cli_imports_a_url_from_a_local_server(
    site_dir: Path, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    page = (DATA / "pasar-terapung.html").read_bytes()
    page = page.replace(b"https://kabar.example.id/nusantara/pasar", b"/nusantara/pasar")
    server.routes["/nusantara/pasar"] = Route(page, headers={"Content-Type": "text/html"})
    server.routes["/lama"] = Route(status=301, headers={"Location": "/nusantara/pasar"})
    config = site_dir / DEFAULT_CONFIG
    url = server.url("/lama")
    result = invoke(capsys, "--config", config, "articles", "add", url, "--tag", "kalimantan")
    assert result.exit_code == 0, result.stderr
    assert "1 created" in result.stdout
    again = invoke(capsys, "--config", config, "articles", "add", url, "--tag", "kalimantan")
    assert "1 unchanged" in again.stdout, again.stdout + again.stderr
    [article] = stored_articles(config)
    assert article.title == "Pasar terapung Banjarmasin kembali ramai"
    assert article.canonical_url == server.url(
        "/nusantara/pasar-terapung-banjarmasin-kembali-ramai"
    )
    assert article.source_url == url
    assert article.external_id == url
    assert article.tags == ["pariwisata", "kalimantan"]
    user_agent = server.requests[0][1].get("User-Agent", "")
    assert user_agent.startswith("Publisher/")


def test_cli_url_in_latin1_with_charset_header(
    site_dir: Path, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (DATA / "harbour-cleanup.html").read_text()
    text = text.replace('<meta charset="utf-8">', "").replace("Kupang's", "Kupang's café")
    server.routes["/page"] = Route(
        text.encode("latin-1"), headers={"Content-Type": "text/html; charset=ISO-8859-1"}
    )
    config = site_dir / DEFAULT_CONFIG
    result = invoke(capsys, "--config", config, "articles", "add", server.url("/page"))
    assert result.exit_code == 0, result.stderr
    [article] = stored_articles(config)
    assert "café" in article.body_html


@pytest.mark.parametrize(
    ("route", "message"),
    [
        (Route(b"gone", 404), r"HTTP 404 Not Found"),
        (Route(b"oops", 500), r"HTTP 500 Internal Server Error"),
        (
            Route(b"x" * 1024, headers={"Content-Length": str(11 * 1024 * 1024)}, repeat=1),
            r"response is 11,534,336 bytes, over the 10 MB limit",
        ),
        (Route(b"<p>" + b"x" * (1024 * 1024), repeat=11), r"response is over the 10 MB limit"),
        (
            Route(
                gzip.compress(b"\0" * (11 * 1024 * 1024)),
                headers={"Content-Encoding": "gzip", "Content-Type": "text/html"},
            ),
            r"response is over the 10 MB limit",
        ),
        (Route(b"", headers={"Content-Type": "text/html"}), r"file is empty"),
        (
            Route(b"<rss version='2.0'><channel/></rss>", headers={"Content-Type": "text/xml"}),
            r"this is a feed \(text/xml\); use `publisher articles import-feed",
        ),
    ],
    ids=["404", "500", "declared-too-big", "streamed-too-big", "gzip-bomb", "empty", "feed"],
)
def test_cli_url_failures_are_one_line_and_store_nothing(
    site_dir: Path,
    server: LocalServer,
    capsys: pytest.CaptureFixture[str],
    route: Route,
    message: str,
) -> None:
    server.routes["/bad"] = route
    config = site_dir / DEFAULT_CONFIG
    url = server.url("/bad")
    result = invoke(capsys, "--config", config, "articles", "add", url)
    assert result.exit_code == 2
    [line] = result.error_lines
    assert line.startswith(f"error: {url}: ")
    assert re.search(message, line), line
    assert stored_articles(config) == []


async def test_fetch_times_out(server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch_module, "TOTAL_TIMEOUT", 0.5)
    server.routes["/slow"] = Route(b"late", delay=3)
    started = time.perf_counter()
    with pytest.raises(FetchError, match=r"/slow: timed out after 0.5 s"):
        await fetch(server.url("/slow"), allow_private=True)
    assert time.perf_counter() - started < 2.5


async def test_fetch_refused_connection_and_bad_scheme() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FetchError, match=rf"127.0.0.1:{port}/x: cannot connect"):
        await fetch(f"http://127.0.0.1:{port}/x", allow_private=True)
    with pytest.raises(FetchError, match=r"ftp://example.org/x: not an http\(s\) URL"):
        await fetch("ftp://example.org/x")


async def test_fetch_conditional_get(server: LocalServer) -> None:
    server.routes["/feed"] = Route(
        b"<rss/>", headers={"ETag": '"v1"', "Last-Modified": "Tue, 24 Nov 2026 10:00:00 GMT"}
    )
    first = await fetch(server.url("/feed"), allow_private=True)
    assert (first.status, first.etag, first.content) == (200, '"v1"', b"<rss/>")
    second = await fetch(
        server.url("/feed"),
        etag=first.etag,
        last_modified=first.last_modified,
        allow_private=True,
    )
    assert second.not_modified
    assert second.content == b""
    sent = server.requests[-1][1]
    assert sent["If-None-Match"] == '"v1"'
    assert sent["If-Modified-Since"] == "Tue, 24 Nov 2026 10:00:00 GMT"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.text(max_size=2000),
        st.lists(
            st.sampled_from(
                [
                    "<html>",
                    "<p>",
                    "</p>",
                    "<figure>",
                    "<img src='/a.jpg'>",
                    "<meta ",
                    "<!--",
                    '<script type="application/ld+json">{"@type": "NewsArticle", ',
                    "<title>",
                    "Kalimat berita yang cukup panjang untuk sebuah paragraf. ",
                    "&amp;",
                    "\x00",
                ]
            ),
            max_size=60,
        ).map("".join),
    )
)
def test_arbitrary_html_raises_only_input_error(text: str) -> None:
    try:
        draft = parse_html(SourceText(Path("page.html"), text), OPTIONS)
    except InputError:
        return
    assert draft.title.strip()
    assert draft.body_html.strip()
