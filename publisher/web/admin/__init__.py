"""The editors' web app at /admin/: server-rendered pages, one module per area."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from publisher.site import Site
from publisher.web.admin import (
    accounts,
    announcements,
    articles,
    auth,
    dashboard,
    digests,
    static,
    subscribers,
)
from publisher.web.admin.rendering import (
    LANGUAGE_COOKIE,
    LANGUAGES,
    SECURITY_HEADERS,
    AdminRenderer,
    page,
)


def create_admin_app(site: Site) -> FastAPI:
    """Return the admin app; the public app mounts it at /admin."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.site = site
    app.state.admin_pages = AdminRenderer(site.settings)

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(auth.AdminRedirect)
    async def redirect(request: Request, exc: auth.AdminRedirect) -> Response:
        return RedirectResponse(exc.location, status_code=303)

    @app.exception_handler(auth.AdminDenied)
    async def denied(request: Request, exc: auth.AdminDenied) -> Response:
        return page(
            request,
            "admin/error.html",
            {"status": exc.status, "message": exc.message},
            status_code=exc.status,
            headers=exc.headers,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = "Not found." if exc.status_code == 404 else str(exc.detail)
        return page(
            request,
            "admin/error.html",
            {"status": exc.status_code, "message": message},
            status_code=exc.status_code,
        )

    @app.get("/language/{language}")
    async def switch_language(language: str, request: Request) -> Response:
        response = RedirectResponse("/admin/", status_code=303)
        if language in LANGUAGES:
            response.set_cookie(
                LANGUAGE_COOKIE, language, max_age=365 * 86400, samesite="lax", path="/admin"
            )
        return response

    for module in (
        auth,
        static,
        dashboard,
        articles,
        subscribers,
        digests,
        announcements,
        accounts,
    ):
        app.include_router(module.router)
    return app
