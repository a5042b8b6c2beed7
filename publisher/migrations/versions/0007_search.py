"""Index-served title search and topic filter.

SQLite gets an FTS5 table of article title words; PostgreSQL a narrow table of the same
words as a tsvector under a GIN index, with the sort keys copied. Both fill from the
existing articles here (words are cut in Python, publisher/content/search.py). Both get
``subscriber_topics``, one row per (topic, reader), kept by triggers from the JSON list
and filled here from the existing readers.

Revision ID: 0007_search
Revises: 0006_ratelimits
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from publisher.content import search

revision = "0007_search"
down_revision = "0006_ratelimits"
branch_labels = None
depends_on = None

# Anything but a JSON array of strings (never written by our code) counts as no topics.
_SQLITE_TOPICS = (
    "json_each(CASE WHEN json_valid(NEW.topics) AND json_type(NEW.topics) = 'array' "
    "THEN NEW.topics ELSE '[]' END)"
)

_SQLITE_TRIGGERS = (
    f"""
    CREATE TRIGGER subscribers_topics_insert AFTER INSERT ON subscribers
    BEGIN
        INSERT OR IGNORE INTO subscriber_topics (topic, subscriber_id)
        SELECT substr(value, 1, 100), NEW.id FROM {_SQLITE_TOPICS}
        WHERE type = 'text' AND value <> '';
    END
    """,
    f"""
    CREATE TRIGGER subscribers_topics_update AFTER UPDATE OF topics ON subscribers
    BEGIN
        DELETE FROM subscriber_topics WHERE subscriber_id = OLD.id;
        INSERT OR IGNORE INTO subscriber_topics (topic, subscriber_id)
        SELECT substr(value, 1, 100), NEW.id FROM {_SQLITE_TOPICS}
        WHERE type = 'text' AND value <> '';
    END
    """,
    # A virtual table has no foreign key: whoever deletes an article, its words go too.
    f"""
    CREATE TRIGGER articles_search_delete AFTER DELETE ON articles
    BEGIN
        DELETE FROM {search.FTS_TABLE} WHERE rowid = OLD.id;
    END
    """,
)

_POSTGRES_TOPIC_TRIGGER = (
    """
    CREATE FUNCTION subscriber_topics_sync() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' THEN
            DELETE FROM subscriber_topics WHERE subscriber_id = OLD.id;
        END IF;
        IF json_typeof(NEW.topics) = 'array' THEN
            INSERT INTO subscriber_topics (topic, subscriber_id)
            SELECT DISTINCT left(value, 100), NEW.id FROM json_array_elements_text(NEW.topics)
            WHERE value <> ''
            ON CONFLICT DO NOTHING;
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER subscribers_topics AFTER INSERT OR UPDATE OF topics ON subscribers
    FOR EACH ROW EXECUTE FUNCTION subscriber_topics_sync()
    """,
)

_SQLITE_BACKFILL = """
    INSERT OR IGNORE INTO subscriber_topics (topic, subscriber_id)
    SELECT substr(t.value, 1, 100), s.id FROM subscribers AS s, json_each(s.topics) AS t
    WHERE json_valid(s.topics) AND json_type(s.topics) = 'array'
      AND t.type = 'text' AND t.value <> ''
"""

_POSTGRES_BACKFILL = """
    INSERT INTO subscriber_topics (topic, subscriber_id)
    SELECT DISTINCT left(t.value, 100), s.id
    FROM subscribers AS s, json_array_elements_text(s.topics) AS t
    WHERE json_typeof(s.topics) = 'array' AND t.value <> ''
    ON CONFLICT DO NOTHING
"""


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    if sqlite:
        # The same tokenizer rules as title_words (letters and digits; case and accents
        # folded there already); prefix indexes keep short prefixes index-served.
        op.execute(
            f"CREATE VIRTUAL TABLE {search.FTS_TABLE} USING fts5("
            "words, tokenize = 'unicode61 remove_diacritics 2', prefix = '1 2 3')"
        )
    else:
        op.create_table(
            "article_search",
            sa.Column(
                "article_id",
                sa.Integer,
                sa.ForeignKey("articles.id", ondelete="CASCADE"),
                primary_key=True,
            ),
            sa.Column("status", sa.String(20), nullable=False),
            sa.Column("published_at", sa.DateTime, nullable=True),
            sa.Column("words", postgresql.TSVECTOR, nullable=False),
        )
        op.create_index(
            "ix_article_search_words", "article_search", ["words"], postgresql_using="gin"
        )
        op.create_index(
            "ix_article_search_published", "article_search", ["published_at", "article_id"]
        )
        op.create_index(
            "ix_article_search_status_published",
            "article_search",
            ["status", "published_at", "article_id"],
        )
    search.rebuild(bind)
    op.create_table(
        "subscriber_topics",
        sa.Column("topic", sa.String(100), primary_key=True),
        sa.Column(
            "subscriber_id",
            sa.Integer,
            sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
            primary_key=True,
        ),
    )
    # The primary key (topic, subscriber_id) serves the filter; this one serves the
    # trigger's delete and the cascade when a reader goes.
    op.create_index("ix_subscriber_topics_subscriber", "subscriber_topics", ["subscriber_id"])
    op.execute(_SQLITE_BACKFILL if sqlite else _POSTGRES_BACKFILL)
    for statement in _SQLITE_TRIGGERS if sqlite else _POSTGRES_TOPIC_TRIGGER:
        op.execute(statement)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute("DROP TRIGGER IF EXISTS subscribers_topics_update")
        op.execute("DROP TRIGGER IF EXISTS subscribers_topics_insert")
        op.execute("DROP TRIGGER IF EXISTS articles_search_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS subscribers_topics ON subscribers")
        op.execute("DROP FUNCTION IF EXISTS subscriber_topics_sync()")
    op.drop_index("ix_subscriber_topics_subscriber", "subscriber_topics")
    op.drop_table("subscriber_topics")
    if sqlite:
        op.execute(f"DROP TABLE IF EXISTS {search.FTS_TABLE}")
    else:
        op.drop_index("ix_article_search_status_published", "article_search")
        op.drop_index("ix_article_search_published", "article_search")
        op.drop_index("ix_article_search_words", "article_search")
        op.drop_table("article_search")
