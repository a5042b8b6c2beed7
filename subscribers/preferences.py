"""Validate and normalize a reader's language, time zone, frequency and topics."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from zoneinfo import available_timezones

from publisher.content.slugs import tag_slug
from subscribers.errors import InvalidInput
from subscribers.models import FREQUENCIES

#: Languages the digests and pages are written in.
LANGUAGES = ("id", "en")
MAX_TOPICS = 50
MAX_NAME = 200

_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def clean_name(value: str) -> str:
    """Drop control characters (no header injection), squeeze spaces and cap the length."""
    text = " ".join(_CONTROLS.sub(" ", value).split())
    if len(text) > MAX_NAME:
        raise InvalidInput(f"name is longer than {MAX_NAME} characters")
    return text


def language(value: str, allowed: Iterable[str] = LANGUAGES) -> str:
    """Return a supported language code ("" means the site's default)."""
    code = value.strip().lower().replace("_", "-")
    if not code:
        return ""
    choices = tuple(allowed)
    if code not in choices:
        base = code.split("-", 1)[0]
        if base not in choices:
            raise InvalidInput(f"unsupported language {value!r} (use one of {', '.join(choices)})")
        code = base
    return code


def timezone(value: str) -> str:
    """Return an IANA time zone name ("" means the site's default)."""
    name = value.strip()
    if not name:
        return ""
    if name not in _zones():
        raise InvalidInput(f"unknown time zone {value!r} (use an IANA name like Asia/Jakarta)")
    return name


def frequency(value: str) -> str:
    """Return daily or weekly ("" means daily)."""
    name = value.strip().lower() or FREQUENCIES[0]
    if name not in FREQUENCIES:
        raise InvalidInput(f"unknown frequency {value!r} (use daily or weekly)")
    return name


def topics(values: Iterable[str]) -> list[str]:
    """Slugify and de-duplicate topics, keeping their order (empty means everything)."""
    seen: dict[str, None] = {}
    for value in values:
        if value.strip():
            seen.setdefault(tag_slug(value.strip()), None)
    if len(seen) > MAX_TOPICS:
        raise InvalidInput(f"too many topics ({len(seen)}; at most {MAX_TOPICS})")
    return list(seen)


def split_topics(cell: str) -> list[str]:
    """Split a CSV topics cell on semicolons or commas."""
    return [part for part in re.split(r"[;,|]", cell) if part.strip()]
