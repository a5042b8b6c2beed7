"""Column types and values shared by Publisher's tables and the subscribers/ package.

A leaf: it imports nothing of Publisher, so subscribers/ (which never imports
Publisher's wiring) can use it, and both sides store time and frequencies alike.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

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
