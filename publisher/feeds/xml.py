"""Write RSS 2.0 and Atom 1.0 documents with feedgen (the only feedgen import).

feedgen pitfalls worked around here: entries are added with order="append" (the
default prepends); Atom entry links lose rel/type/length, so entry links,
enclosures and media:content are written by our own extension; the RSS channel
<link> is whatever link came last, so the alternate link always comes last; the
channel and entry dates are always set (feedgen defaults them to "now"); every
datetime passed in is aware; text is stripped of XML-illegal control characters.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedEntry, FeedGenerator
from feedgen.util import xml_elem

from publisher.content.sanitize import strip_controls
from publisher.feeds.model import MEDIA_TYPES, Channel, Image, Item

# lxml elements, reached through feedgen so that feedgen stays our only XML writer.
Element = Any

ATOM_NS = "http://www.w3.org/2005/Atom"
FH_NS = "http://purl.org/syndication/history/1.0"
MEDIA_NS = "http://search.yahoo.com/mrss/"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
DC_NS = "http://purl.org/dc/elements/1.1/"


def _sub(parent: Element, tag: str, text: str = "", **attrs: str) -> Element:
    element: Element = xml_elem(tag, parent, **{k: strip_controls(v) for k, v in attrs.items()})
    if text:
        element.text = strip_controls(text)
    return element


class _ChannelExtension(BaseExtension):  # type: ignore[misc]
    """Add archive, hub and alternate links plus fh:archive at the feed level."""

    def __init__(self) -> None:
        self.links: list[dict[str, str]] = []
        self.archive = False

    def extend_ns(self) -> dict[str, str]:
        return {"fh": FH_NS, "media": MEDIA_NS, "dc": DC_NS}

    def _extend(self, parent: Element, link_tag: str) -> None:
        if self.archive:
            _sub(parent, f"{{{FH_NS}}}archive")
        for link in self.links:
            _sub(parent, link_tag, **link)

    def extend_atom(self, feed: Element) -> Element:
        self._extend(feed, "link")
        return feed

    def extend_rss(self, rss: Element) -> Element:
        self._extend(rss[0], f"{{{ATOM_NS}}}link")
        return rss


class _EntryExtension(BaseEntryExtension):  # type: ignore[misc]
    """Write entry links, the enclosure, media:content and dc:creator correctly."""

    def __init__(self) -> None:
        self.item: Item | None = None

    def extend_atom(self, entry: Element) -> Element:
        assert self.item is not None
        for broken in entry.findall(f"{{{ATOM_NS}}}link") + entry.findall("link"):
            entry.remove(broken)
        entry.set(XML_LANG, self.item.language)
        _sub(entry, "link", rel="alternate", type="text/html", href=self.item.url)
        if self.item.image is not None:
            image = self.item.image
            _sub(
                entry,
                "link",
                rel="enclosure",
                type=image.type,
                length=str(image.length),
                href=image.url,
            )
            _media(entry, image)
        return entry

    def extend_rss(self, item: Element) -> Element:
        assert self.item is not None
        _sub(item, f"{{{DC_NS}}}creator", self.item.author)
        if self.item.image is not None:
            _media(item, self.item.image)
        return item


def _media(parent: Element, image: Image) -> None:
    attrs = {"url": image.url, "type": image.type, "medium": "image"}
    if image.length:
        attrs["fileSize"] = str(image.length)
    if image.width and image.height:
        attrs["width"], attrs["height"] = str(image.width), str(image.height)
    content = _sub(parent, f"{{{MEDIA_NS}}}content", **attrs)
    if image.caption:
        _sub(content, f"{{{MEDIA_NS}}}description", image.caption, type="plain")
    if image.credit:
        _sub(content, f"{{{MEDIA_NS}}}credit", image.credit)


def _generator(channel: Channel, tz: ZoneInfo, link_type: str) -> FeedGenerator:
    fg = FeedGenerator()
    fg.register_extension("publisher", _ChannelExtension, _EntryExtension)
    ext: _ChannelExtension = fg.publisher
    clean = strip_controls
    fg.id(clean(channel.current_url))
    fg.title(clean(channel.title))
    fg.subtitle(clean(channel.description or channel.title))
    fg.language(channel.language)
    fg.generator("Publisher")
    fg.author({"name": clean(channel.author)})
    fg.updated(_local(channel.updated, tz))
    ext.archive = bool(channel.where.archive)
    ext.links = [
        {"rel": rel, "href": href, **({"type": link_type} if rel != "hub" else {})}
        for rel, href in channel.links()
    ]
    # feedgen puts the last link into the RSS channel <link>: the home page goes last.
    fg.link(
        [
            {"href": channel.self_url, "rel": "self", "type": link_type},
            {"href": channel.home_url, "rel": "alternate", "type": "text/html"},
        ]
    )
    for item in channel.items:
        _entry(fg.add_entry(order="append"), item, tz)
    return fg


def _local(when: datetime, tz: ZoneInfo) -> datetime:
    if when.tzinfo is None:
        raise ValueError(f"naive datetime {when!r} in a feed")
    return when.astimezone(tz)


def _entry(fe: FeedEntry, item: Item, tz: ZoneInfo) -> None:
    ext: _EntryExtension = fe.publisher
    ext.item = item
    fe.id(item.id)
    fe.guid(item.id, permalink=item.guid_is_permalink)
    fe.title(item.title)
    fe.link(href=item.url, rel="alternate")
    summary = item.summary or item.title
    # Atom's <summary> is a text construct (plain text); RSS <description> is read as
    # HTML by readers, so the plain-text summary is escaped as HTML once before XML.
    fe.summary(summary)
    fe.description(escape(summary, quote=False))
    fe.content(item.content_html or "<p></p>", type="html")
    fe.published(_local(item.published, tz))
    fe.pubDate(_local(item.published, tz))
    fe.updated(_local(item.updated, tz))
    author: dict[str, Any] = {"name": item.author}
    if item.author_url:
        author["uri"] = item.author_url
    fe.author(author)
    if item.tags:
        fe.category([{"term": tag, "label": tag} for tag in item.tags])
    if item.image is not None:
        image = item.image
        fe.enclosure(image.url, str(image.length), image.type)


def rss_bytes(channel: Channel, tz: ZoneInfo) -> bytes:
    """Return the RSS 2.0 document for ``channel``."""
    fg = _generator(channel, tz, MEDIA_TYPES["rss"].split(";")[0])
    body: bytes = fg.rss_str(pretty=True, encoding="UTF-8", xml_declaration=True)
    return body


def atom_bytes(channel: Channel, tz: ZoneInfo) -> bytes:
    """Return the Atom 1.0 document for ``channel``."""
    fg = _generator(channel, tz, MEDIA_TYPES["atom"].split(";")[0])
    body: bytes = fg.atom_str(pretty=True, encoding="UTF-8", xml_declaration=True)
    return body
