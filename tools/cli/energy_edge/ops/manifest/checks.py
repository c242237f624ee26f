"""The cross-artefact checks: desired properties against the modules' models, routes against their interfaces,
folders, the upstream budget and the site's assets; and every template and layer of a repository."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from energy_edge.hub.manifest import expand_variables, read_env_file
from energy_edge.hub.routes import RouteError, parse_route
from energy_edge.ops.manifest.images import read_module_json
from energy_edge.ops.manifest.interfaces import ModuleInterface, module_interface
from energy_edge.ops.manifest.schema import schema_problems
from energy_edge.ops.manifest.structure import (
    _MODULES_PLACEHOLDER,
    DESIRED,
    SYSTEM_SECTIONS,
    TEMPLATE_SUFFIX,
    Problem,
    apply_layer,
    is_layered,
    modules_content,
    routes_of,
    user_modules,
)

# ====================================================================== cross-artefact checks


@dataclass
class Repository:
    """The artefacts a manifest is checked against: module folders, their interfaces and config models."""

    root: Path
    models: Mapping[str, Any] = field(default_factory=dict)  # "config.<module id>" -> pydantic model
    _interfaces: dict[str, ModuleInterface] = field(default_factory=dict)

    @property
    def modules_dir(self) -> Path:
        return self.root / "modules"

    def folder_of(self, spec: Mapping[str, Any]) -> str | None:
        image = (spec.get("settings") or {}).get("image", "")
        match = _MODULES_PLACEHOLDER.match(image) if isinstance(image, str) else None
        return match.group(1) if match else None

    def interface(self, folder: str) -> ModuleInterface:
        if folder not in self._interfaces:
            path = self.modules_dir / folder
            self._interfaces[folder] = module_interface(path) if path.is_dir() else ModuleInterface(None)
        return self._interfaces[folder]


def load_repository(root: Path) -> Repository:
    from energy_edge_base.schemas import discover_extra_models

    models = {name: model for name, model in discover_extra_models().items() if name.startswith("config.")}
    return Repository(root, models)


def variable_problems(text: str, env: Mapping[str, str], where: str) -> list[Problem]:
    """Every ${NAME} a template uses must be documented (a value in deployment/.env.example)."""
    _, missing = expand_variables(text, dict(env))
    return [Problem(where, f"${{{name}}} is used but deployment/.env.example does not define it") for name in missing]


def desired_problems(manifest: Mapping[str, Any], repo: Repository, where: str) -> list[Problem]:
    from pydantic import ValidationError

    content = modules_content(manifest, where)
    modules = user_modules(manifest)
    problems = []
    for name in modules:
        section = content.get(name)
        desired = section.get(DESIRED) if isinstance(section, dict) else None
        model = repo.models.get(f"config.{name}")
        at = f"{where}: {name}.{DESIRED}"
        if model is None:
            if desired:
                problems.append(Problem(at, f"module {name} registers no configuration model (entry point "
                                            f"config.{name}), so its desired properties would be ignored"))
            continue
        if not isinstance(desired, dict):
            problems.append(Problem(at, "missing: every configured module gets its full desired configuration"))
            continue
        try:
            model.model_validate(desired)
        except ValidationError as exc:
            for error in exc.errors():
                loc = ".".join(str(p) for p in error["loc"])
                problems.append(Problem(f"{at}.{loc}" if loc else at, f"{error['msg']} ({model.__name__})"))
    for name in content:
        if name not in SYSTEM_SECTIONS and name not in modules:
            problems.append(Problem(f"{where}: {name}", "twin settings for a module this deployment does not run"))
    return problems


def _source_parts(source: str) -> tuple[str | None, str | None]:
    """(module, output) named by a route source; None for a wildcard or a source that names none."""
    parts = [p for p in source.split("/") if p]
    if len(parts) < 3 or [p.lower() for p in parts[:2]] != ["messages", "modules"] or parts[2] == "*":
        return None, None
    module = parts[2]
    if len(parts) >= 5 and parts[3].lower() == "outputs" and parts[4] != "*":
        return module, parts[4]
    return module, None


def route_problems(manifest: Mapping[str, Any], repo: Repository, where: str) -> list[Problem]:
    modules = user_modules(manifest)
    folders = {name: repo.folder_of(spec) for name, spec in modules.items()}
    problems = []

    def interface(module: str) -> ModuleInterface | None:
        folder = folders.get(module)
        return repo.interface(folder) if folder else None  # an image not built here: nothing to read

    for name, spec in routes_of(manifest).items():
        at = f"{where}: routes.{name}"
        try:
            route = parse_route(name, spec)
        except RouteError as exc:
            problems.append(Problem(at, str(exc)))
            continue
        module, output = _source_parts(route.source)
        if module is not None:
            if module not in modules:
                problems.append(Problem(at, f"source module {module!r} is not in this deployment"))
            else:
                iface = interface(module)
                if iface is not None:
                    if output is not None and output not in iface.outputs:
                        sends = ", ".join(sorted(iface.outputs)) or "nothing"
                        problems.append(Problem(at, f"module {module!r} never sends on output {output!r} "
                                                    f"(it sends on: {sends})"))
                    elif output is None and not iface.outputs:
                        problems.append(Problem(at, f"module {module!r} sends no messages"))
        endpoint = route.endpoint
        if endpoint.kind == "module_input":
            target = endpoint.module_id or ""
            if target not in modules:
                problems.append(Problem(at, f"target module {target!r} is not in this deployment"))
            else:
                iface = interface(target)
                if iface is not None and endpoint.input_name not in iface.inputs:
                    handles = ", ".join(sorted(iface.inputs)) or "none"
                    problems.append(Problem(at, f"module {target!r} has no input {endpoint.input_name!r} "
                                                f"(its inputs: {handles})"))
        else:  # $upstream: the message budget allows aggregates and events of one named output, never telemetry
            if module is None or output is None:
                problems.append(Problem(at, f"{route.source} sends a wildcard upstream; name one module output "
                                            "(IoT Hub gets aggregates and events only)"))
            elif output.lower() == "telemetry":
                problems.append(Problem(at, "raw telemetry stays on the edge; route aggregates upstream instead"))
    return problems


def folder_problems(manifest: Mapping[str, Any], repo: Repository, where: str) -> list[Problem]:
    """Every module built from this repository has its folder, module.json and a Dockerfile per platform."""
    problems = []
    for name, spec in user_modules(manifest).items():
        image = (spec.get("settings") or {}).get("image", "")
        at = f"{where}: modules.{name}.settings.image"
        if isinstance(image, str) and image.startswith("${") and not _MODULES_PLACEHOLDER.match(image):
            problems.append(Problem(at, f"{image} is not a ${{MODULES.<folder>}} placeholder"))
            continue
        folder = repo.folder_of(spec)
        if folder is None:
            continue  # a public image (mcr.microsoft.com/…): nothing of it lives here
        path = repo.modules_dir / folder
        if not path.is_dir():
            problems.append(Problem(at, f"no folder modules/{folder}"))
            continue
        if not (path / "module.json").is_file():
            problems.append(Problem(at, f"no modules/{folder}/module.json"))
            continue
        try:
            image_spec = read_module_json(path, {"CONTAINER_REGISTRY_ADDRESS": "registry.example"})
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(Problem(at, f"modules/{folder}/module.json is malformed: {exc!r}"))
            continue
        if image_spec.repository.rsplit("/", 1)[-1] != folder:
            problems.append(Problem(at, f"modules/{folder}/module.json repository {image_spec.repository!r} "
                                        f"does not end in /{folder}"))
        for platform, dockerfile in image_spec.platforms.items():
            if not (path / dockerfile).is_file():
                problems.append(Problem(at, f"modules/{folder}/module.json: {platform} names {dockerfile}, "
                                            "which does not exist"))
    return problems


UPSTREAM_BUDGET_PER_DAY = 2000  # messages per site per day (an S1 unit's 400 000 a day covers 200 sites)
CAPABILITY_CHANGES_PER_DAY = 24  # per capability, on top of the periodic refresh: a margin, not a rate limit


def upstream_per_day(manifest: Mapping[str, Any]) -> dict[str, float]:
    """The most each upstream route can send a day, from what bounds it: the controller's summary and
    capability intervals (its desired properties) and the modules' event rate limit (events.py)."""
    from energy_edge_base.events import BURST_ENV, EVENTS_OUTPUT, EVENTS_PER_DAY, burst_from

    controller = (modules_content(manifest).get("controller") or {}).get(DESIRED) or {}
    per_output = {
        ("controller", "summary"): 86_400 / float(controller.get("summary_interval_s", 60)),
        ("controller", "capability"): 2 * (86_400 / float(controller.get("capability_refresh_s", 900))
                                           + CAPABILITY_CHANGES_PER_DAY),
    }
    budget: dict[str, float] = {}
    for name, spec in routes_of(manifest).items():
        route = parse_route(name, spec)
        if route.endpoint.kind == "module_input":
            continue
        module, output = _source_parts(route.source)
        if output == EVENTS_OUTPUT:
            env = (user_modules(manifest).get(module or "") or {}).get("env") or {}
            burst = burst_from({BURST_ENV: str(env[BURST_ENV].get("value"))} if BURST_ENV in env else {})
            budget[name] = EVENTS_PER_DAY + burst
        else:
            budget[name] = per_output.get((module or "", output or ""), float("inf"))
    return budget


