"""The SQL backend of the store (SQLAlchemy Core): SQLite by default, PostgreSQL via asyncpg.

``engine`` runs every role's work (threads, pools, transactions, snapshots, 503s); each role
is a module of plain statements over it; ``store`` puts them together.
"""

from hubbub.store.sql.engine import store_away
from hubbub.store.sql.store import SqlStore

__all__ = ["SqlStore", "store_away"]
