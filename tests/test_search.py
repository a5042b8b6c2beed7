"""Title search and the topic filter: what matches, hostile queries, limits, both backends.

The search words are cut in Python (content/search.py) and indexed by SQLite FTS5 or a
PostgreSQL GIN index; these tests drive the real list function, the API and the admin
page on each backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from publisher.accounts.models import Role
from publisher.content import listing
from publisher.content.listing import ArticleFilter
from publisher.content.models import Article
from publisher.content.search import (
    MAX_QUERY_CHARS,
    MAX_QUERY_WORDS,
    SearchError,
    TitleQuery,
    title_words,
)
from publisher.content.store import ArticleDraft, ArticleStore
from publisher.db import transaction
from publisher.site import Site
from publisher.web.admin.paging import article_cursor, encode_article_cursor
from publisher.web.server import running
from subscribers import repository
from subscribers.models import Subscriber, SubscriberTopic
from subscribers.repository import Consent, Preferences, SubscriberFilter
from tests.admin_helpers import AdminClient, add_user
from tests.test_api import Api, api  # noqa: F401  (the API fixture)

START = datetime(2026, 1, 1, tzinfo=UTC)
TITLES = [
    "Pemilu Jakarta 2026: hasil hitung cepat",
    "Café Énergie buka cabang di Bandung",
    "Banjir rob di pesisir Semarang",
    "Jayapura beat Makassar in the final",
    "Harga beras naik menjelang Natal",
    'Ülkü & the NEAR-field (AND) "quotes"',
]

#: Hostile search texts: FTS5 and tsquery syntax, quoting, escapes, control and odd unicode.
HOSTILE = [
    '"',
    '""',
    '"unbalanced',
    "*",
    "berita*",
    "NEAR(a b)",
    "NEAR",
    "a AND b",
    "a OR b",
    "NOT a",
    "(",
    "())",
    "title: x",
    "'",
    "''",
    "\\",
    "a:* & b | !c",
    "<->",
    "%_%",
    "^caret",
    "-minus +plus",
    "😀 emoji",
    "\u202eevil",
    "zero\u200bwidth",
    "nul\x00byte",
    "ＡＢＣ",
    "ß",
    "ﬁ",
    "中文",
    "x" * 100,
]


async def add_articles(site: Site) -> None:
    async with transaction(site.engine) as session:
        store = ArticleStore(session, site.settings.site.base_url)
        for number, title in enumerate(TITLES):
            await store.upsert(
                ArticleDraft(
                    title=title,
                    body_html="<p>Isi.</p>",
                    language="id",
                    tags=["ekonomi"] if number % 2 else ["budaya"],
                    draft=number == 4,
                    published_at=None if number == 4 else START + timedelta(days=number),
                ),
                site.clock.now(),
            )


async def titles(site: Site, text: str, **filters: str) -> list[str]:
    async with transaction(site.engine) as session:
        found = await listing.page(session, ArticleFilter(text=text, **filters), 50)
    return [article.title for article in found]


def test_title_words_fold_case_and_accents() -> None:
    assert title_words("Café Énergie, ÜBER-groß 2026!") == [
        "cafe",
        "energie",
        "uber",
        "gross",
        "2026",
    ]
    assert title_words("   ") == []
    assert title_words("a_b") == ["a", "b"]
    assert title_words("x" * 500) == ["x" * 60]


def test_admin_article_cursor_round_trips_and_refuses_junk() -> None:
    when = datetime(2026, 11, 25, 7, 30, 1, 5, tzinfo=UTC)
    assert article_cursor(encode_article_cursor((when, 42))) == (when, 42)
    assert article_cursor(encode_article_cursor((None, 7))) == (None, 7)
    old = datetime(1969, 7, 20, 20, 17, tzinfo=UTC)
    assert article_cursor(encode_article_cursor((old, 3))) == (old, 3)
    for junk in ("", "x", "1@", "@5", "1@2@3", "9" * 19, "1@" + "9" * 18, "1@-" + "9" * 18):
        assert article_cursor(junk) is None, junk


def test_query_limits_name_the_problem() -> None:
    with pytest.raises(SearchError, match="at most 200"):
        TitleQuery.parse("a" * (MAX_QUERY_CHARS + 1))
    with pytest.raises(SearchError, match="at most 8"):
        TitleQuery.parse(" ".join(f"w{n}" for n in range(MAX_QUERY_WORDS + 1)))
    with pytest.raises(SearchError, match="no letters or digits"):
        TitleQuery.parse('"*() -')
    assert TitleQuery.parse('NEAR("x" AND y*').fts5() == '"near"* "x"* "and"* "y"*'
    assert TitleQuery.parse("a:* & 'b'").tsquery() == "'a':* & 'b':*"


async def test_words_and_prefixes_match_whatever_the_case_and_accents(site: Site) -> None:
    await add_articles(site)
    assert await titles(site, "jakarta") == [TITLES[0]]
    assert await titles(site, "JAK pemi") == [TITLES[0]]
    assert await titles(site, "cafe energie") == [TITLES[1]]
    assert await titles(site, "CAFÉ") == [TITLES[1]]
    assert await titles(site, "ulku near") == [TITLES[5]]
    assert await titles(site, '"quotes" AND') == [TITLES[5]]
    # A word must begin a title word: no match inside a word.
    assert await titles(site, "karta") == []
    # Every word must match.
    assert await titles(site, "jakarta bandung") == []
    # The undated draft is listed first, then newest first; status filters combine.
    assert await titles(site, "di") == [TITLES[2], TITLES[1]]
    assert await titles(site, "harga") == [TITLES[4]]
    assert await titles(site, "harga", status="published") == []
    assert await titles(site, "n") == [TITLES[4], TITLES[5]]
    # Tags combine with the words, drafts included.
    assert await titles(site, "di", tag="ekonomi") == [TITLES[1]]
    assert await titles(site, "n", tag="budaya") == [TITLES[4]]
    assert await titles(site, "n", tag="budaya", status="draft") == [TITLES[4]]


async def test_index_follows_edits_and_deletes(site: Site) -> None:
    await add_articles(site)
    async with transaction(site.engine) as session:
        store = ArticleStore(session, site.settings.site.base_url)
        slug = (await store.require("banjir-rob-di-pesisir-semarang")).slug
        await store.upsert(
            ArticleDraft(
                title="Rob surut, rob datang di Demak",
                slug=slug,
                body_html="<p>Isi.</p>",
                language="id",
            ),
            site.clock.now(),
        )
    assert await titles(site, "banjir") == []
    assert await titles(site, "demak") == ["Rob surut, rob datang di Demak"]
    async with transaction(site.engine) as session:
        await ArticleStore(session, site.settings.site.base_url).remove(slug)
    assert await titles(site, "demak") == []
    # A raw delete (not through the store) takes the words too.
    async with transaction(site.engine) as session:
        await session.execute(sa.delete(Article).where(Article.title == TITLES[0]))
    assert await titles(site, "jakarta") == []


@pytest.mark.parametrize("text", HOSTILE)
async def test_hostile_search_text_never_reaches_the_database_as_syntax(
    site: Site, text: str
) -> None:
    await add_articles(site)
    if not title_words(text):
        with pytest.raises(SearchError, match=r"^search text has no letters or digits$"):
            await titles(site, text)
        return
    found = await titles(site, text)
    assert all(isinstance(title, str) for title in found)


async def test_api_search_answers_422_not_500(api: Api) -> None:  # noqa: F811
    await add_articles(api.site)
    for text in HOSTILE:
        response = await api.get("/api/v1/articles", q=text)
        assert response.status_code in (200, 422), (text, response.text)
    found = await api.get("/api/v1/articles", q="pemilu JAKARTA")
    assert [item["title"] for item in found.json()["items"]] == [TITLES[0]]
    for text, message in (
        ("a" * 201, "at most 200"),
        (" ".join("w" * 3 for _ in range(9)), ""),
        (" ".join(f"w{n}" for n in range(9)), "has 9 words; at most 8"),
        ('"*()', "no letters or digits"),
    ):
        response = await api.get("/api/v1/articles", q=text)
        assert response.status_code == (200 if not message else 422), (text, response.text)
        if message:
            detail = response.json()["detail"]
            assert detail[0]["loc"][-1] == "q"
            assert message in detail[0]["msg"] or "200" in str(detail)


@pytest.fixture
def admin(site: Site) -> Iterator[AdminClient]:
    served = Site(settings=site.settings, clock=site.clock)
    with running(served, poll_interval=0.2) as base:
        client = AdminClient(base)
        yield client
        client.close()


async def test_admin_search_shows_the_error_line(site: Site, admin: AdminClient) -> None:
    await add_user(site, "viewer@example.org", Role.VIEWER)
    await add_articles(site)
    admin.login("viewer@example.org")
    found = admin.get("/admin/articles", params={"q": "cafe"})
    assert found.status_code == 200
    assert "Café Énergie" in found.text
    assert "Pemilu" not in found.text
    for text in HOSTILE:
        response = admin.get("/admin/articles", params={"q": text})
        assert response.status_code in (200, 422), text
    too_long = admin.get("/admin/articles", params={"q": "a" * 5000})
    assert too_long.status_code == 422
    assert "search text is 5000 characters long; at most 200" in too_long.text
    # The next page starts after the cursor of the last row shown, search kept.
    after = encode_article_cursor((START + timedelta(days=2), 3))
    second = admin.get("/admin/articles", params={"q": "di", "after": after})
    assert "Café Énergie" in second.text
    assert "Banjir rob" not in second.text
    assert admin.get("/admin/articles", params={"after": "1@99999999999999999"}).status_code == 200
    assert admin.get("/admin/articles", params={"after": "x@y"}).status_code == 200


async def test_topic_rows_follow_the_json_list(site: Site) -> None:
    now = site.clock.now()
    async with transaction(site.engine) as session:
        first = await repository.add(
            session,
            "a@example.org",
            Preferences(topics=("politik", "ekonomi")),
            Consent("t", now),
            now,
        )
        await repository.add(
            session, "b@example.org", Preferences(topics=("ekonomi",)), Consent("t", now), now
        )
        await repository.add(session, "c@example.org", Preferences(), Consent("t", now), now)
        first_id = first.id

    async def follow(topic: str) -> list[str]:
        async with transaction(site.engine) as session:
            found = await repository.page(session, SubscriberFilter(topic=topic), 10)
        return [s.email for s in found]

    assert await follow("ekonomi") == ["b@example.org", "a@example.org"]
    assert await follow("Politik") == ["a@example.org"]
    assert await follow("olahraga") == []
    assert await follow("!!!") == []
    async with transaction(site.engine) as session:
        reader = await session.get(Subscriber, first_id)
        assert reader is not None
        reader.topics = ["olahraga"]
    assert await follow("ekonomi") == ["b@example.org"]
    assert await follow("olahraga") == ["a@example.org"]
    # A Core update and delete (as bulk paths do) keep the rows true as well.
    async with transaction(site.engine) as session:
        await session.execute(
            sa.update(Subscriber)
            .where(Subscriber.email == "c@example.org")
            .values(topics=["ekonomi"])
        )
        await session.execute(sa.delete(Subscriber).where(Subscriber.email == "b@example.org"))
    assert await follow("ekonomi") == ["c@example.org"]
    async with transaction(site.engine) as session:
        rows = (
            await session.execute(sa.select(SubscriberTopic.topic, SubscriberTopic.subscriber_id))
        ).all()
    assert sorted(rows) == sorted([("olahraga", first_id), ("ekonomi", first_id + 2)])
    # The address-prefix search combines with the topic.
    async with transaction(site.engine) as session:
        found = await repository.page(
            session, SubscriberFilter(topic="ekonomi", email_prefix="c@"), 5
        )
    assert [s.email for s in found] == ["c@example.org"]
