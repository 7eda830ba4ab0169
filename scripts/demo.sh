#!/usr/bin/env bash
# The main job on generated data: train a small MobileNetV1 on synthetic wake-word images and profile it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/demo}
board=${2:-cortex-m}
T=.venv/bin/tinyml
$T train --data synthetic --epochs 3 --out "$out/train"
$T profile "$out/train/best.pt"
