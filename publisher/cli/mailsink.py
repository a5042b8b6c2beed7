"""`publisher mailsink`: a development SMTP server that saves every message as a file."""

from __future__ import annotations

import signal
from pathlib import Path

import click

from publisher.cli.context import console

# Each command imports what its own work needs inside its function, so the command
# list, the help and the other commands load none of it (docs/development.md, "Start-up time").


@click.command("mailsink")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=1025, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("mail"),
    show_default=True,
    help="Folder the .eml files are written to.",
)
def mailsink(host: str, port: int, directory: Path) -> None:
    """Receive mail on HOST:PORT and save each message as an .eml file in DIR."""
    import asyncio

    from publisher.delivery.mailsink import MailSink, SavedMessage

    def show(saved: SavedMessage) -> None:
        console.print(saved.line(), markup=False)

    async def serve() -> None:
        sink = MailSink(directory, host, port, on_message=show)
        await sink.start()
        console.print(
            f"mailsink listening on {host}:{sink.port}, saving to {directory.resolve()} "
            "(Ctrl-C to stop)",
            markup=False,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:
            await sink.stop()
        console.print(f"mailsink stopped after {len(sink.saved)} message(s)", markup=False)

    asyncio.run(serve())


COMMANDS = [mailsink]
