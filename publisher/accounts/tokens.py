"""API tokens: a random secret shown once, its SHA-256 kept, looked up per request."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from publisher.accounts import audit
from publisher.accounts.errors import AccountInputError
from publisher.accounts.models import ApiToken, TokenScope, User
from publisher.clock import utcnow
from publisher.errors import NotFoundError

#: Tokens start with this, so a leaked one is easy to recognise (and scan for).
TOKEN_PREFIX = "pub_"  # noqa: S105 - a marker, not a secret
MAX_TOKEN_LENGTH = 200
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$")
# Only write last_used_at when it is this stale: an API call need not be a write.
_TOUCH_EVERY = timedelta(minutes=1)


def _hash(raw: str) -> str:
    # A plain SHA-256 suffices: the secret has 256 bits of entropy, nothing to brute-force.
    return hashlib.sha256(raw.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class Created:
    """A token just created: ``raw`` is shown once and never stored."""

    raw: str
    token: ApiToken


def parse_scope(value: str) -> TokenScope:
    """Return the TokenScope named by a string, or raise naming the choices."""
    try:
        return TokenScope(value.strip().lower())
    except ValueError:
        raise AccountInputError(f"scope: {value!r} is not one of read|write") from None


def check_name(name: str) -> str:
    """Return a valid token name, or raise naming what is wrong."""
    name = name.strip()
    if not _NAME.match(name):
        raise AccountInputError(
            f"token name {name[:40]!r}: 1-100 letters, digits, spaces, '.', '_' or '-'"
        )
    return name


async def create(
    session: AsyncSession,
    user: User,
    name: str,
    scope: TokenScope | str,
    now: datetime,
    *,
    actor: str = audit.CLI_ACTOR,
    source: str = "",
) -> Created:
    """Create a token for a user; the name must not belong to a live token."""
    name = check_name(name)
    scope = parse_scope(str(scope))
    if await active(session, name) is not None:
        raise AccountInputError(f"token name {name!r}: a live token has this name already")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        name=name,
        token_hash=_hash(raw),
        prefix=raw[:12],
        scope=scope.value,
        user_id=user.id,
        created_at=now,
    )
    session.add(token)
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="token.create",
        target=name,
        source=source,
        detail=f"user {user.email}, scope {scope.value}",
        at=now,
    )
    return Created(raw=raw, token=token)


async def active(session: AsyncSession, name: str) -> ApiToken | None:
    """Return the live (unrevoked) token with this name, or None."""
    token: ApiToken | None = await session.scalar(
        sa.select(ApiToken).where(ApiToken.name == name.strip(), ApiToken.revoked_at.is_(None))
    )
    return token


async def list_all(
    session: AsyncSession, *, include_revoked: bool = True
) -> Sequence[tuple[ApiToken, User]]:
    """Return every token with its user, newest first."""
    query = (
        sa.select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .order_by(ApiToken.id.desc())
    )
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))
    return [(token, user) for token, user in (await session.execute(query)).all()]


async def revoke(
    session: AsyncSession,
    name: str,
    now: datetime,
    *,
    actor: str = audit.CLI_ACTOR,
    source: str = "",
) -> ApiToken:
    """Revoke the live token with this name (it stops working at once); audit it."""
    token = await active(session, name)
    if token is None:
        raise NotFoundError(f"no live token named {name!r}")
    token.revoked_at = now
    await audit.record(
        session, actor=actor, action="token.revoke", target=token.name, source=source, at=now
    )
    return token


async def authenticate_token(
    session: AsyncSession, raw: str | None, now: datetime | None = None
) -> tuple[User, ApiToken] | None:
    """Return (user, token) for a live bearer token, recording its use; else None.

    The use is written in the caller's transaction (at most once a minute per token).
    """
    if not raw or len(raw) > MAX_TOKEN_LENGTH or not raw.startswith(TOKEN_PREFIX):
        return None
    found = (
        await session.execute(
            sa.select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == _hash(raw), ApiToken.revoked_at.is_(None))
        )
    ).first()
    if found is None:
        return None
    token, user = found
    now = now or utcnow()
    if token.last_used_at is None or now - token.last_used_at >= _TOUCH_EVERY:
        token.last_used_at = now
    return user, token
