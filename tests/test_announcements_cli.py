"""`publisher announcements` against a real site, database and loopback SMTP server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clirunner import CliResult, invoke
from tests.smtp_servers import RecordingHandler, threaded_smtp_server

pytestmark = pytest.mark.postgres


def cli(capsys: pytest.CaptureFixture[str], site_dir: Path, *args: str | Path) -> CliResult:
    return invoke(capsys, "--config", str(site_dir / "publisher.toml"), *args)


def test_create_list_send_test_send_and_cancel(
    capsys: pytest.CaptureFixture[str],
    site_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handler = RecordingHandler()
    with threaded_smtp_server(handler) as port:
        monkeypatch.setenv("PUBLISHER_MAIL__SMTP_URL", f"smtp://127.0.0.1:{port}")
        for email, lang in (("a@example.org", "id"), ("b@example.org", "en")):
            added = cli(
                capsys, site_dir, "subscribers", "add", email, "--lang", lang, "--confirmed"
            )
            assert added.exit_code == 0, added.stderr
        body = tmp_path / "body.md"
        body.write_text("Kami punya **aplikasi** baru.\n", encoding="utf-8")
        created = cli(
            capsys,
            site_dir,
            "announcements",
            "create",
            "--subject",
            "Aplikasi baru",
            "--body",
            body,
            "--to-lang",
            "id",
        )
        assert created.exit_code == 0, created.stderr
        assert "created announcement 1 (draft) for 1 readers" in created.stdout
        listed = cli(capsys, site_dir, "announcements", "list", "--json").json()
        assert [(a["id"], a["status"], a["audience"]["languages"]) for a in listed] == [
            (1, "draft", ["id"])
        ]
        test = cli(capsys, site_dir, "announcements", "send", "1", "--to", "ed@example.org")
        assert test.exit_code == 0, test.stderr
        assert handler.count("ed@example.org") == 1
        sent = cli(capsys, site_dir, "announcements", "send", "1")
        assert sent.exit_code == 0, sent.stderr
        delivered = cli(capsys, site_dir, "digest", "send", "--resume")
        assert delivered.exit_code == 0, delivered.stderr
        assert handler.count("a@example.org") == 1
        assert handler.count("b@example.org") == 0
        again = cli(capsys, site_dir, "announcements", "send", "1")
        assert again.exit_code == 2
        assert again.error_lines == ["error: announcement 1 is sent: only a draft can be sent"]
        late = cli(capsys, site_dir, "announcements", "cancel", "1")
        assert late.error_lines == ["error: announcement 1 is sent: too late to cancel"]

    second = cli(capsys, site_dir, "announcements", "create", "--subject", "Later", "--body", body)
    assert second.exit_code == 0, second.stderr
    scheduled = cli(capsys, site_dir, "announcements", "send", "2", "--at", "2099-01-01 07:00")
    assert scheduled.exit_code == 0, scheduled.stderr
    assert "scheduled for 2099-01-01 07:00" in scheduled.stdout
    cancelled = cli(capsys, site_dir, "announcements", "cancel", "2")
    assert cancelled.stdout.strip() == "announcement 2 cancelled"


def test_bad_input_is_one_line(
    capsys: pytest.CaptureFixture[str], site_dir: Path, tmp_path: Path
) -> None:
    body = tmp_path / "body.md"
    body.write_bytes(b"\xff\xfe not utf-8")
    bad_body = cli(capsys, site_dir, "announcements", "create", "--subject", "S", "--body", body)
    assert bad_body.exit_code == 2
    assert bad_body.error_lines == [f"error: {body}: not UTF-8 text (byte 0)"]
    body.write_text("ok", encoding="utf-8")
    injected = cli(
        capsys, site_dir, "announcements", "create", "--subject", "S\nBcc: x@y", "--body", body
    )
    assert injected.error_lines == ["error: subject: line breaks are not allowed in a subject"]
    missing = cli(
        capsys, site_dir, "announcements", "create", "--subject", "S", "--body", tmp_path / "no"
    )
    assert missing.exit_code == 2
    assert len(missing.error_lines) == 1
    assert "No such file" in missing.error_lines[0]
    when = cli(capsys, site_dir, "announcements", "send", "1", "--at", "tomorrow")
    assert when.error_lines == ["error: --at: 'tomorrow' is not YYYY-MM-DD HH:MM"]
    unknown = cli(capsys, site_dir, "announcements", "send", "99")
    assert unknown.error_lines == ["error: no announcement 99"]


def test_the_cli_body_limit_is_the_stores() -> None:
    from publisher.cli import announcements as command
    from publisher.delivery import announcements

    assert command.MAX_BODY == announcements.MAX_BODY
