"""Users and API tokens (owners only) and the audit log."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from publisher.accounts import audit, tokens, users
from publisher.accounts.models import Role, TokenScope
from publisher.db import transaction
from publisher.errors import PublisherError
from publisher.web.admin.auth import (
    ManagingAccounts,
    PostsAccounts,
    Reading,
    Submitted,
    client_ip,
    site_of,
)
from publisher.web.admin.paging import PAGE_SIZE, cursor_int
from publisher.web.admin.rendering import page

router = APIRouter()
_T = TypeVar("_T")


async def _users_page(
    request: Request, editor: object, *, notice: str = "", new_token: str = "", status: int = 200
) -> Response:
    site = site_of(request)
    async with transaction(site.engine) as session:
        people = list(await users.list_all(session))
        token_rows = list(await tokens.list_all(session))
    return page(
        request,
        "admin/users.html",
        {
            "editor": editor,
            "people": people,
            "tokens": token_rows,
            "roles": [role.value for role in Role],
            "scopes": [scope.value for scope in TokenScope],
            "notice": notice,
            "new_token": new_token,
        },
        status_code=status,
    )


@router.get("/users")
async def users_page(request: Request, editor: ManagingAccounts) -> Response:
    """List users and tokens, with forms to add, change and revoke."""
    return await _users_page(request, editor)


async def _apply(
    request: Request, posted: Submitted, change: Callable[..., Awaitable[_T]]
) -> _T | Response:
    """Run one account change in a transaction as the signed-in owner; errors re-show the page."""
    site = site_of(request)
    who = {"actor": posted.editor.user.email, "source": client_ip(request)}
    try:
        async with transaction(site.engine) as session:
            return await change(session, site.clock.now(), **who)
    except PublisherError as exc:
        return await _users_page(request, posted.editor, notice=f"error: {exc}", status=422)


def _back(outcome: object) -> Response:
    if isinstance(outcome, Response):
        return outcome
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/users/new")
async def add_user(request: Request, posted: PostsAccounts) -> Response:
    """Add a user with a role and an initial password."""
    form = posted.form

    async def add(session: AsyncSession, now: datetime, **who: str) -> object:
        email, role, password = (
            form.get("email", "")[:400],
            form.get("role", ""),
            form.get("password", ""),
        )
        return await users.add(session, email, role, password, now, **who)

    return _back(await _apply(request, posted, add))


@router.post("/users/role")
async def change_role(request: Request, posted: PostsAccounts) -> Response:
    """Change a user's role (one owner always stays)."""
    form = posted.form

    async def change(session: AsyncSession, now: datetime, **who: str) -> object:
        user = await users.require(session, form.get("email", "")[:400])
        await users.set_role(session, user, form.get("role", ""), now, **who)
        return user

    return _back(await _apply(request, posted, change))


@router.post("/users/remove")
async def remove_user(request: Request, posted: PostsAccounts) -> Response:
    """Remove a user with their sessions and tokens (the last owner stays)."""
    email = posted.form.get("email", "")[:400]

    async def remove(session: AsyncSession, now: datetime, **who: str) -> object:
        return await users.remove(session, email, now, **who)

    return _back(await _apply(request, posted, remove))


@router.post("/tokens/new")
async def create_token(request: Request, posted: PostsAccounts) -> Response:
    """Create an API token and show it once."""
    form = posted.form

    async def create(session: AsyncSession, now: datetime, **who: str) -> tokens.Created:
        user = await users.require(session, form.get("user", "")[:400])
        name, scope = form.get("name", "")[:200], form.get("scope", "read")
        return await tokens.create(session, user, name, scope, now, **who)

    created = await _apply(request, posted, create)
    if isinstance(created, Response):
        return created
    return await _users_page(request, posted.editor, new_token=created.raw)


@router.post("/tokens/revoke")
async def revoke_token(request: Request, posted: PostsAccounts) -> Response:
    """Revoke a live token by name."""
    name = posted.form.get("name", "")[:200]

    async def revoke(session: AsyncSession, now: datetime, **who: str) -> object:
        return await tokens.revoke(session, name, now, **who)

    return _back(await _apply(request, posted, revoke))


@router.get("/audit")
async def audit_log(request: Request, editor: Reading) -> Response:
    """Show the audit log, newest first, a page at a time."""
    site = site_of(request)
    before = cursor_int(request.query_params.get("before"))
    async with transaction(site.engine) as session:
        entries = list(await audit.page(session, before_id=before, limit=PAGE_SIZE + 1))
    more = len(entries) > PAGE_SIZE
    entries = entries[:PAGE_SIZE]
    return page(
        request,
        "admin/audit.html",
        {
            "editor": editor,
            "entries": entries,
            "next_before": entries[-1].id if more and entries else None,
        },
    )
