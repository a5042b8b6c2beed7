"""Users and API tokens (owners only) and the audit log."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from publisher.accounts import audit, tokens, users
from publisher.accounts.models import Role, TokenScope
from publisher.db import transaction
from publisher.errors import PublisherError
from publisher.web.admin.auth import (
    ManagingAccounts,
    PostsAccounts,
    Reading,
    client_ip,
    site_of,
)
from publisher.web.admin.paging import PAGE_SIZE, cursor_int
from publisher.web.admin.rendering import page

router = APIRouter()


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


@router.post("/users/new")
async def add_user(request: Request, posted: PostsAccounts) -> Response:
    """Add a user with a role and an initial password."""
    site = site_of(request)
    form = posted.form
    try:
        async with transaction(site.engine) as session:
            await users.add(
                session,
                form.get("email", "")[:400],
                form.get("role", ""),
                form.get("password", ""),
                site.clock.now(),
                actor=posted.editor.user.email,
                source=client_ip(request),
            )
    except PublisherError as exc:
        return await _users_page(request, posted.editor, notice=f"error: {exc}", status=422)
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/users/role")
async def change_role(request: Request, posted: PostsAccounts) -> Response:
    """Change a user's role (one owner always stays)."""
    site = site_of(request)
    try:
        async with transaction(site.engine) as session:
            user = await users.require(session, posted.form.get("email", "")[:400])
            await users.set_role(
                session,
                user,
                posted.form.get("role", ""),
                site.clock.now(),
                actor=posted.editor.user.email,
                source=client_ip(request),
            )
    except PublisherError as exc:
        return await _users_page(request, posted.editor, notice=f"error: {exc}", status=422)
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/users/remove")
async def remove_user(request: Request, posted: PostsAccounts) -> Response:
    """Remove a user with their sessions and tokens (the last owner stays)."""
    site = site_of(request)
    try:
        async with transaction(site.engine) as session:
            await users.remove(
                session,
                posted.form.get("email", "")[:400],
                site.clock.now(),
                actor=posted.editor.user.email,
                source=client_ip(request),
            )
    except PublisherError as exc:
        return await _users_page(request, posted.editor, notice=f"error: {exc}", status=422)
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/tokens/new")
async def create_token(request: Request, posted: PostsAccounts) -> Response:
    """Create an API token and show it once."""
    site = site_of(request)
    form = posted.form
    try:
        async with transaction(site.engine) as session:
            user = await users.require(session, form.get("user", "")[:400])
            created = await tokens.create(
                session,
                user,
                form.get("name", "")[:200],
                form.get("scope", "read"),
                site.clock.now(),
                actor=posted.editor.user.email,
                source=client_ip(request),
            )
    except PublisherError as exc:
        return await _users_page(request, posted.editor, notice=f"error: {exc}", status=422)
    return await _users_page(request, posted.editor, new_token=created.raw)


@router.post("/tokens/revoke")
async def revoke_token(request: Request, posted: PostsAccounts) -> Response:
    """Revoke a live token by name."""
    site = site_of(request)
    try:
        async with transaction(site.engine) as session:
            await tokens.revoke(
                session,
                posted.form.get("name", "")[:200],
                site.clock.now(),
                actor=posted.editor.user.email,
                source=client_ip(request),
            )
    except PublisherError as exc:
        return await _users_page(request, posted.editor, notice=f"error: {exc}", status=422)
    return RedirectResponse("/admin/users", status_code=303)


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
