"""TOTP enrolment on your own account page: confirm before it is on, off with password + code."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
import sqlalchemy as sa

from publisher.accounts import throttle
from publisher.accounts.models import AuditEntry, User
from publisher.clock import FrozenClock
from publisher.db import transaction
from publisher.site import Site
from tests.admin_helpers import PASSWORD, AdminClient, add_editors

START = datetime(2026, 11, 24, 3, 0, 10, tzinfo=UTC)


@pytest.fixture
async def people(site: Site, clock: FrozenClock) -> Site:
    clock.set(START)
    await add_editors(site)
    return site


def _field(text: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', text)
    assert found is not None, name
    return html.unescape(found.group(1))


async def _user(site: Site, email: str) -> User:
    async with transaction(site.engine) as session:
        user = await session.scalar(sa.select(User).where(User.email == email))
        assert user is not None
        return user


async def test_enrol_confirm_login_replay_and_disable(
    server: str, people: Site, clock: FrozenClock
) -> None:
    c = AdminClient(server)
    assert c.login("editor@example.org").status_code == 303
    account = c.get("/admin/account")
    assert account.status_code == 200
    assert "/admin/account/totp/setup" in account.text
    setup = c.post("/admin/account/totp/setup", {}, csrf_from="/admin/account")
    assert setup.status_code == 200
    secret = _field(setup.text, "secret")
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    uri = re.search(r'id="totp-uri"[^>]*>([^<]+)<', setup.text)
    assert uri is not None
    assert html.unescape(uri.group(1)).startswith("otpauth://totp/")
    assert f"secret={secret}" in html.unescape(uri.group(1))
    # Nothing is on until a code confirms it.
    assert (await _user(people, "editor@example.org")).totp_secret is None
    form = {
        "csrf": _field(setup.text, "csrf"),
        "secret": secret,
        "expires": _field(setup.text, "expires"),
        "signature": _field(setup.text, "signature"),
    }
    wrong = c.post("/admin/account/totp/confirm", {**form, "code": "000000"})
    assert wrong.status_code == 422
    assert (await _user(people, "editor@example.org")).totp_secret is None
    # A secret the page did not sign is refused (the signature binds it).
    forged = c.post(
        "/admin/account/totp/confirm",
        {**form, "secret": "A" * 32, "code": pyotp.TOTP("A" * 32).at(clock.now())},
    )
    assert forged.status_code == 400
    code = pyotp.TOTP(secret).at(clock.now())
    confirmed = c.post("/admin/account/totp/confirm", {**form, "code": code})
    assert confirmed.status_code == 303
    assert confirmed.headers["location"] == "/admin/account?done=on"
    assert (await _user(people, "editor@example.org")).totp_secret == secret

    # The login now needs a code; the code that confirmed the setup is spent.
    fresh = AdminClient(server)
    assert fresh.login("editor@example.org").status_code == 401
    assert fresh.login("editor@example.org", code=code).status_code == 401
    clock.advance(timedelta(seconds=30))
    next_code = pyotp.TOTP(secret).at(clock.now())
    assert fresh.login("editor@example.org", code=next_code).status_code == 303
    # ...and once used it cannot log in a second browser.
    assert AdminClient(server).login("editor@example.org", code=next_code).status_code == 401

    # Turning it off needs the password and a fresh code.
    clock.advance(timedelta(seconds=30))
    off_code = pyotp.TOTP(secret).at(clock.now())
    bad = fresh.post(
        "/admin/account/totp/disable",
        {"password": "wrong password", "code": off_code},
        csrf_from="/admin/account",
    )
    assert bad.status_code == 401
    no_csrf = fresh.post("/admin/account/totp/disable", {"password": PASSWORD, "code": off_code})
    assert no_csrf.status_code == 403
    off = fresh.post(
        "/admin/account/totp/disable",
        {"password": PASSWORD, "code": off_code},
        csrf_from="/admin/account",
    )
    assert off.status_code == 303
    assert (await _user(people, "editor@example.org")).totp_secret is None
    assert AdminClient(server).login("editor@example.org").status_code == 303
    async with transaction(people.engine) as session:
        actions = list(
            await session.scalars(
                sa.select(AuditEntry.action)
                .where(AuditEntry.target == "editor@example.org")
                .where(AuditEntry.action.like("user.totp%"))
                .order_by(AuditEntry.id)
            )
        )
    assert actions == ["user.totp_on", "user.totp_off_failed", "user.totp_off"]


async def test_setup_expires_and_disable_is_throttled(
    server: str, people: Site, clock: FrozenClock
) -> None:
    viewer = AdminClient(server)
    viewer.login("viewer@example.org")
    # A viewer may protect their own account.
    setup = viewer.post("/admin/account/totp/setup", {}, csrf_from="/admin/account")
    secret = _field(setup.text, "secret")
    form = {
        "csrf": _field(setup.text, "csrf"),
        "secret": secret,
        "expires": _field(setup.text, "expires"),
        "signature": _field(setup.text, "signature"),
    }
    clock.advance(timedelta(minutes=16))
    late = viewer.post(
        "/admin/account/totp/confirm", {**form, "code": pyotp.TOTP(secret).at(clock.now())}
    )
    assert late.status_code == 400
    assert "/admin/account/totp/setup" in late.text
    setup = viewer.post("/admin/account/totp/setup", {}, csrf_from="/admin/account")
    secret = _field(setup.text, "secret")
    ok = viewer.post(
        "/admin/account/totp/confirm",
        {
            "csrf": _field(setup.text, "csrf"),
            "secret": secret,
            "expires": _field(setup.text, "expires"),
            "signature": _field(setup.text, "signature"),
            "code": pyotp.TOTP(secret).at(clock.now()),
        },
    )
    assert ok.status_code == 303
    csrf = viewer.csrf("/admin/account")
    statuses = [
        viewer.post(
            "/admin/account/totp/disable", {"csrf": csrf, "password": PASSWORD, "code": "123456"}
        ).status_code
        for _ in range(throttle.DEFAULT_POLICY.account_failures + 1)
    ]
    assert statuses[-1] == 429
    assert set(statuses[:-1]) == {401}
