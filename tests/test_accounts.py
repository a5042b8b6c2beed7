"""Accounts: users, passwords, throttling, TOTP, sessions, tokens, permissions, audit."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from publisher.accounts import audit, sessions, throttle, tokens, totp, users
from publisher.accounts.errors import AccountInputError, Forbidden, Throttled
from publisher.accounts.models import ApiToken, AuditEntry, LoginSession, Role, User
from publisher.accounts.permissions import Action, allows, require, token_allows
from publisher.clock import FrozenClock
from publisher.db import transaction
from publisher.errors import NotFoundError
from publisher.site import Site
from tests.clirunner import CliResult, invoke

PASSWORD = "correct horse battery"


async def make_user(site: Site, email: str, role: Role = Role.EDITOR) -> User:
    async with transaction(site.engine) as session:
        return await users.add(session, email, role, PASSWORD, site.clock.now())


async def try_login(
    site: Site, email: str, password: str, *, ip: str = "192.0.2.1", code: str = ""
) -> User | None:
    async with transaction(site.engine) as session:
        return await users.log_in(session, email, password, site.clock.now(), ip=ip, totp_code=code)


async def test_add_and_log_in(site: Site) -> None:
    user = await make_user(site, "Siti@Example.org", Role.OWNER)
    assert user.email_key == "siti@example.org"
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    logged = await try_login(site, "siti@example.ORG", PASSWORD)
    assert logged is not None
    assert logged.id == user.id
    assert await try_login(site, "siti@example.org", "wrong password!") is None
    assert await try_login(site, "nobody@example.org", PASSWORD) is None
    async with transaction(site.engine) as session:
        actions = [e.action for e in await audit.page(session)]
    assert actions == ["login.failed", "login.failed", "login", "user.add"]


@pytest.mark.parametrize(
    ("email", "role", "password", "message"),
    [
        ("not an address", "editor", PASSWORD, "not an address"),
        ("a@example.org", "admin", PASSWORD, "role: 'admin' is not one of owner|editor|viewer"),
        ("a@example.org", "editor", "short", "at least 10 characters"),
        ("a@example.org", "editor", "x" * 2000, "at most 1024 characters"),
        ("a" * 400 + "@example.org", "editor", PASSWORD, "longer than 320"),
    ],
)
async def test_bad_user_input(
    site: Site, email: str, role: str, password: str, message: str
) -> None:
    with pytest.raises(AccountInputError, match=message):
        async with transaction(site.engine) as session:
            await users.add(session, email, role, password, site.clock.now())
    async with transaction(site.engine) as session:
        assert await users.list_all(session) == []


async def test_duplicate_and_last_owner(site: Site) -> None:
    await make_user(site, "owner@example.org", Role.OWNER)
    with pytest.raises(AccountInputError, match="exists already"):
        await make_user(site, "OWNER@example.org")
    with pytest.raises(AccountInputError, match="last owner"):
        async with transaction(site.engine) as session:
            await users.remove(session, "owner@example.org", site.clock.now())
    await make_user(site, "second@example.org", Role.OWNER)
    async with transaction(site.engine) as session:
        await users.remove(session, "owner@example.org", site.clock.now())
    with pytest.raises(NotFoundError):
        async with transaction(site.engine) as session:
            await users.remove(session, "owner@example.org", site.clock.now())


async def test_account_throttle_is_persisted(site: Site, clock: FrozenClock) -> None:
    await make_user(site, "siti@example.org")
    for attempt in range(throttle.DEFAULT_POLICY.account_failures):
        assert (
            await try_login(site, "siti@example.org", f"wrong {attempt}", ip=f"10.0.0.{attempt}")
            is None
        )
    # Locked now, even with the right password and from another address.
    with pytest.raises(Throttled) as locked:
        await try_login(site, "siti@example.org", PASSWORD, ip="10.9.9.9")
    assert locked.value.retry_after == throttle.DEFAULT_POLICY.lockout
    # A second process (a fresh Site on the same database) sees the same lock.
    other = Site(settings=site.settings, clock=clock)
    try:
        with pytest.raises(Throttled):
            await try_login(other, "siti@example.org", PASSWORD)
    finally:
        await other.aclose()
    clock.advance(throttle.DEFAULT_POLICY.lockout + timedelta(seconds=1))
    assert await try_login(site, "siti@example.org", PASSWORD) is not None


async def test_ip_throttle(site: Site) -> None:
    limit = throttle.DEFAULT_POLICY.ip_failures
    for n in range(limit):
        assert (
            await try_login(site, f"guess{n}@example.org", "whatever12345", ip="203.0.113.5")
            is None
        )
    await make_user(site, "siti@example.org")
    with pytest.raises(Throttled, match="address"):
        await try_login(site, "siti@example.org", PASSWORD, ip="203.0.113.5")
    assert await try_login(site, "siti@example.org", PASSWORD, ip="203.0.113.6") is not None


async def test_totp_second_factor(site: Site, clock: FrozenClock) -> None:
    user = await make_user(site, "siti@example.org")
    async with transaction(site.engine) as session:
        fresh = await session.get(User, user.id)
        assert fresh is not None
        secret = await users.enable_totp(session, fresh, clock.now(), actor="cli")
    assert await try_login(site, "siti@example.org", PASSWORD) is None
    assert await try_login(site, "siti@example.org", PASSWORD, code="000000x") is None
    code = totp.code_at(secret, clock.now())
    assert await try_login(site, "siti@example.org", PASSWORD, code=code) is not None
    # The same code again is a replay.
    assert await try_login(site, "siti@example.org", PASSWORD, code=code) is None
    clock.advance(timedelta(seconds=30))
    assert (
        await try_login(site, "siti@example.org", PASSWORD, code=totp.code_at(secret, clock.now()))
        is not None
    )


async def test_sessions_rotate_expire_and_close_all(site: Site, clock: FrozenClock) -> None:
    user = await make_user(site, "siti@example.org")
    async with transaction(site.engine) as session:
        first = await sessions.open_session(session, user, clock.now(), ip="192.0.2.1")
    async with transaction(site.engine) as session:
        second = await sessions.open_session(session, user, clock.now(), replaces=first.raw_id)
        third = await sessions.open_session(session, user, clock.now())
    assert first.raw_id != second.raw_id
    async with transaction(site.engine) as session:
        assert await sessions.current(session, first.raw_id, clock.now()) is None
        now_current = await sessions.current(session, second.raw_id, clock.now())
        assert now_current is not None
        assert now_current.user.id == user.id
        # Only a hash of the id is stored.
        stored = (await session.scalars(sa.select(LoginSession.id_hash))).all()
        assert second.raw_id not in stored
        token = sessions.csrf_token(now_current.row)
        assert sessions.csrf_valid(now_current.row, token)
        assert not sessions.csrf_valid(
            now_current.row, token[:-1] + ("1" if token.endswith("0") else "0")
        )
        assert not sessions.csrf_valid(now_current.row, None)
    clock.advance(sessions.IDLE_TIMEOUT + timedelta(seconds=1))
    async with transaction(site.engine) as session:
        assert await sessions.current(session, second.raw_id, clock.now()) is None
    async with transaction(site.engine) as session:
        fourth = await sessions.open_session(session, user, clock.now())
        assert await sessions.close_all(session, user, clock.now(), actor=user.email) == 2
    async with transaction(site.engine) as session:
        assert await sessions.current(session, fourth.raw_id, clock.now()) is None
        assert await sessions.current(session, third.raw_id, clock.now()) is None
        assert await sessions.current(session, "x" * 5000, clock.now()) is None


async def test_session_absolute_expiry(site: Site, clock: FrozenClock) -> None:
    user = await make_user(site, "siti@example.org")
    async with transaction(site.engine) as session:
        opened = await sessions.open_session(session, user, clock.now())
    # Keep it busy so the idle timeout never strikes; the absolute age still does.
    step = sessions.IDLE_TIMEOUT - timedelta(minutes=1)
    while clock.now() + step < opened.row.expires_at:
        clock.advance(step)
        async with transaction(site.engine) as session:
            assert await sessions.current(session, opened.raw_id, clock.now()) is not None
    clock.set(opened.row.expires_at)
    async with transaction(site.engine) as session:
        assert await sessions.current(session, opened.raw_id, clock.now()) is None


async def test_tokens(site: Site, clock: FrozenClock) -> None:
    user = await make_user(site, "siti@example.org")
    async with transaction(site.engine) as session:
        created = await tokens.create(session, user, "cms", "write", clock.now())
        with pytest.raises(AccountInputError, match="live token"):
            await tokens.create(session, user, "cms", "read", clock.now())
    assert created.raw.startswith("pub_")
    assert len(created.raw) > 40
    async with transaction(site.engine) as session:
        stored = (await session.scalars(sa.select(ApiToken))).one()
        assert created.raw not in (stored.token_hash, stored.prefix)
        assert stored.last_used_at is None
    clock.advance(timedelta(hours=1))
    async with transaction(site.engine) as session:
        found = await tokens.authenticate_token(session, created.raw, clock.now())
        assert found is not None
        assert found[0].id == user.id
        assert found[1].name == "cms"
        assert await tokens.authenticate_token(session, created.raw + "x", clock.now()) is None
        assert await tokens.authenticate_token(session, "", clock.now()) is None
        assert await tokens.authenticate_token(session, "pub_" + "a" * 10_000) is None
    async with transaction(site.engine) as session:
        stored = (await session.scalars(sa.select(ApiToken))).one()
        assert stored.last_used_at == clock.now()
        await tokens.revoke(session, "cms", clock.now())
    async with transaction(site.engine) as session:
        assert await tokens.authenticate_token(session, created.raw, clock.now()) is None
        # The name is free again once revoked.
        await tokens.create(session, user, "cms", "read", clock.now())
        with pytest.raises(AccountInputError, match="token name"):
            await tokens.create(session, user, "<script>", "read", clock.now())
        with pytest.raises(AccountInputError, match="scope"):
            await tokens.create(session, user, "other", "admin", clock.now())


def test_permissions() -> None:
    assert all(allows(Role.OWNER, action) for action in Action)
    assert allows(Role.EDITOR, Action.WRITE_CONTENT)
    assert allows(Role.EDITOR, Action.SEND)
    assert not allows(Role.EDITOR, Action.MANAGE_ACCOUNTS)
    assert [a for a in Action if allows(Role.VIEWER, a)] == [Action.READ]
    editor = User(email="e@example.org", role="editor")
    read = ApiToken(name="ro", scope="read")
    write = ApiToken(name="rw", scope="write")
    assert token_allows(editor, read, Action.READ)
    assert not token_allows(editor, read, Action.WRITE_CONTENT)
    assert token_allows(editor, write, Action.WRITE_CONTENT)
    assert not token_allows(editor, write, Action.MANAGE_ACCOUNTS)
    with pytest.raises(Forbidden, match="read-only"):
        require(editor, Action.WRITE_SUBSCRIBERS, read)
    with pytest.raises(Forbidden, match="viewer"):
        require(User(email="v@example.org", role="viewer"), Action.SEND)


async def test_audit_clips_hostile_input(site: Site) -> None:
    async with transaction(site.engine) as session:
        await audit.record(
            session,
            actor="x" * 5000,
            action="a" * 500,
            target="<b>" * 1000,
            detail="d" * 100_000,
            at=site.clock.now(),
        )
    async with transaction(site.engine) as session:
        entry = (await session.scalars(sa.select(AuditEntry))).one()
    assert len(entry.actor) == 320
    assert len(entry.action) == 60
    assert len(entry.target) == 400
    assert len(entry.detail) == 2000


# The command line.


def cli(capsys: pytest.CaptureFixture[str], site_dir: Path, *args: str) -> CliResult:
    return invoke(capsys, "--config", str(site_dir / "publisher.toml"), *args)


def test_users_and_tokens_cli(
    capsys: pytest.CaptureFixture[str], site_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    added = cli(
        capsys, site_dir, "users", "add", "Siti@example.org", "--role", "owner", "--password-stdin"
    )
    assert added.exit_code == 0, added.stderr
    assert "added Siti@example.org (owner)" in added.stdout
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    empty = cli(
        capsys, site_dir, "users", "add", "b@example.org", "--role", "viewer", "--password-stdin"
    )
    assert empty.exit_code == 2
    assert empty.error_lines == ["error: --password-stdin: no password on standard input"]
    bad = cli(capsys, site_dir, "users", "add", "b@example.org", "--role", "boss")
    assert bad.exit_code == 2
    listed = cli(capsys, site_dir, "users", "list", "--json")
    assert [(u["email"], u["role"]) for u in listed.json()] == [("Siti@example.org", "owner")]

    created = cli(
        capsys, site_dir, "tokens", "create", "--user", "siti@example.org", "--name", "cms"
    )
    assert created.exit_code == 0, created.stderr
    raw = created.stdout.strip()
    assert raw.startswith("pub_")
    assert "not shown again" in created.stderr
    listed_tokens = cli(capsys, site_dir, "tokens", "list", "--json").json()
    assert listed_tokens[0]["name"] == "cms"
    assert listed_tokens[0]["scope"] == "write"
    assert raw not in cli(capsys, site_dir, "tokens", "list", "--json").stdout
    missing = cli(capsys, site_dir, "tokens", "create", "--user", "no@example.org", "--name", "x")
    assert missing.exit_code == 2
    assert missing.error_lines == ["error: no user 'no@example.org'"]
    revoked = cli(capsys, site_dir, "tokens", "revoke", "cms")
    assert revoked.exit_code == 0
    assert "revoked cms" in revoked.stdout
    again = cli(capsys, site_dir, "tokens", "revoke", "cms")
    assert again.exit_code == 2
    assert again.error_lines == ["error: no live token named 'cms'"]
    last = cli(capsys, site_dir, "users", "remove", "siti@example.org")
    assert last.exit_code == 2
    assert "last owner" in last.stderr
