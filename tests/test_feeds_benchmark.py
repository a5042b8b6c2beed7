"""Smoke test of benchmarks/feeds.py at a tiny size (the full run is `make bench`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "feeds.py"


@pytest.mark.slow
def test_benchmark_script_prints_its_figures() -> None:
    args = ["--small", "60", "--large", "300", "--repeat", "2", "--duration", "1"]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "build ratio 300 / 60 articles:" in out
    assert "serve /feed.xml 304 (If-None-Match):" in out
    assert "serve /feed.xml 200 (gzip):" in out
    assert "feed rebuilds during the load: 0" in out
