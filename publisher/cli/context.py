"""State shared by every command: the config path, --debug and the opened site.

Nothing here imports the site's wiring or rich at module level: `publisher --help` and
each group's help import this module, and must answer before SQLAlchemy or rich would
have finished loading (see docs/development.md, "Start-up time").
"""

from __future__ import annotations

import gc
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


class StartupCollector:
    """The cyclic garbage collector's part in a command's start-up and exit.

    Start-up creates a few hundred thousand objects that live as long as the process:
    modules, classes, functions, SQLAlchemy's tables of them. CPython's
    collector runs after every 700 new containers and, in its older generations, walks
    that growing heap again and again, finding nothing to free; at exit, the module
    teardown walks it again. So, a common CPython technique for command-line programs:
    until the site is open the collector runs rarely (``starting``: every 50,000 new
    containers), and then ``gc.freeze()`` moves everything made so far into the
    permanent generation, which later collections and the exit's skip, and the usual
    thresholds come back (``started``). `digest status` spent ~7% fewer instructions
    under callgrind; benchmarks/startup.py prints the times.

    Start-up ends when ``CliContext.site`` opens the site or ``run`` starts the work.
    Rarely, not never: a command that does neither (`mailsink` serves until stopped)
    keeps collecting, every 50,000 containers. The cost of the freeze: a cycle of
    start-up objects that becomes garbage is never collected. That is bounded by what
    start-up made, and none of it needs a finalizer to run (files are closed by
    ``with``, the engine is disposed by ``run``, logging flushes at exit). Both are
    process-wide, so only ``main()`` running as the process's own command (the console
    script, ``python -m publisher``) does this; tests calling ``main(ARGS)`` in their
    own process keep their collector as it was.
    """

    #: New containers between two collections of the youngest generation at start-up.
    STARTING_THRESHOLD = 50_000

    def __init__(self) -> None:
        self._saved: tuple[int, int, int] | None = None

    def starting(self) -> None:
        """Collect rarely while the command's modules load (its own process only)."""
        if self._saved is None:
            self._saved = gc.get_threshold()
            gc.set_threshold(self.STARTING_THRESHOLD, *self._saved[1:])

    def started(self) -> None:
        """Freeze what start-up made and collect as usual again (no-op unless starting)."""
        if self._saved is not None:
            gc.freeze()
            gc.set_threshold(*self._saved)
            self._saved = None


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
            # Imported here: the wiring pulls SQLAlchemy, which help and usage errors
            # never need.
            from publisher.site import Site

            self._site = Site.open(self.config_path)
            collector.started()
        return self._site


pass_cli = click.make_pass_decorator(CliContext)


def run(site: Site, work: Callable[[Site], Awaitable[T]]) -> T:
    """Run an async job against the site on a fresh event loop, then close the engine."""
    # A site opened without CliContext.site (demo builds its own) ends start-up here.
    collector.started()
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
