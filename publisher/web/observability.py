"""/metrics, /readyz and the request-metrics middleware of the web app.

/metrics on the public app answers only when ``[metrics] token`` is set, and then only
to ``Authorization: Bearer <token>``: the figures (readers, queue, bounces) are the
operator's business, and a scrape costs a few database queries. Without a token it is a
404 like any unknown page; ``[metrics] listen`` serves it on a separate address instead.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException
from starlette.routing import Mount, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from publisher import db
from publisher.errors import PublisherError
from publisher.metrics import CONTENT_TYPE, Metrics, observe_request
from publisher.site import Site

router = APIRouter()
#: How long /readyz waits for the database before answering 503.
READY_TIMEOUT = 3.0
NO_STORE = {"Cache-Control": "no-store"}


def metrics_of(request: Request) -> Metrics:
    """Return (creating on first use) the app's metrics registry."""
    found = getattr(request.app.state, "metrics", None)
    if found is None:
        site: Site = request.app.state.site
        found = request.app.state.metrics = Metrics(site.settings.database.url)
    assert isinstance(found, Metrics)
    return found


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Answer Prometheus's scrape (bearer token required; 404 when none is configured)."""
    site: Site = request.app.state.site
    token = site.settings.metrics.token
    if not token:
        raise HTTPException(404)
    given = request.headers.get("authorization", "")[:512]
    expected = f"Bearer {token}"
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return JSONResponse(
            {"error": "metrics need Authorization: Bearer <metrics.token>"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"', **NO_STORE},
        )
    # The database gauges use a blocking driver (a separate listener shares them): a thread.
    body = await asyncio.to_thread(metrics_of(request).render)
    return Response(body, media_type=CONTENT_TYPE, headers=NO_STORE)


async def _revision(site: Site) -> str | None:
    async with site.engine.connect() as connection:
        await connection.execute(sa.text("SELECT 1"))
        version = sa.table("alembic_version", sa.column("version_num"))
        try:
            return await connection.scalar(sa.select(version.c.version_num))
        except SQLAlchemyError:
            return None


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> JSONResponse:
    """Answer 200 when the database answers and the code can run on its schema; else 503.

    A schema *ahead* of the code is ready: during a rolling upgrade the new release
    migrates first (expand only) and this one keeps serving until it is replaced.
    """
    site: Site = request.app.state.site
    try:
        current = await asyncio.wait_for(_revision(site), READY_TIMEOUT)
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        detail = f"unreachable ({type(exc).__name__})"
        return JSONResponse({"status": "error", "database": detail}, 503, NO_STORE)
    try:
        schema = await asyncio.to_thread(db.status_of, current)
    except PublisherError as exc:
        return JSONResponse({"status": "error", "migrations": str(exc)}, 503, NO_STORE)
    body: dict[str, Any] = {"database": "ok", "revision": current, "head": schema.head}
    if schema.state is db.SchemaState.BEHIND:
        return JSONResponse({"status": "error", "migrations": "behind", **body}, 503, NO_STORE)
    return JSONResponse({"status": "ok", "migrations": schema.state.value, **body}, 200, NO_STORE)


class RequestMetrics:
    """Count every request by its route template (never the raw path) and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._templates: RouteTemplates | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Time the request and record it once the response has started."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]
        # Routing rewrites the scope in place (a mounted app replaces "app" and
        # "root_path"): remember the outer app and the path as they arrived.
        outer, path = scope.get("app"), str(scope.get("path", ""))

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            if self._templates is None:
                self._templates = RouteTemplates(getattr(outer, "routes", []))
            method = str(scope.get("method", ""))
            observe_request(
                self._templates.label(scope.get("route"), path, method),
                method,
                status[0],
                time.perf_counter() - started,
            )


@dataclass(frozen=True)
class _Template:
    path: str
    pattern: re.Pattern[str]
    methods: frozenset[str]


class RouteTemplates:
    """Every route's full template: mount paths and router prefixes included.

    The route a request matched (``scope["route"]``) carries its template relative to
    its router or mounted app ("/login" in /admin, "/articles" in /api/v1), so the
    label is looked up by the route itself; a route that left no trace is matched
    again by path. Unknown paths share one label so a scanner cannot grow the series.
    """

    UNMATCHED = "unmatched"

    def __init__(self, routes: Sequence[Any]) -> None:
        self._by_route: dict[int, str] = {}
        self._templates: list[_Template] = []
        self._walk(routes, "")
        # Catch-alls ("/api/v1/{path:path}") answer only what nothing else matched.
        self._templates.sort(key=lambda template: ":path}" in template.path)

    def _walk(self, routes: Sequence[Any], prefix: str) -> None:
        for route in routes:
            inner = getattr(route, "original_router", None)
            if inner is not None:  # a router included with include_router
                included = getattr(getattr(route, "include_context", None), "prefix", "")
                self._walk(list(inner.routes), prefix + str(included or ""))
                continue
            path = getattr(route, "path", None)
            if not isinstance(path, str):
                continue
            if isinstance(route, Mount):
                if route.routes:
                    self._walk(list(route.routes), prefix + path)
                else:  # a mounted app without routes (static files)
                    self._add(route, prefix + path + "/{path:path}", None)
                continue
            self._add(route, prefix + path, getattr(route, "methods", None))

    def _add(self, route: Any, full: str, methods: Any) -> None:
        self._by_route.setdefault(id(route), full)
        pattern, _, _ = compile_path(full)
        self._templates.append(_Template(full, pattern, frozenset(methods or ())))

    def label(self, route: Any, path: str, method: str) -> str:
        """Return the full template of the route a request matched, else "unmatched"."""
        found = self._by_route.get(id(route)) if route is not None else None
        if found is not None:
            return found
        other = None
        for template in self._templates:
            if template.pattern.match(path):
                if not template.methods or method in template.methods:
                    return template.path
                other = other or template.path  # answered 405
        return other or self.UNMATCHED


def close(app: Any) -> None:
    """Release the metrics registry's database connection (at shutdown)."""
    found = getattr(app.state, "metrics", None)
    if isinstance(found, Metrics):
        found.close()
