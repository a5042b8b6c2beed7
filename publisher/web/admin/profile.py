"""Your own account: turning the TOTP second factor on (confirmed by a code) and off."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from publisher.accounts import totp, users
from publisher.accounts.errors import Throttled
from publisher.accounts.models import User
from publisher.db import transaction
from publisher.site import Site
from publisher.web.admin.auth import Editor, PostsAnything, Reading, client_ip, site_of
from publisher.web.admin.rendering import page

router = APIRouter()

#: How long a shown secret can still be confirmed.
SETUP_TTL = timedelta(minutes=15)
_SECRET_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


def _setup_signature(site: Site, editor: Editor, secret: str, expires: int) -> str:
    """Sign a pending secret for this user and this session, until ``expires``."""
    key = site.settings.web.secret_key.encode() or b"publisher-admin"
    message = f"totp-setup:{editor.user.id}:{editor.session.id_hash}:{secret}:{expires}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _pending_secret(site: Site, editor: Editor, form: dict[str, str], now: datetime) -> str | None:
    """Return the secret the setup form carried back, if its signature and age check out."""
    secret = form.get("secret", "")
    expires_text = form.get("expires", "")
    if not (16 <= len(secret) <= 64 and set(secret) <= _SECRET_CHARS):
        return None
    if not expires_text.isdigit() or int(expires_text) < now.timestamp():
        return None
    expected = _setup_signature(site, editor, secret, int(expires_text))
    if not hmac.compare_digest(expected, form.get("signature", "")):
        return None
    return secret


def _account_page(
    request: Request,
    editor: Editor,
    *,
    setup: dict[str, str] | None = None,
    error: str = "",
    notice: str = "",
    status: int = 200,
) -> Response:
    return page(
        request,
        "admin/account.html",
        {
            "editor": editor,
            "totp_on": editor.user.totp_secret is not None,
            "setup": setup,
            "error": error,
            "notice": notice,
        },
        status_code=status,
    )


def _setup_values(site: Site, editor: Editor, secret: str, now: datetime) -> dict[str, str]:
    expires = int((now + SETUP_TTL).timestamp())
    return {
        "secret": secret,
        "uri": totp.provisioning_uri(secret, editor.user.email, site.settings.site.title),
        "expires": str(expires),
        "signature": _setup_signature(site, editor, secret, expires),
    }


@router.get("/account")
async def account(request: Request, editor: Reading) -> Response:
    """Show your account and its second factor."""
    notice = request.query_params.get("done", "")
    return _account_page(request, editor, notice=notice if notice in ("on", "off") else "")


@router.post("/account/totp/setup")
async def start_setup(request: Request, posted: PostsAnything) -> Response:
    """Show a fresh secret (as text and otpauth URI); nothing changes until it is confirmed."""
    site = site_of(request)
    secret = totp.new_secret()
    return _account_page(
        request, posted.editor, setup=_setup_values(site, posted.editor, secret, site.clock.now())
    )


@router.post("/account/totp/confirm")
async def confirm_setup(request: Request, posted: PostsAnything) -> Response:
    """Turn the second factor on once a code from the authenticator app matches."""
    site = site_of(request)
    now = site.clock.now()
    editor = posted.editor
    secret = _pending_secret(site, editor, posted.form, now)
    if secret is None:
        return _account_page(request, editor, error="setup-expired", status=400)
    async with transaction(site.engine) as session:
        user = await session.get(User, editor.user.id)
        assert user is not None  # the session's user
        confirmed = await users.confirm_totp(
            session,
            user,
            secret,
            posted.form.get("code", "")[:20],
            now,
            actor=user.email,
            source=client_ip(request),
        )
    if not confirmed:
        return _account_page(
            request,
            editor,
            setup=_setup_values(site, editor, secret, now),
            error="code",
            status=422,
        )
    return RedirectResponse("/admin/account?done=on", status_code=303)


@router.post("/account/totp/disable")
async def disable(request: Request, posted: PostsAnything) -> Response:
    """Turn the second factor off, given your password and a current code."""
    site = site_of(request)
    editor = posted.editor
    try:
        async with transaction(site.engine) as session:
            user = await session.get(User, editor.user.id)
            assert user is not None  # the session's user
            done = await users.turn_off_totp(
                session,
                user,
                posted.form.get("password", ""),
                posted.form.get("code", "")[:20],
                site.clock.now(),
                ip=client_ip(request),
            )
    except Throttled as exc:
        response = _account_page(request, editor, error="throttled", status=429)
        response.headers["Retry-After"] = str(max(1, int(exc.retry_after.total_seconds())))
        return response
    if not done:
        return _account_page(request, editor, error="credentials", status=401)
    return RedirectResponse("/admin/account?done=off", status_code=303)
