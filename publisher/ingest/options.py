"""What the user asked of an import, shared by every importer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class ImportOptions:
    """Command-line choices that apply to every file of one `articles add`."""

    language: str
    tz: ZoneInfo
    format: str = "auto"
    tags: list[str] = field(default_factory=list)
    published_at: datetime | None = None
    draft: bool | None = None
    image_url: str = ""
    #: Store as drafts the store publishes at this time (``--publish-at``).
    publish_at: datetime | None = None
