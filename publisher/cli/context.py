"""State shared by every command: the config path, --debug and the opened site.

Nothing here imports the site's wiring or rich at module level: `publisher --help` and
each group's help import this module, and must answer before SQLAlchemy or rich would
have finished loading (see docs/development.md, "Start-up time").
"""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
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


class StartupCollector:
    """The cyclic garbage collector's part in a command's start-up and exit.

    Start-up creates a few hundred thousand objects that live as long as the process:
    modules, classes, functions, SQLAlchemy's and pydantic's tables of them. CPython's
    collector runs after every 700 new containers and, in its older generations, walks
    that growing heap again and again, finding nothing to free; at exit, the module
    teardown walks it again. So, a common CPython technique for command-line programs:
    while modules load the collector is held off (``loading``), and once the site is open
    ``gc.freeze()`` moves everything made so far into the permanent generation, which
    later collections and the exit's skip (``loaded``; `digest status` measured ~10% of
    its instructions under callgrind, benchmarks/startup.py prints the times).

    The cost: a cycle of start-up objects that becomes garbage is never collected. That
    is bounded by what start-up made, and none of it needs a finalizer to run (files are
    closed by ``with``, the engine is disposed by ``run``, logging flushes at exit). A
    freeze is process-wide, so only ``main()`` running as the process's own command
    (the console script, ``python -m publisher``) turns this on; tests calling
    ``main(ARGS)`` in their own process keep their collector as it was.
    """

    def __init__(self) -> None:
        self.enabled = False

    @contextmanager
    def loading(self) -> Iterator[None]:
        """Hold the collector off while modules load (re-enabled even on error)."""
        if not self.enabled or not gc.isenabled():
            yield
            return
        gc.disable()
        try:
            yield
        finally:
            gc.enable()

    def loaded(self) -> None:
        """Move what exists now into the permanent generation, skipped by collections."""
        if self.enabled:
            gc.freeze()


collector = StartupCollector()


@dataclass
class CliContext:
    """What the top-level options decided."""

    config_path: str | None
    debug: bool
    _site: Site | None = None

    def site(self) -> Site:
        """Open the site named by --config (once per command)."""
        if self._site is None:
            with collector.loading():
                # Imported here: the wiring pulls SQLAlchemy and pydantic, which help and
                # usage errors never need.
                from publisher.site import Site

                self._site = Site.open(self.config_path)
            collector.loaded()
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
