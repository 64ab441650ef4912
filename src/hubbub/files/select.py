"""Which file store a server uses: ``--files`` (``HUBBUB_FILES``), read once at start-up.

* ``local``: ``<data_dir>/files`` on this node's disk (the default with SQLite);
* ``database``: chunks in the PostgreSQL database (the default with ``--database
  postgresql://…``), so every node on that database serves every file;
* ``s3://bucket/prefix``: an S3-compatible object store (``hubbub[s3]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hubbub.config import Settings
from hubbub.files.base import FileStore

Kind = Literal["local", "database", "s3"]


@dataclass(frozen=True, slots=True)
class FilesConfig:
    kind: Kind
    bucket: str = ""
    prefix: str = ""

    def describe(self) -> str:
        if self.kind == "s3":
            return f"s3://{self.bucket}/{self.prefix}"
        return self.kind


def _is_postgres(url: str) -> bool:
    return url.split(":", 1)[0].split("+", 1)[0] in {"postgresql", "postgres"}


def files_config(settings: Settings) -> FilesConfig:
    """The backend ``settings`` ask for; a ValueError naming the setting for a bad value."""
    value = (settings.files or "").strip()
    postgres = _is_postgres(settings.database_url())
    if not value:
        return FilesConfig("database" if postgres else "local")
    if value == "local":
        return FilesConfig("local")
    if value == "database":
        if not postgres:
            raise ValueError(
                "--files / HUBBUB_FILES: 'database' needs a PostgreSQL --database "
                "(HUBBUB_DATABASE=postgresql://…); with SQLite use 'local' or s3://bucket/prefix"
            )
        return FilesConfig("database")
    if value.startswith("s3://"):
        from hubbub.files.s3 import parse_s3_url, require_boto3

        bucket, prefix = parse_s3_url(value)
        require_boto3()
        return FilesConfig("s3", bucket, prefix)
    raise ValueError(
        f"--files / HUBBUB_FILES: {value!r} is not a file store; "
        "use local, database (PostgreSQL) or s3://bucket/prefix"
    )


def file_store(settings: Settings) -> FileStore:
    config = files_config(settings)
    if config.kind == "database":
        from hubbub.files.postgres import PostgresFileStore

        return PostgresFileStore(settings.database_url())
    if config.kind == "s3":
        from hubbub.files.s3 import S3FileStore

        return S3FileStore(config.bucket, config.prefix, endpoint_url=settings.files_endpoint)
    from hubbub.files.local import LocalFileStore

    return LocalFileStore(settings.data_dir / "files")
