"""The ``FileIndex`` role's contract (``store/roles.py``), on every backend."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from hubbub.models import FileRecord, utc_now
from hubbub.store.sql import SqlStore
from tests.contract.store_fixtures import store_fixture, store_url_fixture  # noqa: F401


def record(file_id: str) -> FileRecord:
    return FileRecord(
        id=file_id,
        room_id="r",
        user_id="u",
        name="photo.png",
        size=1234,
        content_type="image/png",
        created_at=utc_now(),
    )


async def test_add_get_and_delete_a_file_record(store: SqlStore) -> None:
    s = store
    await s.accounts.ensure_user("u")
    await s.rooms.enter_room("r", "u")
    rec = record("f1")
    await s.files.add_file(rec)
    assert await s.files.file("f1") == rec
    assert await s.files.file("missing") is None
    with pytest.raises(sa.exc.IntegrityError):
        await s.files.add_file(record("f1"))
    assert await s.files.delete_file("f1") is True
    assert await s.files.file("f1") is None
    assert await s.files.delete_file("f1") is False
