"""The acceptance journey in Chromium against real `publisher serve` and `publisher mailsink`:
from an article page to a confirmed subscription, last week's digest read at the address in
its email, then unsubscribing by mail through `publisher bounces process`."""

from __future__ import annotations

import mailbox
import re
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from publisher.resources import samples_dir
from tests.clirunner import run_module
from tests.test_subscription_browser import _mails, _subscriber, _text, _wait_for, served

__all__ = ["served"]  # the fixture: mailsink and serve as real processes
pytestmark = [pytest.mark.browser, pytest.mark.slow]
READER = "pembaca.setia@example.org"


def _html(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def test_article_page_to_confirmed_subscription_archive_and_unsubscribe_by_mail(
    browser: Any,
    served: tuple[str, Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, config, mail_dir = served
    monkeypatch.setenv("PUBLISHER_MAIL__UNSUBSCRIBE_MAILTO", "keluar@kabar.example.org")
    added = run_module("--config", config, "articles", "add", samples_dir())
    assert added.exit_code == 0, added.stderr

    context = browser.new_context(locale="id-ID", viewport={"width": 375, "height": 800})
    try:
        page = context.new_page()
        page.goto(f"{base}/")
        page.locator("article.card h2 a").first.click()
        page.wait_for_url(re.compile(r".*/articles/[a-z0-9-]+$"))
        # The short form on the article page, then the full form it opens, prefilled.
        page.fill("#subscribe-cta-email", READER)
        page.click("aside.subscribe-cta button")
        page.wait_for_selector("form.subscription")
        assert page.input_value("form.subscription input[name=email]") == READER
        page.select_option("select[name=language]", "id")
        page.check("input[name=frequency][value=weekly]")
        page.click("form.subscription button[type=submit]")
        # The form speaks the article's language (the newest sample may be English).
        page.wait_for_selector("text=/Periksa kotak masuk Anda|Check your inbox/")
        confirmation = _wait_for(lambda: _mails(mail_dir), "the confirmation email")[0]
        link = re.search(rf"{re.escape(base)}/confirm/[A-Za-z0-9._-]+", _text(confirmation))
        assert link is not None
        page.goto(link[0])
        page.click("button[type=submit]")
        page.wait_for_selector("text=Langganan dikonfirmasi")
        assert _subscriber(config, READER)["status"] == "active"

        # A new article, then the week's digest goes out through the mail sink.
        story = tmp_path / "pekan-ini.md"
        published = (datetime.now(UTC) - timedelta(minutes=30)).isoformat(timespec="seconds")
        story.write_text(
            "---\ntitle: Pelabuhan Baru Sorong Dibuka\nslug: pelabuhan-baru-sorong\n"
            f"date: {published}\nauthor: Rina Wulandari\nlang: id\n"
            "summary: Pelabuhan peti kemas baru di Sorong mulai beroperasi.\n---\n\n"
            "Pelabuhan peti kemas baru di Sorong mulai beroperasi pekan ini.\n",
            encoding="utf-8",
        )
        added = run_module("--config", config, "articles", "add", story)
        assert added.exit_code == 0, added.stderr
        sent = run_module("--config", config, "digest", "send", "--frequency", "weekly")
        assert sent.exit_code == 0, sent.stderr
        digest = _wait_for(
            lambda: [m for m in _mails(mail_dir) if m["List-Id"]], "the weekly digest"
        )[0]
        assert "PELABUHAN BARU SORONG DIBUKA" in _text(digest)  # titles are capitals in text
        archive = re.search(rf'href="({re.escape(base)}/digests/weekly-[0-9-]+/id)"', _html(digest))
        assert archive is not None, "no view-in-browser link to the archive"
        assert digest["List-Archive"] == f"<{base}/digests/>"

        # Read it on the web at the address in the email: the same digest, nobody's data.
        page.goto(archive[1])
        assert page.locator("text=Pelabuhan Baru Sorong Dibuka").count() >= 1
        content = page.content()
        assert READER not in content
        assert "/unsubscribe/" not in content
        assert "/preferences/" not in content
        page.goto(f"{base}/digests/")
        assert page.locator(f'a[href="{archive[1]}"]').count() == 1
    finally:
        context.close()

    # Unsubscribe by mail: a reply to the mailto of List-Unsubscribe.
    header = " ".join(str(digest["List-Unsubscribe"]).split())
    mailto = re.search(r"<mailto:([^?>]+)\?subject=([^>]+)>", header)
    assert mailto is not None, header
    request = EmailMessage()
    request["From"] = READER
    request["To"] = mailto[1]
    request["Subject"] = mailto[2].replace("%20", " ")
    request.set_content("Berhenti.\n")
    box = mailbox.Maildir(tmp_path / "unsubscribe-box", create=True)
    box.add(request)
    processed = run_module("--config", config, "bounces", "process", tmp_path / "unsubscribe-box")
    assert processed.exit_code == 0, processed.stderr
    assert "1 unsubscribed by mail" in processed.stdout, processed.stdout
    assert _subscriber(config, READER)["status"] == "unsubscribed"
    time.sleep(2.0)
    subjects = [str(m["Subject"]).lower() for m in _mails(mail_dir)]
    assert not [s for s in subjects if "berhenti" in s], subjects  # no mail after unsubscribing
