# dropload: the two commands of the README, and the checks around them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast emulators bench crash-bench lint typecheck clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

emulators:
	bash scripts/setup-emulators.sh

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

test: $(STAMP) emulators
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not emulator and not slow"

bench: $(STAMP) emulators
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/run.py

crash-bench: $(STAMP)
	$(BIN)/python bench/crash.py --kills 1000

lint: $(STAMP)
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/ruff check src tests bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .venv-bq demo-data .pytest_cache .mypy_cache .ruff_cache
