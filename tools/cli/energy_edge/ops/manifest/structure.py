"""A deployment manifest's structure: its sections, modules and routes, layers, and `Problem`."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

PLATFORMS = ("amd64", "arm64v8", "arm32v7")
DEFAULT_PLATFORM = "amd64"
TEMPLATE_SUFFIX = ".template.json"
CREATE_OPTIONS_CHUNK = 512  # characters per twin value, as iotedgedev cuts them
CREATE_OPTIONS_MAX_CHUNKS = 8  # createOptions + createOptions01..07 = 4 KiB
DESIRED = "properties.desired"
LAYER_PREFIX = DESIRED + "."
SYSTEM_SECTIONS = ("$edgeAgent", "$edgeHub")

SCHEMA_URLS = {
    "template": "https://json.schemastore.org/azure-iot-edge-deployment-template-4.0.json",
    "agent": "https://json.schemastore.org/azure-iot-edgeagent-deployment-1.1.json",
    "hub": "https://json.schemastore.org/azure-iot-edgehub-deployment-1.2.json",
}

_MODULES_PLACEHOLDER = re.compile(r"^\$\{MODULES\.([A-Za-z0-9_-]+)(?:\.([A-Za-z0-9_.]+))?\}$")
_MODULEDIR_PLACEHOLDER = re.compile(r"^\$\{MODULEDIR<([^>]+)>(?:\.([A-Za-z0-9_.]+))?\}$")
_ANY_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class ManifestBuildError(ValueError):
    """The manifest cannot be built; the message says what to set or fix."""


@dataclass(frozen=True)
class Problem:
    """One finding of a check: where (file and JSON path) and what."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


# ====================================================================== manifest structure


def modules_content(manifest: Mapping[str, Any], origin: str = "manifest") -> dict[str, Any]:
    content = manifest.get("modulesContent") if isinstance(manifest, Mapping) else None
    if not isinstance(content, dict):
        raise ManifestBuildError(f"{origin}: no 'modulesContent' object")
    return content


def is_layered(manifest: Mapping[str, Any]) -> bool:
    """A layered deployment sets paths (``properties.desired.modules.x``), never the whole edgeAgent document."""
    agent = modules_content(manifest).get("$edgeAgent", {})
    return DESIRED not in agent


def agent_modules(manifest: Mapping[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(kind, name, spec) of every module definition: kind is ``modules`` or ``systemModules``."""
    agent = modules_content(manifest).get("$edgeAgent", {})
    desired = agent.get(DESIRED)
    if isinstance(desired, dict):
        for kind in ("systemModules", "modules"):
            for name, spec in (desired.get(kind) or {}).items():
                yield kind, name, spec
    for key, spec in agent.items():
        for kind in ("systemModules", "modules"):
            prefix = f"{LAYER_PREFIX}{kind}."
            if key.startswith(prefix) and isinstance(spec, dict):
                yield kind, key[len(prefix):], spec


def user_modules(manifest: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: spec for kind, name, spec in agent_modules(manifest) if kind == "modules"}


def routes_of(manifest: Mapping[str, Any]) -> dict[str, Any]:
    hub = modules_content(manifest).get("$edgeHub", {})
    routes: dict[str, Any] = dict((hub.get(DESIRED) or {}).get("routes") or {})
    prefix = f"{LAYER_PREFIX}routes."
    routes.update({key[len(prefix):]: spec for key, spec in hub.items() if key.startswith(prefix)})
    return routes


def drop_modules(manifest: dict[str, Any], names: Iterable[str]) -> None:
    """Remove modules from a (non-layered) deployment manifest, in place, with their desired properties and
    every route from or to them, e.g. to run a site without its simulator module."""
    content = modules_content(manifest)
    modules = content["$edgeAgent"][DESIRED]["modules"]
    routes = content["$edgeHub"][DESIRED]["routes"]
    for name in names:
        modules.pop(name, None)
        content.pop(name, None)
        for route_name, route in list(routes.items()):
            route_text = route if isinstance(route, str) else route["route"]
            if f"/modules/{name}/" in route_text:
                del routes[route_name]


def apply_layer(base: Mapping[str, Any], layer: Mapping[str, Any]) -> dict[str, Any]:
    """What a device gets when `layer` (higher priority) is applied on top of `base`."""
    merged = copy.deepcopy(dict(base))
    content = modules_content(merged)
    for section, patch in modules_content(layer, "layer").items():
        if not isinstance(patch, dict):
            raise ManifestBuildError(f"layer: {section} must be an object")
        target = content.setdefault(section, {})
        for key, value in patch.items():
            if key == DESIRED:
                target[DESIRED] = copy.deepcopy(value)
                continue
            if not key.startswith(LAYER_PREFIX):
                raise ManifestBuildError(f"layer: {section}.{key} is neither 'properties.desired' nor a path in it")
            node = target.setdefault(DESIRED, {})
            *parents, leaf = key[len(LAYER_PREFIX):].split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = copy.deepcopy(value)
    merged.pop("$schema-template", None)
    if "$schema-template" in base:
        merged["$schema-template"] = base["$schema-template"]
    return merged
