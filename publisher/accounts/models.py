"""The account tables: users, sessions, API tokens, login throttles and the audit log."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from publisher.columns import UTCDateTime
from publisher.db import Base


class Role(StrEnum):
    """What a user may do: owners everything, editors content and sends, viewers read."""

    OWNER = "owner"
    EDITOR = "editor"
    VIEWER = "viewer"


class TokenScope(StrEnum):
    """What an API token may do on top of its user's role."""

    READ = "read"
    WRITE = "write"


class User(Base):
    """One editor: address, role, Argon2 password hash and optional TOTP secret."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(320))
    # Lower-cased address: the case-insensitive uniqueness key.
    email_key: Mapped[str] = mapped_column(sa.String(320), unique=True)
    role: Mapped[str] = mapped_column(sa.String(10))
    password_hash: Mapped[str] = mapped_column(sa.String(200))
    totp_secret: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    # The last accepted TOTP time step: a code is good once, not for its whole 30 s.
    totp_last_step: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    @property
    def role_enum(self) -> Role:
        """Return the role as a Role."""
        return Role(self.role)


class LoginSession(Base):
    """A server-side login session; the cookie holds a random id, the row its hash."""

    __tablename__ = "login_sessions"

    id_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # Secret the CSRF tokens of this session are derived from.
    csrf_secret: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ip: Mapped[str] = mapped_column(sa.String(64), default="")
    user_agent: Mapped[str] = mapped_column(sa.String(300), default="")


class ApiToken(Base):
    """An API token: its name, scope and owner; only the SHA-256 of the secret is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    # The first characters of the token, shown in lists so a person can tell tokens apart.
    prefix: Mapped[str] = mapped_column(sa.String(16))
    scope: Mapped[str] = mapped_column(sa.String(10))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    @property
    def scope_enum(self) -> TokenScope:
        """Return the scope as a TokenScope."""
        return TokenScope(self.scope)


class LoginThrottle(Base):
    """Failed logins counted per account or per address in a window (shared by processes)."""

    __tablename__ = "login_throttles"

    # "account:<email key>" or "ip:<address>".
    key: Mapped[str] = mapped_column(sa.String(400), primary_key=True)
    failures: Mapped[int] = mapped_column(sa.Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AuditEntry(Base):
    """One line of the audit log: who did what to which thing, when and from where."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The address is kept as text so the line survives the user's removal.
    actor: Mapped[str] = mapped_column(sa.String(320))
    action: Mapped[str] = mapped_column(sa.String(60))
    target: Mapped[str] = mapped_column(sa.String(400), default="")
    source: Mapped[str] = mapped_column(sa.String(100), default="")
    detail: Mapped[str] = mapped_column(sa.Text, default="")
