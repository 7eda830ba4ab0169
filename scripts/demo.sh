#!/usr/bin/env bash
# `make demo`: the whole pipeline on generated data and the default emulated board (examples/demo.toml):
# train -> sweep of cut points measured on the board -> int8 quantize -> export -> flash -> bench.
# Ends with the device-measured sweep table and where the plots are. A rerun reuses finished stages.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/demo}
board=${2:-cortex-m}
start=$(date +%s)
.venv/bin/tinyml pipeline --config examples/demo.toml --run-dir "$out" --board "$board"
echo "make demo: $(( ($(date +%s) - start) / 60 )) min $(( ($(date +%s) - start) % 60 )) s wall time"
