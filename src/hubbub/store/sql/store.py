"""The SQL store: one :class:`Database` shared by every role (SQLite by default, PostgreSQL
via asyncpg)."""

from __future__ import annotations

from hubbub.store.roles import Accounts, ChangeLog, FileIndex, Lookups, Messages, Rooms, Search
from hubbub.store.sql.accounts import SqlAccounts
from hubbub.store.sql.engine import Database
from hubbub.store.sql.files import SqlFileIndex
from hubbub.store.sql.fts_index import FtsCatchUp
from hubbub.store.sql.log import SqlChangeLog
from hubbub.store.sql.lookups import SqlLookups
from hubbub.store.sql.messages import SqlMessages
from hubbub.store.sql.rooms import SqlRooms
from hubbub.store.sql.search import SqlSearch


class SqlStore:
    """The roles share one database, so one role's transaction never waits on another's
    pool, and every write goes through the same single SQLite writer."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL") -> None:
        self.db = Database(url, sqlite_synchronous=sqlite_synchronous)
        self.fts = FtsCatchUp(self.db)
        self.accounts: Accounts = SqlAccounts(self.db)
        self.rooms: Rooms = SqlRooms(self.db)
        self.messages: Messages = SqlMessages(self.db, self.fts)
        self.log: ChangeLog = SqlChangeLog(self.db)
        self.search: Search = SqlSearch(self.db, self.fts)
        self.files: FileIndex = SqlFileIndex(self.db)
        self.lookups: Lookups = SqlLookups(self.db)

    async def start(self) -> None:
        """Migrate the schema to head (several nodes at once: one migrates, the rest wait)."""
        await self.db.start()
        self.fts.start()

    async def close(self) -> None:
        await self.fts.close()
        await self.db.close()

    async def ping(self) -> None:
        await self.db.ping()
