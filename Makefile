# billsync developer commands. `make up` runs the whole local stack; `make test` the suite.
SHELL := /bin/bash
PY := .venv/bin/python
# uv from PyPI, run as a module so it works wherever pip put it (user or global site).
UV ?= python3 -m uv
export KAFKA_BOOTSTRAP_SERVERS ?= 127.0.0.1:9092

.PHONY: setup kafka-up kafka-down up down test test-unit lint typecheck schemas check-schemas \
        bench-router bench-stripe bench-paddle bench-xero bench-batching bench-salesforce \
        screenshots soak bench-monitor clean

setup: .venv/.synced

.venv/.synced: pyproject.toml uv.lock
	@python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet --user uv \
		|| python3 -m pip install --quiet uv
	$(UV) sync --frozen --python python3.11
	@touch $@

kafka-up:
	deploy/kafka/scripts/kafka.sh up

kafka-down:
	deploy/kafka/scripts/kafka.sh down

# The local stack: broker, topics, services, fake providers, sample configurations and bills.
up: setup kafka-up
	deploy/local/stack.sh up

down:
	-deploy/local/stack.sh down
	deploy/kafka/scripts/kafka.sh down

test: setup
	deploy/ci/test.sh

test-unit: setup
	$(PY) -m pytest tests/unit tests/fakes -q

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

typecheck: setup
	.venv/bin/mypy

schemas: setup
	$(PY) -m shared.schemas write

check-schemas: setup
	$(PY) -m shared.schemas check

bench-router: setup kafka-up
	$(PY) -m benchmarks.router

bench-stripe: setup kafka-up
	$(PY) -m benchmarks.stripe

bench-paddle: setup kafka-up
	$(PY) -m benchmarks.paddle

bench-salesforce: setup kafka-up
	$(PY) -m benchmarks.salesforce

# Screenshots of the console's main pages into docs/console/ (uses the running broker named
# by KAFKA_BOOTSTRAP_SERVERS and the system Chromium: deploy/ci/install-browser.sh).
screenshots: setup kafka-up
	$(PY) -m tests.browser.screenshots

# Batch path, limits and two instances (about 5 minutes: 2-minute batched window).
bench-batching: setup kafka-up
	$(PY) -m benchmarks.batching

bench-xero: setup
	$(PY) -m benchmarks.xero

# Issue 7's fault soak (a few minutes): 5xx, drops after commit, kill -9, rebalances.
soak: setup kafka-up
	$(PY) -m benchmarks.soak

bench-monitor: setup kafka-up
	$(PY) -m benchmarks.monitor

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache .local
