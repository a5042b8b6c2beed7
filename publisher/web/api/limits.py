"""Input limits of the API on top of the app's streamed body cap: JSON depth and list sizes.

The body itself is capped by the app's BodyLimit middleware (``web.max_request_bytes``,
counted while it streams in, 413 past it); this route class refuses JSON nested deeper
than the API needs before FastAPI parses it.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from publisher.web.limits import json_depth

#: Deeper JSON than this is refused before parsing (no request needs more than 3 levels).
MAX_JSON_DEPTH = 10
#: The longest list in any request (tags, topics).
MAX_LIST_ITEMS = 50

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class LimitedRoute(APIRoute):
    """An API route whose JSON body is depth-checked before FastAPI parses it."""

    def get_route_handler(self) -> Handler:
        """Wrap FastAPI's handler so the body it parses is already within limits."""
        parse_and_call = super().get_route_handler()

        async def handler(request: Request) -> Response:
            if request.method in ("POST", "PUT", "PATCH", "DELETE"):
                # Read under the app's streamed cap; Starlette keeps it for FastAPI's parser.
                body = await request.body()
                if json_depth(body) > MAX_JSON_DEPTH:
                    message = f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
                    error = {"loc": ("body",), "msg": message, "type": "value_error.depth"}
                    raise RequestValidationError([error])
            return await parse_and_call(request)

        return handler
