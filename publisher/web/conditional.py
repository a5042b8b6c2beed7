"""Answer GET and HEAD from a cached body: gzip, ETag, Last-Modified and 304s."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

from starlette.requests import Request
from starlette.responses import Response

from publisher.web.cache import Cached


def accepts_gzip(header: str) -> bool:
    """Tell whether an Accept-Encoding header allows gzip."""
    for part in header.lower().split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip() in ("gzip", "*"):
            q = params.strip().removeprefix("q=")
            if params.strip().startswith("q="):
                try:
                    return float(q) > 0
                except ValueError:
                    return False
            return True
    return False


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def not_modified(request: Request, cached: Cached) -> bool:
    """Apply If-None-Match (weak comparison), else If-Modified-Since (RFC 9110)."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = _etags(if_none_match)
        return "*" in tags or cached.etag in tags or cached.gzip_etag in tags
    since = request.headers.get("if-modified-since")
    if since:
        try:
            when = parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
        if when.tzinfo is None:
            return False
        return cached.last_modified <= when
    return False


def respond(request: Request, cached: Cached, max_age: int, status_code: int = 200) -> Response:
    """Build the response for ``cached``: 304 when the client's copy is current."""
    use_gzip = cached.gzipped is not None and accepts_gzip(
        request.headers.get("accept-encoding", "")
    )
    headers = {
        "ETag": cached.gzip_etag if use_gzip else cached.etag,
        "Last-Modified": cached.last_modified_header,
        "Cache-Control": f"public, max-age={max_age}",
        "Vary": "Accept-Encoding",
    }
    if status_code == 200 and not_modified(request, cached):
        return Response(status_code=304, headers=headers)
    body = cached.body
    if use_gzip:
        assert cached.gzipped is not None
        body = cached.gzipped
        headers["Content-Encoding"] = "gzip"
    return Response(body, status_code=status_code, headers=headers, media_type=cached.media_type)
