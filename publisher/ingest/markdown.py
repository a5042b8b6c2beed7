"""Import Markdown files with YAML front matter (the only python-frontmatter import)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

import frontmatter
import yaml
from frontmatter.default_handlers import YAMLHandler

from publisher.content.markdown import render_markdown
from publisher.content.store import ArticleDraft
from publisher.errors import InputError
from publisher.ingest.source import SourceText, to_utc

#: Front matter is a few lines of keys; more than this is not front matter we want to parse.
MAX_FRONT_MATTER_CHARS = 64 * 1024
#: Deepest nesting of lists and mappings in front matter.
MAX_FRONT_MATTER_DEPTH = 16


class _FrontMatterLoader(yaml.SafeLoader):
    """A SafeLoader that refuses aliases (a 330-byte alias bomb expands to gigabytes)
    and nesting deeper than MAX_FRONT_MATTER_DEPTH (PyYAML recurses per level)."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in front matter", event.start_mark
            )
        if self._depth >= MAX_FRONT_MATTER_DEPTH:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"nested more than {MAX_FRONT_MATTER_DEPTH} levels deep",
                self.peek_event().start_mark,  # type: ignore[no-untyped-call]
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _FrontMatterYAML(YAMLHandler):
    """python-frontmatter's YAML handler, loading with _FrontMatterLoader."""

    def load(self, fm: str, **kwargs: object) -> Any:
        if len(fm) > MAX_FRONT_MATTER_CHARS:
            raise InputError(
                f"front matter is {len(fm):,} characters, over the limit of "
                f"{MAX_FRONT_MATTER_CHARS:,}"
            )
        return yaml.load(fm, Loader=_FrontMatterLoader)  # noqa: S506 (a SafeLoader subclass)


KNOWN_KEYS = {
    "title",
    "slug",
    "date",
    "updated",
    "author",
    "tags",
    "summary",
    "image",
    "image_caption",
    "image_credit",
    "lang",
    "draft",
    "canonical_url",
}


def parse_markdown(source: SourceText, *, language: str, tz: ZoneInfo) -> ArticleDraft:
    """Turn a Markdown file into an ArticleDraft, or raise InputError with path:line."""
    name = str(source.path)
    handler = frontmatter.detect_format(source.text, frontmatter.handlers)
    if isinstance(handler, YAMLHandler):
        handler = _FrontMatterYAML()
    try:
        metadata, body = frontmatter.parse(source.text, handler=handler)
    except yaml.YAMLError as exc:
        raise InputError(_yaml_error(name, source.text, exc)) from None
    except InputError as exc:
        raise InputError(f"{name}:1: {exc}") from None
    if not isinstance(metadata, Mapping):
        raise InputError(f"{name}:1: front matter must be a mapping of keys to values")
    meta: dict[str, Any] = dict(metadata)
    unknown = sorted(set(meta) - KNOWN_KEYS)
    if unknown:
        line = _line_of_key(source.text, unknown[0])
        raise InputError(f"{name}:{line}: unknown front matter key {unknown[0]!r}")
    title = meta.get("title")
    if not isinstance(title, str) or not title.strip():
        line = _line_of_key(source.text, "title") if "title" in meta else 1
        raise InputError(f"{name}:{line}: missing title (add `title:` to the front matter)")
    if not body.strip():
        raise InputError(f"{name}:1: the article has no body text")

    def text(key: str) -> str:
        value = meta.get(key, "")
        if value is None:
            return ""
        if not isinstance(value, str | int | float):
            line = _line_of_key(source.text, key)
            raise InputError(f"{name}:{line}: {key} must be text, got {type(value).__name__}")
        return str(value)

    def when(key: str) -> Any:
        if meta.get(key) in (None, ""):
            return None
        try:
            return to_utc(meta[key], tz, key)
        except InputError as exc:
            raise InputError(f"{name}:{_line_of_key(source.text, key)}: {exc}") from None

    tags = meta.get("tags") or []
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",")]
    if not isinstance(tags, list):
        raise InputError(f"{name}:{_line_of_key(source.text, 'tags')}: tags must be a list")
    draft_flag = meta.get("draft", False)
    if not isinstance(draft_flag, bool):
        line = _line_of_key(source.text, "draft")
        raise InputError(f"{name}:{line}: draft must be true or false")
    return ArticleDraft(
        title=title,
        slug=text("slug"),
        body_html=render_markdown(body),
        body_source=body,
        source_format="markdown",
        summary=text("summary"),
        author=text("author"),
        language=text("lang") or language,
        tags=[str(t) for t in tags],
        image_url=text("image"),
        image_caption=text("image_caption"),
        image_credit=text("image_credit"),
        canonical_url=text("canonical_url"),
        origin=str(source.path.resolve()),
        draft=draft_flag,
        published_at=when("date"),
        updated_at=when("updated"),
    )


def _yaml_error(name: str, text: str, exc: yaml.YAMLError) -> str:
    """Describe a YAML error as path:line, pointing at the construct that is broken."""
    # An unclosed bracket or quote is reported where it opened (context_mark), not
    # at the end of the front matter where the parser gave up (problem_mark).
    mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "invalid YAML"
    context = getattr(exc, "context", None)
    if context:
        problem = f"{context}: {problem}"
    if isinstance(exc, yaml.reader.ReaderError) and isinstance(exc.character, int):
        # YAML refuses control characters without a mark; point at the first one.
        offset = text.find(chr(exc.character))
        at_line = text.count("\n", 0, offset) + 1 if offset >= 0 else 1
        return (
            f"{name}:{at_line}: malformed front matter: "
            f"control character U+{exc.character:04X} is not allowed"
        )
    if mark is None:
        return f"{name}:1: malformed front matter: {problem}"
    # python-frontmatter hands YAML the text after the opening '---' line, starting
    # with that line's newline, so YAML line n is file line n + 1 (plus any lines
    # before the opening '---').
    before = 0
    for number, line in enumerate(text.splitlines()):
        if line.strip().startswith("---"):
            before = number
            break
    return f"{name}:{before + mark.line + 1}: malformed front matter: {problem}"


def _line_of_key(text: str, key: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith(f"{key}:"):
            return number
    return 1
