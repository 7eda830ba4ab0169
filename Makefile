# tinyml — the two commands a newcomer needs are `make demo` and `make test` (both set everything up first).
PY      := .venv/bin/python
TINYML  := .venv/bin/tinyml
DEMO    ?= runs/demo
BOARD   ?= cortex-m

.PHONY: setup demo test test-fast lint flash stop doctor clean fuzz

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

# Stop the emulated boards `make flash` started: the one for MODEL= (and BOARD=), or without MODEL every one
# (each project under firmware/build/ with a QEMU pid file).
stop:
	@if [ -n "$(MODEL)" ]; then $(MAKE) --no-print-directory -C firmware stop BOARD=$(BOARD) MODEL=$(MODEL); \
	else found=; for d in firmware/build/*/; do \
	  if [ -f "$$d/build/qemu.pid" ]; then found=1; $(MAKE) --no-print-directory -C "$$d" stop; fi; done; \
	  [ -n "$$found" ] || echo "tinyml: no emulated board is running (nothing started by make flash)"; fi

# The long fuzz campaign (issue 19): 100,000 front-end mutants, 1,000 compiled under ASan/UBSan vs TFLM,
# 100,000 corrupted device replies; findings land in tests/fuzz_corpus/, figures in runs/fuzz/summary.json.
fuzz: setup
	@$(PY) scripts/fuzz.py

doctor: setup
	@$(TINYML) doctor

clean:
	rm -rf runs build .pytest_cache

# Issue 8 targets table: both shared models on the emulated Cortex-M4 via `tinyml bench` (instructions, arena,
# RAM, flash, per-layer instructions/MAC) beside TFLM's figures; results in runs/bench-models/; est. cycles on
# the M4, M7, M33 and M55, and docs/m4-kernels.md (per-layer cycles/MAC against the kernels' design floors).
.PHONY: bench-models
bench-models: setup
	@$(PY) scripts/bench_models.py --out runs/bench-models --cores --kernels-doc docs/m4-kernels.md

# Issue 17: linked RAM and instructions with --patch off and auto, both models, every emulated board (bit-exact).
.PHONY: bench-boards
bench-boards: setup
	@$(PY) scripts/bench_models.py --boards --out runs/bench-boards

# Training throughput (images/s with 0/1/2 DataLoader workers, one full epoch), dataset-cache build rate and
# RssAnon on a generated 40,000-image folder (~15 min on 2 cores); results in runs/bench-train/.
.PHONY: bench-train
bench-train: setup
	@$(PY) scripts/bench_train.py --out runs/bench-train
