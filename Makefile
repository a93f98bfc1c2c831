# Argus. `make run` and `make test` each set up what they need (idempotent).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV := $(BIN)/uv
NODE_STAMP := node_modules/.installed

.PHONY: run test lint unit e2e proto proto-check bench bench-smoke bench-peers bench-web promql-compat clean setup lock lock-check breaking \
	web web-gen web-gen-check web-lint web-test web-browser system-deps

setup: $(STAMP) $(NODE_STAMP)

# Bytecode is compiled at install time: where PYTHONDONTWRITEBYTECODE is set (as on this
# machine), every process would otherwise compile numpy, pyarrow, grpc and ours on each start
# (`argus push --help` 2.1 s instead of 1.3 s; the smoke gate's ingest figures 60 % worse).
PY_PACKAGES := agent argus command_side contracts core projectors query_side harness bench tests

# Every Python package comes from requirements/lock.txt (exact versions and hashes); uv itself
# from requirements/tools.txt. `make lock` changes them deliberately.
$(STAMP): requirements/lock.txt requirements/tools.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/tools.txt
	$(UV) pip sync --quiet --compile-bytecode --python $(BIN)/python --require-hashes requirements/tools.txt requirements/lock.txt
	$(UV) pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .
	$(UV) pip check --python $(BIN)/python
	$(BIN)/python -m compileall -q -j 0 $(PY_PACKAGES)
	touch $@

# Re-resolve the locks from pyproject.toml, keeping today's pins where they still fit;
# `make lock UPGRADE=1` moves everything to the newest allowed versions.
LOCK_FLAGS := --quiet --universal --python-version 3.11 --generate-hashes $(if $(UPGRADE),--upgrade)
lock:
	test -x $(UV) || { $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/tools.txt; }
	$(UV) pip compile $(LOCK_FLAGS) requirements/tools.in -o requirements/tools.txt
	$(UV) pip compile $(LOCK_FLAGS) --extra dev pyproject.toml requirements/build.in -o requirements/lock.txt

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $@

run: $(STAMP) web
	$(BIN)/argus up

# The dashboards app (frontends/web): its own package.json/package-lock.json, built by Vite
# into frontends/web/dist, which `argus up` serves at / on the HTTP port (rebuilt when a source
# changes). Its TypeScript client is generated from contracts/ by buf + protoc-gen-es.
WEB := frontends/web
WEB_STAMP := $(WEB)/node_modules/.installed
WEB_SRC := $(shell find $(WEB)/src -type f 2>/dev/null) $(WEB)/index.html $(WEB)/vite.config.ts $(WEB)/tsconfig.json

$(WEB_STAMP): $(WEB)/package.json $(WEB)/package-lock.json
	cd $(WEB) && npm ci --no-audit --no-fund --silent
	touch $@

$(WEB)/dist/index.html: $(WEB_STAMP) $(WEB_SRC)
	cd $(WEB) && npm run --silent build
	touch $@

web: $(WEB)/dist/index.html

web-gen: $(WEB_STAMP)
	cd $(WEB) && npm run --silent gen

# Regenerate the TS client and fail if the committed one differs from contracts/.
web-gen-check: web-gen
	@git diff --exit-code -- $(WEB)/src/gen || { echo "generated TypeScript client is stale: run 'make web-gen' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- $(WEB)/src/gen)" || { git status --porcelain -- $(WEB)/src/gen; echo "untracked generated files: run 'make web-gen' and commit"; exit 1; }

web-lint: $(WEB_STAMP)
	cd $(WEB) && npm run --silent lint && npm run --silent typecheck

web-test: $(WEB_STAMP)
	cd $(WEB) && npm run --silent test

# Debian packages the tests drive, installed when missing (we are root): chromium for the
# browser tests (Playwright's own browser download needs a CDN that is not reachable here) and
# prometheus for the PromQL oracle and the remote-write e2e. Installed before pytest starts, so
# parallel test workers never race for apt's lock.
SYSTEM_PACKAGES := chromium prometheus

system-deps:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do command -v $$p >/dev/null || echo $$p; done); \
	test -z "$$missing" || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; }

proto: $(STAMP) $(NODE_STAMP)
	$(BIN)/python contracts/generate.py

# Regenerate and fail if the committed generated code differs from its .proto sources.
proto-check: proto
	@git diff --exit-code -- contracts || { echo "generated protobuf code is stale: run 'make proto' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- contracts)" || { git status --porcelain -- contracts; echo "untracked generated files: run 'make proto' and commit"; exit 1; }

# The lock must still be what pyproject.toml resolves to (a dependency added without `make lock` fails here).
lock-check: $(STAMP)
	@tmp=$$(mktemp -d) && cp requirements/*.txt "$$tmp"/ && \
	$(UV) pip compile $(LOCK_FLAGS) --extra dev pyproject.toml requirements/build.in -o "$$tmp/lock.txt" && \
	diff -q <(grep -v '^#' requirements/lock.txt) <(grep -v '^#' "$$tmp/lock.txt") >/dev/null || \
	{ diff <(grep -v '^#' requirements/lock.txt) <(grep -v '^#' "$$tmp/lock.txt") | head -20; echo "requirements/lock.txt is stale: run 'make lock' and commit"; exit 1; }

# Contracts change only by addition: compare with the foundation commit, so every change since
# is checked (a deliberate v2 moves this baseline). Needs the full history, not a shallow clone.
BUF_BASELINE := 605e03b13161387cea35796c3e7f48fd7b77cb63
breaking: $(NODE_STAMP)
	@git cat-file -e '$(BUF_BASELINE)^{commit}' 2>/dev/null || { echo "buf breaking needs the commit $(BUF_BASELINE): run 'git fetch --unshallow'"; exit 1; }
	node_modules/.bin/buf breaking --against '.git#ref=$(BUF_BASELINE)'

lint: $(STAMP) $(NODE_STAMP) lock-check proto-check breaking web-gen-check web-lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports
	node_modules/.bin/buf lint

unit: $(STAMP)
	$(BIN)/pytest tests/unit tests/contract -q

e2e: $(STAMP) web system-deps
	$(BIN)/pytest tests/e2e -q -n 2 --dist loadscope

# tests/e2e/test_web_app.py (in the pytest run) is the app's browser tests.
# The suite runs on both cores (pytest-xdist): most tests wait on the processes they start.
test: lint web-test web system-deps
	$(BIN)/pytest -q -n 2 --dist loadscope
	$(MAKE) bench-smoke

bench: $(STAMP)
	$(BIN)/python -m bench.run

bench-smoke: $(STAMP)
	$(BIN)/python -m bench.run --smoke

# Argus beside VictoriaMetrics, Prometheus and InfluxDB (Debian packages, installed if missing).
bench-peers: $(STAMP)
	$(BIN)/python -m bench.peers_run

# The dashboards app in headless chromium: time to draw 12 panels x 1,000 series per range,
# and memory in live mode (BENCH_WEB_ARGS="--soak-minutes 30" for the soak).
bench-web: $(STAMP) web system-deps
	$(BIN)/python -m bench.bench_web $(BENCH_WEB_ARGS)

# PromQL answers compared with the real Prometheus on the same samples (Debian package
# prometheus, installed with apt-get if missing); report per construct.
promql-compat: $(STAMP)
	$(BIN)/python -m bench.promql_compat --report bench/results/promql-compat.txt

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache $(WEB)/node_modules $(WEB)/dist
