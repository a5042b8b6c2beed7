"""Smoke-run benchmarks/send.py at a tiny size so the script keeps working (full: make bench)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "send.py"
SMTP_SINK = Path("/usr/sbin/smtp-sink")


@pytest.mark.slow
def test_send_benchmark_runs_small() -> None:
    if not SMTP_SINK.exists():
        if os.environ.get("CI"):
            pytest.fail("smtp-sink (Debian package postfix) is required under CI=true")
        pytest.skip("smtp-sink is not installed (Debian package postfix)")
    completed = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--subscribers",
            "300",
            "--command-subscribers",
            "300",
            "--no-check",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    assert "send: 300 active subscribers, 2 variants" in out
    assert "pipeline: 300 sent, 0 not sent" in out
    assert "ceiling (bare aiosmtplib" in out
    assert "pipeline / ceiling:" in out
    assert "peak RSS:" in out
    assert "whole command: `publisher digest send` to 300 subscribers" in out
