"""The reader's way in: a subscribe form on every public page, /subscribe's language."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from publisher.db import transaction
from publisher.render.i18n import accepted_languages, negotiate_language
from publisher.site import Site
from publisher.web.app import create_app
from subscribers import repository
from tests.feeds_helpers import load_samples

BASE = "https://news.example.org"
PUBLIC = (
    "/",
    "/articles/{slug}",
    "/tags/{tag}",
    "/authors/{author}",
    "/archive",
    "/archive/{month}",
)


@pytest.fixture
async def client(site: Site) -> AsyncIterator[httpx.AsyncClient]:
    await load_samples(site)
    app = create_app(site)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("192.0.2.10", 40000))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
            yield http


async def public_paths(client: httpx.AsyncClient) -> list[str]:
    home = (await client.get("/")).text
    slug = re.search(r'href="https://news\.example\.org/articles/([a-z0-9-]+)"', home)
    assert slug is not None
    article = (await client.get(f"/articles/{slug[1]}")).text
    tag = re.search(r'href="https://news\.example\.org/tags/([a-z0-9-]+)"', article)
    author = re.search(r'href="https://news\.example\.org/authors/([a-z0-9-]+)"', article)
    month = re.search(r'datetime="(\d{4}-\d{2})', article)
    assert tag
    assert author
    assert month
    return [p.format(slug=slug[1], tag=tag[1], author=author[1], month=month[1]) for p in PUBLIC]


async def test_every_public_page_has_a_short_subscribe_form_and_a_link(
    client: httpx.AsyncClient,
) -> None:
    for path in await public_paths(client):
        page = await client.get(path)
        assert page.status_code == 200, path
        form = re.search(r'<form method="post" action="([^"]+)">(.*?)</form>', page.text, re.S)
        assert form is not None, path
        assert form[1] == f"{BASE}/subscribe"
        assert 'type="email" name="email"' in form[2]
        assert f'href="{BASE}/subscribe"' in page.text, path


async def test_the_short_form_opens_the_full_form_prefilled_without_subscribing(
    client: httpx.AsyncClient, site: Site
) -> None:
    answer = await client.post(
        "/subscribe", data={"step": "start", "email": "pembaca@example.org", "page_language": "id"}
    )
    assert answer.status_code == 200
    assert 'value="pembaca@example.org"' in answer.text
    assert 'name="csrf"' in answer.text
    assert '<html lang="id">' in answer.text

    async with transaction(site.engine) as session:
        assert await repository.get_by_email(session, "pembaca@example.org") is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("", "id"),  # the site's language
        ("en;q=0.1, id;q=0.9", "id"),
        ("id;q=0.2, en;q=0.8", "en"),
        ("en-GB,en;q=0.9", "en"),
        ("fr-FR, fr;q=0.9, en;q=0.5", "en"),  # French is not shipped: the next one
        ("fr, de", "id"),
        ("en;q=0", "id"),  # q=0 means "not English"
        ("*", "id"),
        ("en;q=abc, id", "id"),  # a malformed weight drops that entry
        ("x" * 5000, "id"),
        (",".join(["zz"] * 500) + ",en", "id"),  # only the first entries count
    ],
)
async def test_subscribe_page_language_honours_accept_language_weights(
    client: httpx.AsyncClient, header: str, expected: str
) -> None:
    page = await client.get("/subscribe", headers={"Accept-Language": header})
    assert page.status_code == 200
    assert f'<html lang="{expected}">' in page.text


def test_accept_language_parsing() -> None:
    assert accepted_languages("en;q=0.1, id;q=0.9, *;q=0.05") == ["id", "en", "*"]
    assert accepted_languages("da, en-gb;q=0.8, en;q=0.7") == ["da", "en-gb", "en"]
    assert accepted_languages("a;q=2, <script>, en") == ["en"]
    assert negotiate_language("id-ID,id;q=0.9", "en") == "id"
    assert negotiate_language("pt-BR", "en") == "en"
