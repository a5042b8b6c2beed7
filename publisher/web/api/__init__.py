"""The REST API at /api/v1: one router per resource, bearer tokens, its own OpenAPI document."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from publisher.web.api import announcements, articles, digest, editions, subscribers
from publisher.web.api.errors import ApiError, api_error, not_found
from publisher.web.api.limits import LimitedRoute

PREFIX = "/api/v1"
VERSION = "1.0.0"

router = APIRouter(prefix=PREFIX, route_class=LimitedRoute)
for module in (articles, subscribers, editions, digest, announcements):
    router.include_router(module.router)


def openapi_document(title: str) -> dict[str, Any]:
    """Return the OpenAPI 3.1 description of the API routes (the public site stays out)."""
    return get_openapi(
        title=f"{title} API",
        version=VERSION,
        description="Articles, subscribers, editions, digest previews and announcements. "
        "Send `Authorization: Bearer TOKEN` (`publisher tokens create`).",
        routes=router.routes,
    )


def install(app: FastAPI) -> None:
    """Serve the API, its OpenAPI document and its JSON errors from ``app``."""
    app.include_router(router)
    app.add_exception_handler(ApiError, api_error)
    document: dict[str, Any] = {}

    async def openapi(request: Request) -> JSONResponse:
        if not document:
            document.update(openapi_document(app.title))
        return JSONResponse(document)

    async def unknown(request: Request, path: str) -> JSONResponse:
        raise not_found(f"no API endpoint {request.method} {request.url.path}")

    app.add_api_route(f"{PREFIX}/openapi.json", openapi, include_in_schema=False)
    # Anything else under the prefix is a JSON 404 (or 405), never the site's HTML page.
    app.add_api_route(
        f"{PREFIX}/{{path:path}}",
        unknown,
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )
