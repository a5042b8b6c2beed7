"""Keyset pagination and search-box input shared by the admin lists."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from publisher.content.listing import ArticleKey

PAGE_SIZE = 50
MAX_SEARCH = 200
_ARTICLE_CURSOR = re.compile(r"(\d{1,18})(?:@(-?\d{1,18}))?")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def cursor_int(value: str | None) -> int | None:
    """Parse a "before" cursor (an id); anything else starts from the top."""
    if value is None or not value.isdigit() or len(value) > 18:
        return None
    return int(value)


def search_text(value: str | None) -> str:
    """Trim a search box's text to one line of at most MAX_SEARCH characters."""
    return " ".join((value or "").split())[:MAX_SEARCH]


def encode_article_cursor(key: ArticleKey) -> str:
    """Write an article list position: "ID" (undated) or "ID@MICROSECONDS" since 1970 UTC."""
    when, ident = key
    if when is None:
        return str(ident)
    return f"{ident}@{(when - _EPOCH) // timedelta(microseconds=1)}"


def article_cursor(value: str | None) -> ArticleKey | None:
    """Parse an "after" cursor of the article list; anything else starts from the top."""
    found = _ARTICLE_CURSOR.fullmatch(value or "")
    if found is None:
        return None
    ident, micros = found.groups()
    if micros is None:
        return (None, int(ident))
    try:
        return (_EPOCH + timedelta(microseconds=int(micros)), int(ident))
    except OverflowError:
        return None
