"""``/docs``: Swagger UI over ``/openapi.json``, served by Hubbub itself — no CDN, no
third-party origin, no inline script — with a strict Content-Security-Policy.

Swagger UI 5 (what OpenAPI 3.1 needs) comes from the ``fastapi-swagger`` package, which ships
``swagger-ui-bundle.js`` and ``swagger-ui.css`` as package data (Swagger UI is Apache-2.0; the
bundle's licence notice is its first line). To update it, raise that package's pin: the asset
URLs carry a hash of their content, so browsers fetch the new files at once and may cache each
for a year. The initializer is ``INIT_JS`` below, served as a file of its own (the CSP allows no
inline script); it reads the document's URL from the page.

ReDoc (FastAPI's ``/redoc``, from a CDN) is off.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import logging
from dataclasses import dataclass
from functools import cache
from importlib import resources

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from hubbub.errors import NotFound, Unavailable

log = logging.getLogger("hubbub.api")

ASSETS_PACKAGE = "fastapi_swagger.resources"

# As strict as the web app's: Swagger UI 5 sets its dynamic styles through the CSSOM, which
# `style-src 'self'` allows, so it needs no `'unsafe-inline'` (the browser test checks that the
# page, the Authorize dialog and a tried request trip nothing). Its icons are `data:` images.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
IMMUTABLE = "public, max-age=31536000, immutable"

# No token is kept across reloads (`persistAuthorization` off): it lives in this tab only.
INIT_JS = b"""\
'use strict';
(function () {
  var root = document.getElementById('swagger-ui');
  window.ui = SwaggerUIBundle({
    url: root.getAttribute('data-openapi-url'),
    dom_id: '#swagger-ui',
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    layout: 'BaseLayout',
    showExtensions: true,
    showCommonExtensions: true,
    displayRequestDuration: true,
    validatorUrl: null,
  });
})();
"""


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    gzipped: bytes
    media_type: str
    etag: str


def _asset(body: bytes, media_type: str) -> Asset:
    digest = hashlib.sha256(body).hexdigest()[:16]
    return Asset(body, gzip.compress(body, 6, mtime=0), media_type, f'"{digest}"')


@cache
def assets() -> dict[str, Asset]:
    """Every file /docs needs, by name, read once; a missing Swagger UI package is 503."""
    try:
        files = resources.files(ASSETS_PACKAGE)
        bundle = (files / "swagger-ui-bundle.js").read_bytes()
        css = (files / "swagger-ui.css").read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        log.error("/docs: Swagger UI's assets are missing (%s); pip install fastapi-swagger", exc)
        raise Unavailable(
            "Swagger UI is not installed on this server (the fastapi-swagger package)",
            code="docs_unavailable",
        ) from exc
    return {
        "swagger-ui-bundle.js": _asset(bundle, "text/javascript; charset=utf-8"),
        "swagger-ui.css": _asset(css, "text/css; charset=utf-8"),
        "init.js": _asset(INIT_JS, "text/javascript; charset=utf-8"),
    }


async def loaded_assets() -> dict[str, Asset]:
    """``assets()``, read and compressed (half a second, once) off the event loop."""
    if assets.cache_info().currsize:
        return assets()
    return await run_in_threadpool(assets)


def asset_path(name: str) -> str:
    """``/docs/assets/<content hash>/<name>``: a new file is a new URL, so it can be cached."""
    return f"/docs/assets/{assets()[name].etag.strip(chr(34))}/{name}"


def page(title: str, root_path: str, openapi_url: str) -> bytes:
    def url(path: str) -> str:
        return html.escape(root_path + path, quote=True)

    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="icon" href="{url("/static/icon.svg")}" type="image/svg+xml">
<link rel="stylesheet" href="{url(asset_path("swagger-ui.css"))}">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{url(openapi_url)}"></div>
<script src="{url(asset_path("swagger-ui-bundle.js"))}"></script>
<script src="{url(asset_path("init.js"))}"></script>
</body>
</html>
""".encode()


def _accepts_gzip(request: Request) -> bool:
    return "gzip" in request.headers.get("accept-encoding", "").lower()


def install(app: FastAPI) -> None:
    """``GET /docs`` and ``GET /docs/assets/<hash>/<name>``. Build ``app`` with
    ``docs_url=None, redoc_url=None`` so FastAPI's CDN pages are never routed."""
    openapi_url = app.openapi_url or "/openapi.json"
    title = f"{app.title} API"

    @app.api_route("/docs", methods=["GET", "HEAD"], include_in_schema=False)
    async def docs_page(request: Request) -> Response:
        await loaded_assets()
        root_path = str(request.scope.get("root_path", "")).rstrip("/")
        body = page(title, root_path, openapi_url)
        return Response(body, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    @app.api_route("/docs/assets/{digest}/{name}", methods=["GET", "HEAD"], include_in_schema=False)
    async def docs_asset(request: Request, digest: str, name: str) -> Response:
        asset = (await loaded_assets()).get(name)
        if asset is None or f'"{digest}"' != asset.etag:
            raise NotFound("no such documentation asset", code="not_found")
        headers = {
            "Cache-Control": IMMUTABLE,
            "ETag": asset.etag,
            "Vary": "Accept-Encoding",
            "X-Content-Type-Options": "nosniff",
        }
        if request.headers.get("if-none-match") == asset.etag:
            return Response(status_code=304, headers=headers)
        if _accepts_gzip(request):
            headers["Content-Encoding"] = "gzip"
            return Response(asset.gzipped, media_type=asset.media_type, headers=headers)
        return Response(asset.body, media_type=asset.media_type, headers=headers)
