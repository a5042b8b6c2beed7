"""Alembic environment: run migrations on the connection Publisher hands in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

config = context.config
connection = config.attributes.get("connection")

if connection is None:
    # Plain `alembic` CLI use: open our own connection from sqlalchemy.url.
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite://")
    with engine.begin() as own_connection:
        context.configure(connection=own_connection, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    # One transaction per migration: a failure keeps the migrations before it, and a
    # migration may step out of its transaction (autocommit_block) to build an index
    # CONCURRENTLY on PostgreSQL.
    context.configure(connection=connection, render_as_batch=True, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
