#!/usr/bin/env bash
# Set up (first time) and run the whole pipeline on the default, offline profile.
# Extra arguments go to snakemake, e.g. ./run.sh --configfile config/smoke.yaml
set -euo pipefail
cd "$(dirname "$0")"
./install.sh
. .venv/bin/activate
exec snakemake --cores all "$@"
