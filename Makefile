# The README's two commands: `make serve` and `make test`. Both install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | sha1sum | cut -c1-12)
ARGS ?=

.PHONY: install serve test lint typecheck unit integration bench clean lock system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

serve: install  ## run the server on its embedded defaults (SQLite + in-memory fan-out)
	$(BIN)/hubbub serve $(ARGS)

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy

# Debian packages the suite drives for real: nginx (proxy tests). Installed only when missing.
system-deps:
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light)

test: lint typecheck system-deps  ## ruff, mypy --strict and the whole pytest suite
	$(BIN)/pytest

unit: install
	$(BIN)/pytest tests/unit

bench: install  ## measure; results go to docs/performance.md (ARGS=--quick: Hubbub alone)
	$(BIN)/python bench/run.py --write docs/performance.md $(ARGS)

lock: install  ## refresh requirements.lock after changing pyproject.toml
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^hubbub' > requirements.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
