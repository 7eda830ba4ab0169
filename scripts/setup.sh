#!/usr/bin/env bash
# Idempotent setup: Debian toolchain (arm-none-eabi-gcc, newlib, QEMU) and the pinned Python venv.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS="gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm gcc"
missing=""
for p in $DEBS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "setup: missing Debian packages:$missing" >&2
    echo "setup: run as root: apt-get update && apt-get install -y$missing" >&2
    exit 1
  fi
fi

PY=${PYTHON:-python3}
command -v "$PY" >/dev/null || { echo "setup: $PY not found: install Python 3.11 and run  PYTHON=python3.11 make setup" >&2; exit 1; }
"$PY" scripts/check_python.py
if [ -x .venv/bin/python ]; then .venv/bin/python scripts/check_python.py || { echo "setup: .venv was made with another Python: remove it (rm -rf .venv) and run make setup again" >&2; exit 1; }; fi
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.tinyml-installed
if [ ! -f "$stamp" ] || [ requirements.txt -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing pinned Python packages (first time takes a few minutes)"
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -r requirements.txt
  .venv/bin/pip install -q --no-deps -e .
  touch "$stamp"
fi
# The cycle profiler's QEMU plugin (tinyml/cycles/qemu_prof.c), built with the host gcc (`tinyml bench --cycles`
# rebuilds it on first use when missing or older than its source).
.venv/bin/python -c "from tinyml.cycles.plugin import build_plugin; build_plugin()"
echo "setup: ok ($(.venv/bin/python --version), $(arm-none-eabi-gcc --version | head -1), $(qemu-system-arm --version | head -1))"
