# Every target sets itself up: a fresh machine needs nothing but Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint typecheck unit demo bench schemas clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check schemas detectors stream connectors tests benchmarks
	$(BIN)/ruff format --check schemas detectors connectors

typecheck: $(STAMP)
	$(BIN)/mypy schemas detectors connectors

unit: $(STAMP)
	$(BIN)/python -m pytest

test: lint typecheck unit

demo: $(STAMP)
	$(BIN)/llmwatch demo

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

schemas: $(STAMP)
	$(BIN)/llmwatch schema export

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
