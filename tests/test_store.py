"""The content store: idempotent upserts, stable guids and indexed queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from publisher.content.store import ArticleDraft, ArticleStore
from publisher.db import transaction
from publisher.site import Site


def draft(**changes: object) -> ArticleDraft:
    base: dict[str, object] = {
        "title": "Feri baru berlayar",
        "body_html": "<p>Isi berita.</p>",
        "language": "id",
        "tags": ["Transportasi"],
        "published_at": datetime(2026, 11, 20, 1, 0, tzinfo=UTC),
    }
    base.update(changes)
    return ArticleDraft(**base)  # type: ignore[arg-type]


async def test_upsert_is_idempotent_and_guid_stable(site: Site) -> None:
    now = site.clock.now()
    async with transaction(site.engine) as session:
        store = ArticleStore(session, site.settings.site.base_url)
        first = await store.upsert(draft(), now)
        assert first.action == "created"
        guid = first.article.guid
    async with transaction(site.engine) as session:
        store = ArticleStore(session, site.settings.site.base_url)
        again = await store.upsert(draft(), now)
        assert again.action == "unchanged"
        changed = await store.upsert(
            draft(title="Feri baru akhirnya berlayar", slug="feri-baru-berlayar"), now
        )
        assert changed.action == "updated"
        assert changed.article.guid == guid
        assert changed.article.tags == ["transportasi"]


async def test_latest_and_window_queries(site: Site) -> None:
    now = site.clock.now()
    start = datetime(2026, 11, 1, tzinfo=UTC)
    async with transaction(site.engine) as session:
        store = ArticleStore(session, site.settings.site.base_url)
        for day in range(10):
            await store.upsert(
                draft(
                    title=f"Berita hari {day}",
                    tags=["a" if day % 2 else "b"],
                    published_at=start + timedelta(days=day),
                ),
                now,
            )
        await store.upsert(draft(title="Konsep", draft=True, published_at=None), now)
    async with transaction(site.engine) as session:
        store = ArticleStore(session, site.settings.site.base_url)
        latest = await store.latest(3)
        assert [a.title for a in latest] == ["Berita hari 9", "Berita hari 8", "Berita hari 7"]
        tagged = await store.latest(2, tag="a")
        assert [a.title for a in tagged] == ["Berita hari 9", "Berita hari 7"]
        window = await store.published_between(start + timedelta(days=2), start + timedelta(days=4))
        assert [a.title for a in window] == ["Berita hari 4", "Berita hari 3"]
        assert await store.count_published() == 10
