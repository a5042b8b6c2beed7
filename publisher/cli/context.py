"""State shared by every command: the config path, --debug and the opened site.

Nothing here imports the site's wiring or rich at module level: `publisher --help` and
each group's help import this module, and must answer before SQLAlchemy or rich would
have finished loading (see docs/development.md, "Start-up time").
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from rich.console import Console

    from publisher.site import Site

T = TypeVar("T")


class LazyConsole:
    """A rich Console made on first use, so commands that print nothing never load rich."""

    def __init__(self, *, stderr: bool = False) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    @property
    def rich(self) -> Console:
        """Return the underlying rich Console (for rich widgets that take one)."""
        if self._console is None:
            # Imported here: rich costs tens of milliseconds that --help must not pay.
            from rich.console import Console

            self._console = Console(stderr=self._stderr, highlight=False, soft_wrap=True)
        return self._console

    def print(self, *objects: Any, **kwargs: Any) -> None:
        """Print like rich's Console.print."""
        self.rich.print(*objects, **kwargs)


console = LazyConsole()
err_console = LazyConsole(stderr=True)


@dataclass
class CliContext:
    """What the top-level options decided."""

    config_path: str | None
    debug: bool
    _site: Site | None = None

    def site(self) -> Site:
        """Open the site named by --config (once per command)."""
        if self._site is None:
            # Imported here: the wiring pulls SQLAlchemy and pydantic, which help and
            # usage errors never need.
            from publisher.site import Site

            self._site = Site.open(self.config_path)
        return self._site


pass_cli = click.make_pass_decorator(CliContext)


def run(site: Site, work: Callable[[Site], Awaitable[T]]) -> T:
    """Run an async job against the site on a fresh event loop, then close the engine."""
    # Imported here: asyncio alone costs ~40 ms, which --help and usage errors skip.
    import asyncio

    async def wrapper() -> T:
        try:
            return await work(site)
        finally:
            await site.aclose()

    return asyncio.run(wrapper())


def print_json(data: Any) -> None:
    """Print one JSON document on stdout."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
