"""/metrics, /readyz and the request-metrics middleware of the web app.

/metrics on the public app answers only when ``[metrics] token`` is set, and then only
to ``Authorization: Bearer <token>``: the figures (readers, queue, bounces) are the
operator's business, and a scrape costs a few database queries. Without a token it is a
404 like any unknown page; ``[metrics] listen`` serves it on a separate address instead.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException
from starlette.routing import Match
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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Time the request and record it once the response has started."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            observe_request(
                _template(scope),
                str(scope.get("method", "")),
                status[0],
                time.perf_counter() - started,
            )


def _template(scope: Scope) -> str:
    """Return the route template a request matched; unknown paths share one label."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        # Plain routes inside an included router leave no template in the scope: match
        # again (a handful of routes, after the response has gone).
        app = scope.get("app")
        path = _match(getattr(getattr(app, "router", None), "routes", []), scope)
    # "unmatched": a scanner must not grow the series without bound.
    return path or "unmatched"


def _match(routes: list[Any], scope: Scope) -> str | None:
    for candidate in routes:
        inner = getattr(candidate, "original_router", None)
        if inner is not None:
            found = _match(list(inner.routes), scope)
            if found:
                return found
            continue
        match, _ = candidate.matches(scope)
        if match == Match.FULL and isinstance(getattr(candidate, "path", None), str):
            return str(candidate.path)
    return None


def close(app: Any) -> None:
    """Release the metrics registry's database connection (at shutdown)."""
    found = getattr(app.state, "metrics", None)
    if isinstance(found, Metrics):
        found.close()
