"""Validate and normalize a reader's language, time zone, frequency and topics."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from zoneinfo import available_timezones

from subscribers.errors import InvalidInput
from subscribers.models import FREQUENCIES

#: Languages the digests and pages are written in.
LANGUAGES = ("id", "en")
MAX_TOPICS = 50
MAX_NAME = 200

_NON_WORD = re.compile(r"[^a-z0-9]+")
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


# Letters NFKD does not decompose into ASCII (as publisher/content/slugs.py).
_LETTERS = str.maketrans(
    {
        "ß": "ss",
        "æ": "ae",
        "Æ": "AE",
        "ø": "o",
        "Ø": "O",
        "đ": "d",
        "Đ": "D",
        "ł": "l",
        "Ł": "L",
        "œ": "oe",
        "Œ": "OE",
        "þ": "th",
        "Þ": "TH",
        "ð": "d",
        "Ð": "D",
        "ı": "i",
    }
)


def _to_ascii(text: str) -> str:
    kept: list[str] = []
    for char in unicodedata.normalize("NFKD", text.translate(_LETTERS)):
        if char.isascii():
            kept.append(char)
        elif unicodedata.category(char)[0] in "PSZC":
            kept.append(" ")
    return "".join(kept)


def topic_slug(text: str) -> str:
    """Slugify a topic exactly like the content store slugifies article tags.

    This package may not import Publisher, so the rule is repeated here; a property
    test compares the two so they cannot drift apart.
    """
    slug = _NON_WORD.sub("-", _to_ascii(text).lower()).strip("-")
    if len(slug) > 60:
        slug = slug[:60].rsplit("-", 1)[0] or slug[:60]
    if not slug:
        slug = "a-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]
    return slug


def topics(values: Iterable[str]) -> list[str]:
    """Slugify and de-duplicate topics, keeping their order (empty means everything)."""
    seen: dict[str, None] = {}
    for value in values:
        if value.strip():
            seen.setdefault(topic_slug(value.strip()), None)
    if len(seen) > MAX_TOPICS:
        raise InvalidInput(f"too many topics ({len(seen)}; at most {MAX_TOPICS})")
    return list(seen)


def split_topics(cell: str) -> list[str]:
    """Split a CSV topics cell on semicolons or commas."""
    return [part for part in re.split(r"[;,|]", cell) if part.strip()]
