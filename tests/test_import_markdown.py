"""Markdown import through `publisher articles add`: slugs, summaries, URLs, sanitizing, updates."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest

from publisher.cli.init import init_site
from publisher.config import DEFAULT_CONFIG
from publisher.content.slugs import slugify
from publisher.resources import samples_dir
from tests.clirunner import CliResult, invoke


class Cli:
    """Run `publisher --config CONFIG ...` in-process against one site."""

    def __init__(self, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.config = config
        self.capsys = capsys

    def __call__(self, *args: str | Path) -> CliResult:
        return invoke(self.capsys, "--config", self.config, *args)

    def add(self, *args: str | Path) -> CliResult:
        result = self("articles", "add", *args)
        assert result.exit_code == 0, result.stderr
        return result

    def show(self, slug: str) -> dict[str, Any]:
        result = self("articles", "show", slug, "--json")
        assert result.exit_code == 0, result.stderr
        data: dict[str, Any] = result.json()
        return data

    def slugs(self) -> list[str]:
        result = self("articles", "list", "--json", "--limit", "1000")
        assert result.exit_code == 0, result.stderr
        return [row["slug"] for row in result.json()]


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """A fresh SQLite site at https://news.example.org/kabar (a base URL with a path)."""
    monkeypatch.delenv("PUBLISHER_DATABASE__URL", raising=False)
    config = init_site(tmp_path / "site", base_url="https://news.example.org/kabar")
    return Cli(config, capsys)


