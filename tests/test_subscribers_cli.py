"""`publisher subscribers ...` and `publisher bounces process` through the real CLI."""

from __future__ import annotations

import csv
import io
import mailbox
import shutil
from pathlib import Path

import pytest

from tests.bounce_helpers import delivered_to
from tests.clirunner import CliResult, invoke
from tests.smtp_servers import RecordingHandler, threaded_smtp_server

DATA = Path(__file__).parent / "data" / "bounces"


def cli(capsys: pytest.CaptureFixture[str], site_dir: Path, *args: str | Path) -> CliResult:
    return invoke(capsys, "--config", site_dir / "publisher.toml", *args)


def test_add_list_export_remove(capsys: pytest.CaptureFixture[str], site_dir: Path) -> None:
    added = cli(
        capsys,
        site_dir,
        "subscribers",
        "add",
        "Siti@Example.org",
        "--name",
        "Siti",
        "--lang",
        "id",
        "--timezone",
        "Asia/Makassar",
        "--frequency",
        "weekly",
        "--topic",
        "Ekonomi",
        "--confirmed",
    )
    assert added.exit_code == 0, added.stderr
    assert "Siti@example.org (active)" in added.stdout
    again = cli(capsys, site_dir, "subscribers", "add", "siti@EXAMPLE.org", "--confirmed")
    assert again.exit_code == 2
    assert again.error_lines == ["error: siti@example.org is already on the list (active)"]
    listed = cli(capsys, site_dir, "subscribers", "list", "--json", "--status", "active")
    assert listed.exit_code == 0
    [row] = listed.json()
    assert (row["email"], row["timezone"], row["frequency"], row["topics"]) == (
        "Siti@example.org",
        "Asia/Makassar",
        "weekly",
        ["ekonomi"],
    )
    assert row["consent_source"] == "cli"
    out = site_dir / "export.csv"
    exported = cli(capsys, site_dir, "subscribers", "export", out)
    assert exported.exit_code == 0
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert rows[0]["consent_source"] == "cli"
    to_stdout = cli(capsys, site_dir, "subscribers", "export")
    assert next(iter(csv.DictReader(io.StringIO(to_stdout.stdout))))["email"] == "Siti@example.org"
    removed = cli(capsys, site_dir, "subscribers", "remove", "SITI@example.org")
    assert removed.exit_code == 0
    missing = cli(capsys, site_dir, "subscribers", "remove", "siti@example.org")
    assert missing.exit_code == 2
    assert missing.error_lines == ["error: no subscriber 'siti@example.org'"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bad-address"], "invalid email address 'bad-address'"),
        (["a@example.org", "--timezone", "Mars/Base"], "unknown time zone 'Mars/Base'"),
        (["a@example.org", "--lang", "xx"], "unsupported language 'xx'"),
    ],
)
def test_add_rejects_bad_input_in_one_line(
    capsys: pytest.CaptureFixture[str], site_dir: Path, args: list[str], message: str
) -> None:
    result = cli(capsys, site_dir, "subscribers", "add", *args, "--confirmed")
    assert result.exit_code == 2
    assert len(result.error_lines) == 1
    assert message in result.error_lines[0]


def test_import_reports_bad_rows_and_keeps_suppression(
    capsys: pytest.CaptureFixture[str], site_dir: Path
) -> None:
    path = site_dir / "list.csv"
    path.write_text(
        "\ufeffemail,name,language,timezone,frequency,topics\n"
        "a@example.org,A,id,Asia/Jakarta,daily,\n"
        "broken,B,,,,\n"
        "c@example.org,C,en,Asia/Jayapura,weekly,sport;ekonomi\n",
        encoding="utf-8",
    )
    first = cli(capsys, site_dir, "subscribers", "import", path, "--confirmed")
    assert first.exit_code == 2
    assert first.error_lines == [
        f"error: {path}:3: invalid email address 'broken': An email address must have an @-sign."
    ]
    assert "2 created, 0 updated, 0 unchanged, 0 suppressed (skipped), 1 failed" in first.stdout
    # Hard bounce for a, then delete and re-import: a stays out.
    eml = site_dir / "bounce.eml"
    raw = (
        (DATA / "dsn-hard.eml")
        .read_bytes()
        .replace(b"hilang@example.net", b"a@example.org")
        .replace(b"Hilang@Example.NET", b"A@example.org")
    )
    eml.write_bytes(delivered_to(site_dir, raw, "a@example.org"))
    processed = cli(capsys, site_dir, "bounces", "process", eml)
    assert processed.exit_code == 0, processed.stderr
    assert "1 hard" in processed.stdout
    assert cli(capsys, site_dir, "subscribers", "remove", "a@example.org").exit_code == 0
    again = cli(capsys, site_dir, "subscribers", "import", path, "--confirmed")
    assert "0 created, 0 updated, 1 unchanged, 1 suppressed (skipped), 1 failed" in again.stdout
    listed = cli(capsys, site_dir, "subscribers", "list", "--json").json()
    assert [r["email"] for r in listed] == ["c@example.org"]
    refused = cli(capsys, site_dir, "subscribers", "add", "A@example.org", "--confirmed")
    assert refused.exit_code == 2
    assert "is suppressed (hard-bounce)" in refused.error_lines[0]


