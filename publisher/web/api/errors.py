"""The API's error answers: JSON with a ``detail``, and the headers HTTP asks for."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

NO_STORE = {"Cache-Control": "no-store"}


class ApiError(HTTPException):
    """An HTTP error raised by an API route; answered as JSON, never as a page."""


def unauthorized(detail: str) -> ApiError:
    """Return the 401 that tells a client to send a bearer token (RFC 6750)."""
    challenge = 'Bearer realm="publisher"'
    if detail != "missing bearer token":
        challenge += ', error="invalid_token"'
    return ApiError(401, detail, headers={"WWW-Authenticate": challenge})


def forbidden(detail: str) -> ApiError:
    """Return the 403 for a role or token scope that does not allow the action."""
    return ApiError(
        403,
        detail,
        headers={"WWW-Authenticate": 'Bearer realm="publisher", error="insufficient_scope"'},
    )


def not_found(detail: str) -> ApiError:
    """Return a 404 naming what is missing."""
    return ApiError(404, detail)


def conflict(detail: str) -> ApiError:
    """Return a 409 naming what is taken."""
    return ApiError(409, detail)


async def api_error(request: Request, exc: Exception) -> JSONResponse:
    """Answer an ApiError as JSON with its headers."""
    assert isinstance(exc, HTTPException)
    return JSONResponse(
        {"detail": exc.detail},
        status_code=exc.status_code,
        headers={**NO_STORE, **(exc.headers or {})},
    )
