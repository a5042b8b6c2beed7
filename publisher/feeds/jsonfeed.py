"""Write JSON Feed 1.1 documents with the standard library."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from publisher.feeds.model import Channel, Item

VERSION = "https://jsonfeed.org/version/1.1"


def _date(when: datetime, tz: ZoneInfo) -> str:
    if when.tzinfo is None:
        raise ValueError(f"naive datetime {when!r} in a feed")
    return when.astimezone(tz).isoformat()


def _item(item: Item, tz: ZoneInfo) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": item.id,
        "url": item.url,
        "title": item.title,
        "content_html": item.content_html,
        "summary": item.summary,
        "date_published": _date(item.published, tz),
        "date_modified": _date(item.updated, tz),
        "authors": [{"name": item.author, **({"url": item.author_url} if item.author_url else {})}],
        "language": item.language,
    }
    if item.external_url and item.external_url != item.url:
        data["external_url"] = item.external_url
    if item.tags:
        data["tags"] = list(item.tags)
    if item.image is not None:
        image = item.image
        data["image"] = image.url
        attachment: dict[str, Any] = {"url": image.url, "mime_type": image.type}
        if image.caption:
            attachment["title"] = image.caption
        if image.length:
            attachment["size_in_bytes"] = image.length
        data["attachments"] = [attachment]
    return data


def json_bytes(channel: Channel, tz: ZoneInfo) -> bytes:
    """Return the JSON Feed 1.1 document for ``channel`` (UTF-8, stable key order)."""
    links = dict(channel.links())
    data: dict[str, Any] = {
        "version": VERSION,
        "title": channel.title,
        "home_page_url": channel.home_url,
        "feed_url": channel.self_url,
        "language": channel.language,
        "authors": [{"name": channel.author}],
    }
    if channel.description:
        data["description"] = channel.description
    # JSON Feed pages with next_url; it leads to the next older archive document.
    if "prev-archive" in links:
        data["next_url"] = links["prev-archive"]
    if channel.hub:
        data["hubs"] = [{"type": "WebSub", "url": channel.hub}]
    data["items"] = [_item(item, tz) for item in channel.items]
    text = json.dumps(data, ensure_ascii=False, indent=2)
    return (text + "\n").encode("utf-8")
