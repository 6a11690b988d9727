# Every target builds its own .venv: a fresh clone needs nothing else.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_LEADS ?= 1500

# Debian's prometheus package gives the tests a real Prometheus server and promtool.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: venv tools lint test unit integration chaos demo schemas clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

tools:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null || { \
	  echo "installing Debian's prometheus package (promtool and a server for tests)"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends prometheus >/dev/null; }

lint: $(STAMP)
	$(BIN)/ruff check router tests
	$(BIN)/ruff format --check router tests
	$(BIN)/mypy

test: lint tools
	$(BIN)/pytest -m "unit or integration" -q

unit: $(STAMP) tools
	$(BIN)/pytest -m unit -q

integration: $(STAMP) tools
	$(BIN)/pytest -m integration -q

chaos: $(STAMP)
	$(BIN)/pytest -m slow -q -s

demo: $(STAMP)
	$(BIN)/router demo --leads $(DEMO_LEADS)

schemas: $(STAMP)
	$(BIN)/router topics export

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
