"""Fuzz the importers (Markdown, text, HTML, feeds) with nested and random input.

Each example must end in a draft that sanitizes, or in one InputError line, within a
time budget; nothing else may escape (no RecursionError, TypeError, hang).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from publisher.content.sanitize import first_paragraph_text, sanitize_html
from publisher.content.store import ArticleDraft
from publisher.errors import InputError
from publisher.ingest.feed import parse_feed
from publisher.ingest.html import parse_html
from publisher.ingest.markdown import parse_markdown
from publisher.ingest.options import ImportOptions
from publisher.ingest.source import SourceText
from publisher.ingest.text import parse_text

TZ = ZoneInfo("Asia/Jakarta")
OPTIONS = ImportOptions(language="id", tz=TZ)
#: Seconds one example may take, parsing and sanitizing (generous: the machine is shared).
BUDGET = 20.0
TAGS = ["div", "p", "b", "i", "a", "span", "ul", "li", "table", "td", "svg", "math", "script"]
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

words = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=0, max_size=40
)


def _wrap(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(
        lambda tag, attr, inner, closed: (
            f"<{tag}{attr}>{''.join(inner)}" + (f"</{tag}>" if closed else "")
        ),
        st.sampled_from(TAGS),
        st.sampled_from(["", ' onclick="x()"', " href='javascript:x'", ' title="a>b"']),
        st.lists(children, max_size=4),
        st.booleans(),
    )


nested = st.recursive(words.map(escape), _wrap, max_leaves=40)
# A run of one tag opened thousands of times: the shape that stalls parsers.
towers = st.builds(
    lambda tag, depth, closed: f"<{tag}>" * depth + "x" + (f"</{tag}>" * depth if closed else ""),
    st.sampled_from(TAGS),
    st.integers(min_value=0, max_value=12_000),
    st.booleans(),
)
fragments = st.one_of(nested, towers, st.builds(lambda a, b: a + b, towers, nested))


def _run(parse: Callable[[], ArticleDraft | list[ArticleDraft]]) -> None:
    started = time.perf_counter()
    try:
        result = parse()
        drafts = result if isinstance(result, list) else [result]
        for draft in drafts:
            body = sanitize_html(draft.body_html, "https://news.example.org")
            first_paragraph_text(body)
    except InputError as exc:
        message = str(exc)
    else:
        message = ""
    assert "\n" not in message
    elapsed = time.perf_counter() - started
    assert elapsed < BUDGET, elapsed


@FUZZ
@given(fragments)
def test_markdown_importer(fragment: str) -> None:
    text = f"---\ntitle: Judul\n---\n\nParagraf.\n\n{fragment}\n"
    _run(lambda: parse_markdown(SourceText(Path("f.md"), text), language="id", tz=TZ))


@FUZZ
@given(fragments)
def test_text_importer(fragment: str) -> None:
    text = f"Judul berita\n\nParagraf pertama yang cukup panjang.\n\n{fragment}\n"
    _run(lambda: parse_text(SourceText(Path("f.txt"), text), OPTIONS))


@FUZZ
@given(fragments)
def test_html_importer(fragment: str) -> None:
    page = (
        "<html><head><title>Judul</title></head><body><article><h1>Judul</h1>"
        "<p>Paragraf pertama yang cukup panjang untuk diambil.</p>"
        f"{fragment}</article></body></html>"
    )
    _run(lambda: parse_html(SourceText(Path("f.html"), page), OPTIONS))


@FUZZ
@given(fragments, st.booleans())
def test_feed_importer(fragment: str, atom: bool) -> None:
    if atom:
        document = (
            "<feed xmlns='http://www.w3.org/2005/Atom'><title>F</title><entry><title>E</title>"
            f"<id>urn:x:1</id><content type='html'>{escape(fragment)}</content></entry></feed>"
        )
    else:
        document = (
            "<rss version='2.0'><channel><title>F</title><item><title>E</title>"
            f"<description>{escape(fragment)}</description></item></channel></rss>"
        )
    _run(lambda: parse_feed(document.encode(), "f.xml", language="id", tz=TZ).drafts)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | words,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(words, children, max_size=3),
    max_leaves=12,
)
item_keys = st.sampled_from(
    [
        *("id", "url", "external_url", "title", "content_html", "content_text", "summary"),
        *("image", "banner_image", "date_published", "date_modified", "authors", "author"),
        *("tags", "language", "attachments"),
    ]
)


@FUZZ
@given(st.lists(st.dictionaries(item_keys, json_values | fragments, max_size=8), max_size=4))
def test_json_feed_importer(items: list[dict[str, Any]]) -> None:
    document = {"version": "https://jsonfeed.org/version/1.1", "title": "F", "items": items}
    data = json.dumps(document).encode()
    _run(lambda: parse_feed(data, "f.json", language="id", tz=TZ).drafts)


yaml_lines = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "a: &x [1, 2, 3]",
                "b: [*x, *x, *x]",
                "tags: &t [*x, *x]",
                "summary: *x",
                "title: [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]",
                "title: !!python/object:os.system ls",
                "date: 2026-13-45",
                "draft: yes",
            ]
        ),
        words.map(lambda w: "title: " + json.dumps(w)),
    ),
    max_size=8,
)


@FUZZ
@given(yaml_lines)
def test_markdown_front_matter(lines: list[str]) -> None:
    text = "---\n" + "\n".join(lines) + "\n---\n\nIsi.\n"
    _run(lambda: parse_markdown(SourceText(Path("f.md"), text), language="id", tz=TZ))
