"""Bad input files: one `path:line: reason` line each, the others still import, store untouched."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from publisher.config import DEFAULT_CONFIG
from publisher.content.store import ArticleStore
from publisher.db import transaction
from publisher.ingest.source import MAX_BYTES
from publisher.site import Site
from tests.clirunner import ROOT, CliResult, invoke, run_module

GOOD = b"---\ntitle: Kabar baik\n---\nIsi berita yang baik.\n"

# name -> (file bytes, expected line, pattern the reason must match)
BAD: dict[str, tuple[bytes, int, str]] = {
    "malformed.md": (
        b'---\ntitle: "Rusak"\ntags: [ekonomi, budaya\n---\nIsi.\n',
        3,
        r"malformed front matter: .*flow sequence.*",
    ),
    "bad-indent.md": (
        b"---\ntitle: Judul\nauthor: a: b\n---\nIsi.\n",
        3,
        r"malformed front matter: mapping values are not allowed.*",
    ),
    "no-title.md": (
        b"---\nauthor: Andi\ntags: [ekonomi]\n---\nIsi tanpa judul.\n",
        1,
        r"missing title.*",
    ),
    "blank-title.md": (b'---\nlang: id\ntitle: "  "\n---\nIsi.\n', 3, r"missing title.*"),
    "latin1.md": (
        b"---\ntitle: Kopi\n---\nSatu.\n\nCaf\xe9 di pojok jalan.\n",
        6,
        r"not UTF-8 text \(byte 0xe9\).*",
    ),
    "photo.md": (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10",
        1,
        r"binary file.*",
    ),
    "empty.md": (b"", 1, r"file is empty"),
    "blank.md": (b" \n\n\t\n", 1, r"file is empty"),
    "unknown-key.md": (
        b"---\ntitle: Judul\ncolour: merah\n---\nIsi.\n",
        3,
        r"unknown front matter key 'colour'",
    ),
    "tags-not-list.md": (b"---\ntitle: Judul\ntags: 5\n---\nIsi.\n", 3, r"tags must be a list"),
    "tags-mapping.md": (
        b"---\ntitle: Judul\ntags:\n  a: b\n---\nIsi.\n",
        3,
        r"tags must be a list",
    ),
    "no-body.md": (b"---\ntitle: Judul saja\n---\n\n", 1, r".*no body.*"),
    "zz-taken.md": (
        b"---\ntitle: Judul lain\nslug: kabar-baik\n---\nIsi lain.\n",
        1,
        r"slug 'kabar-baik' is already used by .*good\.md",
    ),
}

ERROR_LINE = re.compile(r"^error: (?P<path>.+?):(?P<line>\d+): (?P<reason>.+)$")


def huge_file(path: Path) -> None:
    """Write a Markdown file just over the 10 MB limit."""
    head = b"---\ntitle: Besar sekali\n---\n"
    path.write_bytes(head + b"kata " * ((MAX_BYTES - len(head)) // 5 + 10))


def content_version(config: Path) -> int:
    """Read the store's change counter."""

    async def read(site: Site) -> int:
        try:
            async with transaction(site.engine) as session:
                return await ArticleStore(session, site.settings.site.base_url).version()
        finally:
            await site.aclose()

    return asyncio.run(read(Site.open(config)))


def slugs(result: CliResult) -> set[str]:
    """Return the slugs in an `articles list --json` result."""
    assert result.exit_code == 0, result.stderr
    return {row["slug"] for row in result.json()}


def test_each_bad_file_one_line_others_import(site_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "good.md").write_bytes(GOOD)
    (folder / "sub" / "also-good.md").write_bytes(b"---\ntitle: Juga baik\n---\nIsi juga.\n")
    for name, (data, _, _) in BAD.items():
        (folder / name).write_bytes(data)
    huge_file(folder / "huge.md")
    config = site_dir / DEFAULT_CONFIG

    result = run_module("--config", config, "articles", "add", folder)

    assert result.exit_code == 2
    assert "Traceback" not in result.stderr
    errors: dict[str, tuple[int, str]] = {}
    for text in result.error_lines:
        match = ERROR_LINE.match(text)
        assert match, f"not a one-line path:line: reason error: {text!r}"
        errors[Path(match["path"]).name] = (int(match["line"]), match["reason"])
    expected = {name: (line, reason) for name, (_, line, reason) in BAD.items()}
    expected["huge.md"] = (1, r"file is [\d,]+ bytes, over the 10 MB limit")
    assert set(errors) == set(expected), result.stderr
    for name, (line, reason) in expected.items():
        assert errors[name][0] == line, (name, errors[name])
        assert re.fullmatch(reason, errors[name][1]), (name, errors[name])
    assert "2 created, 0 updated, 0 unchanged, 14 failed" in result.stdout

    listed = slugs(run_module("--config", config, "articles", "list", "--json"))
    assert listed == {"kabar-baik", "juga-baik"}
    shown = run_module("--config", config, "articles", "show", "kabar-baik", "--json").json()
    assert shown["title"] == "Kabar baik"  # the taken slug still belongs to good.md
    assert shown["origin"] == str((folder / "good.md").resolve())