def budget_problems(manifest: Mapping[str, Any], where: str) -> list[Problem]:
    """Everything routed upstream together stays within UPSTREAM_BUDGET_PER_DAY."""
    try:
        budget = upstream_per_day(manifest)
    except RouteError:
        return []  # route_problems names it
    unbounded = sorted(name for name, n in budget.items() if n == float("inf"))
    if unbounded:
        return [Problem(f"{where}: routes.{name}", "sends upstream with no known bound on its messages a day")
                for name in unbounded]
    total = sum(budget.values())
    if total > UPSTREAM_BUDGET_PER_DAY:
        return [Problem(f"{where}: routes", f"upstream could carry {total:,.0f} messages a day, over the budget of "
                                            f"{UPSTREAM_BUDGET_PER_DAY:,} per site")]
    return []


ASSET_MODULES = {"battery": "battery", "solar": "solar", "boiler": "boiler",
                 "microgrid_controller": "microgrid-controller"}
ASSET_LISTS = ("controller", "telemetry")  # the modules whose `assets` name the site's assets


def site_assets(manifest: Mapping[str, Any]) -> dict[str, list[str]]:
    """The site's assets by type: the asset ids the asset modules' `devices` name (the one source of them)."""
    content = modules_content(manifest)
    controller = (content.get("controller") or {}).get(DESIRED) or {}
    assets = {}
    for kind, module in {**ASSET_MODULES, **controller.get("asset_modules", {})}.items():
        devices = ((content.get(module) or {}).get(DESIRED) or {}).get("devices")
        ids = sorted(str(d.get("asset_id")) for d in devices or [] if isinstance(d, dict))
        if ids:
            assets[kind] = ids
    return assets


