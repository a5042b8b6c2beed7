"""Migration 0004: outbox rows written before it keep working after it (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa

from publisher import db


@pytest.mark.parametrize("status", ["sending", "queued"])
def test_old_rows_become_digests_and_a_claimed_row_says_claimed(
    database_url: str, status: str
) -> None:
    db.upgrade(database_url, "0003_delivery")
    engine = db.create_sync_engine(database_url)
    now = datetime(2026, 11, 25, 0, 0)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO subscribers (email, email_key, name, status, language, timezone, "
                "frequency, topics, created_at, consent_source, consent_ip, consent_user_agent, "
                "consent_text, soft_bounces, hard_bounces) VALUES ('a@example.net', "
                "'a@example.net', '', 'active', 'id', '', 'daily', '[]', :now, '', '', '', '', "
                "0, 0)"
            ),
            {"now": now},
        )
        connection.execute(
            sa.text(
                "INSERT INTO editions (period_key, frequency, status, window_end, created_at, "
                "last_error) VALUES ('daily:2026-11-25', 'daily', 'sending', :now, :now, '')"
            ),
            {"now": now},
        )
        connection.execute(
            sa.text(
                "INSERT INTO edition_variants (edition_id, variant_key, language, article_ids, "
                "more_count) VALUES (1, 'k', 'id', '[1]', 0)"
            )
        )
        connection.execute(
            sa.text(
                "INSERT INTO outbox (edition_id, variant_id, subscriber_id, email, status, "
                "attempts, claimed_by, smtp_response, message_id, window_end) VALUES "
                "(1, 1, 1, 'a@example.net', :status, 0, 'w', '', '<m@x>', :now)"
            ),
            {"status": status, "now": now},
        )
    engine.dispose()
    db.upgrade(database_url)
    engine = db.create_sync_engine(database_url)
    with engine.connect() as connection:
        row = connection.execute(sa.text("SELECT kind, status, payload FROM outbox")).one()
        edition = connection.execute(sa.text("SELECT status FROM editions")).scalar_one()
    engine.dispose()
    assert row.kind == "digest"
    assert row.status == ("claimed" if status == "sending" else "queued")
    assert row.payload is None
    assert edition == "sending"  # an edition's "sending" is its own word and stays