@pytest.mark.parametrize("name", [*BAD, "huge.md"])
def test_bad_rewrite_leaves_stored_article_untouched(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from publisher.cli.init import init_site

    monkeypatch.delenv("PUBLISHER_DATABASE__URL", raising=False)
    config = init_site(tmp_path / "site", base_url="https://news.example.org")
    good = tmp_path / "good.md"
    good.write_bytes(GOOD)
    story = tmp_path / "story.md"
    story.write_bytes(b"---\ntitle: Cerita\nslug: cerita\ntags: [a]\n---\nIsi cerita.\n")
    assert invoke(capsys, "--config", config, "articles", "add", good, story).exit_code == 0
    before = invoke(capsys, "--config", config, "articles", "show", "cerita", "--json").json()
    version = content_version(config)

    if name == "huge.md":
        huge_file(story)
    else:
        story.write_bytes(BAD[name][0])
    result = invoke(capsys, "--config", config, "articles", "add", story)

    assert result.exit_code == 2
    assert len(result.error_lines) == 1
    assert ERROR_LINE.match(result.error_lines[0]), result.stderr
    assert result.error_lines[0].startswith(f"error: {story}:")
    after = invoke(capsys, "--config", config, "articles", "show", "cerita", "--json").json()
    assert after == before
    assert content_version(config) == version
    listed = invoke(capsys, "--config", config, "articles", "list", "--json")
    assert {row["slug"] for row in listed.json()} == {"kabar-baik", "cerita"}


@pytest.mark.parametrize(
    ("timezone", "expected"),
    [("Asia/Jakarta", "2026-11-20T01:00:00+00:00"), ("Asia/Jayapura", "2026-11-19T23:00:00+00:00")],
)
def test_date_without_time_zone_uses_site_timezone(
    timezone: str,
    expected: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from publisher.cli.init import init_site

    monkeypatch.delenv("PUBLISHER_DATABASE__URL", raising=False)
    config = init_site(tmp_path / "site", timezone=timezone)
    story = tmp_path / "naive.md"
    story.write_text(
        "---\ntitle: Jam lokal\ndate: 2026-11-20 08:00:00\nupdated: 2026-11-20T09:30\n---\nIsi.\n",
        encoding="utf-8",
    )
    aware = tmp_path / "aware.md"
    aware.write_text(
        "---\ntitle: Jam Makassar\ndate: 2026-11-20T08:00:00+08:00\n---\nIsi.\n", encoding="utf-8"
    )
    assert invoke(capsys, "--config", config, "articles", "add", story, aware).exit_code == 0
    shown = invoke(capsys, "--config", config, "articles", "show", "jam-lokal", "--json").json()
    assert shown["published_at"] == expected
    hours = {"Asia/Jakarta": 7, "Asia/Jayapura": 9}[timezone]
    assert shown["updated_at"] == f"2026-11-20T{9 - hours:02d}:30:00+00:00"
    other = invoke(capsys, "--config", config, "articles", "show", "jam-makassar", "--json")
    assert other.json()["published_at"] == "2026-11-20T00:00:00+00:00"


def test_bad_date_names_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from publisher.cli.init import init_site

    config = init_site(tmp_path / "site")
    story = tmp_path / "bad-date.md"
    story.write_text("---\ntitle: Kapan\n\ndate: kemarin sore\n---\nIsi.\n", encoding="utf-8")
    result = invoke(capsys, "--config", config, "articles", "add", story)
    assert result.exit_code == 2
    assert result.error_lines == [f"error: {story}:4: date: not an ISO 8601 date: 'kemarin sore'"]


def test_control_character_in_front_matter_names_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from publisher.cli.init import init_site

    config = init_site(tmp_path / "site")
    story = tmp_path / "bell.md"
    story.write_text('---\ntitle: "Ok"\nauthor: "a\x07b"\n---\nIsi.\n', encoding="utf-8")
    result = invoke(capsys, "--config", config, "articles", "add", story)
    assert result.exit_code == 2
    assert result.error_lines == [
        f"error: {story}:3: malformed front matter: control character U+0007 is not allowed"
    ]


def test_missing_path_and_debug_do_not_traceback(site_dir: Path, tmp_path: Path) -> None:
    config = site_dir / DEFAULT_CONFIG
    (tmp_path / "good.md").write_bytes(GOOD)
    result = run_module(
        "--debug", "--config", config, "articles", "add", tmp_path / "nope.md", tmp_path / "good.md"
    )
    assert result.exit_code == 2
    assert result.error_lines == [f"error: {tmp_path / 'nope.md'}:1: no such file"]
    assert "created   kabar-baik" in result.stdout


def test_endless_device_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    # /dev/zero reports size 0 and never ends: reading it whole would exhaust memory.
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "from pathlib import Path\n"
        "from publisher.errors import InputError\n"
        "from publisher.ingest.source import read_text_file\n"
        "try:\n"
        "    read_text_file(Path('/dev/zero'))\n"
        "except InputError as exc:\n"
        "    print(exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.strip() == "/dev/zero: input is over the 10 MB limit"


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (("subscribers", "import"), "/dev/zero: a device, not a CSV file"),
        (("bounces", "process"), "/dev/zero: larger than 10485760 bytes; not a single message"),
    ],
)
def test_endless_device_is_refused_by_csv_import_and_bounces(
    site_dir: Path, command: tuple[str, ...], message: str
) -> None:
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "from publisher.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = ["--config", str(site_dir / DEFAULT_CONFIG), *command, "/dev/zero"]
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 2, done.stderr[-500:]
    assert done.stderr.strip() == f"error: {message}"
