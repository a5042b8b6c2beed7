"""Hostile input on the content, web, feed and import side: each attack class, replayed.

Every test here failed on the code before issue 12's fixes; see docs/security.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import feedparser
import httpx
import pytest

from publisher.cli.init import init_site
from publisher.clock import FrozenClock
from publisher.config import DEFAULT_CONFIG, load_settings
from publisher.content.sanitize import MAX_HTML_DEPTH, clean_line
from publisher.content.store import ArticleDraft, ArticleStore
from publisher.db import transaction
from publisher.errors import FetchError, InputError
from publisher.feeds.documents import FeedBuilder
from publisher.feeds.model import FeedPath
from publisher.http import fetch
from publisher.ingest.feed import parse_feed
from publisher.ingest.files import import_files
from publisher.ingest.markdown import parse_markdown
from publisher.ingest.options import ImportOptions
from publisher.ingest.source import SourceText
from publisher.ingest.sources import follow_sources, import_feed
from publisher.site import Site
from publisher.web.cache import ContentCache
from publisher.web.server import running
from subscribers.tokens import Tokens

NOW = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
BASE = "https://news.example.org"
SCRIPTED = "<img src=x onerror=alert(1)>"


@pytest.fixture
def site_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A site on a SQLite file (these attacks do not depend on the database)."""
    monkeypatch.setenv("PUBLISHER_DATABASE__URL", f"sqlite:///{tmp_path / 'publisher.db'}")
    directory = tmp_path / "site"
    init_site(directory, title="Kabar Test", base_url=BASE)
    return directory


@pytest.fixture
async def site(site_dir: Path) -> AsyncIterator[Site]:
    opened = Site.from_settings(load_settings(site_dir / DEFAULT_CONFIG), clock=FrozenClock(NOW))
    yield opened
    await opened.aclose()


@pytest.fixture
def served(site_dir: Path) -> Iterator[str]:
    """Serve the site on a real uvicorn; yield its base URL."""
    site = Site.open(site_dir / DEFAULT_CONFIG)
    with running(site, poll_interval=0.1) as base:
        yield base


async def store(site: Site, **fields: object) -> str:
    values: dict[str, object] = {
        "title": "Judul",
        "body_html": "<p>Isi.</p>",
        "language": "id",
        "published_at": datetime(2026, 11, 24, 10, 0, tzinfo=UTC),
        **fields,
    }
    async with transaction(site.engine) as session:
        result = await ArticleStore(session, BASE).upsert(ArticleDraft(**values), NOW)  # type: ignore[arg-type]
        return result.article.slug


async def feed(site: Site, path: str) -> bytes:
    where = FeedPath.parse(path)
    assert where is not None
    async with transaction(site.engine) as session:
        document = await FeedBuilder(site.settings).document(session, where)
    assert document is not None
    return document.body


# Row 1: text that is markup only once escaped must never reach a reader as live markup.


async def test_summaries_are_text_in_feeds_and_escaped_once_as_markup(site: Site) -> None:
    # A scraped first paragraph showing markup as text, and a Markdown `summary:` with markup.
    await store(site, slug="scraped", body_html=f"<p>{SCRIPTED.replace('<', '&lt;')} kata</p>")
    await store(site, slug="summary", title="Dua", summary=f"{SCRIPTED} ringkas")
    rss = feedparser.parse(await feed(site, "/feed.xml"))
    atom = feedparser.parse(await feed(site, "/atom.xml"))
    items = json.loads(await feed(site, "/feed.json"))["items"]
    for parsed in (rss, atom):
        assert not parsed.bozo, parsed.get("bozo_exception")
        details = {e.link.rsplit("/", 1)[-1]: e.summary_detail for e in parsed.entries}
        for slug, text in (("scraped", f"{SCRIPTED} kata"), ("summary", f"{SCRIPTED} ringkas")):
            detail = details[slug]
            if detail.type == "text/html":
                # As HTML (RSS description), the text must be escaped: no live <img>.
                assert detail.value == text.replace("<", "&lt;").replace(">", "&gt;"), detail
            else:
                assert (detail.type, detail.value) == ("text/plain", text)
    assert {item["summary"] for item in items} == {f"{SCRIPTED} kata", f"{SCRIPTED} ringkas"}


