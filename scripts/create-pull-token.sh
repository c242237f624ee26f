#!/usr/bin/env bash
# A password for the registry's pull-only token (infra/modules/registry.bicep: token edge-devices, scope map
# edge-pull). Store the output as the secret registryPullPassword in the variable group energy-edge-ENV, and
# registryPullUsername = edge-devices.
#   scripts/create-pull-token.sh REGISTRY_NAME
set -euo pipefail
registry=$1
az acr token credential generate --registry "$registry" --name edge-devices --password1 \
    --query "passwords[0].value" --output tsv
