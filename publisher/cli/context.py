"""State shared by every command: the config path, --debug and the opened site."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click
from rich.console import Console

from publisher.site import Site

T = TypeVar("T")

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class CliContext:
    """What the top-level options decided."""

    config_path: str | None
    debug: bool
    _site: Site | None = None

    def site(self) -> Site:
        """Open the site named by --config (once per command)."""
        if self._site is None:
            self._site = Site.open(self.config_path)
        return self._site


pass_cli = click.make_pass_decorator(CliContext)


def run(site: Site, work: Callable[[Site], Awaitable[T]]) -> T:
    """Run an async job against the site on a fresh event loop, then close the engine."""

    async def wrapper() -> T:
        try:
            return await work(site)
        finally:
            await site.aclose()

    return asyncio.run(wrapper())


def print_json(data: Any) -> None:
    """Print one JSON document on stdout."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