def test_rss_description_is_html_escaped_plain_text(site_dir: Path) -> None:
    async def main() -> bytes:
        site = Site.from_settings(load_settings(site_dir / DEFAULT_CONFIG), clock=FrozenClock(NOW))
        try:
            await store(site, summary="a < b & c")
            return await feed(site, "/feed.xml")
        finally:
            await site.aclose()

    body = asyncio.run(main()).decode()
    # Escaped once as HTML (&lt;), then once as XML (&amp;lt;): a reader sees "a < b & c".
    assert "<description>a &amp;lt; b &amp;amp; c</description>" in body


def test_page_title_and_meta_tags_are_plain_text_escaped_once(site_dir: Path, served: str) -> None:
    async def add() -> None:
        site = Site.open(site_dir / DEFAULT_CONFIG)
        try:
            await store(site, slug="meta", title="Tagihan \u202egpj.exe", summary=f'{SCRIPTED} "q"')
        finally:
            await site.aclose()

    asyncio.run(add())
    page = wait_for(served, "/articles/meta")
    assert page.status_code == 200
    assert "<title>Tagihan gpj.exe" in page.text
    assert "\u202e" not in page.text
    escaped = "&lt;img src=x onerror=alert(1)&gt; &#34;q&#34;"
    assert f'<meta name="description" content="{escaped}">' in page.text
    assert f'<meta property="og:description" content="{escaped}">' in page.text
    assert "<img src=x" not in page.text


def wait_for(base: str, path: str, status: int = 200) -> httpx.Response:
    """GET ``path`` until it answers ``status`` (the cache notices new content within 0.1 s)."""
    deadline = time.monotonic() + 10
    while True:
        response = httpx.get(base + path, timeout=30)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


# Row 2: deeply nested markup.


async def test_deeply_nested_html_is_refused_quickly_naming_the_file(
    site: Site, tmp_path: Path
) -> None:
    body = "<div>" * 40_000 + "x" + "</div>" * 40_000
    markdown = tmp_path / "deep.md"
    markdown.write_text(f"---\ntitle: Dalam\n---\n\n{body}\n")
    page = tmp_path / "deep.html"
    page.write_text(
        f"<html><head><title>Dalam</title></head><body><p>Teks.</p>{body}</body></html>"
    )
    options = ImportOptions(language="id", tz=site.settings.tz)
    started = time.perf_counter()
    report = await import_files(site.engine, BASE, [markdown, page], options, NOW)
    elapsed = time.perf_counter() - started
    for path, outcome in zip([markdown, page], report.outcomes, strict=True):
        assert outcome.action == "failed"
        assert outcome.error.startswith(f"{path}:1: "), outcome.error
        assert "\n" not in outcome.error
    assert f"nested more than {MAX_HTML_DEPTH} elements deep" in report.outcomes[0].error
    assert elapsed < 10, elapsed


async def test_deep_markup_in_one_feed_entry_costs_that_entry_only(
    site: Site, tmp_path: Path
) -> None:
    deep = ("<div>" * 40_000 + "x" + "</div>" * 40_000).replace("<", "&lt;").replace(">", "&gt;")
    path = tmp_path / "deep.rss"
    path.write_text(
        "<rss version='2.0'><channel><title>T</title>"
        "<item><title>Deep</title><link>https://a.example/1</link>"
        f"<description>{deep}</description></item>"
        "<item><title>Fine</title><link>https://a.example/2</link>"
        "<description>ok</description></item></channel></rss>"
    )
    started = time.perf_counter()
    report = await import_feed(site, str(path))
    assert time.perf_counter() - started < 10
    outcomes = {outcome.path: outcome for outcome in report.outcomes}
    assert outcomes["https://a.example/2"].action == "created"
    failed = outcomes["https://a.example/1"]
    assert failed.action == "failed"
    assert f"nested more than {MAX_HTML_DEPTH} elements deep" in failed.error


