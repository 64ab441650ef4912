"""Files in an S3-compatible object store (``--files s3://bucket/prefix``): AWS S3, MinIO,
Ceph, Garage, R2… Every node pointed at the same bucket serves every upload.

An upload is streamed as a multipart upload, one part of :data:`PART_BYTES` at a time (S3's
parts are at least 5 MiB); a file smaller than one part is one ``PutObject``. The object only
exists once ``CompleteMultipartUpload`` returns (all or nothing, and durable as the store
promises); too large, a broken or cancelled upload aborts the multipart upload, so nothing is
kept (a bucket lifecycle rule "abort incomplete multipart uploads after 1 day" also covers a
node killed halfway). A download streams the object's body chunk by chunk.

boto3 is blocking: every call runs in a worker thread. Credentials, region and endpoint come
from boto3's usual sources (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
``AWS_REGION``/``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL``, ``~/.aws``, instance roles);
``--files-endpoint`` (``HUBBUB_FILES_ENDPOINT``) overrides the endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit

from hubbub.errors import Unavailable
from hubbub.files.base import READ_CHUNK_BYTES, FileTooLarge, StoredFile, valid_file_id

log = logging.getLogger("hubbub.files")

T = TypeVar("T")

PART_BYTES = 8 * 1024 * 1024
MIN_PART_BYTES = 5 * 1024 * 1024
INSTALL_HINT = "pip install 'hubbub[s3]'"


def parse_s3_url(value: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` → ``("bucket", "some/prefix/")``; a ValueError names the
    setting for anything else."""
    parts = urlsplit(value)
    bucket = parts.netloc
    if (
        parts.scheme != "s3"
        or not bucket
        or parts.query
        or parts.fragment
        or not all(c.isalnum() or c in ".-_" for c in bucket)
    ):
        raise ValueError(
            f"--files / HUBBUB_FILES: {value!r} is not s3://bucket or s3://bucket/prefix"
        )
    prefix = parts.path.strip("/")
    return bucket, prefix + "/" if prefix else ""


def require_boto3() -> None:
    if importlib.util.find_spec("boto3") is None:
        raise ValueError(f"--files s3://… needs boto3, which is not installed: {INSTALL_HINT}")


