#!/usr/bin/env bash
# The DPS group enrollment of an environment: symmetric keys, IoT Edge devices, tagged with the environment so
# the base deployment (tags.environment='<env>') reaches every device that provisions through it.
#   scripts/create-enrollment-group.sh RESOURCE_GROUP DPS_NAME ENVIRONMENT
# Prints nothing secret; read the group key with:
#   az iot dps enrollment-group show -g RG --dps-name DPS --enrollment-id energy-edge-ENV --show-keys --query attestation.symmetricKey.primaryKey -o tsv
set -euo pipefail
group=$1 dps=$2 environment=$3
az extension add --upgrade --name azure-iot --only-show-errors
az iot dps enrollment-group create \
    --resource-group "$group" --dps-name "$dps" \
    --enrollment-id "energy-edge-$environment" \
    --attestation-type symmetrickey \
    --edge-enabled true \
    --provisioning-status enabled \
    --initial-twin-tags "{\"environment\": \"$environment\"}" \
    --output none
echo "enrollment group energy-edge-$environment ready in $dps"
