"""The REST API at /api/v1 over ASGI (and one real uvicorn server), on SQLite and PostgreSQL."""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from openapi_spec_validator import validate as validate_openapi

from publisher.accounts import audit, tokens, users
from publisher.accounts.models import ApiToken, Role
from publisher.config import load_settings
from publisher.db import transaction
from publisher.delivery.editions import enqueue, open_edition
from publisher.delivery.mailsink import MailSink
from publisher.delivery.models import FAILED, SENT, OutboxRow
from publisher.site import Site
from publisher.web.api.limits import MAX_JSON_DEPTH
from publisher.web.app import create_app
from publisher.web.limits import json_depth
from publisher.web.server import running
from publisher.web.subscription import drain
from subscribers import suppression
from tests.feeds_helpers import HOSTILE_TITLE
from tests.scheduling_helpers import add_reader

BASE = "https://news.example.org"
PASSWORD = "correct horse battery staple"


@dataclass
class Api:
    app: FastAPI
    client: httpx.AsyncClient
    site: Site
    sink: MailSink
    keys: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    async def get(self, path: str, who: str = "editor", **params: Any) -> httpx.Response:
        return await self.client.get(path, params=params, headers=self.auth(who))

    async def post(self, path: str, data: Any = None, who: str = "editor") -> httpx.Response:
        return await self.client.post(path, json=data, headers=self.auth(who))

    async def patch(self, path: str, data: Any, who: str = "editor") -> httpx.Response:
        return await self.client.patch(path, json=data, headers=self.auth(who))

    async def delete(self, path: str, who: str = "editor") -> httpx.Response:
        return await self.client.delete(path, headers=self.auth(who))

    def mails(self) -> list[email.message.EmailMessage]:
        return [
            email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in self.sink.saved
        ]


async def make_keys(site: Site) -> dict[str, str]:
    """Create an owner, an editor and a viewer, and tokens for them."""
    now = site.clock.now()
    keys: dict[str, str] = {}
    async with transaction(site.engine) as session:
        owner = await users.add(session, "owner@example.org", Role.OWNER, PASSWORD, now)
        editor = await users.add(session, "editor@example.org", Role.EDITOR, PASSWORD, now)
        viewer = await users.add(session, "viewer@example.org", Role.VIEWER, PASSWORD, now)
        for name, user, scope in (
            ("owner", owner, "write"),
            ("editor", editor, "write"),
            ("reader", editor, "read"),
            ("viewer", viewer, "write"),
            ("revoked", editor, "write"),
        ):
            keys[name] = (await tokens.create(session, user, name, scope, now)).raw
        await tokens.revoke(session, "revoked", now)
    return keys


@pytest.fixture
async def api(site: Site, tmp_path: Path) -> AsyncIterator[Api]:
    sink = MailSink(tmp_path / "mail", port=0)
    await sink.start()
    site.settings.mail.smtp_url = f"smtp://127.0.0.1:{sink.port}"
    app = create_app(site)
    transport = httpx.ASGITransport(app=app, client=("192.0.2.10", 40000))
    keys = await make_keys(site)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield Api(app, client, site, sink, keys)
        await drain(app)
    await sink.stop()


def article(title: str = "Feri baru Makassar–Ambon", **extra: Any) -> dict[str, Any]:
    return {
        "title": title,
        "body_markdown": "Kapal **baru** mulai berlayar.\n\nParagraf kedua.",
        "lang": "id",
        "tags": ["Transportasi", "Maluku"],
        **extra,
    }


def subscriber(address: str, **extra: Any) -> dict[str, Any]:
    return {"email": address, "consent_text": "Saya mau menerima Kabar.", **extra}


def errors_at(response: httpx.Response) -> list[tuple[str, ...]]:
    assert response.status_code == 422, response.text
    return [tuple(str(p) for p in e["loc"]) for e in response.json()["detail"]]


# --- OpenAPI, authentication and authorization -------------------------------------------


