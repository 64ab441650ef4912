"""The core imports no web framework, no SQL toolkit and no Redis client (DESIGN.md)."""

from __future__ import annotations

import subprocess
import sys

CORE = [
    "hubbub.chat.writer",
    "hubbub.chat.rooms",
    "hubbub.chat.messages",
    "hubbub.chat.activity",
    "hubbub.chat.files",
    "hubbub.auth.accounts",
    "hubbub.hub",
    "hubbub.subscription",
    "hubbub.encoding",
    "hubbub.models",
]
FORBIDDEN = ["fastapi", "starlette", "sqlalchemy", "redis", "uvicorn"]


def test_core_modules_import_no_framework() -> None:
    code = (
        "import sys\n"
        f"for m in {CORE!r}: __import__(m)\n"
        f"bad = [m for m in {FORBIDDEN!r} if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
