"""End to end in Chromium: subscribe, confirm from the emailed link, change preferences,
then leave through the digest's List-Unsubscribe one-click POST."""

from __future__ import annotations

import email
import email.policy
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from publisher.cli.init import init_site
from publisher.config import load_settings
from publisher.db import create_sync_engine
from publisher.resources import samples_dir
from subscribers.models import Subscriber
from tests.clirunner import ROOT, run_module
from tests.services import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _wait_for(check: Any, what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path, Path]]:
    """Run `publisher mailsink` and `publisher serve` as real processes on loopback."""
    web_port, smtp_port = free_port(), free_port()
    base = f"http://127.0.0.1:{web_port}"
    site_dir = tmp_path / "site"
    monkeypatch.setenv("PUBLISHER_DATABASE__URL", f"sqlite:///{tmp_path / 'publisher.db'}")
    monkeypatch.setenv("PUBLISHER_MAIL__SMTP_URL", f"smtp://127.0.0.1:{smtp_port}")
    init_site(site_dir, title="Kabar Uji", base_url=base)
    config = site_dir / "publisher.toml"
    mail_dir = tmp_path / "mail"
    env = _env({})
    sink = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "publisher",
            "mailsink",
            "--port",
            str(smtp_port),
            "--dir",
            str(mail_dir),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "publisher",
            "--config",
            str(config),
            "serve",
            "--port",
            str(web_port),
            "--no-access-log",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=1) as response:
                    return bool(response.status == 200)
            except OSError:
                return False

        _wait_for(healthy, "publisher serve", timeout=90)  # a loaded machine starts slowly
        yield base, config, mail_dir
    finally:
        for process in (server, sink):
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _mails(mail_dir: Path) -> list[EmailMessage]:
    paths = sorted(mail_dir.glob("*.eml")) if mail_dir.is_dir() else []
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in paths]


def _text(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def _subscriber(config: Path, address: str) -> dict[str, Any]:
    # Read the row straight from the database the server writes (no CLI start-up per look).
    engine = create_sync_engine(load_settings(config).database.url)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                sa.select(Subscriber.__table__).where(Subscriber.email_key == address.lower())
            ).one()
            return dict(row._mapping)
    finally:
        engine.dispose()


def test_subscribe_confirm_preferences_and_one_click_unsubscribe(
    browser: Any, served: tuple[str, Path, Path], tmp_path: Path
) -> None:
    base, config, mail_dir = served
    context = browser.new_context(locale="id-ID")
    try:
        page = context.new_page()
        page.goto(f"{base}/subscribe")
        assert page.locator("html").get_attribute("lang") == "id"
        page.fill("input[name=email]", "Pembaca.Uji@Example.org")
        page.fill("input[name=name]", "Pembaca Uji")
        page.select_option("select[name=timezone]", "Asia/Jayapura")
        page.click("button[type=submit]")
        page.wait_for_selector("text=Periksa kotak masuk Anda")

        confirmation = _wait_for(lambda: _mails(mail_dir), "the confirmation email")[0]
        assert confirmation["To"].addresses[0].addr_spec == "Pembaca.Uji@example.org"
        found = re.search(rf"{re.escape(base)}/confirm/[A-Za-z0-9._-]+", _text(confirmation))
        assert found is not None, _text(confirmation)
        page.goto(found[0])
        assert _subscriber(config, "Pembaca.Uji@example.org")["status"] == "pending"
        page.click("button[type=submit]")
        page.wait_for_selector("text=Langganan dikonfirmasi")
        row = _subscriber(config, "Pembaca.Uji@example.org")
        assert (row["status"], row["timezone"], row["consent_source"]) == (
            "active",
            "Asia/Jayapura",
            "web",
        )
        assert row["consent_ip"] == "127.0.0.1"
        assert "HeadlessChrome" in row["consent_user_agent"]

        page.click("text=Ubah preferensi Anda")
        page.select_option("select[name=language]", "en")
        page.select_option("select[name=timezone]", "Asia/Makassar")
        page.check("input[name=frequency][value=weekly]")
        page.click("form.subscription button[type=submit]")
        page.wait_for_selector("text=Your preferences are saved.")
        row = _subscriber(config, "Pembaca.Uji@example.org")
        assert (row["language"], row["timezone"], row["frequency"]) == (
            "en",
            "Asia/Makassar",
            "weekly",
        )
    finally:
        context.close()

    # The digest this reader would get carries the RFC 8058 headers.
    added = run_module("--config", config, "articles", "add", samples_dir())
    assert added.exit_code == 0, added.stderr
    out = tmp_path / "preview"
    preview = run_module(
        "--config",
        config,
        "digest",
        "preview",
        "--subscriber",
        "pembaca.uji@example.org",
        "--out",
        out,
    )
    assert preview.exit_code == 0, preview.stderr
    digest = email.message_from_bytes(
        (out / "digest.eml").read_bytes(), policy=email.policy.default
    )
    assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    target = re.search(r"<(https?://[^>]+)>", str(digest["List-Unsubscribe"]))
    assert target is not None
    assert target[1].startswith(f"{base}/unsubscribe/")
    # What a mailbox provider does: a bare POST, no cookies, no CSRF token.
    bare = browser.new_context()  # a fresh context: no cookies at all
    client = bare.request
    try:
        for _ in range(2):
            response = client.post(
                target[1],
                data="List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                max_redirects=0,
            )
            assert response.status == 200
    finally:
        bare.close()
    assert _subscriber(config, "Pembaca.Uji@example.org")["status"] == "unsubscribed"
    # No mail after unsubscribing (mail.unsubscribe_notice is off by default).
    time.sleep(2.0)
    subjects = [str(m["Subject"]).lower() for m in _mails(mail_dir)]
    assert not [s for s in subjects if "berhenti" in s or "unsubscribed" in s], subjects
