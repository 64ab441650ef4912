"""The browser app: static files (``index.html``, ``app.js``, ``hubbub.js``, ``style.css``)
served at ``/`` and ``/static/``, with a strict Content-Security-Policy.

Nothing here is built: plain ES modules and CSS, shipped as package data.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

WEB_DIR = Path(__file__).resolve().parent

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)

# Only the app's own assets: never this package's Python files or caches.
SERVED_SUFFIXES = frozenset({".js", ".css", ".svg", ".png", ".ico", ".html", ".webmanifest"})

SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


class _Static(StaticFiles):
    """StaticFiles with the security headers and revalidation (no stale app after an upgrade)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        if "/" in path.strip("/") or Path(path).suffix not in SERVED_SUFFIXES:
            raise HTTPException(status_code=404)
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        response.headers.setdefault("Cache-Control", "no-cache")
        return response


def install(app: FastAPI) -> None:
    """``GET /`` → the app's page; ``/static/*`` → its modules, styles and icon."""

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def index(request: Request) -> Response:
        return FileResponse(
            WEB_DIR / "index.html",
            media_type="text/html; charset=utf-8",
            headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
        )

    app.mount("/static", _Static(directory=WEB_DIR, check_dir=True), name="static")
