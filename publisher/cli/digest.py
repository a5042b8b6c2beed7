"""`publisher digest`: the digest command group and `digest preview`.

Delivery adds `send` and `status` to this group from its own module (digest.add_command).
"""

from __future__ import annotations

from pathlib import Path

import click

from publisher.cli.context import CliContext, console, err_console, pass_cli, run

# Re-exported: sending.py and the tests import these from here.
from publisher.digest_preview import NextDigest, Preview, PreviewReader, next_digest, write_preview
from publisher.errors import UsageError
from publisher.render.i18n import available_languages, normalize_language
from publisher.site import Site


@click.group("digest")
def digest() -> None:
    """Preview, send and inspect email digests."""


@digest.command("preview")
@click.option("--lang", "language", default=None, help="Language (default: the reader's).")
@click.option("--subscriber", default=None, help="Render for this subscriber's address.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder for digest.html, digest.txt and digest.eml.",
)
@pass_cli
def preview(cli: CliContext, language: str | None, subscriber: str | None, out: Path) -> None:
    """Write the next digest as HTML, text and a complete .eml, and print their paths."""
    if language is not None and not language.strip():
        raise UsageError("--lang must not be empty")
    site = cli.site()
    if language is not None:
        # Rendering silently falls back to another language; a preview must not.
        known = available_languages("email", site.settings.site.templates_dir)
        if normalize_language(language) not in known:
            raise UsageError(
                f"--lang: no email catalog for {language!r} (available: {', '.join(known)})"
            )

    async def work(site: Site) -> Preview:
        return await write_preview(site, out, language=language, subscriber=subscriber)

    written = run(site, work)
    if written.sample:
        who = subscriber or f"a new {written.language} reader"
        err_console.print(
            f"nothing new for {who}, so no digest would be sent now: the files hold a "
            f"[sample] of the {written.articles} latest {written.language} article(s)",
            markup=False,
            soft_wrap=True,
        )
    for path in written.paths:
        console.print(str(path.resolve()), markup=False)


COMMANDS = [digest]
__all__ = ["COMMANDS", "NextDigest", "Preview", "PreviewReader", "next_digest", "write_preview"]
