"""The web app on a real uvicorn server: feeds, pages, validators, gzip, 404s and WebSub."""

from __future__ import annotations

import asyncio
import gzip
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import feedparser
import httpx
import pytest

from publisher.config import load_settings
from publisher.content.store import ArticleStore
from publisher.db import transaction
from publisher.feeds.static import build_static
from publisher.site import Site
from publisher.web.server import running
from tests.clirunner import run_module
from tests.feeds_helpers import HOSTILE_TITLE, add_hostile, load_samples


class Hub:
    """A WebSub hub on loopback that fails its first request, then records pings."""

    def __init__(self) -> None:
        self.pings: list[dict[str, list[str]]] = []
        self.calls = 0
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                form = parse_qs(self.rfile.read(length).decode())
                hub.calls += 1
                if hub.calls == 1:
                    self.send_response(503)
                else:
                    hub.pings.append(form)
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hub"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def hub() -> Iterator[Hub]:
    server = Hub()
    yield server
    server.close()


@pytest.fixture
async def server(site: Site, site_dir: Path, hub: Hub) -> Iterator[str]:  # type: ignore[misc]
    await load_samples(site)
    await add_hostile(site)
    settings = load_settings(site_dir / "publisher.toml")
    settings.web.websub_hub = hub.url
    site.settings.web.websub_hub = hub.url  # so static builds match what is served
    served = Site.from_settings(settings)
    with running(served, poll_interval=0.1) as base:
        yield base


def get(base: str, path: str, **headers: str) -> httpx.Response:
    return httpx.get(base + path, headers=headers, timeout=10)


async def test_feeds_validators_gzip_and_head(server: str, site: Site, tmp_path: Path) -> None:
    for path, media_type in (
        ("/feed.xml", "application/rss+xml; charset=utf-8"),
        ("/atom.xml", "application/atom+xml; charset=utf-8"),
        ("/feed.json", "application/feed+json; charset=utf-8"),
        ("/tags/energi/feed.xml", "application/rss+xml; charset=utf-8"),
        ("/authors/maria-lede/atom.xml", "application/atom+xml; charset=utf-8"),
    ):
        plain = get(server, path, **{"Accept-Encoding": "identity"})
        assert plain.status_code == 200
        assert plain.headers["content-type"] == media_type
        assert "content-encoding" not in plain.headers
        assert plain.headers["cache-control"] == "public, max-age=300"
        etag = plain.headers["etag"]
        assert etag.startswith('"')
        assert not etag.startswith("W/")
        # Same bytes as the static build.
        report = await build_static(site, tmp_path / "static")
        assert report.files
        assert plain.content == (tmp_path / "static" / path.lstrip("/")).read_bytes()
        zipped = httpx.get(server + path, headers={"Accept-Encoding": "gzip"}, timeout=10)
        assert zipped.headers["content-encoding"] == "gzip"
        assert zipped.content == plain.content  # httpx decodes gzip
        assert "accept-encoding" in zipped.headers["vary"].lower()
        again = get(server, path, **{"If-None-Match": etag, "Accept-Encoding": "identity"})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == etag
        gz_etag = zipped.headers["etag"]
        assert get(server, path, **{"If-None-Match": f"W/{gz_etag}"}).status_code == 304
        since = get(server, path, **{"If-Modified-Since": plain.headers["last-modified"]})
        assert since.status_code == 304
        old = get(server, path, **{"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"})
        assert old.status_code == 200
        other = get(server, path, **{"If-None-Match": '"nope"'})
        assert other.status_code == 200
        head = httpx.head(server + path, headers={"Accept-Encoding": "identity"}, timeout=10)
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == str(len(plain.content))
        assert 'rel="hub"' in plain.headers["link"]
    raw = httpx.get(server + "/feed.xml", headers={"Accept-Encoding": "gzip"}, timeout=10)
    assert gzip.decompress(gzip.compress(raw.content)) == raw.content


