"""``/docs`` over real HTTP: Swagger UI 5 from this server only (no CDN, no inline script), a
strict Content-Security-Policy, assets under content-hashed URLs cached for a year, and
FastAPI's CDN pages (``/redoc``, the OAuth2 redirect) gone. The browser half (Authorize, Try it
out, no foreign request, no CSP violation) is ``tests/browser/test_api_docs.py``."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from tests.support import Server, assert_error, client


class _Refs(HTMLParser):
    """Every URL the page loads, and every inline script (there must be none)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in ("src", "href"):
            if found.get(name):
                self.urls.append(str(found[name]))
        if any(name.startswith("on") for name in found):
            self.inline_scripts += 1  # an inline event handler
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1


def _directives(csp: str) -> dict[str, set[str]]:
    parts = (d.split() for d in csp.split(";") if d.strip())
    return {p[0]: set(p[1:]) for p in parts}


async def test_docs_page_is_self_hosted_under_a_strict_csp(jwt_server: Server) -> None:
    async with client(jwt_server.url) as http:
        page = await http.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        csp = _directives(page.headers["content-security-policy"])
        assert csp["default-src"] == {"'none'"}
        assert csp["script-src"] == {"'self'"}  # no 'unsafe-inline', no 'unsafe-eval', no CDN
        assert csp["style-src"] == {"'self'"}
        assert csp["connect-src"] == {"'self'"}
        assert csp["img-src"] == {"'self'", "data:"}
        assert csp["frame-ancestors"] == {"'none'"}
        assert csp["object-src"] == {"'none'"}
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["x-frame-options"] == "DENY"

        refs = _Refs()
        refs.feed(page.text)
        assert refs.inline_scripts == 0
        assert len(refs.urls) == 4  # icon, stylesheet, Swagger UI, the initializer
        for url in refs.urls:
            assert url.startswith("/") and not url.startswith("//"), url  # this origin only
        assert "cdn" not in page.text.lower() and "http" not in page.text.lower()
        assert 'data-openapi-url="/openapi.json"' in page.text

        scripts = [u for u in refs.urls if u.endswith(".js")]
        assert [u.rsplit("/", 1)[1] for u in scripts] == ["swagger-ui-bundle.js", "init.js"]
        for url in refs.urls:
            got = await http.get(url, headers={"Accept-Encoding": "identity"})
            assert got.status_code == 200, url

        bundle = await http.get(scripts[0], headers={"Accept-Encoding": "identity"})
        assert bundle.headers["content-type"].startswith("text/javascript")
        assert bundle.headers["cache-control"] == "public, max-age=31536000, immutable"
        version = re.search(rb'PACKAGE_VERSION:"(\d+)\.(\d+)\.(\d+)"', bundle.content)
        assert version is not None and int(version[1]) >= 5  # OpenAPI 3.1 needs Swagger UI 5
        assert (await http.get("/openapi.json")).json()["openapi"].startswith("3.1")

        # Compressed for whoever accepts it (1.5 MB of JavaScript otherwise), revalidated by ETag.
        zipped = await http.get(scripts[0], headers={"Accept-Encoding": "gzip"})
        assert zipped.headers["content-encoding"] == "gzip"
        assert int(zipped.headers["content-length"]) < len(bundle.content) / 2
        assert zipped.content == bundle.content  # httpx decoded it: the same file
        assert zipped.headers["vary"] == "Accept-Encoding"
        again = await http.get(scripts[0], headers={"If-None-Match": bundle.headers["etag"]})
        assert again.status_code == 304 and again.content == b""

        init = await http.get(scripts[1])
        assert b"SwaggerUIBundle(" in init.content and b"data-openapi-url" in init.content


async def test_old_asset_urls_and_fastapis_cdn_pages_are_gone(jwt_server: Server) -> None:
    async with client(jwt_server.url) as http:
        assert_error(await http.get("/docs/assets/0123456789abcdef/swagger-ui-bundle.js"), 404)
        page = (await http.get("/docs")).text
        digest = re.search(r"/docs/assets/([0-9a-f]+)/swagger-ui\.css", page)
        assert digest is not None
        assert_error(await http.get(f"/docs/assets/{digest[1]}/nothing.js"), 404)
        assert_error(await http.get(f"/docs/assets/{digest[1]}/swagger-ui-bundle.js"), 404)
        for path in ("/redoc", "/docs/oauth2-redirect"):
            assert_error(await http.get(path), 404)
        head = await http.head("/docs")
        assert head.status_code == 200 and "content-security-policy" in head.headers
        documented = (await http.get("/openapi.json")).json()["paths"]
        assert not [p for p in documented if p.startswith(("/docs", "/redoc"))]
