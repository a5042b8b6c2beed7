"""The editors' app over HTTP on a real uvicorn: login, CSRF, throttling, roles, hostile input."""

from __future__ import annotations

import re

import feedparser
import pytest
import sqlalchemy as sa

from publisher.accounts import throttle
from publisher.accounts.models import AuditEntry, LoginSession, Role
from publisher.db import transaction
from publisher.delivery.editions import current_edition_date, open_edition
from publisher.delivery.models import Edition
from publisher.site import Site
from tests.admin_helpers import AdminClient, add_editors, add_user

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
async def people(site: Site) -> Site:
    await add_user(site, "owner@example.org", Role.OWNER)
    await add_editors(site)
    return site


def client(server: str, ip: str | None = None) -> AdminClient:
    return AdminClient(server, ip=ip)


def test_login_page_and_redirect(server: str) -> None:
    c = client(server)
    first = c.get("/admin/")
    assert first.status_code == 303
    assert first.headers["location"].startswith("/admin/login")
    page = c.get("/admin/login")
    assert page.status_code == 200
    assert 'name="email"' in page.text
    assert 'name="password"' in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"


def test_login_sets_strict_cookie_and_rotates(server: str, people: Site) -> None:
    c = client(server)
    assert c.login("editor@example.org").status_code == 303
    header = next(h for h in c.set_cookie_headers if h.startswith("publisher_admin="))
    lowered = header.lower()
    assert "httponly" in lowered
    assert "samesite=lax" in lowered
    # The test site's base_url is https: the cookie is Secure.
    assert "secure" in lowered
    first = c.cookies["publisher_admin"]
    assert c.get("/admin/").status_code == 200
    # Logging in again (same browser) replaces the session id; the old one is dead.
    assert c.login("editor@example.org").status_code == 303
    second = c.cookies["publisher_admin"]
    assert second != first
    stale = client(server)
    stale.cookies["publisher_admin"] = first
    assert stale.get("/admin/").status_code == 303


def test_wrong_password_then_429(server: str, people: Site) -> None:
    c = client(server)
    for _ in range(throttle.DEFAULT_POLICY.account_failures):
        assert c.login("editor@example.org", "wrong password").status_code == 401
    locked = c.login("editor@example.org")
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) > 0
    # Another account from the same address still works (the address limit is higher).
    assert client(server).login("owner@example.org").status_code == 303


def test_ip_throttle_answers_429(server: str) -> None:
    c = client(server)
    for n in range(throttle.DEFAULT_POLICY.ip_failures):
        assert c.login(f"nobody{n}@example.org", "wrong password").status_code == 401
    assert c.login("owner@example.org").status_code == 429


def test_csrf_is_checked_on_every_post(server: str) -> None:
    c = client(server)
    # Login form without the double-submit token.
    c.get("/admin/login")
    bad_login = c.post(
        "/admin/login", {"email": "editor@example.org", "password": "x", "csrf": "forged"}
    )
    assert bad_login.status_code == 403
    assert c.login("editor@example.org").status_code == 303
    form = {"title": "Forged", "body_markdown": "text", "lang": "id", "status": "published"}
    assert c.post("/admin/articles/new", form).status_code == 403
    assert c.post("/admin/articles/new", {**form, "csrf": "0" * 64}).status_code == 403
    # Another user's token does not work either.
    other = client(server)
    other.login("owner@example.org")
    assert (
        c.post(
            "/admin/articles/new", {**form, "csrf": other.csrf("/admin/articles/new")}
        ).status_code
        == 403
    )
    assert c.post("/admin/logout", {"csrf": "nope"}).status_code == 403
    ok = c.post("/admin/articles/new", form, csrf_from="/admin/articles/new")
    assert ok.status_code == 303


def test_logout_and_logout_everywhere(server: str, people: Site) -> None:
    laptop, phone = client(server), client(server)
    laptop.login("editor@example.org")
    phone.login("editor@example.org")
    assert laptop.post("/admin/logout", {}, csrf_from="/admin/").status_code == 303
    assert laptop.get("/admin/").status_code == 303
    assert phone.get("/admin/").status_code == 200
    phone2 = client(server)
    phone2.login("editor@example.org")
    assert phone.post("/admin/logout-everywhere", {}, csrf_from="/admin/").status_code == 303
    assert phone2.get("/admin/").status_code == 303


