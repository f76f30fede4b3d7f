# Two commands a fresh clone needs:  `make run` (the studio) and `make test` (the whole suite).
# Each installs what it needs into .venv first (torch is pinned to the CPU wheel, see pyproject.toml).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: install run demo test test-fast lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]" "torch==2.13.0"  # the CPU wheel; GPUs: pip install -e ".[vllm]"
	rm -f $(VENV)/.installed-* && touch $@

## run: the whole studio on this machine (SQLite, embedded broker, one worker, web UI at /ui)
run: install
	$(BIN)/gad-studio up --host $(HOST) --port $(PORT)

## demo: the command-line demo (a short GAD run on the CPU, no web server)
demo: install
	@test -d runs/demo/tiny-model || $(BIN)/gad-studio tiny-model runs/demo/tiny-model
	$(BIN)/gad-studio train --config examples/demo.yaml

## test: lint, then the whole test suite (offline; real processes, real sockets, real Chromium)
test: install
	$(BIN)/ruff check .
	bash scripts/ensure_chromium.sh
	$(BIN)/python -m pytest -q

## test-fast: everything but the slow end-to-end tests
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

## lint: ruff over the tree (its settings are in pyproject.toml); reports, changes nothing
lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python bench/gad_overhead.py
	$(BIN)/python bench/api_load.py

clean:
	rm -rf $(VENV) runs .pytest_cache