async def test_pages_are_escaped_valid_and_localized(server: str) -> None:
    home = get(server, "/")
    assert home.status_code == 200
    assert home.headers["content-type"] == "text/html; charset=utf-8"
    html = home.text
    assert '<html lang="id">' in html
    assert 'type="application/rss+xml"' in html
    assert 'property="og:title"' in html
    assert "<script>alert" not in html
    assert "Evil ]]&gt; &amp; &lt;script&gt;" in html
    article = get(server, "/articles/hostile")
    assert article.status_code == 200
    body = article.text
    assert '<html lang="en">' in body
    assert "<script>alert" not in body
    assert "javascript:" not in body
    assert "onerror" not in body
    assert "onclick" not in body
    assert "\x07" not in body
    assert "🚀" in body
    assert 'property="og:image" content="https://news.example.org/images/lead.png"' in body
    # The caption is shown below the image: the alt text is the title, not a copy of it.
    assert 'alt="Caption &#34;quoted' not in body
    assert re.search(r'<img src="[^"]*lead.png" alt="Evil \]\]&gt; &amp; &lt;script&gt;', body)
    for path in ("/tags/energi", "/authors/maria-lede", "/archive", "/archive/2026-11"):
        response = get(server, path)
        assert response.status_code == 200, path
        assert "<main" in response.text
    etag = article.headers["etag"]
    assert get(server, "/articles/hostile", **{"If-None-Match": etag}).status_code == 304


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/articles/missing",
        "/articles/%3Cscript%3E",
        "/tags/unknown-tag",
        "/tags/energi/archive/123/feed.xml",
        "/?page=99",
        "/?page=abc",
        "/archive/2026-13",
        "/<script>alert(1)</script>",
    ],
)
async def test_unknown_paths_get_the_404_page(server: str, path: str) -> None:
    response = get(server, path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "<script>alert(1)" not in response.text
    assert "<h1>" in response.text


async def test_changes_from_another_process_show_up_without_per_request_builds(
    server: str, site: Site, hub: Hub
) -> None:
    first = get(server, "/feed.xml")
    health = get(server, "/healthz").json()
    assert health["status"] == "ok"
    builds = health["builds"]
    for _ in range(20):
        assert get(server, "/feed.xml").status_code == 200
    assert get(server, "/healthz").json()["builds"] == builds
    # The test's own engine stands in for the CLI: a separate connection pool and loop.
    async with transaction(site.engine) as session:
        await ArticleStore(session, site.settings.site.base_url).remove("hostile")
    for _ in range(100):
        await asyncio.sleep(0.05)
        changed = get(server, "/feed.xml")
        if changed.headers["etag"] != first.headers["etag"]:
            break
    else:
        pytest.fail("the feed did not change after an article was removed")
    assert HOSTILE_TITLE[:4] not in changed.text
    assert get(server, "/articles/hostile").status_code == 404
    parsed = feedparser.parse(changed.content)
    assert parsed.bozo == 0
    # The hub is told: the first attempt fails with 503, the retry goes through.
    for _ in range(100):
        if len(hub.pings) >= 3:
            break
        await asyncio.sleep(0.1)
    urls = sorted(ping["hub.url"][0] for ping in hub.pings)
    assert urls == sorted(
        f"https://news.example.org/{name}" for name in ("feed.xml", "atom.xml", "feed.json")
    )
    assert all(ping["hub.mode"] == ["publish"] for ping in hub.pings)


def test_serve_on_a_taken_port_is_one_error_line(site_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_module("--config", site_dir / "publisher.toml", "serve", "--port", str(port))
    assert result.exit_code == 1, result.stderr
    expected = f"error: cannot serve on 127.0.0.1:{port} (is the port in use?)"
    assert result.error_lines[-1] == expected
    assert "Traceback" not in result.stderr


async def test_404_isolates_and_shortens_the_reflected_path(server: str) -> None:
    response = get(server, "/x\u202eevil<b>" + "a" * 500)
    assert response.status_code == 404
    shown = response.text.split("<bdi>", 1)[1].split("</bdi>", 1)[0]
    assert shown.startswith("/x\u202eevil&lt;b&gt;aaa")
    assert shown.endswith("a…")
    assert len(shown) < 140


def test_serve_without_a_secret_key_refuses_to_start(
    site_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBLISHER_WEB__SECRET_KEY", "short")
    result = run_module("--config", site_dir / "publisher.toml", "serve", "--port", "0", timeout=30)
    assert result.exit_code == 2, result.stderr
    assert result.error_lines == [
        "error: web.secret_key must be at least 16 characters long (`publisher init` writes one)"
    ]