def set_site_assets(manifest: dict[str, Any]) -> None:
    """Write the site's assets into the modules that list them (after their devices changed)."""
    content = manifest["modulesContent"]
    for name in ASSET_LISTS:
        desired = (content.get(name) or {}).get(DESIRED)
        if isinstance(desired, dict):
            desired["assets"] = site_assets(manifest)


def asset_problems(manifest: Mapping[str, Any], where: str) -> list[Problem]:
    """The controller's and the telemetry module's `assets` are the asset modules' devices: one list of the
    site's assets, stated where each module needs it and checked to agree here."""
    content = modules_content(manifest)
    driven = site_assets(manifest)
    problems = []
    for name in ASSET_LISTS:
        assets = ((content.get(name) or {}).get(DESIRED) or {}).get("assets")
        if not isinstance(assets, dict):
            continue
        listed = {kind: sorted(ids) for kind, ids in assets.items() if ids}
        if listed != driven:
            problems.append(Problem(f"{where}: {name}.{DESIRED}.assets",
                                    f"{listed} is not what the asset modules drive: {driven}"))
    return problems


def check_manifest(manifest: Mapping[str, Any], repo: Repository, where: str) -> list[Problem]:
    """All checks on one complete (non-layered) manifest, placeholders for variables already expanded."""
    problems = schema_problems(manifest, where)
    problems += folder_problems(manifest, repo, where)
    problems += desired_problems(manifest, repo, where)
    problems += route_problems(manifest, repo, where)
    problems += budget_problems(manifest, where)
    problems += asset_problems(manifest, where)
    return problems


def load_template(path: Path, env: Mapping[str, str]) -> tuple[dict[str, Any], list[Problem]]:
    text = path.read_text(encoding="utf-8")
    problems = variable_problems(text, env, str(path))
    expanded, _ = expand_variables(text, dict(env))
    return json.loads(expanded), problems


def templates(root: Path) -> tuple[list[Path], list[Path]]:
    """(base templates, layered templates) under deployment/."""
    deployment = root / "deployment"
    found = sorted(deployment.glob(f"*{TEMPLATE_SUFFIX}")) + sorted(deployment.glob(f"*/*{TEMPLATE_SUFFIX}"))
    bases: list[Path] = []
    layers: list[Path] = []
    for path in found:
        (layers if is_layered(json.loads(path.read_text(encoding="utf-8"))) else bases).append(path)
    return bases, layers


def check_repository(root: Path, repo: Repository | None = None) -> list[Problem]:
    """Every base template, and every layered template merged onto every base template."""
    repo = repo or load_repository(root)
    env = read_env_file(root / "deployment" / ".env.example")
    bases, layers = templates(root)
    problems: list[Problem] = []
    loaded = {}
    for path in bases:
        manifest, found = load_template(path, env)
        loaded[path] = manifest
        problems += found + check_manifest(manifest, repo, path.relative_to(root).as_posix())
    for path in layers:
        layer, found = load_template(path, env)
        problems += found
        for base_path, base in loaded.items():
            where = f"{path.relative_to(root).as_posix()} on {base_path.name}"
            problems += check_manifest(apply_layer(base, layer), repo, where)
    return problems
