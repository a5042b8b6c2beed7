"""Users: add, find, list, remove, change password or second factor, and log in."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from publisher.accounts import audit, passwords, throttle, totp
from publisher.accounts.errors import AccountInputError
from publisher.accounts.models import Role, User
from publisher.errors import NotFoundError
from subscribers.addresses import key_of, normalize
from subscribers.errors import InvalidInput

MAX_EMAIL_LENGTH = 320


def parse_role(value: str) -> Role:
    """Return the Role named by a string, or raise naming the choices."""
    try:
        return Role(value.strip().lower())
    except ValueError:
        choices = "|".join(role.value for role in Role)
        raise AccountInputError(f"role: {value!r} is not one of {choices}") from None


def normalized_email(value: str) -> tuple[str, str]:
    """Return (address, lower-cased key) for a user's address, or raise naming it."""
    if len(value) > MAX_EMAIL_LENGTH:
        raise AccountInputError(f"email: longer than {MAX_EMAIL_LENGTH} characters")
    try:
        address = normalize(value)
    except InvalidInput as exc:
        raise AccountInputError(str(exc)) from exc
    return address.email, address.key


def lookup_key(value: str) -> str:
    """Return the key to find a user by, without failing on a malformed address."""
    try:
        return normalized_email(value)[1]
    except AccountInputError:
        return key_of(value.strip()[:MAX_EMAIL_LENGTH])


async def get(session: AsyncSession, email: str) -> User | None:
    """Return the user with this address, or None."""
    user: User | None = await session.scalar(
        sa.select(User).where(User.email_key == lookup_key(email))
    )
    return user


async def get_by_id(session: AsyncSession, user_id: int) -> User | None:
    """Return the user with this id, or None."""
    return await session.get(User, user_id)


async def require(session: AsyncSession, email: str) -> User:
    """Return the user with this address, or raise NotFoundError."""
    user = await get(session, email)
    if user is None:
        raise NotFoundError(f"no user {email!r}")
    return user


async def add(
    session: AsyncSession,
    email: str,
    role: Role | str,
    password: str,
    now: datetime,
    *,
    actor: str = audit.CLI_ACTOR,
    source: str = "",
) -> User:
    """Create a user with an Argon2 hash of their password; audit it."""
    address, key = normalized_email(email)
    role = parse_role(str(role))
    if await session.scalar(sa.select(User.id).where(User.email_key == key)) is not None:
        raise AccountInputError(f"{address}: a user with this address exists already")
    user = User(
        email=address,
        email_key=key,
        role=role.value,
        password_hash=passwords.hash_password(password),
        totp_secret=None,
        totp_last_step=0,
        created_at=now,
    )
    session.add(user)
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="user.add",
        target=address,
        source=source,
        detail=f"role {role.value}",
        at=now,
    )
    return user


async def list_all(session: AsyncSession) -> Sequence[User]:
    """Return every user, by address."""
    return (await session.scalars(sa.select(User).order_by(User.email_key))).all()


async def remove(
    session: AsyncSession,
    email: str,
    now: datetime,
    *,
    actor: str = audit.CLI_ACTOR,
    source: str = "",
) -> User:
    """Delete a user with their sessions and tokens; the last owner stays."""
    user = await require(session, email)
    if user.role == Role.OWNER:
        owners = await session.scalar(
            sa.select(sa.func.count()).select_from(User).where(User.role == Role.OWNER.value)
        )
        if (owners or 0) <= 1:
            raise AccountInputError(f"{user.email} is the last owner; add another owner first")
    await session.delete(user)
    await session.flush()
    await audit.record(
        session, actor=actor, action="user.remove", target=user.email, source=source, at=now
    )
    return user


async def set_role(
    session: AsyncSession,
    user: User,
    role: Role | str,
    now: datetime,
    *,
    actor: str,
    source: str = "",
) -> None:
    """Change a user's role (keeping at least one owner); audit it."""
    new = parse_role(str(role))
    if user.role == Role.OWNER and new != Role.OWNER:
        owners = await session.scalar(
            sa.select(sa.func.count()).select_from(User).where(User.role == Role.OWNER.value)
        )
        if (owners or 0) <= 1:
            raise AccountInputError(f"{user.email} is the last owner; add another owner first")
    user.role = new.value
    await audit.record(
        session,
        actor=actor,
        action="user.role",
        target=user.email,
        source=source,
        detail=f"role {new.value}",
        at=now,
    )


