"""Logging in and out, the session cookie, CSRF and role checks for every admin page."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from publisher.accounts import audit, sessions, throttle, users
from publisher.accounts.errors import Throttled
from publisher.accounts.models import LoginSession, User
from publisher.accounts.permissions import Action, allows
from publisher.db import transaction
from publisher.site import Site
from publisher.web.admin.rendering import page

SESSION_COOKIE = "publisher_admin"
LOGIN_CSRF_COOKIE = "publisher_admin_login"
#: A form bigger than this is refused before it is parsed (an article is at most ~1 MB).
MAX_FORM_BYTES = 2_000_000
MAX_FIELDS = 100


class AdminRedirect(Exception):
    """Send the browser elsewhere (to the login page when no session is open)."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


class AdminDenied(Exception):
    """Answer with an error page: 403 role or CSRF, 413 too large, 429 throttled."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass
class Editor:
    """The logged-in user of this request, their session and its CSRF token."""

    user: User
    session: LoginSession
    csrf: str

    def can(self, action: Action | str) -> bool:
        """Tell whether the user's role allows an action (templates hide what it does not)."""
        return allows(self.user.role, Action(action))


def site_of(request: Request) -> Site:
    """Return the site the admin app serves."""
    site: Site = request.app.state.site
    return site


def client_ip(request: Request) -> str:
    """Return the client's address (uvicorn resolves X-Forwarded-For from trusted proxies)."""
    return request.client.host if request.client else ""


async def record_action(
    request: Request,
    editor: Editor,
    action: str,
    target: str,
    detail: str = "",
    *,
    at: datetime | None = None,
) -> None:
    """Write one audit entry for what an editor did, in a transaction of its own."""
    site = site_of(request)
    async with transaction(site.engine) as session:
        await audit.record(
            session,
            actor=editor.user.email,
            action=action,
            target=target,
            source=client_ip(request),
            detail=detail,
            at=at or site.clock.now(),
        )


def secure_cookies(site: Site) -> bool:
    """Tell whether cookies get the Secure flag (the site is served over https)."""
    return site.settings.site.base_url.startswith("https://")


async def current_editor(request: Request) -> Editor:
    """Load the session behind the cookie, or send the browser to the login page."""
    site = site_of(request)
    raw = request.cookies.get(SESSION_COOKIE)
    if raw:
        async with transaction(site.engine) as session:
            found = await sessions.current(session, raw, site.clock.now())
        if found is not None:
            return Editor(found.user, found.row, sessions.csrf_token(found.row))
    if request.method != "GET":
        raise AdminDenied(403, "Your session has ended. Log in again.")
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    raise AdminRedirect(f"/admin/login?next={quote(target[:500], safe='/')}")


def requires(action: Action) -> Callable[..., Awaitable[Editor]]:
    """Return a dependency that admits only users whose role allows ``action``."""

    async def dependency(
        request: Request, editor: Annotated[Editor, Depends(current_editor)]
    ) -> Editor:
        if not editor.can(action):
            raise AdminDenied(403, "Your role does not allow this.")
        return editor

    return dependency


async def read_form(request: Request) -> dict[str, str]:
    """Read a urlencoded or multipart form (size-limited) as single values."""
    length = request.headers.get("content-length")
    if length is None or not length.isdigit() or int(length) > MAX_FORM_BYTES:
        raise AdminDenied(413, "The form is too large.")
    raw = await request.form(max_files=1, max_fields=MAX_FIELDS)
    values: dict[str, str] = {}
    for key in raw:
        items = [value for value in raw.getlist(key) if isinstance(value, str)]
        values[key] = items[-1] if items else ""
    return values


@dataclass
class Submitted:
    """A POST that passed the session, role, size and CSRF checks."""

    editor: Editor
    form: dict[str, str]


def submits(action: Action) -> Callable[..., Awaitable[Submitted]]:
    """Return a dependency for a POST: session, role allows ``action``, form size, CSRF token."""

    # A default, not Annotated: string annotations cannot see this closure's variable.
    admitted = Depends(requires(action))

    async def dependency(request: Request, editor: Editor = admitted) -> Submitted:
        form = await read_form(request)
        token = form.get("csrf") or request.headers.get("x-csrf-token", "")
        if not sessions.csrf_valid(editor.session, token):
            raise AdminDenied(403, "The form expired or came from another site. Reload the page.")
        return Submitted(editor, form)

    return dependency


