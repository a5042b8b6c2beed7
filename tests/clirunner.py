"""Run the real `publisher` command: in a subprocess, or in-process with captured output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from publisher.cli import main

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class CliResult:
    """What one run of the command did."""

    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """Parse stdout as the one JSON document `--json` promises."""
        return json.loads(self.stdout)

    @property
    def error_lines(self) -> list[str]:
        """Return the non-empty lines written to stderr."""
        return [line for line in self.stderr.splitlines() if line.strip()]


def run_module(*args: str | Path, cwd: Path | None = None, timeout: float = 120) -> CliResult:
    """Run ``python -m publisher ARGS`` in a subprocess (environment inherited)."""
    env = dict(os.environ)
    # Import the checkout under test even when cwd is elsewhere.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("COLUMNS", "200")
    completed = subprocess.run(
        [sys.executable, "-m", "publisher", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
        check=False,
    )
    return CliResult(completed.returncode, completed.stdout, completed.stderr)


def invoke(capsys: pytest.CaptureFixture[str], *args: str | Path) -> CliResult:
    """Run ``publisher.cli.main(ARGS)`` in this process and capture what it printed."""
    capsys.readouterr()
    try:
        main([str(arg) for arg in args])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    else:  # pragma: no cover - main() always exits
        code = 0
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)
