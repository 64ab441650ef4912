"""Alembic environment: runs migrations on the connection Hubbub hands over (sync or async URL)."""

from __future__ import annotations

from alembic import context

from hubbub.store.schema import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through hubbub.store.migrate (hubbub migrate)")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
