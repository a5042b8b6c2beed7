"""Real `publisher serve` processes (uvicorn in subprocesses) sharing one site and database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.services import free_port

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def serve_processes(
    config: Path, count: int, *, env: dict[str, str] | None = None
) -> Iterator[list[str]]:
    """Start ``count`` servers on free loopback ports; yield their base URLs; stop them."""
    environment = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    started: list[tuple[subprocess.Popen[bytes], str]] = []
    try:
        for number in range(count):
            # A file, not a pipe: a pipe nobody reads would block a chatty server.
            log = (config.parent / f"serve-{number}.log").open("wb")
            port = free_port()
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "publisher",
                    "--config",
                    str(config),
                    "serve",
                    "--port",
                    str(port),
                ],
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            log.close()
            started.append((process, f"http://127.0.0.1:{port}"))
        for process, url in started:
            _wait_until_up(process, url, config.parent)
        yield [url for _, url in started]
    finally:
        for process, _ in started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _ in started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def server_log(config: Path, number: int) -> str:
    """Return what server ``number`` wrote so far."""
    return (config.parent / f"serve-{number}.log").read_text(errors="replace")


def _wait_until_up(
    process: subprocess.Popen[bytes], url: str, folder: Path, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            logs = " | ".join(p.read_text(errors="replace") for p in folder.glob("serve-*.log"))
            raise RuntimeError(f"`publisher serve` exited with {process.returncode}: {logs}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"`publisher serve` did not answer at {url}")
