"""Scraped plain text: chrome, headline, captions, body, editors, edge cases and properties."""

from __future__ import annotations

import asyncio
import contextlib
import html
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from publisher.config import DEFAULT_CONFIG
from publisher.content.models import Article
from publisher.content.sanitize import html_to_text
from publisher.content.store import ArticleStore
from publisher.db import transaction
from publisher.errors import InputError
from publisher.ingest.options import ImportOptions
from publisher.ingest.source import SourceText, decode_text, read_text_file
from publisher.ingest.text import CHROME_LABELS, parse_text
from publisher.site import Site
from tests.clirunner import invoke

DATA = Path(__file__).parent / "data" / "import" / "text"
OPTIONS = ImportOptions(language="id", tz=ZoneInfo("Asia/Jakarta"))


def from_text(text: str) -> SourceText:
    return SourceText(Path("scraped.txt"), text)


def test_indonesian_page_with_chrome_captions_and_editors() -> None:
    draft = parse_text(read_text_file(DATA / "nelayan-bitung.txt"), OPTIONS)
    assert draft.title == "Nelayan Bitung mulai pakai mesin es tenaga surya di dermaga"
    assert draft.source_format == "text"
    assert draft.language == "id"
    assert draft.editors == ["ab", "cd"]
    assert draft.image_caption == (
        "Seorang nelayan memindahkan cakalang ke kotak pendingin di dermaga Bitung, Sulawesi Utara"
    )
    assert draft.image_credit == "Foto: Reuters"
    assert draft.image_url == ""
    assert draft.summary.startswith("Koperasi nelayan di Bitung, Sulawesi Utara, mulai")
    body = draft.body_html
    # Each caption once, as a figure with its credit and without an image.
    assert body.count("<figure>") == 2
    assert body.count("Seorang nelayan memindahkan cakalang") == 1
    assert "<small>(Foto: via AP)</small></figcaption></figure>" in body
    assert "<img" not in body
    # Straight quotes kept as written; a short standalone line becomes a subheading.
    assert '<p>"Dulu kami harus berangkat jam tiga pagi' in body
    assert "<h2>Harga es turun</h2>" in body
    # The dateline stays text and is never turned into a date.
    assert "pada Senin (12/10)." in body
    assert draft.published_at is None
    text = html_to_text(body)
    for chrome in ("Langsung ke", "Beranda", "Iklan", "Komentar", "Forum", "Bagikan", "XS", "LG"):
        assert chrome not in text
    assert "Rekomendasi" not in text
    assert "Petani garam" not in text
    assert "[ab/cd]" not in body
    assert body.rstrip().endswith("sampai akhir musim hujan.</p>")


def test_english_page_with_curly_quotes() -> None:
    draft = parse_text(read_text_file(DATA / "solar-irrigation.txt"), OPTIONS)
    assert draft.title == "Farmers in Sumba switch to solar pumps as the dry season stretches on"
    assert draft.image_credit == "Photo: AFP"
    assert draft.editors == ["xy", "zw"]
    assert "“We used to spend half of the harvest money on fuel,”" in draft.body_html
    assert "‘Now the sun does the work and I pay the loan instead.’" in draft.body_html
    text = html_to_text(draft.body_html)
    for chrome in ("Skip to", "Accessibility", "Share", "Recommended", "Related", "Flood"):
        assert chrome not in text
    assert text.count("\n") == 5  # one figure and five paragraphs


def test_trailing_chrome_without_editor_initials() -> None:
    text = (DATA / "solar-irrigation.txt").read_text().replace(" [xy/zw]", "")
    draft = parse_text(from_text(text), OPTIONS)
    assert draft.editors == []
    body = html_to_text(draft.body_html)
    assert body.endswith("if repayments stay on schedule.")
    assert "Flood warnings" not in body
    assert "Recommended" not in body


def test_no_chrome_at_all() -> None:
    draft = parse_text(read_text_file(DATA / "no-chrome.txt"), OPTIONS)
    assert draft.title == "Perpustakaan daerah Ternate dibuka kembali setelah renovasi"
    assert draft.body_html.count("<p>") == 2
    assert draft.image_caption == ""
    assert draft.editors == []


def test_single_copy_of_a_caption() -> None:
    draft = parse_text(read_text_file(DATA / "single-caption.txt"), OPTIONS)
    assert draft.image_caption == "Petani memanen padi di sawah Desa Jomboran, Klaten"
    assert draft.image_credit == "Foto: Redaksi/Bayu Nugroho"
    assert draft.body_html.count("<figure>") == 1


def test_caption_without_credit_appearing_twice() -> None:
    draft = parse_text(read_text_file(DATA / "caption-no-credit.txt"), OPTIONS)
    assert draft.image_caption == "Pelari melintasi jalur kayu di tengah hutan mangrove Wonorejo"
    assert draft.image_credit == ""
    assert draft.body_html.startswith(
        "<figure><figcaption>Pelari melintasi jalur kayu di tengah hutan mangrove Wonorejo"
        "</figcaption></figure>"
    )
    assert draft.body_html.count("Pelari melintasi") == 1


