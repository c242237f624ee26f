#!/usr/bin/env bash
# Debian packages the tests and benchmarks use as real peers. Installs only what is missing.
#   mosquitto  a real MQTT broker (microgrid controllers that publish over MQTT; benchmark reference)
#   promtool   Prometheus's checker for exposition text and alert rules; only the binary is needed,
#              taken from Debian's prometheus package into .venv-tools/bin (no server is installed)
#   postgresql the capability history's second database
#   chromium   a real browser (with chromium-driver) for the console's browser tests, driven by Playwright
#   docker.io  Docker Engine: `make images` and the container run (`energy-edge run --containers`);
#              dockerd is started in the background when none answers (CI: a clean machine, no systemd)
#   debootstrap the stand-in base image where the official Python image cannot be pulled
#   docker-compose Debian's Compose (v1): tests/run/test_compose.py brings deployment/docker-compose.yml up
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
# a PostgreSQL server for the capability-history tests (they start their own throwaway cluster)
compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || need+=(postgresql)
# the console's browser tests: Debian's Chromium (tools cannot download browsers of their own here). Where the
# distribution has no such package (Ubuntu ships a snap stub), a Chrome already on the machine is used, or the
# browser tests are skipped and say so.
if ! command -v chromium >/dev/null 2>&1 && ! command -v google-chrome >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && grep -qx 'ID=debian' /etc/os-release 2>/dev/null; then
    need+=(chromium chromium-driver fonts-dejavu-core)
  else
    echo "note: no chromium or google-chrome: the console's browser tests will be skipped" >&2
  fi
fi
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
promtool_missing=0
command -v promtool >/dev/null 2>&1 || [ -x .venv-tools/bin/promtool ] || promtool_missing=1
if [ ${#need[@]} -eq 0 ] && [ $promtool_missing -eq 0 ]; then exec bash scripts/start-dockerd.sh; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing: ${need[*]} $([ $promtool_missing -eq 1 ] && echo promtool) (as root: apt-get install -y mosquitto prometheus chromium chromium-driver docker.io debootstrap docker-compose)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ $promtool_missing -eq 1 ]; then
  echo "extracting promtool from Debian's prometheus package"
  work=$(mktemp -d)
  (cd "$work" && apt-get download -qq prometheus >/dev/null && dpkg -x prometheus_*.deb root)
  mkdir -p .venv-tools/bin
  cp "$work/root/usr/bin/promtool" .venv-tools/bin/promtool
  rm -rf "$work"
  .venv-tools/bin/promtool --version | head -1
fi
exec bash scripts/start-dockerd.sh
