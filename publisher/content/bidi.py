"""Bidirectional-text controls: the invisible characters that reorder what a reader sees."""

from __future__ import annotations

import re

# U+202A-U+202E (embeddings and overrides) and U+2066-U+2069 (isolates): "\u202egpj.exe"
# shows as "exe.jpg". Marks (U+200E/U+200F) stay: they change no order on their own.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


def strip_bidi_controls(text: str) -> str:
    """Remove bidi embedding, override and isolate characters from plain text."""
    return _BIDI_CONTROLS.sub("", text)
