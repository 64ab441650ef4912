"""The wheel is what `pip install hubbub` gets: built with `python -m build`, installed into a
clean virtualenv (no dev tools, no repository on the path), it must serve — web app, migrations,
a send and its history included — and carry only the server's own dependencies."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.support import free_port, stop_process

ROOT = Path(__file__).resolve().parents[2]
DEV_ONLY = ("pytest", "mypy", "ruff", "playwright", "hypothesis", "schemathesis", "moto", "boto3")


def _run(cmd: list[str], cwd: Path, timeout: float) -> str:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    done = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the sources (no stale egg-info or cache can leak in)."""
    work = tmp_path_factory.mktemp("wheel-build")
    src = work / "project"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "src",
        src / "src",
        ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "node_modules"),
    )
    out = work / "dist"
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out)], cwd=src, timeout=300)
    wheels = list(out.glob("hubbub-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.mark.timeout(300)
def test_wheel_carries_the_package_data_and_nothing_else(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for needed in (
        "hubbub/web/index.html",
        "hubbub/web/hubbub.js",
        "hubbub/auth/common-passwords.txt",
        "hubbub/store/migrations/env.py",
        "hubbub/py.typed",
    ):
        assert needed in names, f"{needed} missing from the wheel"
    assert any(n.startswith("hubbub/store/migrations/versions/") for n in names)
    assert not [n for n in names if n.startswith(("tests/", "bench/", "deploy/"))]
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = [
        line.split(":", 1)[1].strip()
        for line in zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
        if line.startswith("Requires-Dist:")
    ]
    unconditional = [r for r in requires if "extra ==" not in r]
    assert not [r for r in unconditional if r.split("=")[0].split("[")[0] in DEV_ONLY], requires


@pytest.mark.timeout(600)
def test_wheel_installs_and_serves_in_a_clean_venv(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path, timeout=120)
    py = venv / "bin" / "python"
    # What a user types: the wheel's own metadata decides what else comes.
    _run([str(py), "-m", "pip", "install", "-q", str(wheel)], cwd=tmp_path, timeout=600)
    installed = _run([str(py), "-m", "pip", "list", "--format=freeze"], cwd=tmp_path, timeout=60)
    names = {line.split("==")[0].lower() for line in installed.splitlines()}
    assert "hubbub" in names
    assert not names & set(DEV_ONLY), sorted(names & set(DEV_ONLY))
    assert _run([str(venv / "bin" / "hubbub"), "--version"], cwd=tmp_path, timeout=60).startswith(
        "hubbub "
    )

    port = free_port()
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    env.update({"HUBBUB_SECRET": "wheel-test-secret-0123456789abcdef"})
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(venv / "bin" / "hubbub"), "serve", "--port", str(port), "--data-dir", str(data)],
        cwd=tmp_path,  # not the repository: nothing of its src/ can be imported by accident
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        with httpx.Client(base_url=base, timeout=10) as http:
            assert "text/html" in http.get("/").headers["content-type"]
            assert http.get("/static/hubbub.js").status_code == 200
            assert http.get("/openapi.json").json()["info"]["title"]
            login = {"username": "wheel", "password": "correct horse battery"}
            assert http.post("/auth/register", json=login).status_code == 201
            signed_in = http.post("/auth/login", json=login)
            assert signed_in.status_code == 200, signed_in.text
            token = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
            room = http.post("/chat/rooms", json={"name": "wheel-room"}, headers=token)
            assert room.status_code == 201, room.text
            room_id = room.json()["id"]
            body = {"room_id": room_id, "message": "from the wheel"}
            sent = http.post("/chat/messages", json=body, headers=token)
            assert sent.status_code == 201, sent.text
            history = http.get(f"/chat/room/{room_id}/history", headers=token).json()
            assert [m["text"] for m in history] == ["from the wheel"]
    finally:
        stop_process(proc, 15, 20)
        log.close()
