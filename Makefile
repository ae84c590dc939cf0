# The two commands of the README. Everything else here is what they need.
#   make demo  -- install, then ingest the example prompts with the bundled demo model into the embedded store
#                 and print a cross-prompt query
#   make test  -- install (Python packages + the Neo4j test harness jars), then run the whole test suite
# For developers: make test-fast (no Neo4j, nothing marked slow: the inner loop), make lint (ruff + mypy).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SCD := $(VENV)/bin/scd
DEMO_STORE ?= demo-store

.PHONY: install neo4j-jars demo test test-fast lint bench clean-demo

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

neo4j-jars:
	scripts/neo4j/neo4j-local fetch >/dev/null

demo: install
	$(SCD) ingest examples/prompts.txt --model demo --metric logit --store $(DEMO_STORE)
	$(SCD) features label --model demo --store $(DEMO_STORE)
	$(SCD) query feeders -p token=")" -p order_by=measured --store $(DEMO_STORE) --limit 8
	$(SCD) query drivers -p token=")" --store $(DEMO_STORE) --limit 8

test: install neo4j-jars
	$(PY) -m pytest

test-fast: install
	$(PY) -m pytest -m "not neo4j and not slow and not browser"

lint: install
	$(VENV)/bin/ruff check scd ingest queries tests bench
	$(VENV)/bin/ruff format --check scd ingest queries tests bench
	$(VENV)/bin/mypy

bench: install
	$(PY) bench/discovery.py
	$(PY) bench/ingest.py
	$(PY) bench/queries.py

clean-demo:
	rm -rf $(DEMO_STORE)
