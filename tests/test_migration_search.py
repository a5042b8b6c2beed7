"""Migration 0007: existing articles become searchable and existing readers' topics are
indexed; downgrade removes it all and upgrade again works (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import command

from publisher import db
from publisher.content.search import FTS_TABLE

NOW = datetime(2026, 11, 25, 0, 0)


def downgrade(url: str, revision: str) -> None:
    config = db._alembic_config(url)
    engine = db.create_sync_engine(url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
    engine.dispose()


def add_rows(url: str) -> None:
    engine = db.create_sync_engine(url)
    with engine.begin() as connection:
        for number, (title, status) in enumerate(
            [("Pemilu Jakarta 2026", "published"), ("Café Énergie dibuka", "draft")], start=1
        ):
            connection.execute(
                sa.text(
                    "INSERT INTO articles (id, slug, guid, title, summary, body_html, body_source, "
                    "source_format, author, author_slug, language, tags, image_url, "
                    "image_caption, image_credit, image_type, image_length, image_width, "
                    "image_height, canonical_url, source_url, origin, editors, extra, status, "
                    "published_at, updated_at, created_at, content_hash) VALUES (:id, :slug, "
                    ":slug, :title, '', '', '', 'markdown', '', '', 'id', '[]', '', '', '', '', "
                    "0, 0, 0, '', '', '', '[]', '{}', :status, :now, :now, :now, '')"
                ),
                {"id": number, "slug": f"a-{number}", "title": title, "status": status, "now": NOW},
            )
        for number, topics in enumerate(['["politik", "ekonomi"]', "[]", "null"], start=1):
            connection.execute(
                sa.text(
                    "INSERT INTO subscribers (id, email, email_key, name, status, language, "
                    "timezone, frequency, topics, created_at, consent_source, consent_ip, "
                    "consent_user_agent, consent_text, soft_bounces, hard_bounces) VALUES "
                    "(:id, :email, :email, '', 'active', 'id', '', 'daily', :topics, :now, '', "
                    "'', '', '', 0, 0)"
                ),
                {"id": number, "email": f"r{number}@example.org", "topics": topics, "now": NOW},
            )
    engine.dispose()


def search_ids(url: str, words: str) -> list[int]:
    engine = db.create_sync_engine(url)
    with engine.connect() as connection:
        if db.is_sqlite(url):
            query = f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :q ORDER BY rowid"
            found = connection.execute(sa.text(query), {"q": words}).scalars()
        else:
            query = (
                "SELECT article_id FROM article_search "
                "WHERE words @@ CAST(:q AS tsquery) ORDER BY article_id"
            )
            found = connection.execute(sa.text(query), {"q": words}).scalars()
        result = list(found)
    engine.dispose()
    return result


def table_names(url: str) -> set[str]:
    engine = db.create_sync_engine(url)
    with engine.connect() as connection:
        names = set(sa.inspect(connection).get_table_names())
    engine.dispose()
    return names


def topic_rows(url: str) -> list[tuple[str, int]]:
    engine = db.create_sync_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT topic, subscriber_id FROM subscriber_topics ORDER BY 1, 2")
        ).all()
    engine.dispose()
    return [(str(topic), int(ident)) for topic, ident in rows]


def test_upgrade_fills_the_indexes_and_downgrade_removes_them(database_url: str) -> None:
    sqlite = db.is_sqlite(database_url)
    db.upgrade(database_url, "0006_ratelimits")
    add_rows(database_url)
    db.upgrade(database_url, "0007_search")

    def fts(word: str) -> str:
        return f'"{word}"*' if sqlite else f"'{word}':*"

    assert search_ids(database_url, fts("jakarta")) == [1]
    assert search_ids(database_url, fts("cafe")) == [2]  # accents folded in the backfill
    assert topic_rows(database_url) == [("ekonomi", 1), ("politik", 1)]
    # The triggers keep the rows from now on, whoever writes the JSON list.
    engine = db.create_sync_engine(database_url)
    with engine.begin() as connection:
        connection.execute(sa.text("""UPDATE subscribers SET topics = '["budaya"]' WHERE id = 2"""))
        connection.execute(sa.text("UPDATE subscribers SET topics = '[]' WHERE id = 1"))
    engine.dispose()
    assert topic_rows(database_url) == [("budaya", 2)]

    downgrade(database_url, "0006_ratelimits")
    names = table_names(database_url)
    assert "subscriber_topics" not in names
    assert "article_search" not in names
    assert not any(name.startswith(FTS_TABLE) for name in names)
    # Writing without the triggers' tables works after the downgrade.
    engine = db.create_sync_engine(database_url)
    with engine.begin() as connection:
        connection.execute(sa.text("""UPDATE subscribers SET topics = '["x"]' WHERE id = 3"""))
        connection.execute(sa.text("DELETE FROM articles WHERE id = 2"))
    engine.dispose()

    db.upgrade(database_url)
    assert search_ids(database_url, fts("jakarta")) == [1]
    assert search_ids(database_url, fts("cafe")) == []
    assert topic_rows(database_url) == [("budaya", 2), ("x", 3)]
