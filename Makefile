# qc: `make demo` runs the main job, `make test` runs the suite. Both set themselves up.
SHELL := /bin/bash
VENV := .venv
# the embedded PostgreSQL/Valkey wheels ship for CPython 3.11-3.13
PYTHON ?= $(shell for p in python3.11 python3.12 python3.13 python3; do \
	if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not (3,11) <= sys.version_info[:2] <= (3,13))' 2>/dev/null; then echo $$p; break; fi; done)
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow test-all lint serve clean help

help:
	@echo "make demo   - the embedded stack, a seeded Bengaluru and the API (main job)"
	@echo "make test   - the test suite on real PostgreSQL and Redis (embedded by default), in"
	@echo "              parallel, without the slow tests; make test-slow: those; make test-all: all"
	@echo "make lint   - ruff and mypy"

$(STAMP): pyproject.toml
	@if [ -z "$(PYTHON)" ]; then \
		echo "qc needs CPython 3.11, 3.12 or 3.13 (the embedded PostgreSQL and Valkey wheels ship for those)."; \
		echo "Install one (e.g. 'apt-get install python3.11' or pyenv) or run: make PYTHON=/path/to/python3.11"; \
		exit 1; fi
	@echo "using $$($(PYTHON) --version) from $$(command -v $(PYTHON))"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/qc demo

serve: $(STAMP)
	$(VENV)/bin/qc serve

# In parallel (pytest-xdist): every worker starts its own embedded stack, or takes its own
# database and Redis db on external servers (tests/conftest.py). Exit code 5 (the selection
# holds no test) is not a failure.
TEST_WORKERS ?= 2
PYTEST = $(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --durations=10

test: $(STAMP)
	$(PYTEST) -m "not slow" $(PYTEST_ARGS) || [ $$? -eq 5 ]

test-slow: $(STAMP)
	$(PYTEST) -m slow $(PYTEST_ARGS) || [ $$? -eq 5 ]

test-all: $(STAMP)
	$(PYTEST) $(PYTEST_ARGS) || [ $$? -eq 5 ]

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .qc .pytest_cache .ruff_cache
