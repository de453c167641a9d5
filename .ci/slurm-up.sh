#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine for tests/cluster (CI: root, Debian, no
# systemd). Installs Debian's SLURM if it is missing, writes slurm.conf and gres.conf for
# this host (two fake GPUs backed by /dev/null and /dev/zero), and starts munged,
# slurmctld and slurmd. The pids of exactly the daemons started here are recorded in
# $SLURM_CI_STATE/pids, which .ci/slurm-down.sh stops. Re-running it on a live cluster
# started by this script does nothing.
set -euo pipefail
STATE=${SLURM_CI_STATE:-/tmp/harmdrift-slurm}
CONF_DIR=/etc/slurm

if [ "$(id -u)" != 0 ]; then
    echo "slurm-up.sh: must run as root (it installs packages and starts daemons)" >&2
    exit 1
fi

if [ -s "$STATE/pids" ] && sinfo -h >/dev/null 2>&1; then
    echo "slurm-up.sh: cluster already up (pids in $STATE/pids)"
    exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    echo "slurm-up.sh: installing slurmctld slurmd slurm-client munge from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi

HOST=$(hostname -s)
CPUS=$(nproc)
# RealMemory must not exceed what slurmd detects, or the node is drained at once.
REAL_MEM=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
REAL_MEM=$((REAL_MEM - 512))
mkdir -p "$STATE" "$CONF_DIR" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm

# A key of our own, unless the machine already has one.
if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge

cat >"$CONF_DIR/slurm.conf" <<CONF
# Written by .ci/slurm-up.sh for a one-node test cluster on $HOST.
ClusterName=harmdrift-ci
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
# No cgroups without systemd: track processes by parent pid, bind no tasks.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, a job without --mem would take the whole node's memory.
DefMemPerCPU=1024
# Reject a job that no partition could ever run at submission, instead of leaving it
# PENDING forever (Snakemake would wait on it for good).
EnforcePartLimits=ALL
# No slurmdbd: Snakemake polls squeue, which keeps finished jobs for MinJobAge seconds
# (at least 3x the plugin's init-seconds-before-status-checks; 2 h keeps a whole test run
# visible to the test).
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=7200
ReturnToService=2
SchedulerType=sched/backfill
GresTypes=gpu
NodeName=$HOST CPUs=$CPUS RealMemory=$REAL_MEM Gres=gpu:2 State=UNKNOWN
PartitionName=ci Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF

# Two fake GPUs: SLURM only needs a device file per card to hand out CUDA_VISIBLE_DEVICES.
cat >"$CONF_DIR/gres.conf" <<CONF
NodeName=$HOST Name=gpu File=/dev/null
NodeName=$HOST Name=gpu File=/dev/zero
CONF

: >"$STATE/pids"
# A munged that already answers (the machine's own) is used and left alone.
if ! munge -n </dev/null >/dev/null 2>&1; then
    rm -f /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do
        [ -s /run/munge/munged.pid ] && break
        sleep 0.1
    done
    echo "munged $(cat /run/munge/munged.pid)" >>"$STATE/pids"
fi
/usr/sbin/slurmctld
/usr/sbin/slurmd
for _ in $(seq 50); do
    [ -s "$STATE/slurmctld.pid" ] && [ -s "$STATE/slurmd.pid" ] && break
    sleep 0.2
done
echo "slurmctld $(cat "$STATE/slurmctld.pid")" >>"$STATE/pids"
echo "slurmd $(cat "$STATE/slurmd.pid")" >>"$STATE/pids"

# Wait until the node takes jobs.
for _ in $(seq 60); do
    if sinfo -h -N -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
        sinfo -N -o '%N %c %m %G %T'
        echo "slurm-up.sh: cluster up (pids in $STATE/pids)"
        exit 0
    fi
    sleep 0.5
done
echo "slurm-up.sh: node did not become idle; see $STATE/slurmctld.log and $STATE/slurmd.log" >&2
sinfo -N -l >&2 || true
exit 1
