"""`digest preview` shows what delivery would send: same language, topics and window."""

from __future__ import annotations

import asyncio
import email
from datetime import timedelta
from email import policy
from pathlib import Path

import pytest
import sqlalchemy as sa

from publisher.clock import FrozenClock
from publisher.config import load_settings
from publisher.content.models import Article
from publisher.db import transaction
from publisher.delivery.editions import enqueue, open_edition
from publisher.delivery.models import EditionVariant, OutboxRow
from publisher.site import Site
from subscribers.models import Subscriber
from tests.clirunner import invoke
from tests.delivery_helpers import add_articles, add_subscribers


async def _titles(site: Site) -> dict[int, str]:
    async with transaction(site.engine) as session:
        rows = await session.execute(sa.select(Article.id, Article.title))
        return {article_id: title for article_id, title in rows}


async def _variant_of(site: Site, address: str) -> list[int]:
    async with transaction(site.engine) as session:
        ids = await session.scalar(
            sa.select(EditionVariant.article_ids)
            .join(OutboxRow, OutboxRow.variant_id == EditionVariant.id)
            .where(OutboxRow.email == address)
        )
    assert ids is not None, f"{address} was not queued"
    return [int(i) for i in ids]


async def test_preview_for_a_subscriber_is_exactly_their_next_digest(
    site: Site, clock: FrozenClock, tmp_path: Path
) -> None:
    from publisher.cli.digest import write_preview

    now = clock.now()
    await add_articles(site, 3, language="id", prefix="kabar", tags=["berita"])
    await add_articles(site, 3, language="en", prefix="news", tags=["sport"])
    await add_articles(site, 2, language="en", prefix="culture", tags=["budaya"])
    # Older than one reader's last digest, newer than the default 24 hours.
    await add_articles(
        site, 1, language="en", prefix="old", tags=["sport"], published=now - timedelta(hours=20)
    )
    await add_subscribers(site, 1, start=1, languages=("en",), topics=["sport"])
    await add_subscribers(site, 1, start=2, languages=("id",))
    await add_subscribers(site, 1, start=3, languages=("en",))
    async with transaction(site.engine) as session:
        await session.execute(
            sa.update(Subscriber)
            .where(Subscriber.email == "reader1@example.net")
            .values(last_digest_at=now - timedelta(hours=12))
        )
    titles = await _titles(site)
    previews = {}
    for n in (1, 2, 3):
        address = f"reader{n}@example.net"
        written = await write_preview(site, tmp_path / str(n), language=None, subscriber=address)
        assert not written.sample
        previews[address] = written.paths[1].read_text(encoding="utf-8").lower()
    await enqueue(site, await open_edition(site, "daily", now.date(), now), now)
    for address, text in previews.items():
        chosen = await _variant_of(site, address)
        assert chosen
        for article_id, title in titles.items():
            assert (title.lower() in text) == (article_id in chosen), (address, title)
    # The sport reader: English sport articles since their last digest only.
    assert "news 0" in previews["reader1@example.net"]
    assert "old 0" not in previews["reader1@example.net"]
    assert "culture 0" not in previews["reader1@example.net"]
    assert "kabar 0" in previews["reader2@example.net"]
    assert "news 0" not in previews["reader2@example.net"]


async def test_preview_without_subscriber_is_a_new_reader_of_the_language(
    site: Site, tmp_path: Path
) -> None:
    from publisher.cli.digest import write_preview

    await add_articles(site, 2, language="id", prefix="kabar")
    await add_articles(site, 2, language="en", prefix="news")
    english = await write_preview(site, tmp_path / "en", language="en", subscriber=None)
    text = english.paths[1].read_text(encoding="utf-8").lower()
    assert "news 1" in text
    assert "kabar 0:" not in text
    site_language = await write_preview(site, tmp_path / "id", language=None, subscriber=None)
    text = site_language.paths[1].read_text(encoding="utf-8").lower()
    assert "kabar 1" in text
    assert "news 0:" not in text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_nothing_new_writes_a_labelled_sample(
    site_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def seed() -> None:
        site = Site.from_settings(load_settings(site_dir / "publisher.toml"))
        try:
            old = site.clock.now() - timedelta(days=3)
            await add_articles(site, 2, language="id", prefix="kabar", published=old)
            await add_articles(site, 2, language="en", prefix="news", published=old)
        finally:
            await site.aclose()

    asyncio.run(seed())
    out = tmp_path / "out"
    config = site_dir / "publisher.toml"
    result = invoke(capsys, "--config", config, "digest", "preview", "--out", out)
    assert result.exit_code == 0, result.stderr
    assert result.error_lines == [
        "nothing new for a new id reader, so no digest would be sent now: "
        "the files hold a [sample] of the 2 latest id article(s)"
    ]
    assert [Path(p).name for p in result.stdout.split()] == [
        "digest.html",
        "digest.txt",
        "digest.eml",
    ]
    message = email.message_from_bytes((out / "digest.eml").read_bytes(), policy=policy.default)
    assert str(message["Subject"]).startswith("[sample] ")
    text = (out / "digest.txt").read_text(encoding="utf-8").lower()
    assert "kabar 0" in text
    assert "news 0:" not in text
