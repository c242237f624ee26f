"""What the emulator reads from a deployment manifest (template or expanded, same shape)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from energy_edge.hub.routes import RouteTable

log = logging.getLogger("energy_edge.hub.manifest")

# ${NAME} as iotedgedev expands it; ${MODULES.…} and ${MODULEDIR<…>} are image placeholders, left alone here.
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


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
    system_desired: dict[str, dict[str, Any]] = field(default_factory=dict)  # $edgeAgent, $edgeHub

    @property
    def module_ids(self) -> list[str]:
        return sorted(self.modules)


def read_env_file(path: Path) -> dict[str, str]:
    """`KEY=value` lines (iotedgedev's .env); comments and blank lines ignored."""
    values: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def expand_variables(text: str, env: dict[str, str]) -> tuple[str, list[str]]:
    """Replace ${NAME} from `env`; returns the text and the names that were not found."""
    missing: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in env:
            return env[name]
        missing.append(name)
        return match.group(0)

    return _VARIABLE.sub(replace, text), sorted(set(missing))


def load_manifest(path: Path) -> EdgeConfig:
    """Read a deployment manifest, expanding ${NAME} from the environment, then `.env` beside it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ManifestError(f"manifest {path} not found") from exc
    env = {**read_env_file(path.parent / ".env"), **os.environ}
    text, missing = expand_variables(text, env)
    if missing:
        log.warning("%s: variables not set, left as they are: %s", path, ", ".join(missing))
    try:
        content = json.loads(text)
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
    return EdgeConfig(modules, routes, store_ttl_s, desired, digest, {"$edgeAgent": agent, "$edgeHub": hub})


def _desired(modules_content: dict[str, Any], key: str, origin: str) -> dict[str, Any]:
    section = modules_content.get(key)
    if not isinstance(section, dict) or not isinstance(section.get("properties.desired"), dict):
        raise ManifestError(f"{origin}: no '{key}' with 'properties.desired'")
    desired: dict[str, Any] = section["properties.desired"]
    return desired
