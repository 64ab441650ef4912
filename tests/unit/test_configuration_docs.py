"""docs/configuration.md is the operator's reference: every setting the server reads is in its
table under the env var and flag the code really has, and no page names a ``HUBBUB_*`` variable
that nothing reads (a renamed setting would otherwise linger in the docs)."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from hubbub.cli import app
from hubbub.config import Settings

ROOT = Path(__file__).resolve().parents[2]
TABLE_ROW = re.compile(r"^\| `(HUBBUB_[A-Z0-9_]+)` \| (?:`(--[a-z0-9-]+)`)? *\|", re.M)
# Variables read by other programs than the server: the CLI client (docs/cli.md), compose's
# published port, the bench harness and the fuzz runner, the tests' service URLs.
NOT_SERVER_SETTINGS = {
    "HUBBUB_URL",
    "HUBBUB_TOKEN",
    "HUBBUB_USER_ID",
    "HUBBUB_HTTP_PORT",
    "HUBBUB_CHECKOUT",
    "HUBBUB_CMD",
    "HUBBUB_FUZZ_REPORT",
    "HUBBUB_FUZZ_EXAMPLES",
    "HUBBUB_FUZZ_COMMAND",
    "HUBBUB_TEST_PG",
    "HUBBUB_TEST_REDIS",
}


def _documented() -> dict[str, str | None]:
    text = (ROOT / "docs" / "configuration.md").read_text()
    return {var: flag or None for var, flag in TABLE_ROW.findall(text)}


def _serve_flags() -> set[str]:
    serve = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    return {opt for p in serve.params for opt in p.opts if opt.startswith("--")}


def test_every_setting_has_a_row_under_its_env_var() -> None:
    documented = _documented()
    missing = [f"HUBBUB_{n.upper()}" for n in Settings.model_fields]
    missing = [v for v in missing if v not in documented]
    assert not missing, f"settings without a row in docs/configuration.md: {missing}"


def test_every_flag_in_the_table_is_a_real_serve_flag_of_that_setting() -> None:
    flags = _serve_flags()
    for var, flag in _documented().items():
        if flag:
            assert flag in flags, f"{var}: `hubbub serve` has no {flag}"
            assert flag == "--" + var.removeprefix("HUBBUB_").lower().replace("_", "-"), var


def test_every_serve_flag_is_documented() -> None:
    in_table = {flag for flag in _documented().values() if flag}
    undocumented = _serve_flags() - in_table - {"--help"}
    assert not undocumented, f"serve flags missing from docs/configuration.md: {undocumented}"


def test_no_page_names_a_variable_that_nothing_reads() -> None:
    known = {f"HUBBUB_{n.upper()}" for n in Settings.model_fields} | NOT_SERVER_SETTINGS
    pages = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
    stale = {
        (page.name, var)
        for page in pages
        for var in re.findall(r"HUBBUB_[A-Z0-9_*]*[A-Z0-9*]", page.read_text())
        if not var.endswith("*") and var not in known  # HUBBUB_AUTH_FAILURES_*: a family
    }
    assert not stale, f"pages name settings that do not exist: {sorted(stale)}"
