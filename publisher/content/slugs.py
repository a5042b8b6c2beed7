"""Make stable, URL-safe slugs from titles, names and tags in any script."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_NON_WORD = re.compile(r"[^a-z0-9]+")
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MAX_LENGTH = 80
#: Tags (and the readers' topics, which name tags) are kept shorter.
TAG_LENGTH = 60


# Letters NFKD does not decompose into ASCII.
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
            # Dashes, quotes and other separators split words ("Makassar–Ambon").
            kept.append(" ")
        # Accents (combining marks) and letters of other scripts are dropped.
    return "".join(kept)


def slugify(text: str, max_length: int = MAX_LENGTH) -> str:
    """Transliterate to ASCII, lower-case and hyphenate; fall back to a hash for other scripts."""
    ascii_text = _to_ascii(text)
    slug = _NON_WORD.sub("-", ascii_text.lower()).strip("-")
    if len(slug) > max_length:
        slug = slug[:max_length].rsplit("-", 1)[0] or slug[:max_length]
    if not slug:
        # Titles wholly in non-Latin scripts still need a stable, unique slug.
        slug = "a-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]
    return slug


def tag_slug(text: str) -> str:
    """Slugify an article tag or a reader's topic (one rule, so topics match tags)."""
    return slugify(text, max_length=TAG_LENGTH)


def is_slug(text: str) -> bool:
    """Tell whether ``text`` is already a valid slug."""
    return bool(_SLUG.match(text)) and len(text) <= 200
