"""`publisher digest preview` on the sample content, from the command line."""

from __future__ import annotations

import email
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from publisher.cli.digest import write_preview
from publisher.db import transaction
from publisher.delivery.preview import next_digest
from publisher.ingest.files import import_files
from publisher.ingest.options import ImportOptions
from publisher.resources import samples_dir
from publisher.site import Site
from subscribers import repository
from subscribers.repository import Consent, Preferences
from tests.clirunner import invoke


async def _import_samples(site: Site) -> None:
    options = ImportOptions(language="id", tz=site.settings.tz)
    report = await import_files(
        site.engine, site.settings.site.base_url, [samples_dir()], options, site.clock.now()
    )
    assert not report.failed


def _parse(path: Path) -> EmailMessage:
    parsed = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


# Indonesian writes dates without the weekday ("25 November 2026").
@pytest.mark.parametrize(("language", "date_line"), [("id", ""), ("en", "Wednesday, ")])
async def test_preview_writes_three_files(
    site: Site, tmp_path: Path, language: str, date_line: str
) -> None:
    await _import_samples(site)
    out = tmp_path / "preview"
    paths = (await write_preview(site, out, language=language, subscriber=None)).paths
    assert [p.name for p in paths] == ["digest.html", "digest.txt", "digest.eml"]
    html = paths[0].read_text(encoding="utf-8")
    text = paths[1].read_text(encoding="utf-8")
    assert date_line + "25 November 2026" in html or date_line + "November 25, 2026" in html
    assert "reader@example.org" in text
    parsed = _parse(paths[2])
    assert parsed["To"] == "reader@example.org"
    assert parsed["List-Unsubscribe"].startswith("<https://news.example.org/unsubscribe/")
    assert parsed["Content-Language"] == language
    assert not list(out.glob("*.tmp"))


async def test_next_digest_carries_the_last_day_in_the_readers_language(site: Site) -> None:
    await _import_samples(site)
    month_ago = site.clock.now() - timedelta(days=30)
    everything = (await next_digest(site, language="id", last_digest_at=month_ago)).articles
    assert {a.language for a in everything} == {"id"}
    newest = max(a.published_at for a in everything if a.published_at)
    expected = sorted(
        a.slug
        for a in everything
        if a.published_at and a.published_at > newest - timedelta(hours=23)
    )
    site.clock.now = lambda: newest + timedelta(hours=1)  # type: ignore[method-assign]
    recent = await next_digest(site, language="id")
    assert sorted(a.slug for a in recent.articles) == expected
    assert (recent.more_count, recent.sample) == (0, False)
    assert len(recent.articles) < len(everything)
    site.clock.now = lambda: newest + timedelta(days=30)  # type: ignore[method-assign]
    latest = await next_digest(site, language="id")
    # Nothing new: the newest articles of that language, marked as a sample.
    assert latest.sample
    assert latest.articles[0].published_at == newest
    assert {a.language for a in latest.articles} == {"id"}


async def test_preview_for_a_subscriber(site: Site, tmp_path: Path) -> None:
    await _import_samples(site)
    async with transaction(site.engine) as session:
        await repository.add(
            session,
            "dede@example.net",
            Preferences.parse(name="Dédé", language="en", timezone="Asia/Jayapura"),
            Consent(source="test", at=site.clock.now()),
            site.clock.now(),
            status="active",
        )
    written = await write_preview(site, tmp_path, language=None, subscriber="DEDE@example.net")
    paths = written.paths
    parsed = _parse(paths[2])
    assert parsed["To"].addresses[0].display_name == "Dédé"
    assert parsed["Content-Language"] == "en"
    text = paths[1].read_text(encoding="utf-8")
    assert "Hello, Dédé!" in text
    # Real signed links from the subscriber package, not placeholders.
    assert "/unsubscribe/preview" not in text
    # Jayapura (UTC+9) is at 09:00 on 25 November at 00:00 UTC: its 07:00 digest has
    # gone, so the preview is the next one, of 26 November.
    assert "Thursday, November 26, 2026" in text


def test_preview_command_prints_paths(
    site_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = site_dir / "publisher.toml"
    added = invoke(capsys, "--config", config, "articles", "add", samples_dir())
    assert added.exit_code == 0, added.stderr
    result = invoke(capsys, "--config", config, "digest", "preview", "--out", tmp_path / "o")
    assert result.exit_code == 0, result.stderr
    printed = result.stdout.split()
    assert [Path(p).name for p in printed] == ["digest.html", "digest.txt", "digest.eml"]
    assert all(Path(p).is_file() for p in printed)
    result = invoke(
        capsys, "--config", config, "digest", "preview", "--subscriber", "nobody@example.net"
    )
    assert result.exit_code == 2
    assert result.error_lines == ["error: no subscriber with address 'nobody@example.net'"]
    result = invoke(capsys, "--config", config, "digest", "preview", "--lang", "fr")
    assert result.exit_code == 2
    assert result.error_lines == ["error: --lang: no email catalog for 'fr' (available: en, id)"]
    result = invoke(
        capsys, "--config", config, "digest", "preview", "--lang", "en-GB", "--out", tmp_path / "e"
    )
    assert result.exit_code == 0, result.stderr


def test_preview_of_an_empty_site(site_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = invoke(capsys, "--config", site_dir / "publisher.toml", "digest", "preview")
    assert result.exit_code == 2
    assert "no published articles" in result.stderr