def test_a_long_article_page_does_not_hold_up_other_requests(site_dir: Path, served: str) -> None:
    paragraph = "<p>" + "Kata demi kata, " * 40 + "<b>tebal</b> <a href='/x'>tautan</a></p>\n"
    body = paragraph * (1_800_000 // len(paragraph))

    async def add() -> None:
        site = Site.open(site_dir / DEFAULT_CONFIG)
        try:
            await store(site, slug="panjang", body_html=body)
        finally:
            await site.aclose()

    asyncio.run(add())
    wait_for(served, "/healthz")
    time.sleep(0.5)  # let the cache see the new content version
    results: dict[str, float] = {}

    def article() -> None:
        started = time.perf_counter()
        assert httpx.get(served + "/articles/panjang", timeout=120).status_code == 200
        results["article"] = time.perf_counter() - started

    worker = threading.Thread(target=article)
    worker.start()
    time.sleep(0.05)
    slowest = 0.0
    while worker.is_alive():
        started = time.perf_counter()
        assert httpx.get(served + "/healthz", timeout=120).status_code == 200
        slowest = max(slowest, time.perf_counter() - started)
    worker.join()
    assert slowest < 1.0, (slowest, results)


# Row 3: request bodies and JSON depth.


def _raw_request(base: str, head: str, body: bytes) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    connection = socket.create_connection((host, int(port)), timeout=10)
    connection.sendall(head.encode() + b"\r\n" + body)
    return connection


def _status(connection: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = connection.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1])


def test_a_huge_declared_body_is_refused_before_it_is_read(served: str) -> None:
    head = (
        "POST /api/subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 100000000\r\n"
    )
    with _raw_request(served, head, b"{" + b" " * 65_535) as connection:
        # We never send the other 99.9 MB: the answer must come without them.
        assert _status(connection) == 413


def test_a_huge_streamed_body_is_cut_off_while_streaming(served: str) -> None:
    head = (
        "POST /api/subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n"
    )
    chunk = b" " * 32_768
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0
    with _raw_request(served, head, b"") as connection:
        connection.settimeout(0.2)
        while sent < 20_000_000:
            try:
                connection.sendall(framed)
            except OSError:
                break  # the server answered and closed
            sent += len(chunk)
            try:
                if connection.recv(1, socket.MSG_PEEK):
                    break
            except TimeoutError:
                continue
        connection.settimeout(10)
        assert _status(connection) == 413
    assert sent < 2_000_000, sent


