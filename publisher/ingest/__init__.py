"""Importers: turn Markdown, scraped text, HTML pages and feeds into ArticleDrafts."""

from __future__ import annotations