async def test_viewer_cannot_change_anything(server: str, people: Site) -> None:
    viewer = client(server)
    viewer.login("viewer@example.org")
    for path in (
        "/admin/",
        "/admin/articles",
        "/admin/subscribers",
        "/admin/digests",
        "/admin/audit",
    ):
        page = viewer.get(path)
        assert page.status_code == 200, path
        # Only the logout forms post anything.
        assert page.text.count('method="post"') == 2, path
    csrf = viewer.csrf("/admin/")
    for path, data in [
        ("/admin/articles/new", {"title": "T", "body_markdown": "B", "lang": "id"}),
        ("/admin/subscribers/new", {"email": "r@example.org"}),
        ("/admin/digests/test", {"email": "r@example.org"}),
        ("/admin/users/new", {"email": "x@example.org", "role": "owner", "password": "p" * 12}),
        ("/admin/tokens/new", {"user": "viewer@example.org", "name": "t"}),
    ]:
        assert viewer.post(path, {**data, "csrf": csrf}).status_code == 403, path
    assert viewer.get("/admin/users").status_code == 403
    assert viewer.get("/admin/subscribers.csv").status_code == 403
    editor = client(server)
    editor.login("editor@example.org")
    assert editor.get("/admin/users").status_code == 403


async def test_article_from_the_editor_is_in_the_feed(server: str, people: Site) -> None:
    c = client(server)
    c.login("editor@example.org")
    created = c.post(
        "/admin/articles/new",
        {
            "title": "Banjir surut di Jakarta",
            "body_markdown": "Air mulai **surut** pagi ini.\n\nWarga kembali ke rumah.",
            "lang": "id",
            "tags": "Jakarta, Cuaca",
            "status": "published",
            "author": "Siti",
        },
        csrf_from="/admin/articles/new",
    )
    assert created.status_code == 303
    assert created.headers["location"] == "/admin/articles/banjir-surut-di-jakarta?saved=1"
    feed = feedparser.parse(c.http.get("/feed.xml").content)
    titles = [entry.title for entry in feed.entries]
    assert "Banjir surut di Jakarta" in titles
    entry = next(e for e in feed.entries if e.title == "Banjir surut di Jakarta")
    assert {t.term for t in entry.tags} >= {"jakarta", "cuaca"}
    # A second article with the same title gets its own slug instead of replacing the first.
    again = c.post(
        "/admin/articles/new",
        {
            "title": "Banjir surut di Jakarta",
            "body_markdown": "Lain.",
            "lang": "id",
            "status": "draft",
        },
        csrf_from="/admin/articles/new",
    )
    assert again.headers["location"].startswith("/admin/articles/banjir-surut-di-jakarta-2")
    async with transaction(people.engine) as session:
        actions = [
            e.action for e in await session.scalars(sa.select(AuditEntry).order_by(AuditEntry.id))
        ]
    assert actions.count("article.create") == 2


def test_hostile_article_is_escaped(server: str) -> None:
    c = client(server)
    c.login("editor@example.org")
    saved = c.post(
        "/admin/articles/new",
        {
            "title": "Judul " + XSS,
            "body_markdown": XSS + "\n\n[x](javascript:alert(1))",
            "lang": "id",
            "status": "draft",
            "tags": XSS,
        },
        csrf_from="/admin/articles/new",
    )
    assert saved.status_code == 303
    listing = c.get("/admin/articles").text
    assert "<script>alert" not in listing
    assert "Judul &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in listing
    editor_page = c.get(saved.headers["location"]).text
    assert "<script>alert" not in editor_page
    # No live element carries the handler, and the sanitized preview has no javascript: link.
    assert not re.search(r"<img[^>]*onerror", editor_page)
    assert 'href="javascript:' not in editor_page


