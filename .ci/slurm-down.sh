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
        # Gone, or a zombie nobody reaps (no init in a container): either way stopped.
        for _ in $(seq 300); do
            state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)
            [ -z "$state" ] || [ "$state" = Z ] && break
            sleep 0.1
        done
        if [ -n "$state" ] && [ "$state" != Z ]; then
            kill -KILL "$pid" 2>/dev/null || true
            echo "slurm-down.sh: killed $name ($pid), which ignored SIGTERM for 30 s"
        else
            echo "slurm-down.sh: stopped $name ($pid)"
        fi
    else
        echo "slurm-down.sh: $name ($pid) no longer running"
    fi
done
rm -f "$STATE/pids"