def test_alt_text_then_credited_caption_merge() -> None:
    text = (
        "Jembatan gantung baru menghubungkan dua desa di Toraja\n\n"
        "Warga menyeberangi jembatan gantung\n"
        "Warga menyeberangi jembatan gantung (Foto: Redaksi)\n\n"
        "Jembatan sepanjang delapan puluh meter itu diresmikan pekan lalu.\n"
    )
    draft = parse_text(from_text(text), OPTIONS)
    assert (draft.image_caption, draft.image_credit) == (
        "Warga menyeberangi jembatan gantung",
        "Foto: Redaksi",
    )
    assert draft.body_html.count("Warga menyeberangi") == 1


def test_crlf_line_endings() -> None:
    raw = (DATA / "crlf.txt").read_bytes()
    assert b"\r\n" in raw
    draft = parse_text(read_text_file(DATA / "crlf.txt"), OPTIONS)
    assert draft.title == "Bandara Jayapura tambah jadwal penerbangan malam"
    assert "\r" not in draft.body_html
    assert draft.body_html.count("<p>") == 2
    # The parser copes on its own too, without the reader's normalisation.
    direct = parse_text(from_text(raw.decode("utf-8")), OPTIONS)
    assert direct.body_html == draft.body_html


def test_utf8_bom() -> None:
    assert (DATA / "bom.txt").read_bytes().startswith(b"\xef\xbb\xbf")
    draft = parse_text(read_text_file(DATA / "bom.txt"), OPTIONS)
    assert draft.title == "Pameran batik pesisir dibuka di Semarang"
    direct = parse_text(from_text("\ufeff" + (DATA / "bom.txt").read_text("utf-8-sig")), OPTIONS)
    assert direct.title == draft.title


def test_no_headline_is_a_clear_error() -> None:
    with pytest.raises(InputError, match=r"no-headline\.txt:1: no headline found"):
        parse_text(read_text_file(DATA / "no-headline.txt"), OPTIONS)


def test_paragraph_before_any_headline_is_a_clear_error() -> None:
    long_line = " ".join(["kata"] * 45) + "."
    with pytest.raises(InputError, match=r"scraped\.txt:3: no headline before the first paragraph"):
        parse_text(from_text(f"Menu\n\n{long_line}\n"), OPTIONS)


def test_headline_without_body_is_a_clear_error() -> None:
    with pytest.raises(InputError, match=r"scraped\.txt:2: no body text after the headline"):
        parse_text(
            from_text("Berita\nSebuah judul berita yang cukup panjang\n\nKomentar\n"), OPTIONS
        )


def test_byline_and_date_line_under_the_headline() -> None:
    text = (
        "Sekolah di Sorong buka kelas coding untuk siswa SMP\n"
        "Oleh: Kevin Wanggai\n"
        "Kamis, 19 November 2026 10:15 WIB\n\n"
        "Dua sekolah menengah di Sorong membuka kelas pemrograman setiap Sabtu.\n"
    )
    draft = parse_text(from_text(text), OPTIONS)
    assert draft.author == "Kevin Wanggai"
    assert draft.published_at is None
    assert html_to_text(draft.body_html) == (
        "Dua sekolah menengah di Sorong membuka kelas pemrograman setiap Sabtu."
    )


def test_read_also_links_inside_the_body_are_dropped() -> None:
    text = (
        "Harga cabai di Medan turun setelah panen di Karo\n\n"
        "Harga cabai merah di pasar tradisional Medan turun sepertiga dalam sepekan.\n\n"
        "Baca juga: Petani Karo mulai panen kol lebih awal\n\n"
        "Pedagang berharap harga stabil hingga akhir tahun.\n"
    )
    draft = parse_text(from_text(text), OPTIONS)
    assert "Petani Karo" not in draft.body_html
    assert draft.body_html.count("<p>") == 2


def test_html_in_text_is_escaped() -> None:
    text = "Judul berita dengan tanda <script> di dalamnya\n\nIsi <b>tebal</b> & lain-lain.\n"
    draft = parse_text(from_text(text), OPTIONS)
    assert "<b>" not in draft.body_html
    assert "&lt;b&gt;tebal&lt;/b&gt; &amp; lain-lain." in draft.body_html


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


