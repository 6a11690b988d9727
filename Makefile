# Every target builds its own .venv: a fresh clone needs nothing else.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_LEADS ?= 1500

.PHONY: venv lint test unit integration chaos demo schemas clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check router tests
	$(BIN)/ruff format --check router tests
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -m "unit or integration" -q

unit: $(STAMP)
	$(BIN)/pytest -m unit -q

integration: $(STAMP)
	$(BIN)/pytest -m integration -q

chaos: $(STAMP)
	$(BIN)/pytest -m slow -q -s

demo: $(STAMP)
	$(BIN)/router demo --leads $(DEMO_LEADS)

schemas: $(STAMP)
	$(BIN)/router topics export

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
