# Argus. `make run` and `make test` each set up what they need (idempotent).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV := $(BIN)/uv
NODE_STAMP := node_modules/.installed

.PHONY: run test lint unit e2e proto proto-check bench bench-smoke bench-peers promql-compat clean setup lock lock-check breaking

setup: $(STAMP) $(NODE_STAMP)

# Every Python package comes from requirements/lock.txt (exact versions and hashes); uv itself
# from requirements/tools.txt. `make lock` changes them deliberately.
$(STAMP): requirements/lock.txt requirements/tools.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/tools.txt
	$(UV) pip sync --quiet --python $(BIN)/python --require-hashes requirements/tools.txt requirements/lock.txt
	$(UV) pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .
	$(UV) pip check --python $(BIN)/python
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

run: $(STAMP)
	$(BIN)/argus up

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

lint: $(STAMP) $(NODE_STAMP) lock-check proto-check breaking
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports
	node_modules/.bin/buf lint

unit: $(STAMP)
	$(BIN)/pytest tests/unit tests/contract -q

e2e: $(STAMP)
	$(BIN)/pytest tests/e2e -q

test: lint
	$(BIN)/pytest -q
	$(MAKE) bench-smoke

bench: $(STAMP)
	$(BIN)/python -m bench.run

bench-smoke: $(STAMP)
	$(BIN)/python -m bench.run --smoke

# Argus beside VictoriaMetrics, Prometheus and InfluxDB (Debian packages, installed if missing).
bench-peers: $(STAMP)
	$(BIN)/python -m bench.peers_run

# PromQL answers compared with the real Prometheus on the same samples (Debian package
# prometheus, installed with apt-get if missing); report per construct.
promql-compat: $(STAMP)
	$(BIN)/python -m bench.promql_compat --report bench/results/promql-compat.txt

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache
