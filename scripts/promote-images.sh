#!/usr/bin/env bash
# Promote the images a build pushed to one registry into another (az acr import: no pull/push through the agent).
#   scripts/promote-images.sh SOURCE_REGISTRY TARGET_REGISTRY CONTAINER_TAG
# Every module.json x platform, tagged {version}-{CONTAINER_TAG}-{platform} as the Build stage tagged them.
set -euo pipefail
source_registry=$1 target_registry=$2 container_tag=$3
cd "$(dirname "$0")/.."
python3 scripts/pipeline_matrix.py images --json | python3 -c '
import json, sys
for entry in json.load(sys.stdin).values():
    print(entry["moduleFolder"], entry["version"], entry["platform"])
' | while read -r module version platform; do
  image="${module}:${version}-${container_tag}-${platform}"
  echo "importing ${source_registry}.azurecr.io/${image} into ${target_registry}"
  az acr import --name "$target_registry" --source "${source_registry}.azurecr.io/${image}" --image "$image" --force
done
