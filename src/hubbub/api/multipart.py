"""A streaming reader for ``multipart/form-data`` uploads: one file part, a few small fields.

python-multipart's ``MultipartParser`` is fed the request body as it arrives; the file part's
bytes come out of :meth:`UploadReader.file_chunks` one body chunk at a time (straight to the
file store), small text fields are kept (bounded), anything else is skipped. At no point is
more than one body chunk of the file in memory.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from hubbub.errors import BadRequest, Invalid, TooLarge

MAX_PART_HEADER_BYTES = 16 * 1024  # room for a 255-byte name sent percent-encoded, and more


class _Kind(enum.Enum):
    FILE = 1
    FIELD = 2
    SKIP = 3


def multipart_boundary(content_type: str | None) -> bytes | None:
    """The boundary of a ``multipart/form-data`` Content-Type, else ``None``."""
    ctype, params = parse_options_header(content_type or "")
    if ctype != b"multipart/form-data":
        return None
    boundary = params.get(b"boundary")
    if not boundary or len(boundary) > 200:
        return None
    return boundary


class UploadReader:
    def __init__(
        self,
        body: AsyncIterator[bytes],
        boundary: bytes,
        *,
        file_field: str,
        fields: frozenset[str],
        max_field_bytes: int,
        max_body_bytes: int,
    ) -> None:
        self._body = body
        self._file_field = file_field.encode()
        self._fields = {f.encode() for f in fields}
        self._max_field_bytes = max_field_bytes
        self._max_body_bytes = max_body_bytes
        self._read = 0
        self._ended = False  # the parser saw the closing boundary
        self._exhausted = False  # the body has no more bytes

        self.filename: str | None = None
        self.declared_type: str | None = None
        self.fields: dict[str, str] = {}
        self.has_file = False
        self._file_done = False
        self._chunks: list[bytes] = []

        self._kind = _Kind.SKIP
        self._name = b""
        self._buf = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._hname = bytearray()
        self._hvalue = bytearray()
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_end": self._end,
            },
            max_header_size=MAX_PART_HEADER_BYTES,
        )

    # the parser's callbacks --------------------------------------------------------------

    def _part_begin(self) -> None:
        self._headers = {}
        self._kind = _Kind.SKIP
        self._buf = bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._hname += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._hvalue += data[start:end]

    def _header_end(self) -> None:
        self._headers[bytes(self._hname).strip().lower()] = bytes(self._hvalue).strip()
        self._hname = bytearray()
        self._hvalue = bytearray()

    def _headers_finished(self) -> None:
        # Header bytes are UTF-8 in practice (browsers send names that way); latin-1 keeps
        # them byte for byte through the header parser.
        disposition = self._headers.get(b"content-disposition", b"").decode("latin-1")
        kind, params = parse_options_header(disposition)
        name = params.get(b"name", b"")
        if kind != b"form-data":
            self._kind = _Kind.SKIP
        elif name == self._file_field and not self.has_file:
            self._kind = _Kind.FILE
            self.has_file = True
            raw = params.get(b"filename")
            self.filename = None if raw is None else raw.decode("utf-8", errors="replace")
            declared = self._headers.get(b"content-type")
            self.declared_type = None if declared is None else declared.decode("latin-1")
        elif name in self._fields and b"filename" not in params:
            self._kind = _Kind.FIELD
            self._name = name
        else:
            self._kind = _Kind.SKIP

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._kind is _Kind.FILE:
            self._chunks.append(data[start:end])
        elif self._kind is _Kind.FIELD:
            self._buf += data[start:end]
            if len(self._buf) > self._max_field_bytes:
                field = self._name.decode()
                raise Invalid(
                    f"the field {field!r} is too long",
                    code="message_too_long" if field == "message" else "field_too_long",
                )

    def _part_end(self) -> None:
        if self._kind is _Kind.FILE:
            self._file_done = True
        elif self._kind is _Kind.FIELD:
            field = self._name.decode()
            try:
                self.fields.setdefault(field, bytes(self._buf).decode("utf-8"))
            except UnicodeDecodeError:
                raise Invalid(f"the field {field!r} is not UTF-8", code="invalid_field") from None
        self._kind = _Kind.SKIP

    def _end(self) -> None:
        self._ended = True

    # reading -----------------------------------------------------------------------------

    async def _step(self) -> None:
        """Feed the next body chunk to the parser."""
        if self._exhausted:
            if not self._ended:
                raise BadRequest("the multipart body ended early", code="malformed_multipart")
            return
        try:
            chunk = await anext(self._body)
        except StopAsyncIteration:
            chunk = b""
        if not chunk:
            self._exhausted = True
            self._parser.finalize()
            if not self._ended:
                raise BadRequest("the multipart body ended early", code="malformed_multipart")
            return
        self._read += len(chunk)
        if self._read > self._max_body_bytes:
            raise TooLarge(
                f"the request body is larger than {self._max_body_bytes} bytes",
                code="body_too_large",
            )
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise BadRequest(
                f"the multipart body is malformed: {exc}", code="malformed_multipart"
            ) from None

    async def find_file(self) -> bool:
        """Read until the file part's data begins (or the body ends): is there a file?"""
        while not self.has_file and not self._ended:
            await self._step()
        return self.has_file

    async def file_chunks(self) -> AsyncIterator[bytes]:
        """The file part's bytes, as they arrive."""
        while True:
            if self._chunks:
                chunks, self._chunks = self._chunks, []
                for c in chunks:
                    if c:
                        yield c
            if self._file_done or self._ended:
                return
            await self._step()

    async def finish(self) -> None:
        """Read the rest of the body (fields after the file)."""
        while not self._ended:
            await self._step()
        self._chunks = []
