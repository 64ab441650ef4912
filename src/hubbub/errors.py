"""The one error family.

Every failure a client can cause is a :class:`HubbubError` carrying an HTTP status and a stable
snake_case ``code``; one place (``api/errors.py``) turns it into
``{"error": {"code", "message", "details"?}}``. Anything else reaching a client is a bug (5xx).

    HubbubError
    ├── BadRequest (400)          malformed JSON, bad query parameter
    ├── Unauthenticated (401)     no, bad, expired or revoked credentials
    ├── Forbidden (403)           signed in but not allowed (e.g. not_a_member)
    ├── NotFound (404)            unknown, or private and not visible to the caller
    ├── Conflict (409)            idempotency_conflict, username_taken, …
    ├── TooLarge (413)
    ├── UnsupportedMediaType (415)
    ├── Invalid (422)             a field that parsed but is not acceptable
    ├── RateLimited (429)         carries retry_after seconds
    └── Unavailable (503)         store or broker unreachable; the request changed nothing
"""

from __future__ import annotations

from typing import Any


class HubbubError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            err["details"] = self.details
        return {"error": err}


class BadRequest(HubbubError):
    status = 400
    code = "bad_request"


class Unauthenticated(HubbubError):
    status = 401
    code = "unauthenticated"


class Forbidden(HubbubError):
    status = 403
    code = "forbidden"


class NotFound(HubbubError):
    status = 404
    code = "not_found"


class Conflict(HubbubError):
    status = 409
    code = "conflict"


class TooLarge(HubbubError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(HubbubError):
    status = 415
    code = "unsupported_media_type"


class MisdirectedRequest(HubbubError):
    """421: the request names a host this server does not answer for (DNS rebinding)."""

    status = 421
    code = "misdirected_request"


class Invalid(HubbubError):
    status = 422
    code = "invalid"


class RateLimited(HubbubError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code, details={"retry_after": retry_after})
        self.retry_after = retry_after


class Unavailable(HubbubError):
    status = 503
    code = "unavailable"
