# make demo | make test | make lint | make airflow | make bench  (see README.md)
SHELL := /bin/bash
# A failing command in a pipeline fails the recipe.
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
# Airflow spawns `airflow` subprocesses: the venv's bin must be on PATH.
export PATH := $(BIN):$(PATH)

.PHONY: install demo test lint airflow bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

install: $(VENV)/.installed

demo: install
	@LIFECYCLE_REQUIRE_ERASURE_APPROVAL=false $(BIN)/python -m telco_lifecycle.local.demo

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Style, imports, bugbear, complexity, banned top-level imports (ruff); types over src/ (mypy).
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

airflow: install
	@eval "$$($(BIN)/lifecycle env)" && \
	  $(BIN)/lifecycle migrate && \
	  exec $(BIN)/python -m telco_lifecycle.local.components

bench: install
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

clean:
	-$(BIN)/lifecycle stop-server
	rm -rf $(VENV) .lifecycle reports
