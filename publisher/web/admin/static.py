"""The admin app's own static files: its stylesheet and a vendored htmx (no CDN)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from publisher.resources import templates_root

#: htmx 2.0.11 from the npm package htmx.org (BSD Zero Clause; htmx-LICENSE.txt beside it).
HTMX = "htmx-2.0.11.min.js"
_TYPES = {
    HTMX: "text/javascript; charset=utf-8",
    "admin.css": "text/css; charset=utf-8",
    "admin.js": "text/javascript; charset=utf-8",
}
_cache: dict[str, bytes] = {}

router = APIRouter()


@router.get("/static/{name}")
async def static_file(name: str) -> Response:
    """Serve one of the few known files (the name is looked up, never joined to a path)."""
    media_type = _TYPES.get(name)
    if media_type is None:
        raise HTTPException(404)
    body = _cache.get(name)
    if body is None:
        body = (templates_root() / "web" / "admin" / "static" / name).read_bytes()
        _cache[name] = body
    # Versioned names (htmx) never change; the others may change with an upgrade.
    max_age = 31536000 if name == HTMX else 3600
    return Response(
        body, media_type=media_type, headers={"Cache-Control": f"public, max-age={max_age}"}
    )
