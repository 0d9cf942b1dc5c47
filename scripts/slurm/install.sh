#!/usr/bin/env bash
# Install Debian's SLURM (slurm-wlm) and MUNGE when they are missing; do nothing when they are there.
# The tests' cluster (start.sh) needs munged, slurmctld, slurmd and the client commands.
set -euo pipefail
need=()
for cmd in munged slurmctld slurmd sbatch; do
    command -v "$cmd" >/dev/null 2>&1 || need+=("$cmd")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "error: ${need[*]} not found and cannot be installed here (needs root and apt-get)." >&2
    echo "Install them yourself: sudo apt-get install slurm-wlm munge" >&2
    exit 1
fi
echo "installing slurm-wlm and munge (missing: ${need[*]})" >&2
apt-get update -qq
# policy-rc.d exit 101: the packages' own services (system-wide munged, slurmd) are not started;
# start.sh runs private ones.
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$POLICY" && chmod +x "$POLICY"
    trap 'rm -f "$POLICY"' EXIT
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
