"""Every message in the outbox: a kind per row; claimed rows say "claimed".

Confirmations, notices and test copies have no edition, variant or content window, so
those columns become nullable; test copies keep what to render in ``payload``.

Revision ID: 0004_outbox_kinds
Revises: 0003_delivery
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_outbox_kinds"
down_revision = "0003_delivery"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("kind", sa.String(20), nullable=False, server_default="digest"))
        batch.add_column(sa.Column("payload", sa.JSON, nullable=True))
        batch.alter_column("edition_id", existing_type=sa.Integer, nullable=True)
        batch.alter_column("variant_id", existing_type=sa.Integer, nullable=True)
        batch.alter_column("window_end", existing_type=sa.DateTime, nullable=True)
    # A claimed row and a sending edition both said "sending"; one word per state machine.
    op.execute("UPDATE outbox SET status = 'claimed' WHERE status = 'sending'")


def downgrade() -> None:
    op.execute("UPDATE outbox SET status = 'sending' WHERE status = 'claimed'")
    op.execute("DELETE FROM outbox WHERE kind <> 'digest'")
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("window_end", existing_type=sa.DateTime, nullable=False)
        batch.alter_column("variant_id", existing_type=sa.Integer, nullable=False)
        batch.alter_column("edition_id", existing_type=sa.Integer, nullable=False)
        batch.drop_column("payload")
        batch.drop_column("kind")
