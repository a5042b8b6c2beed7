"""`publisher demo` runs the main job end to end on embedded defaults."""

from __future__ import annotations

import email
import email.policy
import os
import subprocess
import sys
from pathlib import Path

import feedparser


def run_demo(directory: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUBLISHER_")}
    return subprocess.run(
        [sys.executable, "-m", "publisher", "demo", "--dir", str(directory), "--no-serve"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def test_demo_imports_builds_sends_and_is_safe_to_rerun(tmp_path: Path) -> None:
    site = tmp_path / "demo"
    first = run_demo(site)
    assert first.returncode == 0, first.stderr
    assert "articles: 9 created" in first.stdout or "articles: 10 created" in first.stdout
    assert "subscribers: 6 created" in first.stdout
    feed = feedparser.parse((site / "public" / "feed.xml").read_bytes())
    assert feed.bozo == 0
    assert len(feed.entries) == 9  # the tenth sample is a draft
    mails = sorted((site / "mail").glob("*.eml"))
    assert len(mails) == 5
    recipients = set()
    for path in mails:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        recipients.add(str(message["To"]))
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert len(recipients) == 5
    assert "schedule (`publisher schedule run`)" in first.stdout
    assert "Asia/Jayapura" in first.stdout

    again = run_demo(site)
    assert again.returncode == 0, again.stderr
    assert "10 unchanged" in again.stdout
    assert len(list((site / "mail").glob("*.eml"))) == 5  # nobody gets the edition twice
