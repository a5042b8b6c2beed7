"""An editor's day in Chromium against real `publisher serve` and `publisher mailsink` processes:
log in, write and publish an article, find it in /feed.xml, preview the digest, send a test
copy into the sink, and a viewer who cannot change anything."""

from __future__ import annotations

import email
import email.policy
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import feedparser
import pytest

from publisher.cli.init import init_site
from tests.admin_helpers import PASSWORD
from tests.clirunner import ROOT
from tests.services import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _wait_for(check: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _publisher(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "publisher", "--config", str(config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
        check=False,
    )


@pytest.fixture
def served(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Path, Path]]:
    """Run `publisher mailsink` and `publisher serve` as real processes on loopback."""
    web_port, smtp_port = free_port(), free_port()
    base = f"http://127.0.0.1:{web_port}"
    site_dir = tmp_path / "site"
    monkeypatch.setenv("PUBLISHER_DATABASE__URL", database_url)
    monkeypatch.setenv("PUBLISHER_MAIL__SMTP_URL", f"smtp://127.0.0.1:{smtp_port}")
    init_site(site_dir, title="Kabar Redaksi", base_url=base)
    config = site_dir / "publisher.toml"
    for email_address, role in [
        ("redaksi@example.org", "editor"),
        ("tamu@example.org", "viewer"),
    ]:
        added = _publisher(
            config,
            "users",
            "add",
            email_address,
            "--role",
            role,
            "--password-stdin",
            stdin=PASSWORD + "\n",
        )
        assert added.returncode == 0, added.stderr
    mail_dir = tmp_path / "mail"
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
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # The server logs to a file: an undrained pipe would block it once full.
    log = (tmp_path / "serve.log").open("wb")
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
        env=_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=1) as response:
                    return bool(response.status == 200)
            except OSError:
                return False

        _wait_for(healthy, "publisher serve", timeout=60)
        yield base, config, mail_dir
    finally:
        for process in (server, sink):
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def _log_in(page: Any, base: str, email_address: str) -> None:
    page.goto(f"{base}/admin/")
    assert "/admin/login" in page.url
    page.fill("input[name=email]", email_address)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_selector("h1:has-text('Dashboard')")


def test_an_editors_day(browser: Any, served: tuple[str, Path, Path]) -> None:
    base, _config, mail_dir = served
    context = browser.new_context(locale="en-US", viewport={"width": 375, "height": 800})
    page = context.new_page()
    failures: list[str] = []
    # Every script, style and htmx request the app makes must succeed (the favicon is not ours).
    page.on(
        "response",
        lambda r: (
            failures.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico")
            else None
        ),
    )
    try:
        _log_in(page, base, "redaksi@example.org")
        page.click("nav >> text=Articles")
        page.click("text=Write an article")
        page.fill("input[name=title]", "Feri baru ke Ambon")
        page.fill("input[name=tags]", "Transportasi, Maluku")
        page.select_option("select[name=lang]", "id")
        # The live preview (htmx) shows the text while it is typed, before saving.
        page.locator("textarea[name=body_markdown]").press_sequentially(
            "Kapal **baru** mulai berlayar.", delay=5
        )
        page.wait_for_selector("#preview strong:has-text('baru')", timeout=30_000)
        page.wait_for_selector("#preview iframe.digest", timeout=30_000)
        page.select_option("select[name=status]", "published")
        page.click("#article-form button[type=submit]")
        page.wait_for_selector("text=Saved.")
        assert page.url.endswith("/admin/articles/feri-baru-ke-ambon?saved=1")

        feed = feedparser.parse(urllib.request.urlopen(f"{base}/feed.xml", timeout=10).read())
        assert [entry.title for entry in feed.entries] == ["Feri baru ke Ambon"]

        page.goto(f"{base}/admin/digests?lang=id&tz=Asia/Jayapura")
        subject = page.text_content("#digest-subject") or ""
        assert subject.strip()
        frame = page.frame_locator("iframe.digest")
        frame.locator("text=Feri baru ke Ambon").first.wait_for(timeout=30_000)
        page.fill("input[name=email]", "uji.redaksi@example.org")
        with page.expect_navigation(url=lambda url: "notice=" in url, timeout=120_000):
            page.click("button:has-text('Send test copy')")
        assert "sent a test copy to uji.redaksi@example.org" in page.content(), page.content()[
            -3000:
        ]
        sent = _wait_for(lambda: sorted(mail_dir.glob("*.eml")), "the test copy in the sink")
        message = email.message_from_bytes(sent[-1].read_bytes(), policy=email.policy.default)
        assert message["To"] == "uji.redaksi@example.org"
        text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert "FERI BARU KE AMBON" in text.upper()
        assert failures == []
    finally:
        context.close()


