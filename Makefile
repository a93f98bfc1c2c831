# Argus. `make run` and `make test` each set up what they need (idempotent).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: run test lint unit e2e proto proto-check bench bench-smoke bench-peers clean setup

setup: $(STAMP) $(NODE_STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $@

run: $(STAMP)
	$(BIN)/argus up

proto: $(STAMP)
	$(BIN)/python contracts/generate.py

# Regenerate and fail if the committed generated code differs from its .proto sources.
proto-check: proto
	@git diff --exit-code -- contracts || { echo "generated protobuf code is stale: run 'make proto' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- contracts)" || { git status --porcelain -- contracts; echo "untracked generated files: run 'make proto' and commit"; exit 1; }

lint: $(STAMP) $(NODE_STAMP) proto-check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
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

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache
