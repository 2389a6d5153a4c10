#!/usr/bin/env bash
# Start the Docker daemon in the background when none answers (machines without systemd),
# and wait until it does. Needs root; its log goes to ${GEOAI_DOCKERD_LOG:-/var/log/geoai-dockerd.log}.
set -euo pipefail
if docker info >/dev/null 2>&1; then
  exit 0
fi
command -v dockerd >/dev/null 2>&1 || { echo "dockerd not found: apt-get install docker.io" >&2; exit 1; }
log=${GEOAI_DOCKERD_LOG:-/var/log/geoai-dockerd.log}
nohup dockerd >"$log" 2>&1 &
for _ in $(seq 60); do
  if docker info >/dev/null 2>&1; then
    echo "dockerd started (log: $log)" >&2
    exit 0
  fi
  sleep 1
done
echo "dockerd did not start within 60 s; see $log" >&2
tail -20 "$log" >&2
exit 1
