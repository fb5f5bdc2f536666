#!/usr/bin/env bash
# Stop the single-node SLURM cluster started by .ci/slurm/setup.sh (runs as root).
#   --purge   also delete saved job state and the scheduler's logs (fresh job ids next time)
set -euo pipefail
[[ $(id -u) -eq 0 ]] || { echo "teardown.sh: must run as root" >&2; exit 1; }

stop() {  # name pidfile
    local pid
    pid=$(cat "$2" 2>/dev/null) || return 0
    if kill -0 "$pid" 2>/dev/null; then
        echo "[slurm-teardown] stopping $1" >&2
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
        echo "[slurm-teardown] $1 did not stop" >&2
        return 1
    fi
}

stop slurmd /run/slurmd.pid
stop slurmctld /run/slurmctld.pid
stop munged /run/munge/munged.pid
if [[ ${1:-} == --purge ]]; then
    rm -rf /var/spool/slurmctld/* /var/spool/slurmd/* /var/log/slurm/*
fi
