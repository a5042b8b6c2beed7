"""Column types and values shared by Publisher's tables and the subscribers/ package.

A leaf: it imports nothing of Publisher, so subscribers/ (which never imports
Publisher's wiring) can use it, and both sides store time and frequencies alike.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles

DAILY = "daily"
WEEKLY = "weekly"
#: How often a reader gets a digest (the first is the default).
FREQUENCIES = (DAILY, WEEKLY)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Store aware datetimes as naive UTC and read them back aware (SQLite forgets zones)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} reached the store; attach a time zone")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


# -- SQL functions both backends compute (set-based enqueue hashes in the database) --


class sha256_hex(sa.sql.functions.GenericFunction[str]):
    """SHA-256 of a text's UTF-8 bytes, as lower-case hex (suppression keys are hashed so)."""

    type = sa.String()
    inherit_cache = True


class hmac_sha256_hex(sa.sql.functions.GenericFunction[str]):
    """HMAC-SHA-256 of a text's UTF-8 bytes under a key given as hex, as lower-case hex."""

    type = sa.String()
    inherit_cache = True


@compiles(sha256_hex, "postgresql")
def _sha256_postgresql(element: sha256_hex, compiler: Any, **kw: Any) -> str:
    (text,) = element.clauses
    return f"encode(sha256(convert_to({compiler.process(text, **kw)}, 'UTF8')), 'hex')"


@compiles(hmac_sha256_hex, "postgresql")
def _hmac_postgresql(element: hmac_sha256_hex, compiler: Any, **kw: Any) -> str:
    # PostgreSQL has sha256() but no hmac() without pgcrypto: RFC 2104 spelled out. The
    # key is a bound hex string of ours; its padded forms are written in as hex literals.
    key, text = element.clauses
    if not isinstance(key, sa.BindParameter) or not isinstance(key.value, str):
        raise TypeError("hmac_sha256_hex needs the key as a bound hex string")
    block = bytes.fromhex(key.value).ljust(64, b"\0")
    inner_pad = bytes(b ^ 0x36 for b in block).hex()
    outer_pad = bytes(b ^ 0x5C for b in block).hex()
    message = f"convert_to({compiler.process(text, **kw)}, 'UTF8')"
    inner = f"sha256(decode('{inner_pad}', 'hex') || {message})"
    return f"encode(sha256(decode('{outer_pad}', 'hex') || {inner}), 'hex')"


def register_sqlite_functions(dbapi_connection: Any) -> None:
    """Give a SQLite connection the functions PostgreSQL has built in (or spelled out)."""
    dbapi_connection.create_function("sha256_hex", 1, _sha256, deterministic=True)
    dbapi_connection.create_function("hmac_sha256_hex", 2, _hmac, deterministic=True)


def _sha256(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


def _hmac(key: str | None, text: str | None) -> str | None:
    if key is None or text is None:
        return None
    return hmac.new(bytes.fromhex(key), str(text).encode("utf-8"), hashlib.sha256).hexdigest()
