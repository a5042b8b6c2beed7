"""Write every feed document as static files, byte for byte what the server sends."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from publisher.db import transaction
from publisher.errors import PublisherError
from publisher.feeds import query
from publisher.feeds.documents import Document, FeedBuilder
from publisher.site import Site


@dataclass
class StaticReport:
    """What a static build wrote."""

    directory: Path
    files: list[Path] = field(default_factory=list)

    @property
    def bytes_written(self) -> int:
        """Return the total size of the files written."""
        return sum(path.stat().st_size for path in self.files)


def _write(directory: Path, document: Document) -> Path:
    target = directory / document.path
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target and rename, so a web server never serves half a file.
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(document.body)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


async def build_static(site: Site, directory: Path) -> StaticReport:
    """Write the site, tag and author feeds with their archives under ``directory``."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PublisherError(f"{directory}: cannot create folder: {exc.strerror}") from exc
    builder = FeedBuilder(site.settings)
    report = StaticReport(directory)
    async with transaction(site.engine) as session:
        for scope in await query.scopes(session, site.settings.site.base_url):
            for document in await builder.scope_documents(session, scope):
                try:
                    report.files.append(_write(directory, document))
                except OSError as exc:
                    raise PublisherError(
                        f"{directory / document.path}: cannot write: {exc.strerror}"
                    ) from exc
    return report
