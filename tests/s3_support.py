"""A real S3-compatible server for the tests: moto's standalone server (``moto[server]``),
started as its own process on a free port, with throwaway credentials."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.support import free_port, stop_process

# moto accepts any credentials; set them for this process (boto3 in the tests) and for the
# servers the tests start (they inherit the environment).
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "hubbub-test",
    "AWS_SECRET_ACCESS_KEY": "hubbub-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextmanager
def moto_server() -> Iterator[str]:
    """``python -m moto.server`` on a free port; yields its endpoint URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto server exited with {proc.returncode}")
            try:
                httpx.get(url + "/moto-api/", timeout=0.5)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        for key, value in S3_ENV.items():
            os.environ.setdefault(key, value)
        yield url
    finally:
        stop_process(proc, 15, 10)


def s3_client(endpoint: str) -> Any:
    import boto3  # type: ignore[import-untyped]

    return boto3.session.Session(
        aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name=S3_ENV["AWS_DEFAULT_REGION"],
    ).client("s3", endpoint_url=endpoint)


def new_bucket(endpoint: str) -> str:
    name = "hubbub-" + uuid.uuid4().hex[:12]
    s3_client(endpoint).create_bucket(Bucket=name)
    return name


def bucket_contents(endpoint: str, bucket: str) -> tuple[list[str], int]:
    """Every object key in ``bucket`` and how many multipart uploads are still open."""
    client = s3_client(endpoint)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return keys, len(uploads)
