"""An incremental Server-Sent Events parser (the WHATWG rules, the parts a client needs).

Fed the raw bytes of a response as they arrive, in chunks of any size; it owns no socket, so
the async and sync clients share it and it can be tested on arbitrary chunkings. Anything it
cannot accept (invalid UTF-8, a line or an event beyond ``max_bytes``) raises ``SSEError``
and nothing else, so a garbled stream is one reconnect, never a crash."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SSEError", "SSEEvent", "SSEParser"]

MAX_BYTES = 8 * 1024 * 1024


class SSEError(ValueError):
    """The bytes are not an event stream this client accepts."""


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event. ``id`` is the ``id:`` field of this event's own block (``None``
    when it had none): what a client resumes from."""

    event: str
    data: str
    id: str | None = None


class SSEParser:
    """Turns chunks into events; ``retry`` holds the last ``retry:`` (ms) the server sent."""

    __slots__ = (
        "_buf",
        "_data",
        "_data_size",
        "_event",
        "_id",
        "_max",
        "_skip_lf",
        "_started",
        "comments",
        "retry",
    )

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self._max = max_bytes
        self._buf = b""
        self._skip_lf = False  # the last chunk ended in "\r": a "\n" first in the next is its pair
        self._started = False
        self._event: str | None = None
        self._data: list[str] = []
        self._data_size = 0
        self._id: str | None = None
        self.retry: int | None = None
        self.comments = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """The events completed by ``chunk`` (an incomplete one waits for more bytes)."""
        if not chunk:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        buf = self._buf + chunk if self._buf else chunk
        if not self._started:
            if len(buf) < 3 and b"\xef\xbb\xbf".startswith(buf):
                self._buf = buf
                return []
            self._started = True
            if buf.startswith(b"\xef\xbb\xbf"):
                buf = buf[3:]
        lines = buf.splitlines(keepends=True)
        if lines and not lines[-1].endswith((b"\n", b"\r")):
            self._buf = lines.pop()
            if len(self._buf) > self._max:
                raise SSEError(f"a line longer than {self._max} bytes")
        else:
            self._buf = b""
            self._skip_lf = bool(lines) and lines[-1].endswith(b"\r")
        out: list[SSEEvent] = []
        for raw in lines:
            line = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
            if not line:
                self._dispatch(out)
            else:
                self._line(line)
        return out

    def _line(self, line: bytes) -> None:
        if line[:1] == b":":
            self.comments += 1
            return
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        try:
            field = name.decode()
            text = value.decode()
        except UnicodeDecodeError as exc:
            raise SSEError(f"invalid UTF-8 in the stream: {exc}") from None
        if field == "data":
            self._data_size += len(value) + 1
            if self._data_size > self._max:
                raise SSEError(f"an event larger than {self._max} bytes")
            self._data.append(text)
        elif field == "event":
            self._event = text
        elif field == "id":
            if "\0" not in text:
                self._id = text
        elif field == "retry" and text.isascii() and text.isdigit():
            self.retry = int(text)
        # any other field is ignored, as the standard says

    def _dispatch(self, out: list[SSEEvent]) -> None:
        if self._data:
            out.append(SSEEvent(self._event or "message", "\n".join(self._data), self._id))
        elif self._id is not None:
            # an id with no data moves the cursor all the same: an event named ""
            out.append(SSEEvent("", "", self._id))
        self._event = None
        self._data = []
        self._data_size = 0
        self._id = None
