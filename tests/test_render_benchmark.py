"""Smoke test of benchmarks/render.py at a tiny size (the real run is `make bench`)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_render_benchmark_prints_its_figures() -> None:
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "render.py"),
            "--messages",
            "200",
            "--rounds",
            "1",
            "--dkim-messages",
            "3",
            "--no-check",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    assert re.search(r"personalize without DKIM: [\d,]+ messages/s on one core", out)
    assert re.search(r"personalize with DKIM .*: [\d,]+ messages/s", out)
    assert re.search(r"render once per variant .*: [\d.]+ ms; HTML [\d,]+ bytes", out)
