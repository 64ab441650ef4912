"""The one exception the SDK raises for a refused or failed call."""

from __future__ import annotations

import contextlib
from typing import Any

import httpx

__all__ = ["AuthError", "HubbubError"]


class HubbubError(Exception):
    """The server said no (``status`` and its ``code``), or could not be reached (status 0,
    code ``unreachable``)."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{message} ({status} {code})" if status else message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.retry_after: float | None = None


class AuthError(HubbubError):
    """401: no credentials, expired ones that could not be refreshed, or a revoked session."""


def error_from(response: httpx.Response) -> HubbubError:
    """The server's ``{"error": {"code", "message"}}``, or a generic one for a body without it
    (a proxy's HTML page)."""
    code, message, details = f"http_{response.status_code}", response.reason_phrase, None
    try:
        body = response.json()
        err = body["error"]
        code, message, details = str(err["code"]), str(err["message"]), err.get("details")
    except (ValueError, KeyError, TypeError):
        pass
    kind = AuthError if response.status_code == 401 else HubbubError
    exc = kind(response.status_code, code, message, details)
    retry_after = response.headers.get("retry-after")
    if retry_after is not None:
        with contextlib.suppress(ValueError):
            exc.retry_after = float(retry_after)
    return exc
