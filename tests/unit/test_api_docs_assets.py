"""``/docs`` without its Swagger UI package: a clear 503 ``docs_unavailable`` naming the package
(never a traceback), and it recovers once the package is there (a failure is not cached)."""

from __future__ import annotations

import asyncio

import pytest

from hubbub.api import docs
from hubbub.errors import Unavailable


def test_missing_swagger_ui_is_a_clear_503_and_not_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    docs.assets.cache_clear()
    monkeypatch.setattr(docs, "ASSETS_PACKAGE", "hubbub_no_such_package.resources")
    with pytest.raises(Unavailable) as refused:
        asyncio.run(docs.loaded_assets())
    assert refused.value.code == "docs_unavailable"
    assert "fastapi-swagger" in str(refused.value)
    monkeypatch.undo()
    found = asyncio.run(docs.loaded_assets())
    assert set(found) == {"swagger-ui-bundle.js", "swagger-ui.css", "init.js"}
    assert docs.asset_path("init.js").startswith("/docs/assets/")