@pytest.mark.parametrize("document", ["[" * 8000 + "]" * 8000, '{"a":' * 2500 + "1" + "}" * 2500])
def test_deep_json_is_a_client_error(served: str, document: str) -> None:
    response = httpx.post(
        served + "/api/subscribe",
        content=document.encode(),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 400
    assert "nested" in response.json()["error"]


# Row 6: YAML alias bomb in front matter.


def test_yaml_alias_bomb_is_refused() -> None:
    levels = ["[lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    levels += [f"[{', '.join([f'*l{n}'] * 9)}]" for n in range(6)]
    anchored = ", ".join(f"&l{n} {level}" for n, level in enumerate(levels))
    text = f"---\ntitle: Bom\ntags: [{anchored}]\n---\n\nIsi.\n"
    started = time.perf_counter()
    with pytest.raises(InputError, match=r"^bom\.md:3: malformed front matter: aliases"):
        parse_markdown(SourceText(Path("bom.md"), text), language="id", tz=UTC)  # type: ignore[arg-type]
    assert time.perf_counter() - started < 2


# Row 10: odd page numbers.


def test_odd_page_numbers_are_not_found(served: str) -> None:
    paths = ["/?page=²", "/?page=" + "9" * 5000, "/tags/x?page=²", "/?page=٣", "/?page=-1"]
    statuses = {path[:20]: httpx.get(served + path, timeout=30).status_code for path in paths}
    assert set(statuses.values()) == {404}, statuses


# Row 11: cache thrash.


async def test_unknown_urls_never_evict_real_pages(site: Site) -> None:
    cache = ContentCache(site, max_entries=16)
    built: list[str] = []

    async def page() -> tuple[bytes, str, datetime]:
        built.append("home")
        return b"<p>home</p>", "text/html", NOW

    async def missing() -> None:
        return None

    assert await cache.get("page:/", page) is not None
    for number in range(4200):
        assert await cache.get(f"page:/articles/nope-{number}", missing) is None
    assert await cache.get("page:/", page) is not None
    assert built == ["home"]


# Row 12: symbolic links in an imported folder.


async def test_folder_import_does_not_follow_symbolic_links(site: Site, tmp_path: Path) -> None:
    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "ok.md").write_text("---\ntitle: Baik\n---\n\nIsi.\n")
    secret = tmp_path / "secret.md"
    secret.write_text('---\ntitle: Rahasia\n---\n\nsmtp_url = "smtp://user:hunter2@mail"\n')
    (folder / "link.md").symlink_to(secret)
    (folder / "sub").symlink_to(tmp_path)
    options = ImportOptions(language="id", tz=site.settings.tz)
    report = await import_files(site.engine, BASE, [folder], options, NOW)
    actions = {Path(outcome.path).name: outcome.action for outcome in report.outcomes}
    assert actions == {"link.md": "skipped", "ok.md": "created", "sub": "skipped"}
    skipped = next(o for o in report.outcomes if o.path.endswith("link.md"))
    assert skipped.error == f"{folder / 'link.md'}: symbolic link, not followed"

    async with transaction(site.engine) as session:
        titles = [a.title for a in await ArticleStore(session, BASE).latest(10)]
    assert titles == ["Baik"]


# Row 14: one bad feed item, one bad source.

GOOD_ITEM = {"id": "1", "url": "https://a.example/1", "title": "Satu", "content_text": "Isi."}


def json_feed(*items: object) -> bytes:
    document = {"version": "https://jsonfeed.org/version/1.1", "title": "F", "items": items}
    return json.dumps(document).encode()


def test_one_bad_json_feed_item_costs_that_item_only() -> None:
    last = {**GOOD_ITEM, "id": "9", "url": "https://a.example/9", "title": "Sembilan"}
    for bad in (
        {"id": "2", "title": "Dua", "content_text": "x", "tags": 5},
        {"id": "3", "title": "Tiga", "content_text": "x", "attachments": 7},
        {"id": {"x": 1}, "title": ["list"], "content_html": 5, "authors": "me"},
    ):
        document = json_feed(GOOD_ITEM, bad, last)
        parsed = parse_feed(document, "f.json", language="id", tz=UTC)  # type: ignore[arg-type]
        assert "Satu" in [d.title for d in parsed.drafts]
        assert "Sembilan" in [d.title for d in parsed.drafts]
        for warning in parsed.warnings:
            assert warning.startswith("f.json: item 2: ")
            assert "\n" not in warning


async def test_a_bad_source_does_not_stop_the_next(site_dir: Path, tmp_path: Path) -> None:
    first = tmp_path / "first.json"
    first.write_bytes(json_feed({**GOOD_ITEM, "tags": 5}, GOOD_ITEM))
    second = tmp_path / "second.json"
    second.write_bytes(json_feed({**GOOD_ITEM, "id": "7", "url": "https://b.example/7"}))
    config = site_dir / DEFAULT_CONFIG
    with config.open("a") as handle:
        handle.write(f'\n[[sources]]\nurl = "{first}"\n\n[[sources]]\nurl = "{second}"\n')
    site = Site.from_settings(load_settings(config), clock=FrozenClock(NOW))
    try:
        report = await follow_sources(site)
    finally:
        await site.aclose()
    assert [feed.status for feed in report.feeds] == ["imported", "imported"]
    assert report.feeds[0].count("created") == 1
    assert report.feeds[1].count("created") == 1


# Weakness: bidi overrides in titles.


async def test_bidi_controls_are_stripped_from_titles(site: Site) -> None:
    assert clean_line("Invoice \u202egpj.exe\u202c \u2066x\u2069\u200f") == "Invoice gpj.exe x"
    await store(site, slug="bidi", title="Tagihan \u202egpj.exe", author="A\u202eB")
    for path in ("/feed.xml", "/atom.xml", "/feed.json"):
        body = (await feed(site, path)).decode()
        for control in ("\u202e", "\u202c", "\u2066", "\u200f"):
            assert control not in body, (path, control)


# Weakness: fetching from loopback, link-local and private addresses.


class _Server:
    """An HTTP server on one loopback address answering every GET with one response."""

    def __init__(self, host: str, status: int, headers: dict[str, str], body: bytes) -> None:
        self.hits = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.hits += 1
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


async def test_fetching_loopback_is_refused_unless_allowed() -> None:
    inside = _Server("127.0.0.1", 200, {"Content-Type": "text/plain"}, b"internal secret")
    try:
        for url in (inside.url, inside.url.replace("127.0.0.1", "localhost")):
            with pytest.raises(FetchError, match="refusing to fetch from a non-public address"):
                await fetch(url)
        assert inside.hits == 0
        allowed = await fetch(inside.url, allow_private=True)
        assert allowed.content == b"internal secret"
    finally:
        inside.close()


async def test_a_redirect_into_a_private_address_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Only one loopback address plays "the public internet" here; 127.0.0.2 is inside.
    import publisher.http as http_module

    monkeypatch.setattr(http_module, "is_public", lambda address: address == "127.0.0.1")
    inside = _Server("127.0.0.2", 200, {"Content-Type": "text/plain"}, b"internal secret")
    outside = _Server("127.0.0.1", 302, {"Location": inside.url}, b"")
    try:
        with pytest.raises(FetchError) as caught:
            await fetch(outside.url)
        assert "refusing to fetch from a non-public address" in str(caught.value)
        assert "internal secret" not in str(caught.value)
        assert outside.hits == 1
        assert inside.hits == 0
    finally:
        inside.close()
        outside.close()


# Weakness: tokens in more than one spelling, and in the access log.


def test_each_token_works_in_one_spelling_only(site_dir: Path, served: str) -> None:
    settings = load_settings(site_dir / DEFAULT_CONFIG)
    tokens = Tokens(settings.web.secret_key)
    token = tokens.unsubscribe(1)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    spellings = [token[:-1] + c for c in alphabet] + [token + "=", token + "=="]
    accepted = []
    for spelling in spellings:
        try:
            tokens.load_unsubscribe(spelling)
        except Exception:  # noqa: S112 (TokenError: the expected outcome)
            continue
        accepted.append(spelling)
    assert accepted == [token]
    other = next(s for s in spellings[:-2] if s != token and s[-1] in "AQgw")
    assert httpx.get(f"{served}/unsubscribe/{other}", timeout=30).status_code == 400


def test_tokens_never_reach_the_access_log(site_dir: Path) -> None:
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    settings = load_settings(site_dir / DEFAULT_CONFIG)
    token = Tokens(settings.web.secret_key).unsubscribe(42)
    collector = Collect()
    site = Site.open(site_dir / DEFAULT_CONFIG)
    with running(site, access_log=True) as base:
        access = logging.getLogger("uvicorn.access")
        access.addHandler(collector)
        try:
            for path in (
                f"/unsubscribe/{token}",
                f"/preferences/{token}",
                f"/confirm/{token}",
                f"/?token={token}",
            ):
                httpx.get(base + path, timeout=30)
            deadline = time.monotonic() + 5
            while len(records) < 4 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            access.removeHandler(collector)
    assert len(records) >= 4, records
    assert not [line for line in records if token in line or token[:20] in line], records
    assert any("/unsubscribe/[redacted]" in line for line in records), records


# Weakness: security headers.


@pytest.mark.parametrize(
    "path", ["/", "/feed.xml", "/subscribe", "/articles/nope", "/unsubscribe/bad"]
)
def test_every_page_has_the_security_headers(served: str, path: str) -> None:
    response = httpx.get(served + path, timeout=30)
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "script-src" not in csp  # no page runs script
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"]
