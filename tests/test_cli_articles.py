"""`publisher articles list/show/remove`: JSON on stdout, tables for people, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from publisher.config import DEFAULT_CONFIG
from publisher.resources import samples_dir
from tests.clirunner import invoke, run_module

SAMPLE_SLUGS = {path.stem.split("-", 1)[1] for path in samples_dir().glob("*.md")}


@pytest.fixture
def config(site_dir: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """The test site (SQLite and PostgreSQL) with the sample articles imported."""
    path = site_dir / DEFAULT_CONFIG
    result = invoke(capsys, "--config", path, "articles", "add", samples_dir())
    assert result.exit_code == 0, result.stderr
    return path


def test_list_json_is_one_document_newest_first(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_module("--config", config, "articles", "list", "--json", "--no-drafts")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)  # the whole of stdout is one JSON document
    assert isinstance(rows, list)
    assert len(rows) == 9
    assert {row["slug"] for row in rows} == SAMPLE_SLUGS - {"surabaya-mangrove-fun-run"}
    times = [row["published_at"] for row in rows]
    assert times == sorted(times, reverse=True)
    for row in rows:
        assert row["guid"].startswith("tag:news.example.org,")
        assert row["body_html"].startswith("<")
        assert isinstance(row["tags"], list)

    everything = invoke(capsys, "--config", config, "articles", "list", "--json").json()
    assert len(everything) == 10
    limited = invoke(
        capsys, "--config", config, "articles", "list", "--json", "--limit", "3", "--no-drafts"
    )
    assert [row["slug"] for row in limited.json()] == [row["slug"] for row in rows[:3]]
    tagged = invoke(capsys, "--config", config, "articles", "list", "--json", "--tag", "ekonomi")
    assert tagged.json()
    assert all("ekonomi" in row["tags"] for row in tagged.json())
    expected = [row["slug"] for row in rows if "ekonomi" in row["tags"]]
    assert [row["slug"] for row in tagged.json()] == expected
    none = invoke(capsys, "--config", config, "articles", "list", "--json", "--tag", "tidak-ada")
    assert none.exit_code == 0
    assert none.json() == []


def test_list_table_for_people(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = invoke(capsys, "--config", config, "articles", "list", "--limit", "2")
    assert result.exit_code == 0
    assert "slug" in result.stdout
    assert "title" in result.stdout
    assert result.stdout.count("\n") >= 4


def test_show_json_and_text(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    slug = "feri-baru-makassar-ambon-mulai-berlayar"
    result = invoke(capsys, "--config", config, "articles", "show", slug, "--json")
    assert result.exit_code == 0, result.stderr
    article = result.json()
    assert article["slug"] == slug
    assert article["title"] == "Rute Feri Baru Makassar–Ambon Mulai Berlayar Pekan Depan"
    assert article["language"] == "id"
    assert article["author"] == "Andi Saputra"
    assert article["tags"] == ["transportasi", "ekonomi"]
    assert article["published_at"] == "2026-11-12T01:15:00+00:00"
    assert article["updated_at"] == "2026-11-13T06:40:00+00:00"
    assert article["image_credit"] == "Foto: Redaksi/Rina Wulandari"
    assert "<strong>KMP Lestari Timur</strong>" in article["body_html"]
    assert article["source_format"] == "markdown"
    assert len(article["content_hash"]) == 64

    text = invoke(capsys, "--config", config, "articles", "show", slug)
    assert text.exit_code == 0
    assert "guid: tag:news.example.org," in text.stdout
    assert "<strong>KMP Lestari Timur</strong>" in text.stdout


def test_show_and_remove_unknown_slug(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["show", "tidak-ada", "--json"], ["remove", "tidak-ada"]):
        result = invoke(capsys, "--config", config, "articles", *command)
        assert result.exit_code == 2
        assert result.error_lines == ["error: no article with slug 'tidak-ada'"]
        assert result.stdout == ""


def test_remove_deletes_article_and_its_tags(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slug = "feri-baru-makassar-ambon-mulai-berlayar"
    before = invoke(
        capsys, "--config", config, "articles", "list", "--json", "--tag", "transportasi"
    )
    assert slug in [row["slug"] for row in before.json()]

    result = invoke(capsys, "--config", config, "articles", "remove", slug)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"removed {slug}"

    after = invoke(
        capsys, "--config", config, "articles", "list", "--json", "--tag", "transportasi"
    )
    assert slug not in [row["slug"] for row in after.json()]
    assert len(invoke(capsys, "--config", config, "articles", "list", "--json").json()) == 9
    assert invoke(capsys, "--config", config, "articles", "show", slug).exit_code == 2

    # Re-adding the file brings it back as a new article.
    path = next(samples_dir().glob("01-*.md"))
    again = invoke(capsys, "--config", config, "articles", "add", path)
    assert f"created   {slug}" in again.stdout


def test_unknown_format_is_a_usage_error(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = invoke(capsys, "--config", config, "articles", "add", samples_dir(), "--format", "pdf")
    assert result.exit_code == 2
    assert len(result.error_lines) == 1
    assert result.error_lines[0].startswith("error: --format: unknown format 'pdf'")
