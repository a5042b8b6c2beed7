"""Make stable, URL-safe slugs from titles, names and tags in any script."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_NON_WORD = re.compile(r"[^a-z0-9]+")
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MAX_LENGTH = 80


def slugify(text: str, max_length: int = MAX_LENGTH) -> str:
    """Transliterate to ASCII, lower-case and hyphenate; fall back to a hash for other scripts."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = _NON_WORD.sub("-", ascii_text.lower()).strip("-")
    if len(slug) > max_length:
        slug = slug[:max_length].rsplit("-", 1)[0] or slug[:max_length]
    if not slug:
        # Titles wholly in non-Latin scripts still need a stable, unique slug.
        slug = "a-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]
    return slug


def is_slug(text: str) -> bool:
    """Tell whether ``text`` is already a valid slug."""
    return bool(_SLUG.match(text)) and len(text) <= 200
