#!/usr/bin/env bash
# Set up (first time) and run every check: lint, workflow lint and dry-run, then the test
# tiers in order, fastest first (pyproject's testpaths): tests/unit, tests/workflow, tests/e2e
# (tests/cluster only with -m slurm). Pass pytest arguments to narrow it, e.g.
# ./test.sh -m "not slow". The fast tier alone, without the checks: python -m pytest tests/unit
set -euo pipefail
cd "$(dirname "$0")"
./install.sh
. .venv/bin/activate
ruff check src scripts tests perf
ruff format --check src scripts tests perf
vulture src scripts perf tests/vulture_whitelist.py --min-confidence 60  # dead code; see the whitelist
snakefmt --check Snakefile rules/
snakemake --lint
snakemake -n --quiet rules >/dev/null
python -m pytest "$@"
