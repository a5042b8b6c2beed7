"""Plain-text parts built from the same data as the HTML: wrapped at 72 columns, links listed."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

WIDTH = 72


def wrap(text: str, *, indent: str = "") -> list[str]:
    """Wrap one paragraph at 72 columns; words longer than a line are split, never URLs."""
    if not text:
        return []
    return textwrap.wrap(
        text,
        width=WIDTH,
        initial_indent=indent,
        subsequent_indent=indent,
        break_long_words=not text.startswith(("http://", "https://")),
        break_on_hyphens=False,
    )


class Links:
    """Number the links of a text part and list them at the end."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def ref(self, url: str) -> str:
        """Return "[n]" for a URL, numbering each distinct URL once."""
        if url not in self.urls:
            self.urls.append(url)
        return f"[{self.urls.index(url) + 1}]"

    def lines(self, heading: str) -> list[str]:
        """Return the list of links, one per line."""
        if not self.urls:
            return []
        return ["", heading + ":", *(f"[{n}] {url}" for n, url in enumerate(self.urls, 1))]


def digest_text(context: Mapping[str, Any]) -> str:
    """Render the digest's text part from the template context of the HTML part."""
    labels = context["labels"]
    links = Links()
    site = context["site"]
    # The masthead's link, as in the HTML part: both parts carry the same links.
    lines: list[str] = [site["title"].upper(), site["url"], context["date_line"], ""]
    if not context["public"]:
        lines += [context["greeting"], ""]
    lines += wrap(context["intro"])
    lead = context["lead"]
    if lead is not None:
        lines += ["", "", *wrap(lead.title.upper()), ""]
        if lead.byline:
            lines += wrap(lead.byline)
        lines += wrap(lead.summary)
        if lead.image is not None and (lead.image.caption or lead.image.credit):
            credit = f"({lead.image.credit})" if lead.image.credit else ""
            lines += ["", *wrap(" ".join(p for p in (lead.image.caption, credit) if p))]
        lines += ["", f"{labels['read_more']}: {links.ref(lead.url)}"]
    for article in context["rest"]:
        lines += ["", "", *wrap(article.title.upper()), ""]
        if article.byline and not article.compact:
            lines += wrap(article.byline)
        lines += wrap(article.summary)
        lines += ["", f"{labels['read_more']}: {links.ref(article.url)}"]
    web = context["links"]["web"]
    if context["more_count"]:
        lines += ["", "", *wrap(f"{labels['more']}: {links.ref(web)}")]
    elif context["compacted"]:
        lines += ["", "", *wrap(f"{labels['full']}: {links.ref(web)}")]
    lines += links.lines(labels["links"])
    lines.append("")
    return _footer(context, lines)


def notice_text(context: Mapping[str, Any]) -> str:
    """Render a one-off notice's text part from its template context."""
    site = context["site"]
    lines: list[str] = [site["title"].upper(), site["url"], "", context["greeting"], ""]
    for index, paragraph in enumerate(context["paragraphs"]):
        lines += wrap(paragraph)
        if index == 0 and context["show_email"]:
            lines.append(context["email"])
        lines.append("")
    action = context["action"]
    if action is not None:
        lines += [f"{action.label}:", action.url, ""]
    for link in context["secondary"]:
        lines += [f"{link.label}:", link.url, ""]
    lines += ["-- ", *wrap(context["footer"])]
    if site["postal_address"]:
        lines += ["", *wrap(site["postal_address"])]
    return "\n".join(lines) + "\n"


def announcement_text(context: Mapping[str, Any]) -> str:
    """Render an announcement's text part from the template context of its HTML part."""
    site = context["site"]
    lines: list[str] = [site["title"].upper(), site["url"], context["date_line"], ""]
    if not context["public"]:
        lines += [context["greeting"], ""]
    lines += [*wrap(context["heading"].upper()), ""]
    for paragraph in context["body_text"].split("\n"):
        lines += [*wrap(paragraph), ""]
    return _footer(context, lines)


def _footer(context: Mapping[str, Any], lines: list[str]) -> str:
    """End a digest's or announcement's text: why the reader gets it, the address, links."""
    labels, site = context["labels"], context["site"]
    if context["public"]:
        lines += ["-- ", *wrap(context["public_note"]), ""]
        footer = [("subscribe", "subscribe"), ("digests", "digests")]
    else:
        lines += ["-- ", *wrap(context["why"]), context["email"], ""]
        footer = [
            ("unsubscribe", "unsubscribe"),
            ("preferences", "preferences"),
            ("web", "archive"),
        ]
    if site["postal_address"]:
        lines += [*wrap(site["postal_address"]), ""]
    for label, link in footer:
        lines += [f"{labels[label]}:", context["links"][link]]
    return "\n".join(lines) + "\n"