# The login form has no session yet: a signed double-submit cookie guards it.


def _login_token(site: Site, nonce: str) -> str:
    key = site.settings.web.secret_key.encode() or b"publisher-admin"
    return hmac.new(key, b"admin-login:" + nonce.encode(), hashlib.sha256).hexdigest()


def _safe_next(target: str) -> str:
    # Only back into the admin app: never an open redirect to another host.
    if target.startswith("/admin/") and not target.startswith("//") and "\\" not in target:
        return target[:500]
    return "/admin/"


router = APIRouter()


def _login_page(
    request: Request, site: Site, *, error: str = "", status: int = 200, email: str = ""
) -> Response:
    nonce = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    fresh = not nonce or len(nonce) > 64 or not nonce.isalnum()
    if fresh:
        nonce = secrets.token_hex(16)
    response = page(
        request,
        "admin/login.html",
        {
            "csrf": _login_token(site, nonce),
            "error": error,
            "email": email[:320],
            "next": _safe_next(request.query_params.get("next", "")),
        },
        status_code=status,
    )
    if fresh:
        response.set_cookie(
            LOGIN_CSRF_COOKIE,
            nonce,
            httponly=True,
            samesite="lax",
            secure=secure_cookies(site),
            path="/admin",
        )
    return response


@router.get("/login")
async def login_page(request: Request) -> Response:
    """Show the login form."""
    return _login_page(request, site_of(request))


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the address, password and code; open a fresh session (rotation) on success."""
    site = site_of(request)
    form = await read_form(request)
    nonce = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not nonce or not hmac.compare_digest(_login_token(site, nonce), form.get("csrf", "")):
        return _login_page(request, site, error="csrf", status=403)
    email = form.get("email", "")[:400]
    password = form.get("password", "")
    code = form.get("code", "")[:20]
    ip = client_ip(request)
    now = site.clock.now()
    try:
        async with transaction(site.engine) as session:
            user = await users.log_in(session, email, password, now, ip=ip, totp_code=code)
            if user is not None:
                opened = await sessions.open_session(
                    session,
                    user,
                    now,
                    ip=ip,
                    user_agent=request.headers.get("user-agent", ""),
                    replaces=request.cookies.get(SESSION_COOKIE),
                )
            await throttle.prune(session, now)
            await sessions.prune(session, now)
    except Throttled as exc:
        seconds = max(1, int(exc.retry_after.total_seconds()))
        response = _login_page(request, site, error="throttled", status=429, email=email)
        response.headers["Retry-After"] = str(seconds)
        return response
    if user is None:
        return _login_page(request, site, error="credentials", status=401, email=email)
    response = RedirectResponse(_safe_next(form.get("next", "")), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        opened.raw_id,
        max_age=int(sessions.MAX_AGE.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=secure_cookies(site),
        path="/admin",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/admin")
    return response


@router.post("/logout")
async def logout(request: Request, posted: PostsAnything) -> Response:
    """End this session."""
    site = site_of(request)
    async with transaction(site.engine) as session:
        await sessions.close(session, request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/admin/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/admin")
    return response


@router.post("/logout-everywhere")
async def logout_everywhere(request: Request, posted: PostsAnything) -> Response:
    """End every session of this user, on every device."""
    site = site_of(request)
    async with transaction(site.engine) as session:
        user = await session.get(User, posted.editor.user.id)
        if user is not None:
            await sessions.close_all(
                session, user, site.clock.now(), actor=user.email, source=client_ip(request)
            )
    response = RedirectResponse("/admin/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/admin")
    return response


# The dependencies every admin route declares, by what it does.
Reading = Annotated[Editor, Depends(requires(Action.READ))]
ManagingSubscribers = Annotated[Editor, Depends(requires(Action.WRITE_SUBSCRIBERS))]
ManagingAccounts = Annotated[Editor, Depends(requires(Action.MANAGE_ACCOUNTS))]
PostsAnything = Annotated[Submitted, Depends(submits(Action.READ))]
PostsContent = Annotated[Submitted, Depends(submits(Action.WRITE_CONTENT))]
PostsSubscribers = Annotated[Submitted, Depends(submits(Action.WRITE_SUBSCRIBERS))]
PostsSends = Annotated[Submitted, Depends(submits(Action.SEND))]
PostsAccounts = Annotated[Submitted, Depends(submits(Action.MANAGE_ACCOUNTS))]
