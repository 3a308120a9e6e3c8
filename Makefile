# The two set-up commands of the README: both create .venv and install clft into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,ray]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)  ## the quickstart: split-digits, 4 strategies x 2 scenarios x 3 seeds
	HF_HUB_OFFLINE=1 $(BIN)/clft run

test: $(STAMP)  ## the whole test suite (set CLFT_DATA_DIR=../shared/data for the real-data tests)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check clft tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
