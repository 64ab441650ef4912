"""``hubbub.js`` as an npm package (``hubbub-client``): one file, not a copy.

The package is ``src/hubbub/web/`` itself — ``package.json`` lists only ``hubbub.js``,
``hubbub.d.ts`` and ``README.md`` — so the module the server serves at ``/static/hubbub.js`` and
the one ``npm install`` gives are the same bytes. These checks run Node (no browser): the
hand-written TypeScript declarations name exactly what the module exports and exactly the
public members of ``Hubbub``, and ``npm pack`` packs exactly those files at the Python package's
version.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

from tests.browser.conftest import missing

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "src" / "hubbub" / "web"

# What the module really has: its exports, and Hubbub's public prototype members and fields.
INSPECT = """
const mod = await import(process.argv[1]);
const proto = Object.getOwnPropertyNames(mod.Hubbub.prototype);
const fields = Object.keys(new mod.Hubbub({ fetch: () => null }));
const pub = (n) => !n.startsWith('_') && n !== 'constructor';
console.log(JSON.stringify({
  exports: Object.keys(mod).sort(),
  members: [...new Set([...proto, ...fields].filter(pub))].sort(),
}));
"""


def node() -> str:
    found = shutil.which("node")
    if found is None:
        missing("node is not installed")
    assert found is not None
    return found


def declared() -> tuple[list[str], list[str]]:
    """Names the ``.d.ts`` declares: value exports, and the members of ``class Hubbub``."""
    text = (PACKAGE / "hubbub.d.ts").read_text(encoding="utf-8")
    exports = re.findall(r"^export declare (?:const|class|function) (\w+)", text, re.M)
    body = re.search(r"^export declare class Hubbub \{\n(.*?)^\}", text, re.M | re.S)
    assert body, "hubbub.d.ts declares no class Hubbub"
    members = re.findall(r"^ {2}(?:readonly )?(\w+)[<(:?]", body.group(1), re.M)
    return sorted(exports), sorted(set(members) - {"constructor"})


def test_declarations_match_the_module() -> None:
    out = subprocess.run(
        [node(), "--input-type=module", "-e", INSPECT, (PACKAGE / "hubbub.js").as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    real = json.loads(out.stdout)
    exports, members = declared()
    assert exports == real["exports"]
    assert members == real["members"]
    assert {"Hubbub", "HubbubError", "EVENTS", "canShareTabs"} <= set(exports)
    assert {"connect", "send", "on", "leader", "shareTabs"} <= set(members)


def test_npm_pack_ships_the_served_module_at_the_python_version() -> None:
    node()
    npm = shutil.which("npm")
    if npm is None:
        missing("npm is not installed")
    assert npm is not None
    out = subprocess.run(
        [npm, "pack", "--dry-run", "--json", "--ignore-scripts"],
        cwd=PACKAGE,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    [packed] = json.loads(out.stdout)
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert packed["name"] == "hubbub-client"
    assert packed["version"] == version
    files = sorted(f["path"] for f in packed["files"])
    assert files == ["README.md", "hubbub.d.ts", "hubbub.js", "package.json"]  # not the app

    manifest = json.loads((PACKAGE / "package.json").read_text())
    assert manifest["type"] == "module"
    assert manifest["exports"]["."] == {"types": "./hubbub.d.ts", "default": "./hubbub.js"}
    assert manifest["types"] == "./hubbub.d.ts"
    for target in manifest["exports"]["."].values():
        assert (PACKAGE / target).is_file()


def test_the_python_package_ships_the_same_module() -> None:
    """The server serves the package's file from inside the Python package (package-data
    ``web/*.js``): no second copy anywhere in the repository."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "web/*.js" in pyproject["tool"]["setuptools"]["package-data"]["hubbub"]
    copies = [
        p
        for p in REPO.rglob("hubbub.js")
        if "node_modules" not in p.parts and ".venv" not in p.parts and "build" not in p.parts
    ]
    assert copies == [PACKAGE / "hubbub.js"]
