# Two commands a fresh clone needs:  `make run` (the demo / studio) and `make test` (the whole suite).
# Each installs what it needs into .venv first (torch is pinned to the CPU wheel, see pyproject.toml).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
DEMO   := runs/demo

.PHONY: install run demo test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	rm -f $(VENV)/.installed-* && touch $@

## run: a short demo distillation on the CPU (tiny offline model, bundled prompts + teacher responses)
run: install
	@test -d $(DEMO)/tiny-model || $(BIN)/gad-studio tiny-model $(DEMO)/tiny-model
	$(BIN)/gad-studio train --config examples/demo.yaml
	@echo "Demo results in $(DEMO)/gad: metrics.jsonl, samples.jsonl, checkpoints/ (run again to resume or re-use)"

## test: the whole test suite (offline; real processes, real sockets)
test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/gad_overhead.py

clean:
	rm -rf $(VENV) runs .pytest_cache
