#!/usr/bin/env bash
# Start dockerd in the background when no Docker Engine answers (a CI machine or container has no systemd).
# Idempotent: does nothing when `docker info` already succeeds; a non-root user without a daemon gets a hint.
set -euo pipefail
sock=/var/run/docker.sock
answers() { curl -sf --unix-socket "$sock" http://localhost/_ping >/dev/null 2>&1; }
answers && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "no Docker Engine answers on $sock (as root: bash scripts/start-dockerd.sh)" >&2
  exit 0  # the container tests skip with that reason; the rest of the suite does not need Docker
fi
command -v dockerd >/dev/null 2>&1 || { echo "dockerd missing (apt-get install docker.io)" >&2; exit 1; }
log=/var/log/energy-edge-dockerd.log
echo "starting dockerd in the background (log: $log)"
# setsid: the daemon outlives this shell and the make that ran it
setsid dockerd >>"$log" 2>&1 < /dev/null &
for _ in $(seq 1 120); do
  answers && { echo "dockerd is up"; exit 0; }
  sleep 0.5
done
echo "dockerd did not answer within 60 s; last lines of $log:" >&2
tail -20 "$log" >&2
exit 1
