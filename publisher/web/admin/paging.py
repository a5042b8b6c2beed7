"""Keyset pagination and search-box input shared by the admin lists."""

from __future__ import annotations

PAGE_SIZE = 50
MAX_SEARCH = 200


def cursor_int(value: str | None) -> int | None:
    """Parse a "before" cursor (an id); anything else starts from the top."""
    if value is None or not value.isdigit() or len(value) > 18:
        return None
    return int(value)


def search_text(value: str | None) -> str:
    """Trim a search box's text to one line of at most MAX_SEARCH characters."""
    return " ".join((value or "").split())[:MAX_SEARCH]