@pytest.fixture
def both_cli(site_dir: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    """The test site on SQLite and on PostgreSQL (base URL https://news.example.org)."""
    return Cli(site_dir / DEFAULT_CONFIG, capsys)


def write(path: Path, front: str, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"---\n{front.strip()}\n---\n\n{body.strip()}\n", encoding="utf-8")
    return path


def test_slug_is_derived_from_the_title_transliterated_and_stable(cli: Cli, tmp_path: Path) -> None:
    write(tmp_path / "a.md", 'title: "Café Ñandú: Über-Rendang 100%!"', "Isi.")
    write(tmp_path / "b.md", "title: Jakarta   Siaga — Banjir\u00a0Rob", "Isi.")
    write(tmp_path / "c.md", "title: 東京のニュース", "Isi.")
    write(tmp_path / "d.md", "title: Ẓāhir & Şükrü's ﬁnal cut", "Isi.")
    cli.add(tmp_path)
    hashed = "a-" + hashlib.sha256("東京のニュース".encode()).hexdigest()[:10]
    assert sorted(cli.slugs()) == sorted(
        [
            "cafe-nandu-uber-rendang-100",
            "jakarta-siaga-banjir-rob",
            hashed,
            "zahir-sukru-s-final-cut",
        ]
    )
    assert cli.show(hashed)["title"] == "東京のニュース"


def test_slugify_rules() -> None:
    assert slugify("Rute Feri Baru Makassar–Ambon") == "rute-feri-baru-makassar-ambon"
    assert slugify("  --Hello,   World!--  ") == "hello-world"
    assert slugify("Ÿ") == "y"
    long_title = " ".join(["panjang"] * 30)
    slug = slugify(long_title)
    assert len(slug) <= 80
    assert not slug.endswith("-")
    assert slug == "-".join(["panjang"] * 10)  # cut at a word boundary
    assert slugify("Σ") == slugify("Σ")  # same input, same slug, on every run
    assert re.fullmatch(r"a-[0-9a-f]{10}", slugify("Σ"))


def test_summary_is_the_first_paragraph_as_plain_text(cli: Cli, tmp_path: Path) -> None:
    write(
        tmp_path / "story.md",
        "title: Ringkasan otomatis",
        "# Judul dalam\n\n![Foto](img/a.jpg)\n\n"
        "Paragraf *pertama* dengan [tautan](/x) &amp; <b>tebal</b>\nyang berlanjut.\n\n"
        "Paragraf kedua.",
    )
    write(
        tmp_path / "given.md",
        'title: Ringkasan tertulis\nsummary: "Ringkasan  dari\\n penulis."',
        "Paragraf pertama.",
    )
    cli.add(tmp_path)
    assert cli.show("ringkasan-otomatis")["summary"] == (
        "Paragraf pertama dengan tautan & tebal yang berlanjut."
    )
    assert cli.show("ringkasan-tertulis")["summary"] == "Ringkasan dari penulis."


def test_relative_links_and_images_become_absolute(cli: Cli, tmp_path: Path) -> None:
    write(
        tmp_path / "links.md",
        "title: Tautan\nimage: img/lead.jpg\ncanonical_url: /asli/tautan",
        "[root](/jadwal) [relative](jadwal/2) [anchor](#atas) [other](https://other.example/x)"
        " [mail](mailto:redaksi@example.org)\n\n![gambar](media/foto.png)\n\n"
        '<a href="../naik">up</a> <img src="//cdn.example/p.png" alt="cdn">',
    )
    cli.add(tmp_path / "links.md")
    article = cli.show("tautan")
    html = article["body_html"]
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs == [
        "https://news.example.org/jadwal",
        "https://news.example.org/kabar/jadwal/2",
        "#atas",
        "https://other.example/x",
        "mailto:redaksi@example.org",
        "https://news.example.org/naik",
    ]
    assert re.findall(r'src="([^"]*)"', html) == [
        "https://news.example.org/kabar/media/foto.png",
        "https://cdn.example/p.png",
    ]
    assert article["image_url"] == "https://news.example.org/kabar/img/lead.jpg"
    assert article["canonical_url"] == "https://news.example.org/asli/tautan"


HOSTILE = """
Awal yang aman.

<script>alert("x")</script>
<style>body { display: none }</style>
<p onclick="steal()" style="color:red" class="x">Klik</p>
<img src="a.png" onerror="steal()" alt="gambar">
<a href="javascript:alert(1)">js</a>
<a href="  JaVaScRiPt:alert(2)">js2</a>
<a href="java&#x09;script:alert(3)">js3</a>
<a href="data:text/html;base64,PHNjcmlwdD4=">data</a>
<a href="vbscript:msgbox(1)">vb</a>
<iframe src="https://evil.example/"></iframe>
<form action="/steal"><input name="q"></form>
<svg onload="steal()"><circle r="1"/></svg>
<object data="x.swf"></object>
<picture><source srcset="javascript:alert(6) 1x, data:image/png;base64,AAAA 2x, b.jpg 3x"></picture>
<picture><source srcset="data:image/svg+xml,x 1x"></picture>

[md-js](javascript:alert(4)) and ![md-img](javascript:alert(5))

Akhir yang aman.
"""


def test_sanitizing_removes_scripts_styles_handlers_and_javascript_urls(
    cli: Cli, tmp_path: Path
) -> None:
    write(tmp_path / "hostile.md", "title: Berbahaya", HOSTILE)
    cli.add(tmp_path / "hostile.md")
    html = cli.show("berbahaya")["body_html"]
    lowered = html.lower()
    for banned in (
        "<script",
        'alert("x")',
        "<style",
        "display: none",
        "onclick",
        "onerror",
        "onload",
        "steal",
        "style=",
        "<iframe",
        "<form",
        "<input",
        "<svg",
        "<object",
    ):
        assert banned not in lowered, (banned, html)
    assert "alert(6)" not in html, html
    assert "data:" not in lowered, html
    assert '<source srcset="https://news.example.org/kabar/b.jpg 3x">' in html
    assert "<source>" in html  # nothing left of the all-data: srcset
    urls = re.findall(r'(?:href|src|action|data)="([^"]*)"', lowered)
    assert urls, html
    assert all(url.startswith(("https://", "mailto:", "#")) for url in urls), urls
    # markdown-it leaves a javascript: link as literal text, which is harmless.
    assert "[md-js](javascript:alert(4))" in html
    assert "Awal yang aman." in html
    assert "Akhir yang aman." in html
    assert "<p>Klik</p>" in html
    assert '<img src="https://news.example.org/kabar/a.png" alt="gambar">' in html


def test_readding_unchanged_touches_nothing_and_changes_keep_the_guid(
    both_cli: Cli, tmp_path: Path
) -> None:
    cli = both_cli
    story = write(
        tmp_path / "story.md",
        "title: Feri baru\ndate: 2026-11-20T08:00:00+07:00\ntags: [Transportasi, Ekonomi]",
        "Kapal mulai berlayar.",
    )
    first = cli.add(story)
    assert "created   feri-baru" in first.stdout
    before = cli.show("feri-baru")
    assert before["tags"] == ["transportasi", "ekonomi"]

    again = cli.add(story)
    assert "unchanged feri-baru" in again.stdout
    assert "0 created, 0 updated, 1 unchanged, 0 failed" in again.stdout
    assert cli.show("feri-baru") == before

    # A new title with a derived slug: same article, same slug, same guid.
    write(
        story,
        "title: Feri baru akhirnya berlayar\ndate: 2026-11-20T08:00:00+07:00\ntags: [Ekonomi]",
        "Kapal mulai berlayar hari ini.",
    )
    updated = cli.add(story)
    assert "updated   feri-baru" in updated.stdout
    after = cli.show("feri-baru")
    assert after["id"] == before["id"]
    assert after["guid"] == before["guid"]
    assert after["title"] == "Feri baru akhirnya berlayar"
    assert after["tags"] == ["ekonomi"]
    assert after["content_hash"] != before["content_hash"]
    assert after["updated_at"] >= before["updated_at"]
    assert after["published_at"] == before["published_at"] == "2026-11-20T01:00:00+00:00"
    tagged = cli("articles", "list", "--json", "--tag", "transportasi")
    assert tagged.json() == []

    # An explicit new slug moves the article (readers keep the guid).
    write(story, "title: Feri baru\nslug: feri-makassar-ambon", "Kapal mulai berlayar hari ini.")
    moved = cli.add(story)
    assert "updated   feri-makassar-ambon" in moved.stdout
    assert cli.slugs() == ["feri-makassar-ambon"]
    assert cli.show("feri-makassar-ambon")["guid"] == before["guid"]


def test_all_samples_import_cleanly(both_cli: Cli) -> None:
    result = both_cli.add(samples_dir())
    assert "10 created, 0 updated, 0 unchanged, 0 failed" in result.stdout
    assert result.stderr == ""
    rows = both_cli("articles", "list", "--json").json()
    assert len(rows) == 10
    assert {row["language"] for row in rows} == {"id", "en"}
    assert len({tag for row in rows for tag in row["tags"]}) >= 5
    assert all(row["image_url"].startswith("https://") for row in rows)
    assert all(row["image_caption"] and row["image_credit"] for row in rows)
    assert all(row["summary"] for row in rows)
    drafts = [row["slug"] for row in rows if row["status"] == "draft"]
    assert drafts == ["surabaya-mangrove-fun-run"]  # the one sample kept as a draft
    assert max(len(row["body_html"]) for row in rows) > 15000  # the one long article
    published = [row["published_at"] for row in rows if row["status"] == "published"]
    assert len(published) == 9
    assert published == sorted(published, reverse=True)
    again = both_cli.add(samples_dir())
    assert "0 created, 0 updated, 10 unchanged, 0 failed" in again.stdout


def test_folders_are_imported_recursively(cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "content"
    write(root / "top.md", "title: Atas", "Isi.")
    write(root / "2026" / "11" / "deep.markdown", "title: Dalam", "Isi.")
    write(root / "2026" / "Upper.MD", "title: Huruf besar", "Isi.")
    (root / "2026" / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00")
    (root / "README").write_text("not an article", encoding="utf-8")
    result = cli.add(root)
    assert "3 created, 0 updated, 0 unchanged, 0 failed" in result.stdout
    assert sorted(cli.slugs()) == ["atas", "dalam", "huruf-besar"]


def test_front_matter_fields_and_command_line_options(cli: Cli, tmp_path: Path) -> None:
    write(
        tmp_path / "full.md",
        "title: Lengkap\nauthor: Rina Wulandari\nlang: en\nimage_caption: Di dermaga\n"
        "image_credit: 'Foto: Redaksi'\nimage: https://img.example/x.jpg\ntags: budaya, Seni Rupa",
        "Isi.",
    )
    write(tmp_path / "draft.md", "title: Konsep\ndraft: true", "Belum terbit.")
    cli.add(tmp_path / "full.md", tmp_path / "draft.md", "--tag", "Pilihan", "--lang", "id")
    full = cli.show("lengkap")
    assert full["author"] == "Rina Wulandari"
    assert full["author_slug"] == "rina-wulandari"
    assert full["language"] == "en"  # the file's lang wins over --lang
    assert full["tags"] == ["budaya", "seni-rupa", "pilihan"]
    assert (full["image_caption"], full["image_credit"]) == ("Di dermaga", "Foto: Redaksi")
    draft = cli.show("konsep")
    assert (draft["status"], draft["published_at"], draft["language"]) == ("draft", None, "id")
    published = cli("articles", "list", "--json", "--no-drafts").json()
    assert [row["slug"] for row in published] == ["lengkap"]

    write(tmp_path / "later.md", "title: Nanti", "Isi.")
    cli.add(tmp_path / "later.md", "--published-at", "2026-12-01T07:00", "--draft")
    later = cli.show("nanti")
    assert (later["status"], later["published_at"]) == ("draft", "2026-12-01T00:00:00+00:00")
    bad = cli("articles", "add", tmp_path / "later.md", "--published-at", "besok")
    assert bad.exit_code == 2
    assert bad.error_lines == ["error: --published-at: not an ISO 8601 date: 'besok'"]
