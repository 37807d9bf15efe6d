# FLK: `make run` starts the embedded default; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# `make run` installs only what the service needs (requirements.txt); `make venv`, and with it test,
# lint and the benchmarks, adds the tools of requirements-dev.txt.
RUNTIME_STAMP := $(VENV)/.installed-runtime-stamp
DEV_STAMP := $(VENV)/.installed-dev-stamp

.PHONY: run test lint format bench loadtest services venv venv-runtime clean

venv: $(DEV_STAMP)

venv-runtime: $(RUNTIME_STAMP)

$(RUNTIME_STAMP): requirements.txt sdk/python/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	touch $(RUNTIME_STAMP)

$(DEV_STAMP): $(RUNTIME_STAMP) requirements-dev.txt
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $(DEV_STAMP)

run: venv-runtime
	deployments/local/run.sh

services:
	deployments/local/ensure-services.sh

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: venv services lint
	$(BIN)/python -m pytest

bench: venv services
	$(BIN)/python -m bench.ingest_bench
	$(BIN)/python -m bench.batch_bench
	$(BIN)/python -m bench.audit_append_bench
	$(BIN)/python -m bench.policy_bench
	$(BIN)/python -m bench.report_bench
	$(BIN)/python -m bench.region_bench
	BENCH_TIER_RECORDS=1000000 $(BIN)/python -m bench.tier_bench

loadtest: venv services
	$(BIN)/python -m bench.loadtest

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
