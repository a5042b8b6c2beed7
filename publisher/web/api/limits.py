"""Input limits of the API: body size while it streams in, and JSON nesting depth."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from publisher.web.api.errors import ApiError

#: The largest request body the API reads (an article of a few hundred KB fits easily).
MAX_BODY_BYTES = 2 * 1024 * 1024
#: Deeper JSON than this is refused before parsing (no request needs more than 3 levels).
MAX_JSON_DEPTH = 10
#: The longest list in any request (tags, topics).
MAX_LIST_ITEMS = 50

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


async def read_limited(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """Read the body, refusing with 413 as soon as it passes ``limit`` (before it is all in)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise ApiError(413, f"request body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def json_depth(body: bytes) -> int:
    """Return how deeply arrays and objects nest in a JSON text (strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


class LimitedRoute(APIRoute):
    """An API route whose body is size-checked while streaming and depth-checked before parsing."""

    def get_route_handler(self) -> Handler:
        """Wrap FastAPI's handler so the body it parses is already within limits."""
        parse_and_call = super().get_route_handler()

        async def handler(request: Request) -> Response:
            if request.method in ("POST", "PUT", "PATCH", "DELETE"):
                body = await read_limited(request)
                if json_depth(body) > MAX_JSON_DEPTH:
                    raise RequestValidationError(
                        [
                            {
                                "loc": ("body",),
                                "msg": f"JSON nested deeper than {MAX_JSON_DEPTH} levels",
                                "type": "value_error.depth",
                            }
                        ]
                    )
                # Starlette keeps the body it read; FastAPI's parser reads it from there.
                request._body = body
            return await parse_and_call(request)

        return handler
