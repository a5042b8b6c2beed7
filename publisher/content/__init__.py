"""Articles: the model, store queries, Markdown rendering and HTML sanitizing."""

from __future__ import annotations
