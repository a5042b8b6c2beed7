"""Smoke-run benchmarks/import.py at a small size so the script keeps working."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_benchmark_prints_one_line_per_format() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "import.py"), "--count", "20", "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines, result.stderr
    pattern = re.compile(r"^(\w+): 20 articles in \d+\.\d\d s \(\d+ articles/s\)$")
    assert all(pattern.match(line) for line in lines), lines
    assert lines[0].startswith("markdown: ")