def test_a_viewer_cannot_change_anything(browser: Any, served: tuple[str, Path, Path]) -> None:
    base, _config, _mail = served
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    try:
        _log_in(page, base, "tamu@example.org")
        page.goto(f"{base}/admin/articles")
        assert page.locator("text=Write an article").count() == 0
        page.goto(f"{base}/admin/articles/new")
        assert page.locator("#article-form fieldset[disabled]").count() == 1
        assert page.locator("#article-form button[type=submit]").count() == 0
        page.goto(f"{base}/admin/subscribers")
        assert page.locator("form[action='/admin/subscribers/new']").count() == 0
        page.goto(f"{base}/admin/digests")
        assert page.locator("text=Send test copy").count() == 0
        # Forging the POST from the viewer's own session (with its CSRF token) is refused.
        token = page.locator("input[name=csrf]").first.get_attribute("value")
        response = page.request.post(
            f"{base}/admin/articles/new",
            form={
                "csrf": token or "",
                "title": "T",
                "body_markdown": "B",
                "lang": "id",
                "status": "published",
            },
            max_redirects=0,
        )
        assert response.status == 403
        assert page.request.get(f"{base}/admin/users", max_redirects=0).status == 403
    finally:
        context.close()


def test_an_announcement_from_compose_to_inbox(
    browser: Any, served: tuple[str, Path, Path]
) -> None:
    base, config, mail_dir = served
    for address, lang in (("pembaca@example.org", "id"), ("reader@example.org", "en")):
        added = _publisher(config, "subscribers", "add", address, "--lang", lang, "--confirmed")
        assert added.returncode == 0, added.stderr
    context = browser.new_context(locale="en-US", viewport={"width": 375, "height": 800})
    page = context.new_page()
    failures: list[str] = []
    page.on(
        "response",
        lambda r: (
            failures.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico")
            else None
        ),
    )
    try:
        _log_in(page, base, "redaksi@example.org")
        page.click("nav >> text=Announcements")
        page.click("text=New announcement")
        # The live count (htmx) answers as the audience is chosen.
        page.wait_for_selector("#audience-count:has-text('2')", timeout=30_000)
        page.check("input[name=to_lang_id]")
        page.wait_for_selector("#audience-count:has-text('1')", timeout=30_000)
        page.fill("input[name=subject]", "Kabar kini punya aplikasi")
        page.locator("textarea[name=body_markdown]").press_sequentially(
            "Unduh **sekarang**.", delay=5
        )
        page.wait_for_selector("#announcement-subject:has-text('aplikasi')", timeout=30_000)
        frame = page.frame_locator("#preview iframe.digest")
        frame.locator("strong:has-text('sekarang')").wait_for(timeout=30_000)
        page.click("#announcement-form button[type=submit]")
        page.wait_for_selector("#announcement-status")
        page.fill("input[name=email]", "uji.redaksi@example.org")
        # Submitted from the keyboard: a click's coordinates can land in the preview frame
        # above while the page scrolls (its "View in browser" link then takes the click).
        with page.expect_navigation(url=lambda url: "notice=" in url, timeout=120_000):
            page.press("input[name=email]", "Enter")
        _wait_for(lambda: len(list(mail_dir.glob("*.eml"))) == 1, "the test copy in the sink")
        with page.expect_navigation(url=lambda url: "notice=queued" in url, timeout=120_000):
            page.locator("form[action$='/send'] button[type=submit]").press("Enter")
        # The worker (here `digest send --resume`, the same delivery) sends it out.
        delivered = _publisher(config, "digest", "send", "--resume")
        assert delivered.returncode == 0, delivered.stderr
        saved = _wait_for(lambda: len(list(mail_dir.glob("*.eml"))) == 2 and True, "delivery")
        assert saved
        recipients = sorted(
            str(email.message_from_bytes(p.read_bytes(), policy=email.policy.default)["To"])
            for p in mail_dir.glob("*.eml")
        )
        assert recipients == ["pembaca@example.org", "uji.redaksi@example.org"]
        page.reload()
        page.wait_for_selector("#progress:has-text('100%')", timeout=30_000)
        assert failures == []
    finally:
        context.close()
