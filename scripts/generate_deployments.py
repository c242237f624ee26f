#!/usr/bin/env python3
"""Derive the deployment variants from deployment/deployment.template.json, so they never drift from it.

    python scripts/generate_deployments.py            # write what is stale
    python scripts/generate_deployments.py --check    # write nothing; exit 1 naming stale files

* deployment/deployment.production.template.json: the base deployment of hardware sites. The same modules,
  routes and twin settings as the template, without the simulator module, with no devices and the site
  unassigned: the per-site layer (deployment/layered/site.template.json, target `tags.site='…'`) supplies them.
  The site console starts read-only there (`operator_actions_enabled: false`); a site layer may turn it on.
* deployment/layered/diagnostics.template.json: a layer for devices tagged `diagnostics=true`: the controller
  module as the template defines it, with debug logs as JSON and Prometheus metrics on port 9600.

Edit deployment/deployment.template.json, then run this script; tests/devops checks the files are current.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEPLOYMENT = ROOT / "deployment"
TEMPLATE = DEPLOYMENT / "deployment.template.json"
PRODUCTION = DEPLOYMENT / "deployment.production.template.json"
DIAGNOSTICS = DEPLOYMENT / "layered" / "diagnostics.template.json"

LAB_ONLY_MODULES = ("simulator",)
# hardware sites start read-only: a site layer turns the console's operator actions on where they are wanted
PRODUCTION_DESIRED = {"console": {"operator_actions_enabled": False}}
UNASSIGNED_SITE = "unassigned"
DIAGNOSTICS_MODULE = "controller"
DIAGNOSTICS_ENV = {"LOG_LEVEL": {"value": "DEBUG"}, "LOG_FORMAT": {"value": "json"}, "METRICS_PORT": {"value": "9600"}}


def production(template: dict[str, Any]) -> dict[str, Any]:
    manifest = copy.deepcopy(template)
    content = manifest["modulesContent"]
    modules = content["$edgeAgent"]["properties.desired"]["modules"]
    for name in LAB_ONLY_MODULES:
        modules.pop(name, None)
        content.pop(name, None)
    for name in modules:
        desired = content.get(name, {}).get("properties.desired")
        if isinstance(desired, dict):
            if "site_id" in desired:
                desired["site_id"] = UNASSIGNED_SITE
            if "devices" in desired:
                desired["devices"] = []
            if "assets" in desired:  # the site's assets come with its layer, as its devices do
                desired["assets"] = {}
            desired.update(PRODUCTION_DESIRED.get(name, {}))
    return manifest


def diagnostics(template: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(template["modulesContent"]["$edgeAgent"]["properties.desired"]["modules"][DIAGNOSTICS_MODULE])
    spec["env"] = {**spec.get("env", {}), **DIAGNOSTICS_ENV}
    return {
        "$schema-template": template["$schema-template"],
        "modulesContent": {"$edgeAgent": {f"properties.desired.modules.{DIAGNOSTICS_MODULE}": spec}},
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def expected_files() -> dict[Path, str]:
    template = json.loads(TEMPLATE.read_text(encoding="utf-8"))
    return {PRODUCTION: render(production(template)), DIAGNOSTICS: render(diagnostics(template))}


def stale_files() -> list[Path]:
    return [path for path, text in expected_files().items()
            if not path.is_file() or path.read_text(encoding="utf-8") != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a file is stale")
    args = parser.parse_args(argv)
    stale = stale_files()
    if args.check:
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)}", file=sys.stderr)
        return 1 if stale else 0
    expected = expected_files()
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(expected[path], encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