def test_oversize_and_malformed_input(server: str) -> None:
    c = client(server)
    c.login("editor@example.org")
    csrf = c.csrf("/admin/articles/new")
    huge = c.post(
        "/admin/articles/new",
        {"csrf": csrf, "title": "Big", "body_markdown": "x" * 2_100_000, "lang": "id"},
    )
    assert huge.status_code == 413
    long_body = c.post(
        "/admin/articles/new",
        {"csrf": csrf, "title": "Long", "body_markdown": "x" * 500_001, "lang": "id"},
    )
    assert long_body.status_code == 422
    assert "body_markdown" in long_body.text
    bad = c.post(
        "/admin/articles/new",
        {"csrf": csrf, "title": "", "body_markdown": "", "lang": "<b>", "status": "gone"},
    )
    assert bad.status_code == 422
    assert "&lt;b&gt;" not in bad.text or "<b>" not in bad.text
    assert c.get("/admin/articles/%3Cscript%3E").status_code == 404
    assert (
        c.get("/admin/subscribers?q=" + "a" * 5000 + "&before=99999999999999999999").status_code
        == 200
    )
    assert c.get("/admin/static/../../publisher.toml").status_code == 404


async def test_sessions_are_rows(server: str, people: Site) -> None:
    c = client(server)
    c.login("owner@example.org")
    async with transaction(people.engine) as session:
        stored = list(await session.scalars(sa.select(LoginSession.id_hash)))
    assert len(stored) == 1
    assert c.cookies["publisher_admin"] not in stored


async def test_owner_manages_users_and_tokens(server: str, people: Site) -> None:
    c = client(server)
    c.login("owner@example.org")
    page = c.get("/admin/users")
    assert page.status_code == 200
    assert "viewer@example.org" in page.text
    added = c.post(
        "/admin/users/new",
        {"email": "baru@example.org", "role": "editor", "password": "kata sandi panjang"},
        csrf_from="/admin/users",
    )
    assert added.status_code == 303
    short = c.post(
        "/admin/users/new",
        {"email": "x@example.org", "role": "editor", "password": "short"},
        csrf_from="/admin/users",
    )
    assert short.status_code == 422
    assert "at least 10 characters" in short.text
    created = c.post(
        "/admin/tokens/new",
        {"user": "baru@example.org", "name": "cms", "scope": "write"},
        csrf_from="/admin/users",
    )
    assert created.status_code == 200
    token = re.search(r'<code id="new-token">(pub_[^<]+)</code>', created.text)
    assert token is not None
    # Shown once: the list afterwards has only the prefix.
    assert token[1] not in c.get("/admin/users").text
    from publisher.accounts.tokens import authenticate_token

    async with transaction(people.engine) as session:
        found = await authenticate_token(session, token[1])
    assert found is not None
    assert found[0].email == "baru@example.org"
    revoked = c.post("/admin/tokens/revoke", {"name": "cms"}, csrf_from="/admin/users")
    assert revoked.status_code == 303
    async with transaction(people.engine) as session:
        assert await authenticate_token(session, token[1]) is None
    demoted = c.post(
        "/admin/users/role",
        {"email": "owner@example.org", "role": "viewer"},
        csrf_from="/admin/users",
    )
    assert demoted.status_code == 422
    assert "last owner" in demoted.text
    removed = c.post("/admin/users/remove", {"email": "baru@example.org"}, csrf_from="/admin/users")
    assert removed.status_code == 303
    audit_page = c.get("/admin/audit").text
    for action in ("user.add", "token.create", "token.revoke", "user.remove", "login"):
        assert action in audit_page


async def test_subscribers_pages(server: str, people: Site) -> None:
    c = client(server)
    c.login("editor@example.org")
    added = c.post(
        "/admin/subscribers/new",
        {
            "email": "Pembaca@Example.org",
            "name": "Pembaca <b>",
            "language": "id",
            "timezone": "Asia/Jayapura",
            "frequency": "weekly",
            "topics": "ekonomi, olahraga",
            "confirmed": "yes",
        },
        csrf_from="/admin/subscribers",
    )
    assert added.status_code == 303
    reader_path = added.headers["location"]
    reader = c.get(reader_path)
    assert reader.status_code == 200
    assert "Pembaca &lt;b&gt;" in reader.text
    assert "added by editor@example.org as confirmed" in reader.text
    for query, expected in [
        ("q=pemb", True),
        ("q=pembz", False),
        ("status=active&timezone=Asia/Jayapura", True),
        ("status=pending", False),
        ("frequency=weekly&topic=ekonomi", True),
        ("topic=politik", False),
        ("language=en", False),
    ]:
        listed = c.get(f"/admin/subscribers?{query}").text
        assert ("Pembaca@example.org" in listed) is expected, query
    duplicate = c.post(
        "/admin/subscribers/new",
        {"email": "pembaca@example.org", "confirmed": "yes"},
        csrf_from="/admin/subscribers",
    )
    assert duplicate.status_code == 422
    bad = c.post(
        "/admin/subscribers/new", {"email": "not-an-address"}, csrf_from="/admin/subscribers"
    )
    assert bad.status_code == 422
    exported = c.get("/admin/subscribers.csv")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert "Pembaca@example.org" in exported.text
    suppressed = c.post(f"{reader_path}/suppress", {}, csrf_from=reader_path)
    assert suppressed.status_code == 303
    assert "manual" in c.get(reader_path).text
    deleted = c.post(f"{reader_path}/delete", {}, csrf_from=reader_path)
    assert deleted.status_code == 303
    assert c.get(reader_path).status_code == 404


