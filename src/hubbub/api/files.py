"""File sharing: upload into a room (a ``type: "file"`` message), download for members.

The upload is streamed: the dispatcher in ``app.py`` lets this one route's body through
unbuffered, the multipart parser hands the file's bytes to the ``FileStore`` as they arrive,
and the size limit stops the upload the moment it is passed (413, nothing kept).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from starlette.requests import ClientDisconnect

from hubbub.api.common import (
    Caller,
    FileRulesDep,
    FileStoreDep,
    LimiterDep,
    SettingsDep,
    respond,
)
from hubbub.api.multipart import UploadReader, multipart_boundary
from hubbub.api.schemas import errors, reply
from hubbub.chat.files import FileRules
from hubbub.errors import BadRequest, Invalid, NotFound, TooLarge, UnsupportedMediaType
from hubbub.files.base import (
    FileStore,
    FileTooLarge,
    StoredFile,
    new_file_id,
    valid_file_id,
)
from hubbub.files.names import content_disposition, safe_filename
from hubbub.files.sniff import Sniffer, disposition
from hubbub.models import FileInfo
from hubbub.wire import SendOut

router = APIRouter(prefix="/chat", tags=["files"])

FILE_FIELD = "file"
CAPTION_FIELD = "message"
_RANGE_SPEC = re.compile(r"\s*([0-9]*)-([0-9]*)\s*", re.ASCII)
DOWNLOAD_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"

UPLOAD_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": [FILE_FIELD],
                "properties": {
                    FILE_FIELD: {
                        "type": "string",
                        "format": "binary",
                        "description": "The file (25 MiB by default, `HUBBUB_MAX_UPLOAD_BYTES`).",
                    },
                    CAPTION_FIELD: {
                        "type": "string",
                        "maxLength": 4000,
                        "description": "Optional caption, the message's `text` (may be empty).",
                    },
                },
            }
        }
    },
}

DOWNLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The file's bytes, with the content type detected at upload.",
        # The stored content type (text/plain, image/png, …), so any media type.
        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        "headers": {
            "Content-Disposition": {
                "description": "`inline` for PNG, JPEG, GIF and WebP, else `attachment`; "
                "`filename` (ASCII) and `filename*` (UTF-8, RFC 5987).",
                "schema": {"type": "string"},
            },
            "X-Content-Type-Options": {"schema": {"type": "string", "enum": ["nosniff"]}},
            "Content-Security-Policy": {"schema": {"type": "string"}},
        },
    },
    206: {
        "description": "One byte range of the file (`Range: bytes=…`), with `Content-Range`. "
        "Several ranges in one request get the whole file (200).",
        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        "headers": {"Content-Range": {"schema": {"type": "string"}}},
    },
    416: {
        "description": "The range starts past the end of the file "
        "(`Content-Range: bytes */<size>`).",
    },
    **errors(401, 404),
}


async def _watched(chunks: AsyncIterable[bytes], sniffer: Sniffer) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        sniffer.feed(chunk)
        yield chunk


@router.post(
    "/room/{room_id}/files",
    summary="Share a file",
    status_code=201,
    responses=reply(SendOut, 201) | errors(400, 401, 403, 404, 413, 415, 422, 429, 503),
    openapi_extra={"requestBody": UPLOAD_BODY},
)
async def upload(
    room_id: str,
    request: Request,
    who: Caller,
    file_rules: FileRulesDep,
    files: FileStoreDep,
    limiter: LimiterDep,
    settings: SettingsDep,
) -> Response:
    """Share a file in a room: `multipart/form-data` with the field `file` and an optional
    `message` (caption). `201` with `{"status": "sent", "message"}`: a `type: "file"` message
    whose `file` is `{id, url, name, size, content_type}`, streamed to the room like any message.

    The body is streamed to the file store (disk, database or object store), never held in
    memory. Over the limit (25 MiB by default) →
    413 `file_too_large` and nothing is kept. The name is cleaned (last path component, no
    control characters, ≤ 255 bytes); the content type is detected from the bytes, not taken
    from the client. Only members may upload: 403 `not_a_member` for a public room, 404 for a
    private one (trust mode joins or creates a public room, as sending does). No `file` field →
    422 `missing_file`; not multipart → 415; over the rate limit → 429.
    """
    boundary = multipart_boundary(request.headers.get("content-type"))
    if boundary is None:
        raise UnsupportedMediaType(
            "send multipart/form-data with a 'file' field", code="unsupported_media_type"
        )
    limit = settings.max_upload_bytes
    body_limit = limit + settings.max_body_bytes
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > body_limit:
        raise FileTooLarge(limit)
    await limiter.check(who.user_id)
    await file_rules.file_room(who, room_id)

    reader = UploadReader(
        request.stream(),
        boundary,
        file_field=FILE_FIELD,
        fields=frozenset({CAPTION_FIELD}),
        max_field_bytes=4 * settings.max_message_chars,
        max_body_bytes=body_limit,
    )
    file_id = new_file_id()
    sniffer = Sniffer()
    saved = False
    try:
        if not await reader.find_file():
            raise Invalid("the upload has no 'file' field", code="missing_file")
        size = await files.save(file_id, _watched(reader.file_chunks(), sniffer), max_bytes=limit)
        saved = True
        await reader.finish()
        if size == 0 and not reader.filename:
            raise Invalid("no file was chosen", code="missing_file")  # an empty <input type=file>
    except BaseException as exc:
        if saved:
            await files.delete(file_id)
        if isinstance(exc, ClientDisconnect):
            raise BadRequest("the upload was interrupted", code="upload_interrupted") from None
        if isinstance(exc, TooLarge) and not isinstance(exc, FileTooLarge):
            # The body passed its bound in one read, before the file part's own count did:
            # to the client it is the same thing, a file over the limit.
            raise FileTooLarge(limit) from None
        raise
    info = FileInfo(
        id=file_id,
        url=f"/chat/files/{file_id}",
        name=safe_filename(reader.filename),
        size=size,
        content_type=sniffer.content_type(),
    )
    sent = await file_rules.send_file(who, room_id, reader.fields.get(CAPTION_FIELD, ""), info)
    return respond(request, {"status": "sent", "message": sent.message}, 201)


async def _download(
    file_id: str, request: Request, who: Caller, file_rules: FileRules, files: FileStore
) -> Response:
    if not valid_file_id(file_id):
        raise NotFound("file not found", code="file_not_found")
    record = await file_rules.readable_file(who, file_id)
    stored = await files.open(file_id)
    if stored is None:
        raise NotFound("file not found", code="file_not_found")
    headers = {
        "content-disposition": content_disposition(disposition(record.content_type), record.name),
        "x-content-type-options": "nosniff",
        "content-security-policy": DOWNLOAD_CSP,
        "cache-control": "private, no-cache",
    }
    response: Response
    if stored.path is not None:  # a file on this node's disk: sendfile, Range, ETag
        response = FileResponse(stored.path, media_type=record.content_type, headers=headers)
    else:  # the database or an object store: streamed chunk by chunk as it is read
        response = _streamed(stored, request, record.content_type, headers)
    guest = getattr(request.state, "set_cookie", None)
    if guest:
        response.headers.append("set-cookie", guest)
    return response


def _streamed(
    stored: StoredFile, request: Request, media_type: str, headers: dict[str, str]
) -> Response:
    """The file's bytes as a stream; a single ``Range`` gets 206 (several ranges get the whole
    file, which RFC 9110 allows). Stored files never change, so the id is a strong ETag."""
    size = stored.size
    headers["etag"] = f'"{stored.id}"'
    headers["accept-ranges"] = "bytes"
    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    span = _byte_range(wanted, size) if wanted and if_range in (None, headers["etag"]) else None
    if span == "unsatisfiable":
        return Response(status_code=416, headers={"content-range": f"bytes */{size}"})
    if span is None:
        headers["content-length"] = str(size)
        return StreamingResponse(stored.chunks(), media_type=media_type, headers=headers)
    start, stop = span
    headers["content-length"] = str(stop - start)
    headers["content-range"] = f"bytes {start}-{stop - 1}/{size}"
    return StreamingResponse(
        stored.chunks(start, stop), status_code=206, media_type=media_type, headers=headers
    )


def _byte_range(header: str, size: int) -> tuple[int, int] | Literal["unsatisfiable"] | None:
    """One ``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` range as ``[start, stop)``; ``None`` to
    send the whole file (not bytes, several ranges, or malformed: the header is ignored)."""
    unit, _, spec = header.partition("=")
    found = _RANGE_SPEC.fullmatch(spec)
    if unit.strip().lower() != "bytes" or found is None or found.group(0).strip() == "-":
        return None
    first, last = found.group(1), found.group(2)
    if not first:  # the last n bytes
        n = int(last)
        return (max(size - n, 0), size) if n and size else "unsatisfiable"
    start = int(first)
    stop = min(int(last) + 1, size) if last else size
    if start >= size:
        return "unsatisfiable"
    if stop <= start:
        return None
    return start, stop


@router.get(
    "/files/{file_id}",
    summary="Download a file",
    response_class=Response,
    responses=DOWNLOAD_RESPONSES,
)
async def download(
    file_id: str, request: Request, who: Caller, file_rules: FileRulesDep, files: FileStoreDep
) -> Response:
    """Download a shared file (members of its room only; anyone else gets 404, as for an
    unknown or deleted file). `Content-Disposition: inline` for PNG, JPEG, GIF and WebP, else
    `attachment`; always `X-Content-Type-Options: nosniff` and a sandboxing CSP.
    """
    return await _download(file_id, request, who, file_rules, files)


@router.get(
    "/files/{file_id}/{name}",
    summary="Download a file (name in the URL)",
    response_class=Response,
    responses=DOWNLOAD_RESPONSES,
)
async def download_named(
    file_id: str,
    name: str,
    request: Request,
    who: Caller,
    file_rules: FileRulesDep,
    files: FileStoreDep,
) -> Response:
    """The same download, with any file name at the end of the URL (it is ignored: the stored
    name is what `Content-Disposition` carries)."""
    return await _download(file_id, request, who, file_rules, files)
