"""``--files``: which store a server uses, and the download route's ``Range`` reading for the
streamed stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubbub.api.files import _byte_range
from hubbub.config import Settings
from hubbub.files.local import LocalFileStore
from hubbub.files.postgres import PostgresFileStore
from hubbub.files.s3 import S3FileStore
from hubbub.files.select import FilesConfig, file_store, files_config

PG = "postgresql://hubbub@db:5432/hubbub"


def settings(tmp_path: Path, **kw: str) -> Settings:
    return Settings(data_dir=tmp_path, **kw)


def test_the_default_follows_the_database(tmp_path: Path) -> None:
    assert files_config(settings(tmp_path)) == FilesConfig("local")
    assert files_config(settings(tmp_path, database=PG)) == FilesConfig("database")
    assert isinstance(file_store(settings(tmp_path)), LocalFileStore)
    assert isinstance(file_store(settings(tmp_path, database=PG)), PostgresFileStore)
    # asked for explicitly, local wins over PostgreSQL
    assert isinstance(file_store(settings(tmp_path, database=PG, files="local")), LocalFileStore)


@pytest.mark.parametrize(
    ("value", "bucket", "prefix"),
    [
        ("s3://uploads", "uploads", ""),
        ("s3://uploads/", "uploads", ""),
        ("s3://my.bucket-1/hubbub/files/", "my.bucket-1", "hubbub/files/"),
    ],
)
def test_s3_urls(tmp_path: Path, value: str, bucket: str, prefix: str) -> None:
    s = settings(tmp_path, files=value, files_endpoint="http://minio:9000")
    assert files_config(s) == FilesConfig("s3", bucket, prefix)
    store = file_store(s)
    assert isinstance(store, S3FileStore)
    assert (store.bucket, store.prefix, store.endpoint_url) == (bucket, prefix, "http://minio:9000")
    assert store.key("0" * 32) == prefix + "0" * 32


@pytest.mark.parametrize(
    ("value", "database", "message"),
    [
        ("disk", None, "'disk' is not a file store; use local, database (PostgreSQL) or s3://"),
        ("s3://", None, "is not s3://bucket"),
        ("s3://b/p?x=1", None, "is not s3://bucket"),
        ("s3://bad bucket", None, "is not s3://bucket"),
        ("S3://b", None, "is not a file store"),
        ("database", None, "'database' needs a PostgreSQL --database"),
    ],
)
def test_bad_values_name_the_setting(
    tmp_path: Path, value: str, database: str | None, message: str
) -> None:
    s = settings(tmp_path, files=value, **({"database": database} if database else {}))
    with pytest.raises(ValueError, match="--files / HUBBUB_FILES") as caught:
        files_config(s)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-99", 1000, (0, 100)),
        ("bytes=900-", 1000, (900, 1000)),
        ("bytes=900-5000", 1000, (900, 1000)),
        ("bytes=-100", 1000, (900, 1000)),
        ("bytes=-5000", 1000, (0, 1000)),
        ("bytes=1000-", 1000, "unsatisfiable"),
        ("bytes=-0", 1000, "unsatisfiable"),
        ("bytes=0-", 0, "unsatisfiable"),
        ("bytes=5-4", 1000, None),
        ("bytes=0-1,5-6", 1000, None),  # several ranges: the whole file
        ("items=0-1", 1000, None),
        ("bytes=-", 1000, None),
        ("bytes=a-b", 1000, None),
        ("bytes=١-٢", 1000, None),  # non-ASCII digits
    ],
)
def test_byte_ranges(header: str, size: int, expected: object) -> None:
    assert _byte_range(header, size) == expected