async def test_dashboard_and_digests(server: str, people: Site) -> None:
    c = client(server)
    c.login("editor@example.org")
    dashboard = c.get("/admin/")
    assert dashboard.status_code == 200
    assert "<svg" in dashboard.text
    assert "Asia/Jakarta" in dashboard.text  # the next send in the site's zone
    digests = c.get("/admin/digests?lang=en&tz=Asia/Makassar")
    assert digests.status_code == 200
    assert "nothing to preview" in digests.text
    c.post(
        "/admin/articles/new",
        {
            "title": "Solar pumps",
            "body_markdown": "Farmers in Sumba.",
            "lang": "en",
            "status": "published",
        },
        csrf_from="/admin/articles/new",
    )
    digests = c.get("/admin/digests?lang=en&tz=Asia/Makassar")
    assert 'id="digest-subject"' in digests.text
    frame = c.get("/admin/digests/preview.html?lang=en&tz=Asia/Makassar")
    assert "Solar pumps" in frame.text
    assert "sandbox" in frame.headers["content-security-policy"]
    assert frame.headers["x-frame-options"] == "SAMEORIGIN"
    assert c.get("/admin/digests/editions/daily:2026-01-01").status_code == 404


def test_every_admin_string_has_an_indonesian_translation() -> None:
    from publisher.resources import locale_dir, templates_root

    found: set[str] = set()
    for template in (templates_root() / "web" / "admin").glob("*.html"):
        text = template.read_text(encoding="utf-8")
        found.update(re.findall(r'_\("([^"]+)"\)', text))
        found.update(re.findall(r"_\('([^']+)'\)", text))
    catalog = (locale_dir() / "id" / "LC_MESSAGES" / "admin.po").read_text(encoding="utf-8")
    missing = sorted(m for m in found if f'msgid "{m}"' not in catalog.replace('\\"', '"'))
    assert missing == []


def test_pages_speak_the_browsers_language(server: str) -> None:
    c = client(server)
    indonesian = c.get("/admin/login", headers={"Accept-Language": "id-ID,id;q=0.9"})
    assert '<html lang="id">' in indonesian.text
    assert "Kata sandi" in indonesian.text
    english = c.get("/admin/login", headers={"Accept-Language": "en-GB"})
    assert "Password" in english.text


async def test_pause_and_resume_an_edition(server: str, people: Site) -> None:
    now = people.clock.now()
    edition = await open_edition(people, "daily", current_edition_date(people, "daily", now), now)
    editor = client(server)
    editor.login("editor@example.org")
    page = f"/admin/digests/editions/{edition.period_key}"
    assert editor.post(f"{page}/pause", {}, csrf_from=page).status_code == 303
    async with transaction(people.engine) as session:
        paused = await session.get(Edition, edition.id, populate_existing=True)
        assert paused is not None
        assert paused.paused_until is not None
        assert paused.last_error == "paused by editor@example.org"
    assert editor.post(f"{page}/resume", {}, csrf_from=page).status_code == 303
    async with transaction(people.engine) as session:
        resumed = await session.get(Edition, edition.id, populate_existing=True)
        assert resumed is not None
        assert (resumed.paused_until, resumed.last_error) == (None, "")
        actions = list(
            await session.scalars(
                sa.select(AuditEntry.action).where(AuditEntry.target == edition.period_key)
            )
        )
    assert sorted(actions) == ["edition.pause", "edition.resume"]
