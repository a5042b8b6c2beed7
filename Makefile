# Two commands set up everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
DEMO_STAMP := $(VENV)/.installed

.PHONY: demo install test lint typecheck pytest system-deps venv bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(DEMO_STAMP)

venv: $(STAMP)

# .venv with Publisher alone (no dev extras): `. .venv/bin/activate` then puts
# `publisher` on the PATH, as README.md's "Using it" does.
install: $(DEMO_STAMP)

# Debian packages the tests need: PostgreSQL (throwaway cluster), Chromium (browser
# tests) and Postfix's smtp-sink (delivery benchmark). Installed only when missing.
system-deps:
	@bash .ci/system-deps

demo: $(DEMO_STAMP)
	$(BIN)/publisher demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check publisher subscribers tests benchmarks
	$(BIN)/ruff format --check publisher subscribers tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) system-deps
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

bench: $(STAMP) system-deps
	for script in benchmarks/*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
