"""The file index in SQL: which room a stored file belongs to (rules: ``store/roles.py``)."""

from __future__ import annotations

import sqlalchemy as sa

from hubbub.models import FileRecord
from hubbub.store.schema import files
from hubbub.store.sql.engine import Database


class SqlFileIndex:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_file(self, record: FileRecord) -> None:
        await self._db.change(
            files.insert().values(
                id=record.id,
                room_id=record.room_id,
                user_id=record.user_id,
                name=record.name,
                size=record.size,
                content_type=record.content_type,
                created_at=record.created_at,
            )
        )

    async def file(self, file_id: str) -> FileRecord | None:
        row = await self._db.first(sa.select(files).where(files.c.id == file_id))
        if row is None:
            return None
        return FileRecord(
            id=row.id,
            room_id=row.room_id,
            user_id=row.user_id,
            name=row.name,
            size=int(row.size),
            content_type=row.content_type,
            created_at=row.created_at,
        )

    async def delete_file(self, file_id: str) -> bool:
        return bool(await self._db.change(sa.delete(files).where(files.c.id == file_id)))
