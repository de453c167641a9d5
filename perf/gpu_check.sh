#!/usr/bin/env bash
# The prepared QLoRA check (issues 11 and 31): the pipeline's own QLoRA path on a tiny random Llama
# built at run time: train_adapter with student.quantization 4bit (NF4, double quantisation,
# computing in the resolved dtype), the student's generation rule through HFChatBackend on the
# 4-bit base + adapter with forced-choice scores, the provenance records (train_config.json,
# each answer's decoding record), tokens/s of NF4 against the unquantised arm (bf16 on a GPU),
# the per-item seeded-stream check, peak GPU memory and peak RSS. Needs no internet; a hard cap
# stops it at 9 minutes (540 s), inside the device machine's 10-minute call limit. See
# perf/gpu_check.py.
#
#   bash perf/gpu_check.sh                 # one CUDA GPU; summary in $OUT/gpu_check.json or ./gpu_check.json
#   bash perf/gpu_check.sh --device cpu    # the same path on the CPU, GPU-only measurements skipped
#
# bitsandbytes is not preinstalled on the device machine: a wheel carried in .whl/ (e.g.
# .whl/bitsandbytes-0.50.2-*.whl; .whl/ is git-ignored, name it in the run's carry) is installed
# into /tmp/site without the network. PYTHON picks the interpreter (default: .venv/bin/python
# when there is one, else python3). GPU_CHECK_DEVICE=cpu is --device cpu. Exit status: 0
# passed, 1 a step failed, 2 no CUDA device (device cuda), 124 over the time cap.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z ${PYTHON:-} && -x .venv/bin/python ]]; then
    PYTHON=.venv/bin/python
fi
PY=${PYTHON:-python3}
SITE=${GPU_CHECK_SITE:-/tmp/site}
CAP_S=${GPU_CHECK_CAP_S:-540}

shopt -s nullglob
wheels=(.whl/*.whl)
if ((${#wheels[@]})) && ! "$PY" -c "import bitsandbytes" 2>/dev/null; then
    echo "gpu_check: installing ${wheels[*]} into $SITE (offline)"
    "$PY" -m pip install -q --no-index --no-deps --target "$SITE" "${wheels[@]}"
fi
export PYTHONPATH="$SITE:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1

exec timeout --kill-after=10 "$CAP_S" "$PY" perf/gpu_check.py "$@"
