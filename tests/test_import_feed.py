"""RSS and Atom import: entry mapping, idempotent re-runs, bad input, conditional GET, sources."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from publisher.config import DEFAULT_CONFIG, load_settings
from publisher.content.models import Article, FeedSource
from publisher.content.store import ArticleDraft
from publisher.db import transaction
from publisher.errors import InputError
from publisher.ingest.feed import parse_feed
from publisher.ingest.source import MAX_BYTES
from publisher.ingest.sources import follow_sources, import_feed
from publisher.site import Site
from tests.clirunner import invoke
from tests.test_import_html import LocalServer, Route, server, stored_articles

__all__ = ["server"]  # the fixture, shared with the HTML tests

DATA = Path(__file__).parent / "data" / "import" / "feed"
RSS = DATA / "kabar-timur.rss"
ATOM = DATA / "island-notes.atom"
JAKARTA = ZoneInfo("Asia/Jakarta")


def parse(data: bytes, name: str = "feed.xml") -> list[ArticleDraft]:
    return list(parse_feed(data, name, language="id", tz=JAKARTA).drafts)


def test_rss_entries_map_to_articles() -> None:
    feed = parse_feed(
        RSS.read_bytes(), "kabar-timur.rss", language="en", tz=JAKARTA, tags=["timur"]
    )
    assert (feed.title, feed.version, feed.warnings) == ("Kabar Timur", "rss20", [])
    first, second, third = feed.drafts
    assert first.title == "Kapal ambulans baru layani pulau-pulau di Halmahera Selatan"
    assert first.language == "id"  # from <language>id-ID</language>, not the default
    assert first.canonical_url == "https://kabartimur.example.id/2026/11/kapal-ambulans-halmahera"
    # A guid that is not a URI is only unique inside its feed, so it is qualified.
    assert first.external_id == "https://kabartimur.example.id/#kabartimur-2026-1101"
    assert first.published_at == datetime(2026, 11, 23, 0, 30, tzinfo=UTC)
    assert first.author == "Nurlaila Umasugi"
    assert first.tags == ["Kesehatan", "Maluku Utara", "timur"]
    assert first.body_html.startswith("<p>Dua kapal ambulans mulai melayani")
    assert "<script" not in first.body_html
    assert "track()" not in first.body_html
    assert (first.image_url, first.image_width, first.image_height) == (
        "https://kabartimur.example.id/img/ambulans.jpg",
        1200,
        800,
    )
    assert first.image_credit == "Foto: Redaksi/Fahmi Albaar"
    assert second.external_id == "https://kabartimur.example.id/2026/11/festival-teluk-ambon"
    assert second.author == "Maria Latuconsina"
    assert (second.image_url, second.image_type, second.image_length) == (
        "https://kabartimur.example.id/img/perahu-belang.jpg",
        "image/jpeg",
        48211,
    )
    assert second.body_html == (
        "<p>Lomba perahu belang kembali digelar di Teluk Ambon dengan dua puluh tim.</p>"
    )
    assert third.body_html == (
        "<p>Harga cengkih kering di tingkat petani naik menjadi Rp120.000 per kilogram.</p>"
    )


def test_atom_entries_map_to_articles() -> None:
    feed = parse_feed(
        ATOM.read_bytes(),
        "island-notes.atom",
        language="id",
        tz=JAKARTA,
        source_url="https://islandnotes.example.com/atom.xml",
    )
    night, ferry = feed.drafts
    assert night.title == "Night market in Kupang moves to the waterfront"  # type="html"
    assert night.language == "en"
    assert night.external_id == "tag:islandnotes.example.com,2026:night-market"
    assert night.published_at == datetime(2026, 11, 24, 11, 0, tzinfo=UTC)
    assert night.updated_at == datetime(2026, 11, 24, 13, 30, tzinfo=UTC)
    assert night.tags == ["Food", "kupang"]
    assert night.source_url == "https://islandnotes.example.com/atom.xml"
    assert '<a href="https://islandnotes.example.com/2026/map">' in night.body_html
    assert night.image_url == "https://islandnotes.example.com/img/night-market.jpg"
    # No zone in the feed: the site's zone (WIB), not UTC.
    assert ferry.published_at == datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
    assert ferry.body_html == (
        "<p>Two crossings to Rote will leave an hour earlier from December.</p>\n"
        "<p>Passengers should check the board at Tenau port.</p>"
    )


def test_json_feed_items_map_to_articles() -> None:
    feed = parse_feed(
        (DATA / "ruang-kota.json").read_bytes(), "ruang-kota.json", language="en", tz=JAKARTA
    )
    assert (feed.title, feed.version, feed.warnings) == ("Ruang Kota", "json11", [])
    park, stop = feed.drafts
    assert park.title == "Taman kota Makassar dibuka sampai malam"
    assert park.language == "id"
    assert park.external_id == "https://ruangkota.example.id/2026/taman-kota-makassar"
    assert park.published_at == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    assert park.updated_at == datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    assert park.author == "Andi Pratiwi"
    assert park.tags == ["Kota", "Ruang Publik"]
    assert park.image_url == "https://ruangkota.example.id/img/taman.jpg"
    assert stop.external_id == "https://ruangkota.example.id/#rk-2026-077"
    assert stop.author == "Redaksi Ruang Kota"
    assert stop.body_html == (
        "<p>Enam halte bus baru mulai dipakai pekan ini.</p>\n"
        "<p>Setiap halte punya atap dan papan jadwal.</p>"
    )


def test_cli_imports_a_json_feed_and_sanitizes_it(
    site_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = site_dir / DEFAULT_CONFIG
    path = DATA / "ruang-kota.json"
    result = invoke(capsys, "--config", config, "articles", "import-feed", path)
    assert f"{path}: 2 created" in result.stdout, result.stdout + result.stderr
    bodies = " ".join(a.body_html for a in stored_articles(config))
    assert "onclick" not in bodies
    assert "Lampu baru dipasang" in bodies


def test_entry_without_title_gets_one_from_its_text() -> None:
    data = (
        b"<rss version='2.0'><channel><title>T</title><item><guid>tag:x,2026:1</guid>"
        b"<description>Listrik padam di tiga kecamatan di Kota Kendari sejak pagi "
        b"karena gangguan gardu induk.</description></item></channel></rss>"
    )
    [draft] = parse(data)
    assert draft.title == (
        "Listrik padam di tiga kecamatan di Kota Kendari sejak pagi karena gangguan…"
    )


def test_malformed_but_readable_feed_imports_with_a_warning() -> None:
    data = RSS.read_bytes().replace(b"<title>Kabar Timur</title>", b"<title>Kabar & Timur</title>")
    feed = parse_feed(data, "rusak.rss", language="id", tz=JAKARTA)
    assert len(feed.drafts) == 3
    [warning] = feed.warnings
    assert re.match(r"rusak\.rss:\d+: feed is not well-formed XML", warning)


BAD_FEEDS: dict[str, tuple[bytes, str]] = {
    "empty": (b"", r"feed is empty"),
    "blank": (b"  \n\n", r"feed is empty"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", r"binary data \(contains NUL bytes\)"),
    "undecodable": (
        b"<?xml version='1.0'?>\n<rss version='2.0'><channel><title>Caf\xe9</title>"
        b"</channel></rss>",
        r":2: not valid utf-8 text \(byte 0xe9\)",
    ),
    "unknown-encoding": (
        b"<?xml version='1.0' encoding='klingon-8'?><rss/>",
        r":1: unknown character encoding 'klingon-8'",
    ),
    "plain-text": (b"Ini bukan feed, hanya teks biasa.\n", r":1: not XML \(syntax error\)"),
    "html-page": (
        b"<!doctype html><html><body><p>Halo</p></body></html>",
        r"not XML .*expected an RSS or Atom feed",
    ),
    "json-feed-without-items": (
        b'{"version": "https://jsonfeed.org/version/1.1"}',
        r"JSON Feed without an items list",
    ),
    "other-json": (b'{"nama": "bukan feed"}', r"JSON but not a JSON Feed"),
    "broken-json": (b'{"version": "https://jsonfeed.org/version/1.1",\n', r":2: not XML or JSON"),
    "other-xml": (
        b"<?xml version='1.0'?><catatan><isi>Bukan feed</isi></catatan>",
        r"XML but not an RSS or Atom feed \(root element <catatan>\)",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FEEDS))
def test_bad_feed_bytes_give_one_clear_error(case: str) -> None:
    data, message = BAD_FEEDS[case]
    with pytest.raises(InputError, match=r"^bad\.xml(:\d+)?: ") as caught:
        parse(data, "bad.xml")
    assert re.search(message, str(caught.value)), str(caught.value)
    assert "\n" not in str(caught.value)


def test_oversized_feed_is_rejected_before_parsing() -> None:
    data = RSS.read_bytes() + b"<!--" + b"x" * MAX_BYTES + b"-->"
    with pytest.raises(InputError, match=r"big\.rss: feed is 10,\d{3},\d{3} bytes, over the 10 MB"):
        parse(data, "big.rss")


@pytest.mark.parametrize("case", ["empty", "binary", "undecodable", "plain-text", "other-xml"])
def test_cli_bad_feed_file_stores_nothing(
    case: str, site_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / f"{case}.xml"
    path.write_bytes(BAD_FEEDS[case][0])
    config = site_dir / DEFAULT_CONFIG
    result = invoke(capsys, "--config", config, "articles", "import-feed", path)
    assert result.exit_code == 2
    [line] = result.error_lines
    assert line.startswith(f"error: {path}")
    assert re.search(BAD_FEEDS[case][1], line), line
    assert stored_articles(config) == []


def test_cli_big_feed_file_stores_nothing(
    site_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "big.rss"
    path.write_bytes(RSS.read_bytes() + b"<!--" + b"x" * MAX_BYTES + b"-->")
    config = site_dir / DEFAULT_CONFIG
    result = invoke(capsys, "--config", config, "articles", "import-feed", path)
    assert result.exit_code == 2
    assert result.error_lines == [
        f"error: {path}: file is {path.stat().st_size:,} bytes, over the 10 MB limit"
    ]
    assert stored_articles(config) == []


def test_cli_import_feed_file_reimports_only_new_or_changed(
    site_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = site_dir / DEFAULT_CONFIG
    feed = tmp_path / "kabar.rss"
    feed.write_bytes(RSS.read_bytes())
    first = invoke(capsys, "--config", config, "articles", "import-feed", feed)
    assert first.exit_code == 0, first.stderr
    assert f"{feed}: 3 created, 0 updated, 0 unchanged, 0 failed" in first.stdout
    again = invoke(capsys, "--config", config, "articles", "import-feed", feed)
    assert f"{feed}: 0 created, 0 updated, 3 unchanged, 0 failed" in again.stdout
    before = {a.external_id: a for a in stored_articles(config)}
    changed = (
        RSS.read_bytes()
        .replace(b"naik menjadi Rp120.000", b"naik menjadi Rp125.000")
        .replace(
            b"  <item>\n    <title>Kapal ambulans",
            b"  <item>\n    <title>Jembatan Sofifi dibuka</title>\n"
            b"    <guid isPermaLink='false'>kabartimur-2026-1102</guid>\n"
            b"    <description>Jembatan baru di Sofifi dibuka untuk umum.</description>\n"
            b"  </item>\n  <item>\n    <title>Kapal ambulans",
        )
    )
    feed.write_bytes(changed)
    third = invoke(capsys, "--config", config, "articles", "import-feed", feed)
    assert f"{feed}: 1 created, 1 updated, 2 unchanged, 0 failed" in third.stdout
    after = {a.external_id: a for a in stored_articles(config)}
    assert len(after) == 4
    clove = "https://kabartimur.example.id/#kabartimur-2026-1099"
    assert "Rp125.000" in after[clove].body_html
    assert after[clove].guid == before[clove].guid
    assert after[clove].slug == before[clove].slug


def test_cli_add_points_feeds_to_import_feed(
    site_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = site_dir / DEFAULT_CONFIG
    result = invoke(capsys, "--config", config, "articles", "add", RSS)
    assert result.exit_code == 2
    assert result.error_lines == [
        f"error: {RSS}:1: this is an RSS or Atom feed; import its entries with "
        f"`publisher articles import-feed {RSS}`"
    ]


def test_same_title_and_local_ids_in_two_feeds_do_not_collide(
    site_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = site_dir / DEFAULT_CONFIG
    for name in ("satu", "dua"):
        path = tmp_path / f"{name}.rss"
        path.write_bytes(
            b"<rss version='2.0'><channel><title>"
            + name.encode()
            + b"</title><link>https://"
            + name.encode()
            + b".example.id/</link><item><title>Rapat warga desa</title><guid>1</guid>"
            b"<description>Isi dari " + name.encode() + b".</description></item>"
            b"</channel></rss>"
        )
        result = invoke(capsys, "--config", config, "articles", "import-feed", path)
        assert "1 created" in result.stdout, result.stdout + result.stderr
    articles = stored_articles(config)
    assert sorted(a.external_id or "" for a in articles) == [
        "https://dua.example.id/#1",
        "https://satu.example.id/#1",
    ]
    slugs = sorted(a.slug for a in articles)
    assert slugs[0] == "rapat-warga-desa"
    assert re.fullmatch(r"rapat-warga-desa-[0-9a-f]{6}", slugs[1])
    again = invoke(capsys, "--config", config, "articles", "import-feed", tmp_path / "dua.rss")
    assert "1 unchanged" in again.stdout


def test_cli_remote_feed_uses_conditional_get(
    site_dir: Path, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.routes["/feed.xml"] = Route(
        ATOM.read_bytes(),
        headers={
            "Content-Type": "application/atom+xml",
            "ETag": '"atom-1"',
            "Last-Modified": "Tue, 24 Nov 2026 06:00:00 GMT",
        },
    )
    config = site_dir / DEFAULT_CONFIG
    url = server.url("/feed.xml")
    first = invoke(capsys, "--config", config, "articles", "import-feed", url)
    assert first.exit_code == 0, first.stderr
    assert f"{url}: 2 created" in first.stdout
    second = invoke(capsys, "--config", config, "articles", "import-feed", url)
    assert second.exit_code == 0
    assert f"{url}: not modified since the last fetch" in second.stdout
    sent = server.requests[-1][1]
    assert sent["If-None-Match"] == '"atom-1"'
    assert sent["If-Modified-Since"] == "Tue, 24 Nov 2026 06:00:00 GMT"
    server.routes["/feed.xml"] = Route(
        ATOM.read_bytes().replace(b"sixty stalls", b"seventy stalls"),
        headers={"Content-Type": "application/atom+xml", "ETag": '"atom-2"'},
    )
    third = invoke(capsys, "--config", config, "articles", "import-feed", url)
    assert f"{url}: 0 created, 1 updated, 1 unchanged" in third.stdout
    assert any("seventy stalls" in a.body_html for a in stored_articles(config))


def test_cli_remote_feed_failure_is_one_line(
    site_dir: Path, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.routes["/html"] = Route(b"<html><body>Bukan feed</body></html>")
    config = site_dir / DEFAULT_CONFIG
    for path, code, message in [
        ("/missing.xml", 1, "HTTP 404 Not Found"),
        ("/html", 2, "XML but not an RSS or Atom feed (root element <html>)"),
    ]:
        url = server.url(path)
        result = invoke(capsys, "--config", config, "articles", "import-feed", url)
        assert result.exit_code == code
        [line] = result.error_lines
        assert line.startswith(f"error: {url}"), line
        assert message in line, line
    assert stored_articles(config) == []


async def test_follow_sources_imports_each_and_survives_a_failure(
    site_dir: Path, server: LocalServer
) -> None:
    server.routes["/kabar.rss"] = Route(
        RSS.read_bytes(), headers={"Content-Type": "application/rss+xml", "ETag": '"r1"'}
    )
    good, bad = server.url("/kabar.rss"), server.url("/hilang.rss")
    config = site_dir / DEFAULT_CONFIG
    with config.open("a") as handle:
        handle.write(
            f'\n[[sources]]\nurl = "{bad}"\n\n[[sources]]\nurl = "{good}"\ntags = ["timur"]\n'
        )
    site = Site.open(config)
    try:
        report = await follow_sources(site)
        assert [feed.status for feed in report.feeds] == ["failed", "imported"]
        assert "HTTP 404 Not Found" in report.feeds[0].error
        assert report.count("created") == 3
        again = await follow_sources(site)
        assert [feed.status for feed in again.feeds] == ["failed", "not-modified"]
        async with transaction(site.engine) as session:
            rows = {row.url: row for row in await session.scalars(sa.select(FeedSource))}
            articles = list(await session.scalars(sa.select(Article)))
        assert rows[good].etag == '"r1"'
        assert rows[good].last_error == ""
        assert "HTTP 404" in rows[bad].last_error
        fetched_at = rows[good].last_fetched_at
        assert fetched_at is not None
        assert fetched_at <= site.clock.now()
        assert all("timur" in article.tags for article in articles)
    finally:
        await site.aclose()


async def test_import_feed_function_from_a_file(site: Site) -> None:
    report = await import_feed(site, str(ATOM))
    assert (report.status, report.count("created")) == ("imported", 2)
    assert report.title == "Island Notes"
    assert load_settings(site.settings.config_path).sources == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=2000),
        st.lists(
            st.sampled_from(
                [
                    b"<?xml version='1.0'?>",
                    b"<rss version='2.0'>",
                    b"<channel>",
                    b"<item>",
                    b"<title>Judul</title>",
                    b"<guid>1</guid>",
                    b"</item>",
                    b"<feed>",
                    b"<entry>",
                    b"<pubDate>Mon, 99 Nov 2026</pubDate>",
                    b"&#1114112;",
                    b"<!DOCTYPE x [",
                    b'{"version": "https://jsonfeed.org/version/1", "items": [',
                    b"{}",
                    b"]}",
                    b"\xff",
                    b"<enclosure url='x' type='image/png' length='-5'/>",
                ]
            ),
            max_size=40,
        ).map(b"".join),
    )
)
def test_arbitrary_bytes_raise_only_input_error(data: bytes) -> None:
    try:
        feed = parse_feed(data, "feed.xml", language="id", tz=JAKARTA)
    except InputError:
        return
    for draft in feed.drafts:
        assert draft.title.strip()


def test_cli_refuses_other_url_schemes(site_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = site_dir / DEFAULT_CONFIG
    for command in (["articles", "import-feed"], ["articles", "add"]):
        result = invoke(capsys, "--config", config, *command, "ftp://example.org/feed.xml")
        assert result.exit_code == 2
        assert result.error_lines == [
            "error: ftp://example.org/feed.xml: unsupported URL scheme 'ftp' (use http or https)"
        ]
