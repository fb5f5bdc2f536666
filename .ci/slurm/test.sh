#!/usr/bin/env bash
# Start the single-node SLURM cluster (if needed) and run the SLURM tests against it.
# Usage (from anywhere, as root or with passwordless sudo):  .ci/slurm/test.sh [pytest args]
# Uses `python` from PATH (activate the environment that has spheroseg and snakemake first).
# On failure, prints the end of the scheduler's logs. A dedicated --basetemp keeps other pytest
# sessions on a shared machine from pruning this run's folders while its jobs still use them.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ $(id -u) -eq 0 ]]; then
    .ci/slurm/setup.sh
else
    sudo -n .ci/slurm/setup.sh
fi
status=0
SPHEROSEG_REQUIRE_SLURM=1 python -m pytest tests/workflow/test_slurm_profiles.py tests/workflow/test_slurm.py \
    -p no:cacheprovider --basetemp="${TMPDIR:-/tmp}/spheroseg-slurm-tests" "$@" || status=$?
if [[ $status -ne 0 ]]; then
    for log in /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log /var/log/slurm/jobcomp.log \
               /var/log/slurm/task_env.log; do
        echo "---- tail of $log" >&2
        tail -n 40 "$log" >&2 || true
    done
    squeue --states=all -o '%i %P %T %k' >&2 || true
fi
exit $status
