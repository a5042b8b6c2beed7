"""Build the FastAPI application: feeds, pages, health check and the subscription flow."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from publisher.site import Site
from publisher.web.templating import PageRenderer, render_page


def create_app(site: Site) -> FastAPI:
    """Return the web app serving ``site``."""
    app = FastAPI(title=site.settings.site.title, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.site = site
    app.state.pages = PageRenderer(site.settings)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return render_page(request, "404.html", {}, status_code=404)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    # Routers from other modules are included here, one line each.
    return app
