"""`publisher digest`: the digest command group and `digest preview`.

Delivery adds `send` and `status` to this group from its own module (digest.add_command).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from publisher.cli.context import CliContext, console, err_console, pass_cli, run
from publisher.errors import UsageError

# The renderer (MJML, DKIM, DNS) is imported by the preview only: `digest status`
# shares this group and must not load it (docs/development.md, "Start-up time").
if TYPE_CHECKING:
    from publisher.site import Site

__all__ = ["Preview", "digest", "write_preview"]


@click.group("digest")
def digest() -> None:
    """Preview, send and inspect email digests."""


@dataclass
class Preview:
    """The files a preview wrote, and whether they hold a sample rather than the next digest."""

    paths: list[Path]
    sample: bool
    language: str
    articles: int


async def write_preview(
    site: Site, out: Path, *, language: str | None, subscriber: str | None
) -> Preview:
    """Render one reader's next digest into out/digest.{html,txt,eml} (see render_preview)."""
    from publisher.delivery.preview import preview_reader, render_preview

    reader = await preview_reader(site, subscriber, language)
    rendered = await render_preview(site, reader)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "digest.html", out / "digest.txt", out / "digest.eml"]
    contents = [rendered.html.encode("utf-8"), rendered.text.encode("utf-8"), rendered.message]
    for path, content in zip(paths, contents, strict=True):
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_bytes(content)
        temporary.replace(path)
    return Preview(paths, rendered.sample, rendered.language, rendered.articles)


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
    from publisher.render.i18n import available_languages, normalize_language

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
