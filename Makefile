# tinyml — the two commands a newcomer needs are `make demo` and `make test` (both set everything up first).
PY      := .venv/bin/python
TINYML  := .venv/bin/tinyml
DEMO    ?= runs/demo
BOARD   ?= cortex-m

.PHONY: setup demo test test-fast lint flash doctor clean

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh $(DEMO) $(BOARD)

test: setup
	@.venv/bin/pytest -q

test-fast: setup
	@.venv/bin/pytest -q -m "not slow"

lint: setup
	@.venv/bin/ruff check tinyml tests

flash: setup
	@$(MAKE) -C firmware flash BOARD=$(BOARD) MODEL=$(MODEL)

doctor: setup
	@$(TINYML) doctor

clean:
	rm -rf runs build .pytest_cache
