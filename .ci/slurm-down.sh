#!/usr/bin/env bash
# Stop the daemons .ci/slurm-up.sh started, and only those: each pid in $SLURM_CI_STATE/pids
# is signalled only while it still runs the program recorded next to it.
set -euo pipefail
STATE=${SLURM_CI_STATE:-/tmp/harmdrift-slurm}
if [ ! -f "$STATE/pids" ]; then
    echo "slurm-down.sh: nothing to stop ($STATE/pids not found)"
    exit 0
fi
# Reverse order: slurmd, slurmctld, then munged (which they authenticate through).
tac "$STATE/pids" | while read -r name pid; do
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
        kill "$pid"
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        echo "slurm-down.sh: stopped $name ($pid)"
    else
        echo "slurm-down.sh: $name ($pid) no longer running"
    fi
done
rm -f "$STATE/pids"
