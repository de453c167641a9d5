#!/usr/bin/env bash
# Set up (first time) and run every check: lint, workflow lint and dry-run, unit and
# end-to-end tests. Pass pytest arguments to narrow it, e.g. ./test.sh -m "not slow".
set -euo pipefail
cd "$(dirname "$0")"
./install.sh
. .venv/bin/activate
ruff check src scripts tests perf
ruff format --check src scripts tests perf
snakefmt --check Snakefile rules/
snakemake --lint
snakemake -n --quiet rules >/dev/null
python -m pytest "$@"
