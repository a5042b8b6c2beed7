"""Opaque keyset cursors and the page envelope every API list answers with."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
#: A cursor is a few dozen bytes; anything longer is not one of ours.
MAX_CURSOR = 200

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")]
CursorParam = Annotated[
    str | None,
    Query(max_length=MAX_CURSOR, description="`next_cursor` of the previous page."),
]


class Page(BaseModel, Generic[T]):
    """One page of a list; ``next_cursor`` is null on the last page."""

    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null when there is none."
    )


def encode(kind: str, *key: Any) -> str:
    """Pack a list position into an opaque, URL-safe cursor."""
    raw = json.dumps([kind, *key], separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def bad_cursor(reason: str) -> RequestValidationError:
    """Return the 422 for a cursor that is not one this list handed out."""
    return RequestValidationError(
        [{"loc": ("query", "cursor"), "msg": f"invalid cursor: {reason}", "type": "value_error"}]
    )


def decode(cursor: str, kind: str, size: int) -> list[Any]:
    """Unpack a cursor of ``kind`` holding ``size`` values, or raise a 422 naming it."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad_cursor("not a cursor from this API") from None
    if not isinstance(data, list) or len(data) != size + 1 or data[0] != kind:
        raise bad_cursor("it belongs to another list or ordering")
    return data[1:]
