#!/usr/bin/env bash
# Stop the cluster that start.sh started from DIR: cancel its jobs, then end exactly the daemons whose
# PIDs it recorded in DIR/pids (the slurmd, slurmctld, munged, in that order).
set -uo pipefail
DIR="${1:?usage: stop.sh DIR}"
[ -f "$DIR/pids" ] || exit 0
export SLURM_CONF="$DIR/slurm.conf"
pids_of() { awk -v n="$1" '$1 == n {print $2}' "$DIR/pids"; }
if kill -0 "$(pids_of slurmctld)" 2>/dev/null; then
    # A job's processes belong to slurmstepd, not to the daemons: cancel the jobs so none outlives the cluster.
    scancel --full --signal=KILL --quiet --user="$(id -un)" 2>/dev/null
    scancel --quiet --user="$(id -un)" 2>/dev/null
    for _ in $(seq 50); do [ -z "$(squeue -h -t R,CG -o %i 2>/dev/null)" ] && break; sleep 0.2; done
fi
for name in slurmd slurmctld munged; do
    for pid in $(pids_of "$name"); do
        kill -TERM "$pid" 2>/dev/null || continue
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    done
done
rm -f "$DIR/pids"
