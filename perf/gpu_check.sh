#!/usr/bin/env bash
# The prepared GPU check (issue 11): QLoRA steps through the project's training code, NF4 and
# bf16 generation through its engine with tokens/s, the per-item seeded-stream check and peak
# GPU memory, all on a tiny random Llama built at run time. Needs no internet; finishes well
# within 8 minutes on one GPU (a hard cap stops it at 7m50s). See perf/gpu_check.py.
#
#   bash perf/gpu_check.sh        # from anywhere; summary in $OUT/gpu_check.json or ./gpu_check.json
#
# bitsandbytes is not preinstalled on the device machine: a wheel carried in .whl/ (e.g.
# .whl/bitsandbytes-0.50.2-*.whl) is installed into /tmp/site without the network.
# PYTHON picks the interpreter (default: python3). Exit status: 0 passed, 1 a step failed,
# 2 no CUDA device, 124 over the time cap.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
SITE=${GPU_CHECK_SITE:-/tmp/site}

shopt -s nullglob
wheels=(.whl/*.whl)
if ((${#wheels[@]})) && ! "$PY" -c "import bitsandbytes" 2>/dev/null; then
    echo "gpu_check: installing ${wheels[*]} into $SITE (offline)"
    "$PY" -m pip install -q --no-index --no-deps --target "$SITE" "${wheels[@]}"
fi
export PYTHONPATH="$SITE:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

exec timeout --kill-after=10 470 "$PY" perf/gpu_check.py "$@"
