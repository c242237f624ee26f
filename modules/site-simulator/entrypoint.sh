#!/bin/sh
# The site simulator as an IoT Edge module: its devices listen on every interface of the module's network,
# so the asset modules reach them as simulator:15020… (the module name is its host name on azure-iot-edge).
# The image also runs the emulator (entrypoint energy-edge, command hub: deployment/docker-compose.yml).
set -eu
exec energy-edge sim --host 0.0.0.0 --data-dir /app/data \
    --scenario "${SIM_SCENARIO:-default}" --accel "${SIM_ACCEL:-1}" "$@"
