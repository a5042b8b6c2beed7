"""Build the FastAPI application: feeds, pages, health check and the subscription flow."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from publisher.feeds.documents import FeedBuilder
from publisher.feeds.websub import Pinger
from publisher.site import Site
from publisher.web import (
    admin,
    api,
    digests,
    discovery,
    feeds,
    observability,
    pages,
    subscription,
    webhooks,
)
from publisher.web.cache import ContentCache
from publisher.web.headers import SecurityHeaders
from publisher.web.limits import BodyLimit
from publisher.web.templating import PageRenderer, render_page


def create_app(site: Site, *, poll_interval: float = 1.0) -> FastAPI:
    """Return the web app serving ``site``."""
    cache = ContentCache(site, poll_interval=poll_interval)
    pinger = Pinger(site.settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await cache.start()
        sender = subscription.notice_sender(app)
        # `serve` delivers the subscription flow's mail by itself (digests: worker, send).
        await sender.start()
        try:
            yield
        finally:
            await cache.stop()
            await pinger.aclose()
            await sender.stop()
            await subscription.drain(app)  # queue what requests promised; try sending it
            observability.close(app)
            await site.aclose()

    app = FastAPI(
        title=site.settings.site.title,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    # Last added runs first: the headers also go on the 413 BodyLimit answers with.
    app.add_middleware(BodyLimit, max_bytes=site.settings.web.max_request_bytes)
    app.add_middleware(SecurityHeaders)
    renderer = PageRenderer(site.settings)
    app.state.site = site
    app.state.pages = renderer
    app.state.cache = cache
    app.state.feed_builder = FeedBuilder(site.settings)
    app.state.page_builder = pages.Pages(site, renderer)
    # Tell the WebSub hub when any process (CLI import, worker) changes the content.
    cache.on_change(lambda _version: pinger.publish_site())

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        return JSONResponse(
            {
                "status": "ok",
                "content_version": cache.version,
                "builds": cache.builds,
                "cached": len(cache),
            },
            headers={"Cache-Control": "no-store"},
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return render_page(
                request, "404.html", {}, status_code=404, headers={"Cache-Control": "no-store"}
            )
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    app.include_router(feeds.router)
    app.include_router(pages.router)
    app.include_router(subscription.router)
    app.include_router(digests.router)
    app.include_router(discovery.router)
    app.include_router(observability.router)
    app.include_router(webhooks.router)
    app.add_middleware(observability.RequestMetrics)
    # Routers from other modules are included here, one line each.
    api.install(app)
    app.mount("/admin", admin.create_admin_app(site))
    return app