async def set_password(
    session: AsyncSession, user: User, password: str, now: datetime, *, actor: str, source: str = ""
) -> None:
    """Replace a user's password hash; audit it."""
    user.password_hash = passwords.hash_password(password)
    await audit.record(
        session, actor=actor, action="user.password", target=user.email, source=source, at=now
    )


async def enable_totp(
    session: AsyncSession, user: User, now: datetime, *, actor: str, source: str = ""
) -> str:
    """Give a user a fresh TOTP secret (replacing any) and return it; audit it."""
    secret = totp.new_secret()
    user.totp_secret = secret
    user.totp_last_step = 0
    await audit.record(
        session, actor=actor, action="user.totp_on", target=user.email, source=source, at=now
    )
    return secret


async def disable_totp(
    session: AsyncSession, user: User, now: datetime, *, actor: str, source: str = ""
) -> None:
    """Remove a user's second factor; audit it."""
    user.totp_secret = None
    user.totp_last_step = 0
    await audit.record(
        session, actor=actor, action="user.totp_off", target=user.email, source=source, at=now
    )


async def confirm_totp(
    session: AsyncSession,
    user: User,
    secret: str,
    code: str,
    now: datetime,
    *,
    actor: str,
    source: str = "",
) -> bool:
    """Turn on a second factor with ``secret`` once ``code`` proves the app has it; audit it.

    The step of the confirming code counts as used: it cannot log in a second time.
    """
    step = totp.matching_step(secret, code, now, 0)
    if step is None:
        return False
    user.totp_secret = secret
    user.totp_last_step = step
    await audit.record(
        session, actor=actor, action="user.totp_on", target=user.email, source=source, at=now
    )
    return True


async def turn_off_totp(
    session: AsyncSession,
    user: User,
    password: str,
    code: str,
    now: datetime,
    *,
    ip: str = "",
    policy: throttle.ThrottlePolicy = throttle.DEFAULT_POLICY,
) -> bool:
    """Remove a user's second factor if their password and a fresh code check out.

    Throttled like a login (Throttled when locked out): a session left open on a shared
    computer must not be enough to guess its way to turning the factor off.
    """
    key = lookup_key(user.email)
    await throttle.check(session, key, ip, now, policy)
    ok = await asyncio.to_thread(passwords.verify_password, user.password_hash, password)
    step = (
        totp.matching_step(user.totp_secret, code, now, user.totp_last_step)
        if ok and user.totp_secret
        else None
    )
    if step is None:
        await throttle.record_failure(session, key, ip, now, policy)
        await audit.record(
            session,
            actor=user.email,
            action="user.totp_off_failed",
            target=user.email,
            source=ip,
            at=now,
        )
        return False
    await disable_totp(session, user, now, actor=user.email, source=ip)
    return True


async def log_in(
    session: AsyncSession,
    email: str,
    password: str,
    now: datetime,
    *,
    ip: str = "",
    totp_code: str = "",
    policy: throttle.ThrottlePolicy = throttle.DEFAULT_POLICY,
) -> User | None:
    """Check a login (throttled per account and per address) and return the user.

    Raises Throttled when locked out. A wrong address, password or code returns None
    after counting the failure in the session: the caller commits, so the count
    sticks. Nothing tells whether the address has an account.
    """
    key = lookup_key(email)
    await throttle.check(session, key, ip, now, policy)
    user = await session.scalar(sa.select(User).where(User.email_key == key))
    # Argon2 spends ~50 ms of CPU by design: off the event loop.
    ok = await asyncio.to_thread(
        passwords.verify_password, user.password_hash if user else None, password
    )
    if ok and user is not None and user.totp_secret:
        step = totp.matching_step(user.totp_secret, totp_code, now, user.totp_last_step)
        if step is None:
            ok = False
        else:
            user.totp_last_step = step
    if not ok or user is None:
        await throttle.record_failure(session, key, ip, now, policy)
        await audit.record(
            session,
            actor=email[:320],
            action="login.failed",
            target=email[:320],
            source=ip,
            at=now,
        )
        return None
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    user.last_login_at = now
    await throttle.clear_account(session, key)
    await audit.record(
        session, actor=user.email, action="login", target=user.email, source=ip, at=now
    )
    return user
