#!/usr/bin/env bash
# Make sure a Docker engine answers: start dockerd in the background (as root) when none does.
set -euo pipefail
docker info >/dev/null 2>&1 && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "no Docker engine answers and only root can start dockerd here: start Docker, then retry" >&2
    exit 1
fi
log=${DOCKERD_LOG:-/tmp/digits-dockerd.log}
echo "starting dockerd (log: $log)"
nohup dockerd >"$log" 2>&1 &
for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && exit 0
    sleep 1
done
echo "dockerd did not answer within 60 s; see $log" >&2
exit 1
