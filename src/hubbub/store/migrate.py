"""Apply Alembic migrations (at server start and by ``hubbub migrate``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

MIGRATIONS = Path(__file__).parent / "migrations"


def upgrade_connection(connection: Connection) -> None:
    """Upgrade to head on ``connection``, inside the caller's transaction."""
    if connection.dialect.name == "postgresql":
        # Several processes starting at once on an empty database: one migrates, the others
        # wait here and then find the schema at head.
        connection.execute(text("SELECT pg_advisory_xact_lock(48151623)"))
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")
