# Set-up is automatic: `make run` and `make test` create .venv and install the project on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run lint test test-all bench clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	# torch first, pinned to the CPU build, so no dependency pulls a CUDA build
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[test,scale]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/arxiv-digest run

# ruff (style, bugs, imports) and mypy (strict on recommender/, see pyproject.toml) over the whole tree
lint: $(STAMP)
	status=0; $(BIN)/ruff check . || status=1; $(BIN)/mypy || status=1; exit $$status

test: lint
	$(BIN)/python -m pytest

test-all: $(STAMP)
	$(BIN)/python -m pytest -m ""

bench: $(STAMP)
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