class S3FileStore:
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        part_bytes: int = PART_BYTES,
    ) -> None:
        require_boto3()
        if part_bytes < MIN_PART_BYTES:
            raise ValueError(f"S3 parts are at least {MIN_PART_BYTES} bytes")
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url
        self.part_bytes = part_bytes
        self._client: Any = None
        self._undo: set[asyncio.Future[Any]] = set()

    def key(self, file_id: str) -> str:
        if not valid_file_id(file_id):
            raise ValueError(f"invalid file id {file_id!r}")
        return f"{self.prefix}{file_id}"

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3  # type: ignore[import-untyped]
            from botocore.config import Config  # type: ignore[import-untyped]

            self._client = boto3.session.Session().client(
                "s3",
                endpoint_url=self.endpoint_url or None,  # None: AWS_ENDPOINT_URL, else AWS
                region_name=os.environ.get("AWS_REGION") or None,
                config=Config(max_pool_connections=32, retries={"mode": "standard"}),
            )
        return self._client

    async def _run(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(None, partial(fn, *args, **kw))
        except Exception as exc:
            if _unreachable(exc):
                raise Unavailable(
                    "the file store is unavailable; try again", code="store_unavailable"
                ) from exc
            raise

    def _background(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> None:
        """Start a clean-up that must happen even while the caller is being cancelled."""
        future = asyncio.get_running_loop().run_in_executor(
            None, partial(_quietly, fn, *args, **kw)
        )
        self._undo.add(future)
        future.add_done_callback(self._undo.discard)

    async def start(self) -> None:
        """Check that the bucket is there and reachable, so a typo shows at start-up."""
        try:
            await asyncio.get_running_loop().run_in_executor(
                None, partial(self.client.head_bucket, Bucket=self.bucket)
            )
        except Exception as exc:
            where = self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or "AWS S3"
            raise RuntimeError(
                f"--files s3://{self.bucket}/{self.prefix}: the bucket is not reachable at "
                f"{where} ({_short(exc)}); check the bucket name, the endpoint "
                "(--files-endpoint or AWS_ENDPOINT_URL) and the AWS credentials"
            ) from exc

    async def close(self) -> None:
        for future in list(self._undo):
            with contextlib.suppress(BaseException):
                await future
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None

    async def _upload_part(
        self, key: str, upload_id: str, number: int, data: bytes
    ) -> dict[str, Any]:
        """One part of a multipart upload; what CompleteMultipartUpload needs of it."""
        done = await self._run(
            self.client.upload_part,
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
        )
        return {"PartNumber": number, "ETag": done["ETag"]}

    async def save(self, file_id: str, chunks: AsyncIterable[bytes], *, max_bytes: int) -> int:
        key = self.key(file_id)
        client = self.client
        step = self.part_bytes
        pending = bytearray()
        size = 0
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise FileTooLarge(max_bytes)
                pending += chunk
                if len(pending) >= step:
                    if upload_id is None:
                        started = await self._run(
                            client.create_multipart_upload, Bucket=self.bucket, Key=key
                        )
                        upload_id = str(started["UploadId"])
                    # The whole buffer is the part (parts need not be equal): nothing is split.
                    data = bytes(pending)
                    pending = bytearray()
                    parts.append(await self._upload_part(key, upload_id, len(parts) + 1, data))
                    del data
            data = bytes(pending)
            pending.clear()
            if upload_id is None:
                final: Callable[[], Any] = partial(
                    client.put_object, Bucket=self.bucket, Key=key, Body=data
                )
            else:
                if data:
                    parts.append(await self._upload_part(key, upload_id, len(parts) + 1, data))
                final = partial(
                    client.complete_multipart_upload,
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
            commit = asyncio.ensure_future(self._run(final))
            try:
                await asyncio.shield(commit)
            except asyncio.CancelledError:
                # The object may still be written: once it is, delete it (else abort).
                commit.add_done_callback(partial(self._undo_commit, key, upload_id))
                upload_id = None  # the callback owns the clean-up now
                raise
            upload_id = None
        finally:
            if upload_id is not None:
                self._background(
                    client.abort_multipart_upload, Bucket=self.bucket, Key=key, UploadId=upload_id
                )
        return size

    def _undo_commit(self, key: str, upload_id: str | None, commit: asyncio.Future[Any]) -> None:
        client = self.client
        if not commit.cancelled() and commit.exception() is None:
            self._background(client.delete_object, Bucket=self.bucket, Key=key)
        elif upload_id is not None:
            self._background(
                client.abort_multipart_upload, Bucket=self.bucket, Key=key, UploadId=upload_id
            )

    async def open(self, file_id: str) -> StoredFile | None:
        if not valid_file_id(file_id):
            return None
        key = self.key(file_id)
        try:
            head = await self._run(self.client.head_object, Bucket=self.bucket, Key=key)
        except Exception as exc:
            if _not_found(exc):
                return None
            raise
        size = int(head["ContentLength"])
        return StoredFile(id=file_id, size=size, reader=lambda a, b: self._read(key, size, a, b))

    async def _read(self, key: str, size: int, start: int, stop: int) -> AsyncIterator[bytes]:
        if start >= stop:
            return
        extra = {} if (start, stop) == (0, size) else {"Range": f"bytes={start}-{stop - 1}"}
        got = await self._run(self.client.get_object, Bucket=self.bucket, Key=key, **extra)
        body = got["Body"]
        try:
            while chunk := await self._run(body.read, READ_CHUNK_BYTES):
                yield chunk
        finally:
            body.close()

    async def delete(self, file_id: str) -> bool:
        if not valid_file_id(file_id):
            return False
        key = self.key(file_id)
        client = self.client
        try:
            await self._run(client.head_object, Bucket=self.bucket, Key=key)
        except Exception as exc:
            if _not_found(exc):
                return False
            raise
        await self._run(client.delete_object, Bucket=self.bucket, Key=key)
        return True


def _quietly(fn: Callable[..., Any], *args: Any, **kw: Any) -> None:
    try:
        fn(*args, **kw)
    except Exception as exc:
        log.warning("object store clean-up failed (%s): %s", getattr(fn, "__name__", fn), exc)


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _not_found(exc: BaseException) -> bool:
    return _error_code(exc) in {"404", "NoSuchKey", "NotFound"}


def _unreachable(exc: BaseException) -> bool:
    from botocore.exceptions import (  # type: ignore[import-untyped]
        ConnectionClosedError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    if isinstance(exc, EndpointConnectionError | ConnectionClosedError | ReadTimeoutError):
        return True
    return _error_code(exc) in {
        "500",
        "502",
        "503",
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
    }


def _short(exc: BaseException) -> str:
    code = _error_code(exc)
    return code or type(exc).__name__ + (f": {exc}" if str(exc) else "")