def test_bounces_process_maildir_and_mbox(
    capsys: pytest.CaptureFixture[str], site_dir: Path, tmp_path: Path
) -> None:
    readers = (
        "hilang@example.net",
        "pengadu@example.com",
        "penuh@example.net",
        "tiada@example.co.id",
    )
    for address in readers:
        assert cli(capsys, site_dir, "subscribers", "add", address, "--confirmed").exit_code == 0
    # Each report answers a message we sent: it arrives at that message's return path.
    answers = {
        "dsn-hard.eml": "hilang@example.net",
        "arf-complaint.eml": "pengadu@example.com",
        "dsn-soft.eml": "penuh@example.net",
        "dsn-mailbox-full.eml": "penuh@example.net",
        "exim-hard.eml": "tiada@example.co.id",
    }
    reports = {
        eml.name: delivered_to(site_dir, eml.read_bytes(), answers[eml.name])
        if eml.name in answers
        else eml.read_bytes()
        for eml in sorted(DATA.glob("*.eml"))
    }
    maildir = mailbox.Maildir(tmp_path / "Maildir")
    for raw in reports.values():
        maildir.add(raw)
    result = cli(capsys, site_dir, "bounces", "process", tmp_path / "Maildir")
    assert result.exit_code == 0, result.stderr
    assert (
        "6 messages: 2 hard, 2 soft, 1 complaints, 3 suppressed, 0 already recorded, "
        "1 unrecognized, 0 ignored (not answering mail we sent), 0 malformed"
    ) in result.stdout
    mbox = mailbox.mbox(tmp_path / "box.mbox")
    for raw in reports.values():
        mbox.add(raw)
    mbox.close()
    again = cli(capsys, site_dir, "bounces", "process", tmp_path / "box.mbox")
    assert "5 already recorded" in again.stdout
    statuses = {
        r["email"]: r["status"]
        for r in cli(capsys, site_dir, "subscribers", "list", "--json").json()
    }
    assert statuses == {
        "hilang@example.net": "bounced",
        "pengadu@example.com": "complained",
        "penuh@example.net": "active",
        "tiada@example.co.id": "bounced",
    }
    missing = cli(capsys, site_dir, "bounces", "process", tmp_path / "nothing")
    assert missing.exit_code == 2
    shutil.rmtree(tmp_path / "Maildir" / "cur")
    broken = cli(capsys, site_dir, "bounces", "process", tmp_path / "Maildir")
    assert broken.exit_code == 2
    assert "must be a maildir" in broken.error_lines[0]


def test_add_unconfirmed_sends_a_confirmation(
    capsys: pytest.CaptureFixture[str], site_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = RecordingHandler()
    with threaded_smtp_server(handler) as port:
        monkeypatch.setenv("PUBLISHER_MAIL__SMTP_URL", f"smtp://127.0.0.1:{port}")
        result = cli(capsys, site_dir, "subscribers", "add", "Baru@Example.org", "--lang", "en")
        assert result.exit_code == 0, result.stderr
        assert "added Baru@example.org (pending); confirmation email sent" in result.stdout
    [message] = handler.delivered["Baru@example.org"]
    assert b"/confirm/" in message
    listed = cli(capsys, site_dir, "subscribers", "list", "--json", "--status", "pending").json()
    assert [r["email"] for r in listed] == ["Baru@example.org"]
