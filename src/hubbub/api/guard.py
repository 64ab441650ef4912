"""Refuse what a hostile web page can make a browser send, before any route runs.

Two attacks, two checks (``../shared/API.md`` "Limits and abuse"):

* **Cross-site request forgery.** A browser attaches Hubbub's cookies to a request another site
  makes (a form post, ``fetch`` with ``no-cors``). So a request that changes something (any
  method but GET/HEAD/OPTIONS), carries one of our cookies and no ``Authorization`` header,
  and comes from another origin (``Origin`` not ours, or ``Sec-Fetch-Site: cross-site``) is
  403 ``cross_origin``. In trust mode identity needs no secret at all (a ``user_id`` in a form
  field), so the check holds for every such request, cookie or not — and for reads that carry
  another site's ``Origin`` (a script's ``fetch``), too.
* **DNS rebinding.** In trust mode a page on ``evil.example`` whose name is re-pointed at
  127.0.0.1 reaches the local server as a *same-origin* request. The ``Host`` it sends is still
  ``evil.example``: a ``Host`` that is not the bound address, ``localhost`` or a configured
  allowed host is 421.

Both are a few header reads, so they cost nothing on the hot paths.
"""

from __future__ import annotations

from ipaddress import ip_address
from urllib.parse import urlsplit

from hubbub.api.raw import Scope
from hubbub.config import Settings
from hubbub.errors import Forbidden, MisdirectedRequest

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_OUR_COOKIES = (b"hubbub_",)
_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}
_WILDCARD = frozenset({"0.0.0.0", "::", ""})


def _headers(scope: Scope) -> dict[bytes, bytes]:
    """The request's headers by lower-case name (the first of repeated ones)."""
    found: dict[bytes, bytes] = {}
    for key, value in scope["headers"]:
        found.setdefault(key, value)
    return found


def split_host(value: str) -> tuple[str, str | None]:
    """``host[:port]`` (IPv6 in brackets) → (lower-case host without brackets, port or None)."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return value, None
        rest = value[end + 1 :]
        return value[1:end], rest[1:] if rest.startswith(":") else None
    if value.count(":") == 1:
        host, port = value.split(":", 1)
        return host, port
    return value, None


def same_origin(origin: str, host: str | None, scheme: str) -> bool:
    """Whether the browser's ``Origin`` names this server as the client reached it (``Host``)."""
    if host is None:
        return False
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if not parts.scheme or not parts.netloc:
        return False  # "null" (sandboxed frames, file://) and anything malformed
    o_host, o_port = split_host(parts.netloc)
    h_host, h_port = split_host(host)
    o_port = o_port or _DEFAULT_PORTS.get(parts.scheme.lower())
    h_port = h_port or _DEFAULT_PORTS.get(scheme)
    return o_host == h_host and o_port == h_port


def origin_allowed(scope: Scope, allowed: list[str]) -> bool:
    """Browsers send ``Origin``; accept our own host or a configured origin. No ``Origin``: not
    a browser (or a same-origin GET), nothing to check — authentication still applies."""
    headers = _headers(scope)
    origin = headers.get(b"origin")
    if origin is None:
        return True
    value = origin.decode("latin-1")
    if "*" in allowed or value in allowed:
        return True
    host = headers.get(b"host")
    return same_origin(value, host.decode("latin-1") if host else None, scope.get("scheme", "http"))


def _cookie_authenticated(headers: dict[bytes, bytes]) -> bool:
    if b"authorization" in headers:
        return False
    cookie = headers.get(b"cookie", b"")
    return any(name in cookie for name in _OUR_COOKIES)


def check_cross_origin(scope: Scope, settings: Settings) -> None:
    """403 ``cross_origin`` for a forged request (see the module docstring). In trust mode a
    script on another site needs no credentials at all, so there any request that carries
    another site's ``Origin`` is refused, reads included (a link followed from another site
    sends no ``Origin`` and still opens the app)."""
    trust = settings.auth == "trust"
    if scope.get("method", "GET") in _SAFE_METHODS:
        if trust and not origin_allowed(scope, settings.origins()):
            raise Forbidden(
                "in trust mode this server answers scripts of its own origin only",
                code="cross_origin",
            )
        return
    headers = _headers(scope)
    if not trust and not _cookie_authenticated(headers):
        return
    if headers.get(b"sec-fetch-site", b"").lower() == b"cross-site" or not origin_allowed(
        scope, settings.origins()
    ):
        raise Forbidden(
            "this request comes from another site and carries this site's cookies; "
            "send it from the app's own origin or with an Authorization header",
            code="cross_origin",
        )


def allowed_hosts(settings: Settings) -> frozenset[str]:
    names = {"localhost", "127.0.0.1", "::1", settings.host.lower().strip("[]")}
    names.update(h.strip().lower() for h in settings.allowed_hosts.split(",") if h.strip())
    return frozenset(names)


def host_allowed(host: str | None, settings: Settings, names: frozenset[str]) -> bool:
    """A rebinding attack can only bring a DNS *name*: the bound address, ``localhost``, a
    configured name, and — when bound to every interface — any IP literal are safe."""
    if "*" in names:
        return True
    if host is None:
        return True  # HTTP/1.0 without Host: no browser sends that
    name, _port = split_host(host)
    if name in names or name.endswith(".localhost"):
        return True
    if settings.host in _WILDCARD:
        try:
            ip_address(name)
        except ValueError:
            return False
        return True
    return False


class RequestGuard:
    """The two checks, with what they need from the settings worked out once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.trust = settings.auth == "trust"
        self.hosts = allowed_hosts(settings)

    def check(self, scope: Scope) -> None:
        if self.trust:
            host = _headers(scope).get(b"host")
            if not host_allowed(
                host.decode("latin-1") if host else None, self.settings, self.hosts
            ):
                raise MisdirectedRequest(
                    "in trust mode this server answers only for its bound address and "
                    "localhost (add names with --allowed-hosts)",
                    code="misdirected_request",
                )
        if scope["type"] == "http":
            check_cross_origin(scope, self.settings)
