"""What the emulator reads from a deployment manifest (template or expanded, same shape)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from energy_edge.hub.routes import RouteTable


class ManifestError(ValueError):
    """The manifest cannot be used; the message says where."""


@dataclass(frozen=True)
class ModuleSpec:
    name: str
    status: str = "running"
    restart_policy: str = "always"
    startup_order: int = 4294967295
    env: dict[str, str] = field(default_factory=dict)
    image: str = ""


@dataclass(frozen=True)
class EdgeConfig:
    """The parts of a deployment the emulator acts on."""

    modules: dict[str, ModuleSpec]
    routes: RouteTable
    store_ttl_s: int  # negative: keep forever
    desired: dict[str, dict[str, Any]]  # module id -> properties.desired
    digest: str

    @property
    def module_ids(self) -> list[str]:
        return sorted(self.modules)


def load_manifest(path: Path) -> EdgeConfig:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ManifestError(f"manifest {path} not found") from exc
    except json.JSONDecodeError as exc:
        raise ManifestError(f"manifest {path}: invalid JSON at line {exc.lineno}, column {exc.colno}") from exc
    return parse_modules_content(content, str(path))


def parse_modules_content(content: Any, origin: str = "configuration") -> EdgeConfig:
    modules_content = content.get("modulesContent") if isinstance(content, dict) else None
    if not isinstance(modules_content, dict):
        raise ManifestError(f"{origin}: no 'modulesContent' object")
    agent = _desired(modules_content, "$edgeAgent", origin)
    hub = _desired(modules_content, "$edgeHub", origin)
    raw_modules = agent.get("modules", {})
    if not isinstance(raw_modules, dict):
        raise ManifestError(f"{origin}: $edgeAgent.properties.desired.modules must be an object")
    modules = {}
    for name, spec in raw_modules.items():
        if not isinstance(spec, dict):
            raise ManifestError(f"{origin}: module {name!r} must be an object")
        env = {k: str(v.get("value", "")) for k, v in spec.get("env", {}).items() if isinstance(v, dict)}
        modules[name] = ModuleSpec(
            name=name,
            status=spec.get("status", "running"),
            restart_policy=spec.get("restartPolicy", "always"),
            startup_order=int(spec.get("startupOrder", 4294967295)),
            env=env,
            image=str(spec.get("settings", {}).get("image", "")),
        )
    raw_routes = hub.get("routes", {})
    if not isinstance(raw_routes, dict):
        raise ManifestError(f"{origin}: $edgeHub.properties.desired.routes must be an object")
    routes = RouteTable.from_manifest(raw_routes)
    store_cfg = hub.get("storeAndForwardConfiguration", {}) or {}
    store_ttl_s = int(store_cfg.get("timeToLiveSecs", -1))
    desired = {}
    for name in modules:
        section = modules_content.get(name, {})
        props = section.get("properties.desired", {}) if isinstance(section, dict) else {}
        if not isinstance(props, dict):
            raise ManifestError(f"{origin}: {name}.properties.desired must be an object")
        desired[name] = props
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return EdgeConfig(modules, routes, store_ttl_s, desired, digest)


def _desired(modules_content: dict[str, Any], key: str, origin: str) -> dict[str, Any]:
    section = modules_content.get(key)
    if not isinstance(section, dict) or not isinstance(section.get("properties.desired"), dict):
        raise ManifestError(f"{origin}: no '{key}' with 'properties.desired'")
    desired: dict[str, Any] = section["properties.desired"]
    return desired