def test_cli_imports_text_with_image_and_date_options(
    site_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = site_dir / DEFAULT_CONFIG
    args: list[str | Path] = [
        "--config",
        config,
        "articles",
        "add",
        DATA / "nelayan-bitung.txt",
        "--image",
        "https://img.example.org/bitung.jpg",
        "--published-at",
        "2026-11-20T08:00:00+08:00",
    ]
    result = invoke(capsys, *args)
    assert result.exit_code == 0, result.stderr
    assert "1 created" in result.stdout
    again = invoke(capsys, *args)
    assert again.exit_code == 0
    assert "1 unchanged" in again.stdout
    [article] = stored_articles(config)
    assert article.title.startswith("Nelayan Bitung")
    assert article.image_url == "https://img.example.org/bitung.jpg"
    assert article.image_credit == "Foto: Reuters"
    assert article.editors == ["ab", "cd"]
    assert article.published_at == datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
    assert article.source_format == "text"
    assert "<figcaption>" in article.body_html


def test_cli_without_published_at_uses_import_time(
    site_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = site_dir / DEFAULT_CONFIG
    before = datetime.now(UTC)
    result = invoke(capsys, "--config", config, "articles", "add", DATA / "nelayan-bitung.txt")
    assert result.exit_code == 0, result.stderr
    [article] = stored_articles(config)
    # "Senin (12/10)" in the dateline is never read as a date.
    assert article.published_at is not None
    assert article.published_at >= before


def test_cli_no_headline_stores_nothing(site_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = site_dir / DEFAULT_CONFIG
    result = invoke(capsys, "--config", config, "articles", "add", DATA / "no-headline.txt")
    assert result.exit_code == 2
    assert result.error_lines == [
        f"error: {DATA / 'no-headline.txt'}:1: no headline found (expected a line of 4 to 30 "
        "words, the article's title, above the body)"
    ]
    assert stored_articles(config) == []


# --- properties -----------------------------------------------------------------------------

LETTERS = st.characters(categories=["L"], exclude_characters="ǅǈǋǲ")
WORD = st.text(LETTERS, min_size=2, max_size=10)
SENTENCE = st.lists(WORD, min_size=5, max_size=25).map(lambda w: " ".join(w) + ".")
CHROME = st.sampled_from([*sorted(label.title() for label in CHROME_LABELS), "XS", "Menu"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=3000))
def test_arbitrary_text_raises_only_input_error(text: str) -> None:
    try:
        draft = parse_text(from_text(text), OPTIONS)
    except InputError:
        return
    assert draft.title.strip()
    assert draft.body_html.strip()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_through_the_reader_raise_only_input_error(data: bytes) -> None:
    with contextlib.suppress(InputError):
        parse_text(from_text(decode_text(data, "scraped.txt")), OPTIONS)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    before=st.lists(CHROME, max_size=6),
    headline=st.lists(WORD, min_size=4, max_size=12).map(" ".join),
    # Unique: the same block twice in a row is by definition a caption (alt text + caption).
    paragraphs=st.lists(SENTENCE, min_size=1, max_size=8, unique=True),
    after=st.lists(CHROME, max_size=8),
    newline=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
)
def test_no_body_paragraph_is_lost(
    before: list[str],
    headline: str,
    paragraphs: list[str],
    after: list[str],
    newline: str,
    bom: bool,
) -> None:
    lines = [*before, "", headline, "", *"\n\n".join(paragraphs).split("\n"), "", *after]
    text = ("\ufeff" if bom else "") + newline.join(lines)
    draft = parse_text(from_text(text), OPTIONS)
    assert draft.title == headline
    body = html.unescape(draft.body_html)
    for paragraph in paragraphs:
        assert paragraph in body
    assert draft.summary == paragraphs[0]


RICH_WORD = st.one_of(
    WORD,
    WORD.map(lambda w: w + ","),
    WORD.map(lambda w: f"“{w}”"),
    WORD.map(lambda w: f'"{w}"'),
    WORD.map(lambda w: f"({w})"),
    st.integers(0, 99999).map(str),
    st.sampled_from(["Rp25.000", "12/10", "–", "&", "<b>", "50%", "WIB", "Senin"]),
)
RICH_SENTENCE = st.tuples(
    st.lists(WORD, min_size=3, max_size=3), st.lists(RICH_WORD, min_size=2, max_size=30)
).map(lambda parts: " ".join(parts[0] + parts[1]) + ".")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    before=st.lists(CHROME, max_size=4),
    headline=st.lists(WORD, min_size=4, max_size=12).map(" ".join),
    paragraphs=st.lists(RICH_SENTENCE, min_size=1, max_size=6, unique=True),
    after=st.lists(CHROME, max_size=6),
)
def test_no_body_paragraph_with_digits_and_quotes_is_lost(
    before: list[str], headline: str, paragraphs: list[str], after: list[str]
) -> None:
    text = "\n".join([*before, headline, "", "\n\n".join(paragraphs), "", *after])
    draft = parse_text(from_text(text), OPTIONS)
    body = html.unescape(draft.body_html)
    for paragraph in paragraphs:
        assert paragraph in body


@pytest.mark.slow
def test_huge_scrapes_parse_in_linear_time() -> None:
    head = "Judul berita yang cukup panjang sekali\n\nIsi paragraf pertama yang panjang.\n\n"
    hostile = {
        "one long line": head + "kata " * 500_000 + ".",
        "labels after the body": head + "Komentar\n" * 150_000,
        "font-size runs": head + "XS\nKata\n" * 100_000,
        "captions": head + "".join(f"Foto {i} (Foto: AP)\n" for i in range(100_000)),
    }
    for what, text in hostile.items():
        started = time.perf_counter()
        parse_text(from_text(text), OPTIONS)
        assert time.perf_counter() - started < 10, what
