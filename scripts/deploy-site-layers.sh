#!/usr/bin/env bash
# Create one layered deployment per site of an environment: deployment/layered/site.template.json expanded
# with deployment/sites/ENVIRONMENT/<site>.env, targeting the devices tagged with that site.
#   scripts/deploy-site-layers.sh IOT_HUB_NAME CONTAINER_TAG ENVIRONMENT
set -euo pipefail
hub=$1 container_tag=$2 environment=$3
cd "$(dirname "$0")/.."
shopt -s nullglob
sites=(deployment/sites/"$environment"/*.env)
if [ ${#sites[@]} -eq 0 ]; then
  echo "no sites in deployment/sites/$environment/: nothing to layer"
  exit 0
fi
python3 -m pip install --quiet -e shared -e .
az extension add --upgrade --name azure-iot --only-show-errors
for env_file in "${sites[@]}"; do
  site=$(sed -n 's/^SITE_ID=//p' "$env_file")
  out="config/sites/$site"
  energy-edge manifest build --template deployment/layered/site.template.json --env-file "$env_file" \
      --platform amd64 --out-dir "$out"
  az iot edge deployment create --layered \
      --hub-name "$hub" \
      --deployment-id "site-${site}-${container_tag}" \
      --content "$out/site.amd64.json" \
      --target-condition "tags.site='${site}'" \
      --priority 20
done
