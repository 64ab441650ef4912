# The README's two commands: `make serve` and `make test`. Both install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Locks with hashes (`make lock` writes them with uv): what the server needs to run (`make serve`,
# `pip install hubbub`), that plus the s3 and otel extras (the Docker image), and that plus the
# dev and test tools (`make test`).
RUNTIME_LOCK := requirements/runtime.txt
DEV_LOCK := requirements/dev.txt
RUNTIME_STAMP := $(VENV)/.runtime-$(shell cat pyproject.toml $(RUNTIME_LOCK) | sha1sum | cut -c1-12)
DEV_STAMP := $(VENV)/.dev-$(shell cat pyproject.toml $(DEV_LOCK) | sha1sum | cut -c1-12)
ARGS ?=

.PHONY: install install-runtime serve test lint typecheck unit integration bench bench-gate bench-deps \
	bench-changelog soak clean lock system-deps \
	browser-deps seed-pages browser screenshots fuzz chaos

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUNTIME_STAMP): pyproject.toml $(RUNTIME_LOCK) | $(BIN)/python
	$(BIN)/python -m pip install -q --require-hashes -r $(RUNTIME_LOCK)
	$(BIN)/python -m pip install -q --no-deps -e .
	rm -f $(VENV)/.runtime-*
	touch $@

$(DEV_STAMP): pyproject.toml $(DEV_LOCK) | $(BIN)/python
	$(BIN)/python -m pip install -q --require-hashes -r $(DEV_LOCK)
	$(BIN)/python -m pip install -q --no-deps -e .
	rm -f $(VENV)/.dev-* $(VENV)/.runtime-*
	touch $@ $(RUNTIME_STAMP)

install-runtime: $(RUNTIME_STAMP)  ## the server's own dependencies only

install: $(DEV_STAMP)  ## the server, its extras (s3, otel) and the dev/test tools

serve: install-runtime  ## run the server on its embedded defaults (SQLite + in-memory fan-out)
	$(BIN)/hubbub serve $(ARGS)

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy

# Debian packages the suite drives for real: nginx (proxy tests) and ab, ApacheBench from
# apache2-utils (seed 004's load test). Installed only when missing.
system-deps:
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light)
	@command -v ab >/dev/null 2>&1 || [ -x /usr/bin/ab ] || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq apache2-utils)

# The browser tests (tests/browser/) drive Debian's chromium — never a downloaded browser — and
# the seeds' React/Vue/SolidJS clients, built from the npm registry with npm. Installed only
# when missing.
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser-deps:
	@[ -x $(CHROMIUM) ] || ($(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium fonts-noto-color-emoji)
	@command -v npm >/dev/null 2>&1 || ($(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq npm)

# The seed pages: node_modules from package-lock.json (npm ci), bundles by esbuild (build.mjs).
SEED := tests/browser
SEED_MODULES := $(SEED)/node_modules/.ci-$(shell cat $(SEED)/package-lock.json | sha1sum | cut -c1-12)
SEED_SOURCES := $(SEED)/build.mjs $(wildcard $(SEED)/pages/*.js $(SEED)/pages/*.jsx $(SEED)/pages/seeds/*)

$(SEED_MODULES): $(SEED)/package.json $(SEED)/package-lock.json
	npm ci --prefix $(SEED) --no-audit --no-fund --loglevel=error
	touch $@

$(SEED)/pages/dist/.built: $(SEED_MODULES) $(SEED_SOURCES)
	cd $(SEED) && node build.mjs
	touch $@

seed-pages: browser-deps $(SEED)/pages/dist/.built  ## build the seeds' client pages

browser: install browser-deps seed-pages  ## only the browser tests
	$(BIN)/pytest tests/browser -q

screenshots: install browser-deps  ## docs/screenshots/*.png (the README shows them)
	$(BIN)/python -m tests.browser.screenshots

test: lint typecheck system-deps browser-deps seed-pages  ## ruff, mypy --strict and the whole pytest suite
	$(BIN)/pytest -n 2 --dist loadgroup --no-loadscope-reorder $(ARGS)

unit: install
	$(BIN)/pytest tests/unit

# The suite runs tests/fuzz with 25 examples per operation; this is the longer run.
FUZZ_EXAMPLES ?= 100
fuzz: install  ## schemathesis over /openapi.json (both auth modes) + the decoder fuzzers, FUZZ_EXAMPLES per operation; figures to docs/fuzz-results.md
	HUBBUB_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) HUBBUB_FUZZ_REPORT=docs/fuzz-results.md \
		HUBBUB_FUZZ_COMMAND="make fuzz FUZZ_EXAMPLES=$(FUZZ_EXAMPLES)" \
		$(BIN)/pytest tests/fuzz tests/unit/test_decoders.py -q -p no:cacheprovider $(ARGS)

# Nchan (nginx + its nchan module, Debian packages) is what `make bench` and the gate measure
# Hubbub against; the harness runs its own nginx, never the system service. Installed only
# when missing.
bench-deps:
	@[ -x /usr/sbin/nginx ] && [ -f /usr/lib/nginx/modules/ngx_nchan_module.so ] || \
		($(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
			nginx-light libnginx-mod-nchan)

bench: install bench-deps  ## measure (~20 min); results to docs/performance.md, bench/baseline.json (ARGS=--quick: Hubbub alone)
	$(BIN)/python bench/run.py --write docs/performance.md $(ARGS)

# CI's performance regression gate (.ci/run): Hubbub's CPU per delivered event / Nchan's in a
# short fan-out, best of 3, against bench/baseline.json; fails past +30 %. About a minute.
bench-gate: install bench-deps  ## the CPU-ratio regression gate against bench/baseline.json
	$(BIN)/python bench/run.py --gate $(ARGS)

bench-changelog: install  ## the change log: storage per change, catch-up time for 10,000 missed changes
	$(BIN)/python bench/changelog.py --write docs/performance.md $(ARGS)

# Kills, restarts, pauses and partitions real nodes, PostgreSQL and Redis (private instances the
# checker starts itself) under load on every transport; needs root for the network namespaces.
chaos: install system-deps  ## chaos checker: ≥ 200 faults (cluster + SQLite), results in docs/chaos-results.md
	$(BIN)/python -m tests.chaos --write docs/chaos-results.md $(ARGS)

soak: install  ## 1 h soak (5,000 streams, 100 reconnects/s) + 19,000-stream restart storm; ARGS="--duration 120 --streams 1000" for a short run
	$(BIN)/python bench/soak.py --write docs/performance.md $(ARGS)

lock: install  ## rewrite both locks (hashes) after changing pyproject.toml; pins already there are kept
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --generate-hashes --no-header -q \
		-o $(RUNTIME_LOCK)
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --generate-hashes --no-header -q \
		--extra s3 --extra otel -c $(RUNTIME_LOCK) -o requirements/extras.txt
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --generate-hashes --no-header -q \
		--extra dev --extra s3 --extra otel -c $(RUNTIME_LOCK) -o $(DEV_LOCK)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
