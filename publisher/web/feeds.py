"""Serve the feeds: /feed.xml, /atom.xml, /feed.json, per tag, per author, and archives."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from publisher.db import transaction
from publisher.feeds.documents import FeedBuilder
from publisher.feeds.model import FeedPath
from publisher.site import Site
from publisher.web.cache import ContentCache
from publisher.web.conditional import respond

PATHS = (
    "/feed.xml",
    "/atom.xml",
    "/feed.json",
    "/archive/{page}/{name}",
    "/tags/{key}/{name}",
    "/tags/{key}/archive/{page}/{name}",
    "/authors/{key}/{name}",
    "/authors/{key}/archive/{page}/{name}",
)


async def feed(request: Request) -> Response:
    """Answer one feed request from the cache."""
    where = FeedPath.parse(request.url.path)
    if where is None:
        raise HTTPException(404)
    site: Site = request.app.state.site
    cache: ContentCache = request.app.state.cache
    builder: FeedBuilder = request.app.state.feed_builder

    async def build() -> tuple[bytes, str, datetime] | None:
        async with transaction(site.engine) as session:
            document = await builder.document(session, where)
        if document is None:
            return None
        return document.body, document.media_type, document.last_modified

    cached = await cache.get("feed:" + where.path(), build)
    if cached is None:
        raise HTTPException(404)
    response = respond(request, cached, site.settings.web.feed_cache_seconds)
    hub = site.settings.web.websub_hub
    if hub:
        self_url = f"{site.settings.site.base_url}/{where.path()}"
        response.headers["Link"] = f'<{hub}>; rel="hub", <{self_url}>; rel="self"'
    return response


router = APIRouter()
for _path in PATHS:
    # Plain Starlette routes: no dependency injection on the hottest path.
    router.add_route(_path, feed, methods=["GET", "HEAD"], include_in_schema=False)