async def openapi(api: Api) -> dict[str, Any]:
    response = await api.client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def operations(document: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (method, concrete path) the document describes, path parameters filled in."""
    fill = {
        "{slug}": "some-article",
        "{email}": "someone@example.org",
        "{period_key}": "daily:2026-11-25",
        "{announcement_id}": "1",
    }
    found: list[tuple[str, str]] = []
    for path, methods in document["paths"].items():
        for template, value in fill.items():
            path = path.replace(template, value)
        assert "{" not in path, path
        found.extend((method.upper(), path) for method in methods)
    return found


async def test_openapi_document_is_valid_and_describes_only_the_api(api: Api) -> None:
    document = await openapi(api)
    validate_openapi(document)  # raises on any violation of the OpenAPI 3.1 schema
    assert document["openapi"].startswith("3.1")
    paths = set(document["paths"])
    assert all(p.startswith("/api/v1/") for p in paths), paths
    assert {
        "/api/v1/articles",
        "/api/v1/articles/{slug}",
        "/api/v1/articles/{slug}/publish",
        "/api/v1/articles/{slug}/unpublish",
        "/api/v1/subscribers",
        "/api/v1/subscribers/{email}",
        "/api/v1/subscribers/{email}/suppress",
        "/api/v1/editions",
        "/api/v1/editions/{period_key}",
        "/api/v1/digest/preview",
        "/api/v1/announcements",
        "/api/v1/announcements/{announcement_id}",
        "/api/v1/announcements/{announcement_id}/send",
    } <= paths
    schemes = document["components"]["securitySchemes"]
    assert any(s["type"] == "http" and s["scheme"] == "bearer" for s in schemes.values())
    create = document["components"]["schemas"]["ArticleCreate"]
    assert {"title", "body_markdown"} <= set(create["required"])
    assert create["properties"]["tags"]["maxItems"] == 50
    # The site's own pages stay out of the API description and the app has no other docs.
    assert (await api.client.get("/openapi.json")).status_code == 404
    assert (await api.client.get("/docs")).status_code == 404


async def test_every_endpoint_answers_401_without_a_valid_token(api: Api) -> None:
    document = await openapi(api)
    bad_headers: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer pub_not-a-real-token"},
        {"Authorization": "Basic ZWRpdG9yOnBhc3N3b3Jk"},
        {"Authorization": "Bearer " + "x" * 5000},
        {"Authorization": f"Bearer {api.keys['revoked']}"},
        {"Authorization": f"bearer {api.keys['editor']}x"},
    ]
    for method, path in operations(document):
        for headers in bad_headers:
            body: Any = {} if method in ("POST", "PATCH") else None
            response = await api.client.request(method, path, headers=headers, json=body)
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert response.headers["content-type"] == "application/json"


async def test_read_tokens_and_viewers_get_403_on_every_write(api: Api) -> None:
    document = await openapi(api)
    writes = [(m, p) for m, p in operations(document) if m != "GET"]
    assert len(writes) >= 7
    for method, path in writes:
        for who in ("reader", "viewer"):
            body = article() if path == "/api/v1/articles" else subscriber("x@example.org")
            response = await api.client.request(
                method, path, headers=api.auth(who), json=body if method != "DELETE" else None
            )
            assert response.status_code == 403, (who, method, path, response.text)
            assert "insufficient_scope" in response.headers["WWW-Authenticate"]
    # Nothing was written, and both may read.
    for who in ("reader", "viewer"):
        listed = await api.get("/api/v1/articles", who)
        assert listed.status_code == 200
        assert listed.json() == {"items": [], "next_cursor": None}


async def test_token_use_is_recorded(api: Api) -> None:
    async with transaction(api.site.engine) as session:
        before = await session.scalar(sa.select(ApiToken).where(ApiToken.name == "reader"))
        assert before is not None
        assert before.last_used_at is None
    assert (await api.get("/api/v1/subscribers", "reader")).status_code == 200
    async with transaction(api.site.engine) as session:
        after = await session.scalar(sa.select(ApiToken).where(ApiToken.name == "reader"))
        assert after is not None
        assert after.last_used_at == api.site.clock.now()


async def test_unknown_api_paths_are_json_404s(api: Api) -> None:
    response = await api.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["detail"].startswith("no API endpoint")
    missing = await api.get("/api/v1/articles/no-such-article")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "no article with slug 'no-such-article'"}


# --- Articles ----------------------------------------------------------------------------


async def test_article_lifecycle_goes_through_the_store_and_the_audit_log(api: Api) -> None:
    created = await api.post(
        "/api/v1/articles",
        article(author="Rina Wulandari", summary="Ringkas.", image_url="/img/feri.jpg"),
    )
    assert created.status_code == 201, created.text
    data = created.json()
    slug = data["slug"]
    assert slug == "feri-baru-makassar-ambon"
    assert created.headers["Location"] == f"/api/v1/articles/{slug}"
    assert data["status"] == "published"
    assert data["published_at"].startswith("2026-11-25T00:00:00")
    assert data["tags"] == ["transportasi", "maluku"]
    assert (
        data["body_html"]
        == "<p>Kapal <strong>baru</strong> mulai berlayar.</p>\n<p>Paragraf kedua.</p>"
    )
    assert data["image_url"] == f"{BASE}/img/feri.jpg"
    assert data["url"] == f"{BASE}/articles/{slug}"
    # The same slug again is a conflict, not a silent overwrite.
    again = await api.post("/api/v1/articles", article())
    assert again.status_code == 409
    # A change keeps the slug and guid.
    changed = await api.patch(f"/api/v1/articles/{slug}", {"title": "Judul baru", "tags": ["laut"]})
    assert changed.status_code == 200, changed.text
    assert changed.json()["slug"] == slug
    assert changed.json()["guid"] == data["guid"]
    assert changed.json()["title"] == "Judul baru"
    assert changed.json()["body_markdown"].startswith("Kapal **baru**")
    unpublished = await api.post(f"/api/v1/articles/{slug}/unpublish")
    assert unpublished.json()["status"] == "draft"
    assert (await api.client.get(f"/articles/{slug}")).status_code == 404
    published = await api.post(f"/api/v1/articles/{slug}/publish")
    assert published.json()["status"] == "published"
    assert (await api.client.get(f"/articles/{slug}")).status_code == 200
    fetched = await api.get(f"/api/v1/articles/{slug}", "viewer")
    assert fetched.json() == published.json()
    assert (await api.delete(f"/api/v1/articles/{slug}")).status_code == 204
    assert (await api.get(f"/api/v1/articles/{slug}")).status_code == 404
    assert (await api.delete(f"/api/v1/articles/{slug}")).status_code == 404
    async with transaction(api.site.engine) as session:
        lines = [(e.actor, e.action, e.target) for e in await audit.page(session, limit=10)]
    assert [line for line in lines if line[1].startswith("article.")] == [
        ("editor@example.org", "article.delete", slug),
        ("editor@example.org", "article.publish", slug),
        ("editor@example.org", "article.unpublish", slug),
        ("editor@example.org", "article.update", slug),
        ("editor@example.org", "article.create", slug),
    ]


async def test_article_list_filters_and_cursor_pages(api: Api) -> None:
    for n in range(7):
        response = await api.post(
            "/api/v1/articles",
            article(
                f"Berita nomor {n}",
                lang="en" if n % 2 else "id",
                tags=["ganjil" if n % 2 else "genap"],
                author="Ayu" if n < 3 else "Budi",
                published_at=f"2026-11-2{n % 5}T0{n}:00:00+07:00",
            ),
        )
        assert response.status_code == 201, response.text
    for n in range(3):
        response = await api.post(
            "/api/v1/articles", article(f"Draf {n}", status="draft", tags=["genap"])
        )
        assert response.status_code == 201
    every: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get("/api/v1/articles", **params)).json()
        every.extend(a["slug"] for a in page["items"])
        assert len(page["items"]) <= 3
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # Undated drafts first (newest first), then by publication time, newest first.
    assert every[:3] == ["draf-2", "draf-1", "draf-0"]
    assert len(every) == len(set(every)) == 10
    whole = (await api.get("/api/v1/articles", limit=200)).json()
    assert [a["slug"] for a in whole["items"]] == every
    dated = [a["published_at"] for a in whole["items"][3:]]
    assert dated == sorted(dated, reverse=True)

    async def slugs(**params: Any) -> set[str]:
        response = await api.get("/api/v1/articles", limit=200, **params)
        assert response.status_code == 200, response.text
        return {a["slug"] for a in response.json()["items"]}

    assert await slugs(status="draft") == {"draf-0", "draf-1", "draf-2"}
    assert await slugs(lang="en") == {"berita-nomor-1", "berita-nomor-3", "berita-nomor-5"}
    assert await slugs(tag="Ganjil") == {"berita-nomor-1", "berita-nomor-3", "berita-nomor-5"}
    assert await slugs(tag="genap", status="draft") == {"draf-0", "draf-1", "draf-2"}
    assert await slugs(author="ayu") == {"berita-nomor-0", "berita-nomor-1", "berita-nomor-2"}
    assert await slugs(q="NOMOR 4") == {"berita-nomor-4"}
    assert await slugs(q="100%_") == set()
    assert await slugs(author="Budi", lang="id") == {"berita-nomor-4", "berita-nomor-6"}
    # Paging a filtered list (tag, mixing drafts and dated articles) loses nothing.
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, "tag": "genap", **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/api/v1/articles", **params)).json()
        seen.extend(a["slug"] for a in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen[:3] == ["draf-2", "draf-1", "draf-0"]
    assert set(seen) == {"draf-0", "draf-1", "draf-2", *(f"berita-nomor-{n}" for n in (0, 2, 4, 6))}
    assert len(seen) == 7


async def test_article_input_errors_are_422_with_the_field(api: Api) -> None:
    url = "/api/v1/articles"
    assert ("body", "title") in errors_at(await api.post(url, {"body_markdown": "x"}))
    assert ("body", "body_markdown") in errors_at(await api.post(url, {"title": "x"}))
    assert ("body", "lang") in errors_at(await api.post(url, article(lang="Bahasa Indonesia")))
    assert ("body", "tags") in errors_at(await api.post(url, article(tags=["t"] * 51)))
    assert ("body", "tags", "0") in errors_at(await api.post(url, article(tags=["x" * 101])))
    assert ("body", "tags") in errors_at(await api.post(url, article(tags="a,b")))
    assert ("body", "status") in errors_at(await api.post(url, article(status="live")))
    naive = article(published_at="2026-11-25T07:00:00")
    assert ("body", "published_at") in errors_at(await api.post(url, naive))
    assert ("body", "title") in errors_at(await api.post(url, article("x" * 501)))
    assert ("body", "slug") in errors_at(await api.post(url, article(slug="Not A Slug")))
    assert ("body", "guid") in errors_at(await api.post(url, article(guid="mine")))
    assert ("body", "title") in errors_at(await api.post(url, article("\x07\x08")))
    assert ("body",) in errors_at(await api.post(url, ["not", "an", "object"]))
    broken = await api.client.post(
        url,
        content=b'{"title": "x", ',
        headers={**api.auth("editor"), "Content-Type": "application/json"},
    )
    assert ("body", "15") in errors_at(broken)
    # A change may not rename the slug, and must be well-formed too.
    await api.post(url, article("Ada"))
    assert ("body", "slug") in errors_at(await api.patch(f"{url}/ada", {"slug": "lain"}))
    assert errors_at(await api.patch(f"{url}/ada", {"tags": [1, 2]})) == [
        ("body", "tags", "0"),
        ("body", "tags", "1"),
    ]
    assert (await api.get(f"{url}/ada")).json()["title"] == "Ada"
    # Query parameters too.
    assert ("query", "limit") in errors_at(await api.get(url, limit=0))
    assert ("query", "limit") in errors_at(await api.get(url, limit=201))
    assert ("query", "status") in errors_at(await api.get(url, status="gone"))
    assert ("query", "q") in errors_at(await api.get(url, q="x" * 201))


BAD_CURSORS = [
    "garbage",
    "!!!!",
    "W10",  # []
    "eyJhIjoxfQ",  # {"a":1}
    "WyJzdWJzY3JpYmVycyIsMV0",  # a subscribers cursor
    "WyJhcnRpY2xlcyIsIm5vdCBhIGRhdGUiLDFd",  # ["articles","not a date",1]
    "WyJhcnRpY2xlcyIsIjIwMjYtMTEtMjVUMDA6MDA6MDAiLDFd",  # naive time
    "WyJhcnRpY2xlcyIsbnVsbCwibm90IGFuIGlkIl0",  # ["articles",null,"not an id"]
    "x" * 201,
]


async def test_bad_article_cursors_are_422(api: Api) -> None:
    for cursor in BAD_CURSORS:
        response = await api.get("/api/v1/articles", cursor=cursor)
        assert errors_at(response) == [("query", "cursor")], cursor


# --- Hostile data -------------------------------------------------------------------------


async def test_script_in_a_title_comes_back_as_data_and_is_escaped_on_pages(api: Api) -> None:
    body = "Hi <script>alert('x')</script> <img src=x onerror=alert(1)> [a](javascript:alert(2))"
    created = await api.post(
        "/api/v1/articles",
        article(HOSTILE_TITLE, slug="hostile", body_markdown=body, author="<b>Mallory</b>"),
    )
    assert created.status_code == 201, created.text
    data = created.json()
    # Control characters go (as for every importer); the markup stays text, as data.
    assert "<script>alert('t')</script>" in data["title"]
    assert "\x07" not in data["title"]
    assert "<script" not in data["body_html"]
    assert "onerror" not in data["body_html"]
    assert 'href="javascript' not in data["body_html"]
    assert data["body_markdown"] == body
    page = await api.client.get("/articles/hostile")
    assert page.status_code == 200
    assert "<script>alert('t')" not in page.text
    assert "&lt;script&gt;alert(" in page.text
    assert "<b>Mallory</b>" not in page.text
    feed = await api.client.get("/feed.xml")
    assert feed.status_code == 200
    assert "<script>alert('t')</script>" not in feed.text
    listed = (await api.get("/api/v1/articles", q="<script>")).json()
    assert [a["slug"] for a in listed["items"]] == ["hostile"]


async def test_huge_and_deep_bodies_are_refused(api: Api) -> None:
    url = "/api/v1/articles"
    headers = {**api.auth("editor"), "Content-Type": "application/json"}
    cap = api.site.settings.web.max_request_bytes
    huge = json.dumps(article(body_markdown="x" * (cap + 10))).encode()
    response = await api.client.post(url, content=huge, headers=headers)
    assert response.status_code == 413

    sent: list[int] = []

    async def stream() -> AsyncIterator[bytes]:
        # No Content-Length: the cap must hold while the body streams in.
        for _ in range(64):
            sent.append(1)
            yield b" " * 65536

    streamed = await api.client.post(url, content=stream(), headers=headers)
    assert streamed.status_code == 413
    assert len(sent) < 64, "the whole body was read before refusing it"
    deep = b"[" * 100_000 + b"]" * 100_000
    assert json_depth(deep) == 100_000
    response = await api.client.post(url, content=deep, headers=headers)
    assert errors_at(response) == [("body",)]
    nested: Any = "x"
    for _ in range(MAX_JSON_DEPTH):
        nested = [nested]
    response = await api.post(url, article(tags=nested))
    assert ("body",) in errors_at(response)
    # Brackets inside strings are text, not depth.
    assert json_depth(b'{"title": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "x": ["\\"["]}') == 2
    # Long strings are capped field by field, long lists item by item.
    long_name = subscriber("a@example.org", name="n" * 201)
    assert ("body", "name") in errors_at(await api.post("/api/v1/subscribers", long_name))
    topics = subscriber("a@example.org", topics=[str(n) for n in range(51)])
    assert ("body", "topics") in errors_at(await api.post("/api/v1/subscribers", topics))


# --- Subscribers --------------------------------------------------------------------------


async def test_subscribers_are_added_with_consent_through_the_normal_path(api: Api) -> None:
    url = "/api/v1/subscribers"
    confirmed = await api.post(
        url,
        subscriber(
            "Dewi@Example.org",
            name="Dewi",
            lang="en",
            timezone="Asia/Jayapura",
            frequency="weekly",
            topics=["Ekonomi", "Olah Raga"],
            confirmed=True,
            consent_ip="203.0.113.9",
            consent_user_agent="Kabar CMS signup form",
        ),
    )
    assert confirmed.status_code == 201, confirmed.text
    data = confirmed.json()
    assert data["email"] == "Dewi@example.org"
    assert data["status"] == "active"
    assert data["topics"] == ["ekonomi", "olah-raga"]
    assert data["consent"] == {
        "source": "api",
        "at": "2026-11-25T00:00:00Z",
        "ip": "203.0.113.9",
        "user_agent": "Kabar CMS signup form",
        "text": "Saya mau menerima Kabar.",
    }
    assert confirmed.headers["Location"] == "/api/v1/subscribers/Dewi@example.org"
    pending = await api.post(url, subscriber("baru@example.org"))
    assert pending.status_code == 201, pending.text
    assert pending.json()["status"] == "pending"
    assert pending.json()["consent"]["ip"] == "192.0.2.10"  # the caller's, by default
    await drain(api.app)
    [mail] = api.mails()
    assert mail["To"].addresses[0].addr_spec == "baru@example.org"
    assert f"{BASE}/confirm/" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    # No second mail or record for an address already on the list.
    assert (await api.post(url, subscriber("DEWI@example.org"))).status_code == 409
    assert (await api.post(url, subscriber("baru@example.org", confirmed=True))).status_code == 409
    assert ("body", "email") in errors_at(await api.post(url, subscriber("not an address")))
    assert ("body", "preferences") in errors_at(
        await api.post(url, subscriber("x@example.org", timezone="Mars/Olympus"))
    )
    assert ("body", "consent_text") in errors_at(await api.post(url, {"email": "y@example.org"}))
    assert ("body", "consent_ip") in errors_at(
        await api.post(url, subscriber("y@example.org", consent_ip="999.1.1.1"))
    )
    # Suppress: the address is never mailed again, even after the record is deleted.
    suppressed = await api.post(f"{url}/dewi@example.org/suppress")
    assert suppressed.status_code == 200
    assert suppressed.json()["status"] == "unsubscribed"
    assert (await api.delete(f"{url}/DEWI@example.org")).status_code == 204
    assert (await api.get(f"{url}/dewi@example.org")).status_code == 404
    async with transaction(api.site.engine) as session:
        assert await suppression.reason(session, "dewi@example.org") == suppression.MANUAL
    refused = await api.post(url, subscriber("dewi@example.org", confirmed=True))
    assert refused.status_code == 409
    assert "suppressed (manual)" in refused.json()["detail"]
    assert (await api.delete(f"{url}/nobody@example.org")).status_code == 404
    assert (await api.post(f"{url}/nobody@example.org/suppress")).status_code == 404
    async with transaction(api.site.engine) as session:
        actions = [e.action for e in await audit.page(session, limit=20)]
    assert actions[:4] == [
        "subscriber.delete",
        "subscriber.suppress",
        "subscriber.create",
        "subscriber.create",
    ]


async def test_subscriber_filters_prefix_search_and_cursor_pages(api: Api) -> None:
    zones = ["Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura"]
    for n in range(12):
        response = await api.post(
            "/api/v1/subscribers",
            subscriber(
                f"{'ab' if n % 3 == 0 else 'zz'}{n:02d}@example.org",
                lang="en" if n % 2 else "id",
                timezone=zones[n % 3],
                frequency="weekly" if n % 4 == 0 else "daily",
                topics=["sepak-bola"] if n % 5 == 0 else ["sepak"],
                confirmed=n % 6 != 5,
            ),
        )
        assert response.status_code == 201, response.text
    await api.post("/api/v1/subscribers", subscriber("a_b%@example.org", confirmed=True))

    async def emails(**params: Any) -> list[str]:
        found: list[str] = []
        cursor = None
        while True:
            query = {"limit": 2, **params, **({"cursor": cursor} if cursor else {})}
            response = await api.get("/api/v1/subscribers", "viewer", **query)
            assert response.status_code == 200, response.text
            found.extend(s["email"] for s in response.json()["items"])
            cursor = response.json()["next_cursor"]
            if cursor is None:
                return found

    newest_first = await emails()
    assert newest_first[0] == "a_b%@example.org"
    assert newest_first[1:] == [
        f"{'ab' if n % 3 == 0 else 'zz'}{n:02d}@example.org" for n in range(11, -1, -1)
    ]
    assert await emails(email="AB") == [
        "ab00@example.org",
        "ab03@example.org",
        "ab06@example.org",
        "ab09@example.org",
    ]
    assert await emails(email="ab0") == [
        "ab00@example.org",
        "ab03@example.org",
        "ab06@example.org",
        "ab09@example.org",
    ]
    # LIKE wildcards in the prefix are plain characters.
    assert await emails(email="a_") == ["a_b%@example.org"]
    assert await emails(email="a%") == []
    assert await emails(email="zz05", status="pending") == ["zz05@example.org"]
    assert set(await emails(status="pending")) == {"zz05@example.org", "zz11@example.org"}
    # A status alone reads daily and weekly readers apart and merges them, in order.
    pending = {"zz05@example.org", "zz11@example.org"}
    assert await emails(status="active") == [e for e in newest_first if e not in pending]
    assert set(await emails(lang="en", timezone="Asia/Jakarta")) == {
        "ab03@example.org",
        "ab09@example.org",
    }
    assert set(await emails(frequency="weekly")) == {
        "ab00@example.org",
        "zz04@example.org",
        "zz08@example.org",
    }
    # Topics match whole topics: "sepak" is not "sepak-bola".
    assert set(await emails(topic="Sepak Bola")) == {
        "ab00@example.org",
        "zz05@example.org",
        "zz10@example.org",
    }
    assert len(await emails(topic="sepak")) == 9
    # A cursor from one ordering is refused by the other.
    first = (await api.get("/api/v1/subscribers", limit=1)).json()["next_cursor"]
    assert errors_at(await api.get("/api/v1/subscribers", cursor=first, email="ab")) == [
        ("query", "cursor")
    ]
    by_address = (await api.get("/api/v1/subscribers", limit=1, email="a")).json()["next_cursor"]
    assert errors_at(await api.get("/api/v1/subscribers", cursor=by_address)) == [
        ("query", "cursor")
    ]
    assert errors_at(
        await api.get("/api/v1/subscribers", cursor="WyJzdWJzY3JpYmVycyIsdHJ1ZV0")
    ) == [("query", "cursor")]
    assert ("query", "status") in errors_at(await api.get("/api/v1/subscribers", status="gone"))
    assert ("query", "email") in errors_at(await api.get("/api/v1/subscribers", email="x" * 321))


# --- Editions and the digest preview ------------------------------------------------------


async def test_editions_list_with_progress_counts(api: Api) -> None:
    assert (await api.get("/api/v1/editions")).json() == {"items": [], "next_cursor": None}
    for n in range(3):
        await add_reader(api.site, f"r{n}@example.org", "Asia/Jakarta")
    assert (await api.post("/api/v1/articles", article())).status_code == 201
    now = api.site.clock.now()
    edition = await open_edition(api.site, "daily", date(2026, 11, 25), now)
    report = await enqueue(api.site, edition, now)
    assert report.queued == 3, report
    await open_edition(api.site, "weekly", date(2026, 11, 23), now)
    async with transaction(api.site.engine) as session:
        ids = list(await session.scalars(sa.select(OutboxRow.id).order_by(OutboxRow.id)))
        await session.execute(
            sa.update(OutboxRow).where(OutboxRow.id == ids[0]).values(status=SENT)
        )
        await session.execute(
            sa.update(OutboxRow)
            .where(OutboxRow.id == ids[1])
            .values(status=FAILED, attempts=1, smtp_code=550, smtp_response="550 no such user")
        )
    first = (await api.get("/api/v1/editions", "viewer", limit=1)).json()
    assert [e["period_key"] for e in first["items"]] == ["weekly:2026-11-23"]
    assert first["items"][0]["counts"]["total"] == 0
    second = (await api.get("/api/v1/editions", limit=1, cursor=first["next_cursor"])).json()
    assert second["next_cursor"] is None
    [daily] = second["items"]
    assert daily["period_key"] == "daily:2026-11-25"
    assert daily["counts"] == {
        "total": 3,
        "queued": 1,
        "sending": 0,
        "retrying": 0,
        "sent": 1,
        "failed": 1,
        "cancelled": 0,
    }
    assert daily["languages"] == ["id"]
    one = await api.get("/api/v1/editions/daily:2026-11-25", "reader")
    assert one.status_code == 200
    assert one.json()["counts"] == daily["counts"]
    [error] = one.json()["errors"]
    assert error["code"] == 550
    assert error["status"] == "failed"
    assert (await api.get("/api/v1/editions/daily:1999-01-01")).status_code == 404
    assert errors_at(await api.get("/api/v1/editions", cursor="WyJlZGl0aW9ucyIsIngiXQ")) == [
        ("query", "cursor")
    ]
    assert ("query", "limit") in errors_at(await api.get("/api/v1/editions", limit=51))


async def test_digest_preview_for_a_language_and_time_zone(api: Api) -> None:
    url = "/api/v1/digest/preview"
    assert (await api.get(url)).status_code == 404  # nothing published yet
    await api.post("/api/v1/articles", article("Kabar pagi dari Jayapura"))
    await api.post("/api/v1/articles", article("Morning news from Jayapura", lang="en"))
    preview = await api.get(url, "viewer", lang="en", timezone="Asia/Jayapura")
    assert preview.status_code == 200, preview.text
    data = preview.json()
    assert data["lang"] == "en"
    assert data["timezone"] == "Asia/Jayapura"
    assert data["sample"] is False
    assert data["articles"] == 1
    assert "Morning news from Jayapura" in data["html"]
    assert "MORNING NEWS FROM JAYAPURA" in data["text"]
    assert "KABAR PAGI" not in data["text"]
    # 00:00 UTC is 09:00 on 25 November in Jayapura.
    assert "25" in data["subject"] or "November" in data["text"]
    html = await api.get(url, lang="id", format="html")
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    assert html.headers["content-security-policy"] == "sandbox"
    assert "Kabar pagi dari Jayapura" in html.text
    text = await api.get(url, lang="id", format="text")
    assert text.headers["content-type"] == "text/plain; charset=utf-8"
    assert "KABAR PAGI DARI JAYAPURA" in text.text
    assert ("query", "lang") in errors_at(await api.get(url, lang="xx"))
    assert ("query", "timezone") in errors_at(await api.get(url, timezone="Mars/Olympus"))
    assert ("query", "format") in errors_at(await api.get(url, format="pdf"))


# --- One POST, then the feed of a real server -----------------------------------------------


async def test_a_cms_publishes_with_one_post_and_the_feed_has_it_at_once(
    site: Site, site_dir: Path
) -> None:
    keys = await make_keys(site)
    served = Site.from_settings(load_settings(site_dir / "publisher.toml"))
    # A long poll interval: the feed must change because of the POST, not the poller.
    with running(served, poll_interval=3600) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            before = await client.get("/feed.xml")
            assert before.status_code == 200
            assert "Pelabuhan Ternate" not in before.text
            created = await client.post(
                "/api/v1/articles",
                json=article("Pelabuhan Ternate dibuka", tags=["maluku"]),
                headers={"Authorization": f"Bearer {keys['editor']}"},
            )
            assert created.status_code == 201, created.text
            after = await client.get("/feed.xml")
            assert "Pelabuhan Ternate dibuka" in after.text
            assert "Pelabuhan Ternate dibuka" in (await client.get("/tags/maluku/feed.xml")).text
            assert "Pelabuhan Ternate dibuka" in (await client.get("/feed.json")).text
            gone = await client.delete(
                f"/api/v1/articles/{created.json()['slug']}",
                headers={"Authorization": f"Bearer {keys['editor']}"},
            )
            assert gone.status_code == 204
            assert "Pelabuhan Ternate" not in (await client.get("/feed.xml")).text
