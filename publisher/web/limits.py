"""Request limits: bodies counted while they stream in, and JSON nesting depth.

One ASGI middleware caps every request body (``web.max_request_bytes``); an endpoint
tightens the cap for itself with ``Depends(body_limit(n))``. A body over its cap is
answered 413 as soon as its Content-Length says so, or as soon as the bytes received
pass the cap, never after reading the rest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Deepest JSON nesting (arrays and objects) a request may carry.
MAX_JSON_DEPTH = 32
_SCOPE_KEY = "publisher.body_limit"
# Escapes first, so an escaped quote never toggles "inside a string".
_JSON_TOKEN = re.compile(rb'\\.|["\[\]{}]', re.S)


class BodyTooLarge(Exception):
    """Signal, from inside the app's receive(), that the body passed its cap."""


class InvalidJson(ValueError):
    """Reject a request body that is not JSON, or is nested too deeply."""


@dataclass
class _Cap:
    max_bytes: int


class BodyLimit:
    """Refuse request bodies over a cap: by Content-Length at once, else while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app with a receive() that counts body bytes against the cap."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = _Cap(self.max_bytes)
        scope[_SCOPE_KEY] = cap
        if _declared_over(scope, cap.max_bytes):
            await _too_large(send)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap.max_bytes:
                    raise BodyTooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            if not started:
                await _too_large(send)


def _declared_over(scope: Scope, max_bytes: int) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            return not value.isdigit() or len(value) > 18 or int(value) > max_bytes
    return False


async def _too_large(send: Send) -> None:
    body = b"request body too large\n"
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def body_limit(max_bytes: int) -> Callable[[Request], None]:
    """Return a dependency that lowers this request's body cap to ``max_bytes``."""

    def dependency(request: Request) -> None:
        cap = request.scope.get(_SCOPE_KEY)
        if isinstance(cap, _Cap):
            cap.max_bytes = min(cap.max_bytes, max_bytes)
        else:  # the app runs without the middleware (a bare test app): still check the header
            request.scope[_SCOPE_KEY] = _Cap(max_bytes)
        if _declared_over(request.scope, max_bytes):
            raise HTTPException(413, "request body too large")

    return dependency


def json_depth(data: bytes) -> int:
    """Return how deeply arrays and objects nest in JSON text (strings do not count)."""
    depth = deepest = 0
    in_string = False
    for token in _JSON_TOKEN.findall(data):
        if token == b'"':
            in_string = not in_string
        elif in_string or len(token) == 2:
            continue
        elif token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def parse_json(data: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a JSON request body, refusing nesting deeper than ``max_depth`` before parsing."""
    depth = json_depth(data)
    if depth > max_depth:
        raise InvalidJson(f"JSON nested {depth} levels deep, over the limit of {max_depth}")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise InvalidJson(f"invalid JSON: {exc}") from None
