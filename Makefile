# Every target sets itself up: a fresh machine needs nothing but Python 3.11+
# (and root for apt-get, which installs Java/npm and the deploy checkers when missing).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The Kafka 0.9 suite needs aiokafka 0.12.0; it lives in its own venv so that pin
# never leaks into the product's dependency ranges.
VENV09 := .venv-kafka09

.PHONY: test lint typecheck unit deploy-deps kafka09-env test-kafka09 demo bench fuzz schemas docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[service,dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check schemas detectors stream connectors tests benchmarks deploy docs
	$(BIN)/ruff format --check schemas detectors connectors stream benchmarks tests deploy scripts

typecheck: $(STAMP)
	$(BIN)/mypy schemas detectors connectors stream benchmarks deploy tests

deploy-deps:
	bash scripts/deploy-check-deps.sh

unit: $(STAMP) deploy-deps
	$(BIN)/python -m pytest -m "not kafka09"

kafka09-env:
	PYTHON=$(PYTHON) bash scripts/kafka09-env.sh

test-kafka09: kafka09-env
	$(VENV09)/bin/python -m pytest -m kafka09 tests/integration -p no:cacheprovider

test: lint typecheck unit test-kafka09

demo: $(STAMP)
	$(BIN)/llmwatch demo

# The Kafka 0.9 throughput run needs the same broker and venv as test-kafka09.
bench: $(STAMP) kafka09-env
	$(BIN)/python -m benchmarks.run_all

# Differential fuzz of the batch decoders (1M adversarial messages): prints counts as
# JSON and fails on any exception or disagreement. `make test` runs 100k of the same.
fuzz: $(STAMP)
	$(BIN)/python -m benchmarks.fuzz_decode --messages 1000000

schemas: $(STAMP)
	$(BIN)/llmwatch schema export

docs: $(STAMP)
	$(BIN)/python docs/generate.py

clean:
	rm -rf $(VENV) $(VENV09) .mypy_cache .pytest_cache .ruff_cache
