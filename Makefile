# Two commands on a fresh machine: `make demo` and `make test`. Everything else is set up here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Versions that passed CI: pip installs within them, so a fresh machine gets the same ones.
# `make lock` regenerates the file after a dependency changes in pyproject.toml.
CONSTRAINTS := requirements/constraints.txt
DEMO_DIR ?= demo
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test lint typecheck pytest system-deps serve bench notebooks clean lock

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[dev,spark]'
	touch $(STAMP)

# Every extra, for Linux, macOS and Windows; versions already in the file are kept where they
# still fit (add --upgrade to move everything to the newest).
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --all-extras --universal --python-version 3.11 \
		--quiet -o $(CONSTRAINTS)

system-deps:
	bash scripts/system-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check src api tests bench
	$(BIN)/ruff format --check src api tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) system-deps
	$(BIN)/pytest

test: lint typecheck pytest

demo: $(STAMP)
	bash scripts/demo.sh

# Jupyter on the project's .venv, in notebooks/ (the notebooks extra is installed on first use).
notebooks: $(STAMP)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[notebooks]'
	cd notebooks && ../$(BIN)/jupyter notebook

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) mlflow.db mlruns mlartifacts .pytest_cache .mypy_cache .ruff_cache
